//! Serving parties prepare pooled sessions before their requests: each party's products A_i F
//! ([`ditto_mpc::precompute`]), so that online each fixed-weight product is one GEMM, not two.
//!
//! * P1 computes its products from the pooled session's stream once its weights are set up (its
//!   first request sets them up; a session pooled before is prepared when P1 is next idle),
//!   keeps them beside the session (`SESSION.af` next to `SESSION.p1`, [`crate::pool`]) and
//!   hands P0 the session's sealed P0 stream ahead on a routing link ([`RouteKind::Ahead`]).
//! * P0 (`--pool SIZE`: the disk for them) computes its products from that stream, one session
//!   at a time and only while no request is under way, and keeps them in `STATE/ahead/`
//!   ([`Ahead`]), the oldest dropped past the budget.
//! * The request that takes the session uses them when they are there (each party on its own:
//!   a party without them computes A_i F online as before); the engine checks they belong to
//!   its party, session, plan and weights. They are deleted when taken; a restart deletes those
//!   of sessions already consumed and unfinished files.
//!
//! The products are as secret as the party's stream (they determine A_i): files are private
//! (0600) and never leave the party. Handing P0 its stream early changes nothing for it: the
//! stream is sealed to P0's key and bound to the session; P0 claims the session when a request
//! uses it, as before.
//!
//! [`RouteKind::Ahead`]: ditto_net::link::RouteKind::Ahead

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use ditto_core::prg::SessionId;
use ditto_dealer::host::PlanParams;
use ditto_models::share_file::ModelShare;
use ditto_mpc::precompute::{Pace, Products};
use ditto_net::dealer::Source;

use ditto_net::link::{Config, Link, Route};

use crate::files::SessionRecord;
use crate::party::{PartyConfig, Peer, plan_for};
use crate::pool::{PoolKey, Prepare, file_err, sync_dir};
use crate::{NodeError, io};

use crate::pool::PRODUCTS as EXT;

/// Writes `p` to `path` privately (`.tmp`, synced, renamed, directory synced); bytes written.
pub(crate) fn write(path: &Path, p: &Products) -> Result<u64, NodeError> {
    let tmp = path.with_extension(format!("{EXT}.tmp"));
    let bytes = p.encode();
    let _ = fs::remove_file(&tmp);
    if let Err(e) = crate::files::write_private(&tmp, &bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path).map_err(file_err(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(bytes.len() as u64)
}

/// Reads products written by [`write`].
pub(crate) fn read(path: &Path) -> Result<Products, NodeError> {
    let b = fs::read(path).map_err(file_err(path))?;
    Products::decode(&b).map_err(|e| NodeError::Request(format!("{}: {e}", path.display())))
}

/// Computes this party's products of `session` (a plan of `params` for `share`'s model) from
/// its stream `source` and the weights the party's store holds, on the calling thread, holding
/// back between steps while `busy()` (a request under way has the cores); `None` while the
/// store holds no weights of this sharing.
pub(crate) fn compute(
    cfg: &PartyConfig,
    share: &ModelShare,
    (params, session): (&PlanParams, SessionId),
    source: Source,
    busy: &(dyn Fn() -> bool + Sync),
) -> Result<Option<Products>, NodeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting a runtime for products"))?;
    rt.block_on(async {
        let plan = plan_for(&share.config(), share.quant(), params).await?;
        let ids = (session, share.share_set());
        let key = cfg.key.clone();
        let pace = Pace { threads: cfg.threads, timeout: cfg.timeout, hold: busy };
        let got = Products::compute(cfg.party, (source, key), &plan, ids, &cfg.weights, pace).await?;
        Ok(got)
    })
}

/// A session P1 handed ahead: its id, plan parameters and P0's sealed stream.
pub struct Job {
    /// The session.
    pub session: SessionId,
    /// Its plan's parameters.
    pub params: PlanParams,
    /// P0's sealed stream of it.
    pub p0_stream: Vec<u8>,
}

/// P0's products of sessions P1 pooled, in `STATE/ahead/` (see the module docs).
pub struct Ahead {
    dir: PathBuf,
    budget: u64,
    consumed: SessionRecord,
    queue: std::sync::Mutex<Option<SyncSender<Job>>>,
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ahead {{ {}, budget {} }}", self.dir.display(), self.budget)
    }
}

/// Sessions waiting for P0's worker (more are dropped: their requests compute online).
const QUEUE: usize = 256;

impl Ahead {
    /// Opens P0's store in `state` with `budget` bytes, deleting unfinished files and the
    /// products of sessions already consumed.
    pub fn open(state: &Path, budget: u64, consumed: SessionRecord) -> Result<Arc<Self>, NodeError> {
        let dir = state.join("ahead");
        fs::create_dir_all(&dir).map_err(file_err(&dir))?;
        for e in fs::read_dir(&dir).map_err(file_err(&dir))? {
            let path = e.map_err(file_err(&dir))?.path();
            let session = session_of(&path);
            let keep = match session {
                Some(s) => !consumed.contains(&s)?,
                None => false,
            };
            if !keep {
                fs::remove_file(&path).map_err(file_err(&path))?;
            }
        }
        sync_dir(&dir)?;
        Ok(Arc::new(Ahead { dir, budget, consumed, queue: std::sync::Mutex::new(None) }))
    }

    fn path(&self, session: SessionId) -> PathBuf {
        self.dir.join(format!("{:032x}.{EXT}", session.as_u128()))
    }

    /// Takes the products of `session` (claimed by the caller first): read, then deleted.
    /// `None` when there are none or they cannot be read (the request computes A_0 F online).
    pub fn take(&self, session: SessionId) -> Option<Products> {
        let path = self.path(session);
        let p = read(&path).ok();
        let _ = fs::remove_file(&path);
        p
    }

    /// Queues a session handed ahead for the worker; false when the queue is full or no worker
    /// runs (the session's request then computes A_0 F online).
    pub fn offer(&self, job: Job) -> bool {
        let q = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match q.as_ref().map(|tx| tx.try_send(job)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        }
    }

    /// Keeps `p`, dropping the oldest products while the directory would exceed the budget.
    fn put(&self, p: &Products) -> Result<u64, NodeError> {
        let size = (p.bytes() + 128 + 12 * p.len()) as u64;
        make_room(&self.dir, self.budget, size)?;
        write(&self.path(p.session), p)
    }
}

/// Deletes the oldest files of `dir` (by modification time) until `size` more bytes fit in
/// `budget`; refuses, deleting nothing, when `size` alone exceeds it.
pub(crate) fn make_room(dir: &Path, budget: u64, size: u64) -> Result<(), NodeError> {
    if size > budget {
        return Err(NodeError::Config(format!(
            "products of {size} bytes do not fit P0's --pool budget of {budget} bytes"
        )));
    }
    let mut files: Vec<(std::time::SystemTime, PathBuf, u64)> = fs::read_dir(dir)
        .map_err(file_err(dir))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, e.path(), m.len()))
        })
        .collect();
    files.sort();
    let mut used: u64 = files.iter().map(|f| f.2).sum();
    for (_, path, len) in &files {
        if used + size <= budget {
            break;
        }
        match fs::remove_file(path) {
            // Taken meanwhile by its request: gone either way.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_err(path)(e)),
            _ => used -= len,
        }
    }
    Ok(())
}

fn session_of(path: &Path) -> Option<SessionId> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(&format!(".{EXT}"))?;
    crate::files::parse_hex16(stem).map(SessionId)
}

/// Starts P0's worker: computes the products of the sessions handed ahead, one at a time,
/// waiting while `busy()`, until the queue closes ([`stop_worker`]).
pub fn spawn_worker(
    ahead: &Arc<Ahead>,
    cfg: Arc<PartyConfig>,
    share: Arc<ModelShare>,
    busy: Arc<dyn Fn() -> bool + Send + Sync>,
    log: Arc<dyn Fn(String) + Send + Sync>,
) -> std::thread::JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    *ahead.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
    let a = Arc::clone(ahead);
    std::thread::spawn(move || work(&a, &cfg, &share, &rx, &*busy, &*log))
}

/// Closes the worker's queue (it ends after the session under way).
pub fn stop_worker(ahead: &Ahead) {
    *ahead.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
}

fn work(
    ahead: &Ahead,
    cfg: &PartyConfig,
    share: &ModelShare,
    rx: &Receiver<Job>,
    busy: &(dyn Fn() -> bool + Sync),
    log: &dyn Fn(String),
) {
    while let Ok(job) = rx.recv() {
        while busy() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let s = job.session.as_u128();
        let t = std::time::Instant::now();
        let source = Source::Memory(Arc::new(job.p0_stream));
        let done = match ahead.consumed.contains(&job.session) {
            Ok(true) => Err(NodeError::Request("the session was already used".into())),
            Ok(false) => compute(cfg, share, (&job.params, job.session), source, busy),
            Err(e) => Err(e),
        }
        .and_then(|p| p.map(|p| ahead.put(&p)).transpose());
        // A request that took the session meanwhile found none: these would never be used.
        if matches!(done, Ok(Some(_))) && ahead.consumed.contains(&job.session).unwrap_or(true) {
            let _ = fs::remove_file(ahead.path(job.session));
        }
        match done {
            Ok(Some(bytes)) => log(format!(
                "prepared party=0 session={s:032x} products_bytes={bytes} s={:.3}",
                t.elapsed().as_secs_f64()
            )),
            Ok(None) => log(format!(
                "prepare-skipped party=0 session={s:032x} reason=\"no weights set up yet for this sharing\""
            )),
            Err(e) => log(format!("prepare-failed party=0 session={s:032x} error={:?}", e.to_string())),
        }
    }
}

/// P1's preparation of its pooled sessions ([`crate::pool::fill`]'s [`Prepare`]).
pub struct Preparer {
    /// P1's configuration (key, weights, peer).
    pub cfg: Arc<PartyConfig>,
    /// Its model share.
    pub share: Arc<ModelShare>,
    /// Where a failed hand-over to P0 is told.
    pub log: Arc<dyn Fn(String) + Send + Sync>,
    /// Whether a request is under way (the preparation holds back meanwhile).
    pub busy: Arc<dyn Fn() -> bool + Send + Sync>,
}

/// Longest wait for P0 when handing it a session ahead (P0 down: the filler goes on).
const HAND_OVER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Prepare for Preparer {
    fn ready(&self) -> bool {
        !self.cfg.weights.is_empty()
    }

    fn prepare(
        &self,
        key: &PoolKey,
        session: SessionId,
        (p0, p1, af): (&Path, &Path, &Path),
    ) -> Result<Option<u64>, NodeError> {
        let source = Source::File(p1.to_path_buf());
        let Some(p) = compute(&self.cfg, &self.share, (&key.params, session), source, &*self.busy)? else {
            return Ok(None);
        };
        let bytes = write(af, &p)?;
        let stream = fs::read(p0).map_err(file_err(p0))?;
        if let Peer::Connect(addr) = &self.cfg.peer
            && let Err(e) = hand_over(&self.cfg, addr, Route::ahead(session, key.params, stream))
        {
            (self.log)(format!(
                "ahead-failed party=1 session={:032x} error={:?}",
                session.as_u128(),
                format!("handing P0 the session ahead: {e}")
            ));
        }
        Ok(Some(bytes))
    }
}

/// Sends P0 a routing link of `route` (an ahead route: the link ends there).
fn hand_over(cfg: &PartyConfig, addr: &str, route: Route) -> Result<(), NodeError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting a runtime for the hand-over"))?;
    rt.block_on(async {
        let c = Config { timeout: cfg.timeout.min(HAND_OVER_WAIT) };
        let mut l = Link::connect(addr, ditto_core::Party::P1, c, &cfg.security).await?;
        l.route_send(&route).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget evicts the oldest files first, only as many as needed, and refuses what
    /// cannot fit without deleting anything.
    #[test]
    fn room_is_made_by_dropping_the_oldest_products() {
        let dir = std::env::temp_dir().join(format!("ditto-ahead-room-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        // Written newest first, so the names' order is not the age order.
        for (i, (name, len)) in [("c", 200), ("b", 300), ("a", 400)].into_iter().enumerate() {
            let f = fs::File::create(dir.join(name)).unwrap();
            f.set_len(len).unwrap();
            f.set_modified(t0 - std::time::Duration::from_secs(60 * i as u64)).unwrap();
        }
        let left = || {
            let mut v: Vec<String> =
                fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        };
        // 900 bytes held: 100 more fit in 1000 as they are.
        make_room(&dir, 1000, 100).unwrap();
        assert_eq!(left(), ["a", "b", "c"]);
        // 101 more: the oldest (a, 400 bytes) goes, and only it.
        make_room(&dir, 1000, 101).unwrap();
        assert_eq!(left(), ["b", "c"]);
        // 500 held; 801 more: b (then 1001 would be held) and c.
        make_room(&dir, 1000, 801).unwrap();
        assert!(left().is_empty());
        // More than the whole budget: refused, and nothing is deleted for it.
        fs::write(dir.join("d"), [0u8; 10]).unwrap();
        let e = make_room(&dir, 1000, 1001).unwrap_err().to_string();
        assert!(e.contains("1001 bytes") && e.contains("1000 bytes"), "{e}");
        assert_eq!(left(), ["d"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
