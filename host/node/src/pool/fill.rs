//! Filling P1's pools from the dealer, and fetching a session on demand.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ditto_core::prg::{SessionId, ShareSetId};
use ditto_dealer::host::{Io, connect, copy_stream, request_new_session_on};
use ditto_net::tls::Security;

use super::{Entry, PRODUCTS, Pool, PoolKey, Preparing, create_private, file_err, sync_dir};
use crate::NodeError;

impl Pool {
    /// Fetches one new session of key `key` from the dealer into the pool.
    fn fill_one(&self, key: usize, dealer: &Dealer, busy: &dyn Fn() -> bool) -> Result<SessionId, NodeError> {
        let k = &self.keys[key];
        let NewSession { session, p0_stream: p0, p1: rest } = fetch_new(dealer, self.share_set, k)?;
        let dir = self.dir(key);
        let name = format!("{:032x}", session.as_u128());
        let (p0_tmp, p1_tmp) = (dir.join(format!("{name}.p0.tmp")), dir.join(format!("{name}.p1.tmp")));
        let written = (|| {
            crate::files::write_private(&p0_tmp, &p0)?;
            let f = create_private(&p1_tmp)?;
            let mut w = Kept { inner: std::io::BufWriter::with_capacity(1 << 20, f), err: None };
            let paused = Paused { inner: rest, busy, limit: dealer.timeout.mul_f64(0.75) };
            let copied = copy_stream(Io(paused), Io(&mut w), session);
            // A write error is the file's (a full disk, say), told as such.
            if let Some(source) = w.err.take() {
                return Err(NodeError::File { path: p1_tmp.clone(), source });
            }
            copied?;
            let f = w
                .inner
                .into_inner()
                .map_err(|e| NodeError::File { path: p1_tmp.clone(), source: e.into_error() })?;
            f.sync_all().map_err(file_err(&p1_tmp))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&p0_tmp);
            let _ = fs::remove_file(&p1_tmp);
            return Err(e);
        }
        let (p0_path, p1_path) = (dir.join(format!("{name}.p0")), dir.join(format!("{name}.p1")));
        fs::rename(&p0_tmp, &p0_path).map_err(file_err(&p0_path))?;
        fs::rename(&p1_tmp, &p1_path).map_err(file_err(&p1_path))?;
        sync_dir(&dir)?;
        let bytes = [&p0_path, &p1_path].iter().map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
        let mut g = self.lock();
        g.bytes += bytes;
        // At least this session's files (its products, once prepared, add to it).
        g.sizes[key] = g.sizes[key].max(bytes);
        g.queues[key].push_back(Entry { session, bytes, prep: super::Prep::No });
        drop(g);
        self.filled.fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }
}

/// How P1 reaches the dealer.
#[derive(Clone, Debug)]
pub struct Dealer {
    /// Its address.
    pub addr: String,
    /// The link's security (the dealer proves the `dealer` role).
    pub security: Security,
    /// Longest single wait.
    pub timeout: Duration,
}

/// A session the dealer created ([`fetch_new`]).
pub struct NewSession {
    /// Its id.
    pub session: SessionId,
    /// P0's sealed stream, read whole and checked to its end frame.
    pub p0_stream: Vec<u8>,
    /// The connection, positioned at P1's sealed stream.
    pub p1: Box<dyn std::io::Read + Send>,
}

/// Asks the dealer for a new session of `key` for sharing `share_set`.
pub fn fetch_new(dealer: &Dealer, share_set: ShareSetId, key: &PoolKey) -> Result<NewSession, NodeError> {
    let net = |e: ditto_dealer::Error| NodeError::from(ditto_net::NetError::from(e));
    let sock = connect(&dealer.addr, dealer.timeout).map_err(net)?;
    let sock = dealer.security.connect_blocking(sock, "dealer")?;
    let (session, mut sock) =
        request_new_session_on(sock, share_set, &key.plan_hash, key.params).map_err(net)?;
    let mut p0_stream = Vec::new();
    copy_stream(Io(&mut sock), Io(&mut p0_stream), session).map_err(net)?;
    if p0_stream.len() > ditto_net::link::MAX_RELAYED {
        return Err(NodeError::Request(format!(
            "the dealer's P0 stream has {} bytes, over 64 KiB",
            p0_stream.len()
        )));
    }
    Ok(NewSession { session, p0_stream, p1: Box::new(sock) })
}

/// A writer that keeps its first error (the frame copier passes on only its kind).
struct Kept<W> {
    inner: W,
    err: Option<std::io::Error>,
}

impl<W: std::io::Write> std::io::Write for Kept<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.err.get_or_insert_with(|| std::io::Error::new(e.kind(), e.to_string()));
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.err.get_or_insert_with(|| std::io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// A reader that waits while `busy()` (at most `limit` per read, so the dealer's write
/// time-out is never reached).
struct Paused<'a, R> {
    inner: R,
    busy: &'a dyn Fn() -> bool,
    limit: Duration,
}

impl<R: std::io::Read> std::io::Read for Paused<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let t = std::time::Instant::now();
        while (self.busy)() && t.elapsed() < self.limit {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.inner.read(buf)
    }
}

/// Prepares pooled sessions before their requests ([`crate::ahead`]).
pub trait Prepare: Send + Sync {
    /// Whether products can be computed now (this party's weights are set up).
    fn ready(&self) -> bool;
    /// Computes P1's products of pooled `session` of `key` from its stream file `p1` into `af`
    /// and hands P0 its stream `p0` ahead; the bytes written, `None` when there are none.
    fn prepare(
        &self,
        key: &PoolKey,
        session: SessionId,
        files: (&Path, &Path, &Path),
    ) -> Result<Option<u64>, NodeError>;
}

/// Keeps the pools filled from `dealer` until `stop` is set: waits while `busy()` or while no
/// pool fits the budget; a failed fetch is reported to `log` and retried after a pause that
/// doubles up to 10 s. Before fetching, prepares the pooled sessions not prepared yet (with
/// `prepare`, once it is ready). Runs on the calling thread.
pub fn fill(
    pool: &Pool,
    dealer: &Dealer,
    busy: &dyn Fn() -> bool,
    stop: &AtomicBool,
    log: &(dyn Fn(String) + Send + Sync),
    prepare: Option<&dyn Prepare>,
) {
    let mut backoff = Duration::from_millis(500);
    let nap = |d: Duration| {
        let t = std::time::Instant::now();
        while t.elapsed() < d && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        if !busy()
            && let Some(p) = prepare.filter(|p| p.ready())
            && let Some(job) = pool.unprepared()
        {
            prepare_one(pool, p, job, log);
            continue;
        }
        let Some(key) = (!busy()).then(|| pool.next_to_fill()).flatten() else {
            nap(Duration::from_millis(100));
            continue;
        };
        match pool.fill_one(key, dealer, busy) {
            Ok(s) => {
                backoff = Duration::from_millis(500);
                let (d, bytes) = pool.depths();
                log(format!(
                    "pooled party=1 session={:032x} bucket={} depth={} pool_bytes={bytes}",
                    s.as_u128(),
                    pool.keys[key].label,
                    d[key]
                ));
            }
            Err(e) => {
                pool.fill_errors.fetch_add(1, Ordering::Relaxed);
                log(format!(
                    "pool-fill-failed party=1 bucket={} retry_s={:.1} error={:?}",
                    pool.keys[key].label,
                    backoff.as_secs_f64(),
                    e.to_string()
                ));
                nap(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Prepares one pooled session and gives it back to its queue.
fn prepare_one(pool: &Pool, p: &dyn Prepare, job: Preparing, log: &(dyn Fn(String) + Send + Sync)) {
    let (session, key) = (job.session(), &pool.keys[job.key()]);
    let (p0, p1, af) = (job.file("p0"), job.file("p1"), job.file(PRODUCTS));
    let t = std::time::Instant::now();
    let s = session.as_u128();
    match p.prepare(key, session, (&p0, &p1, &af)) {
        Ok(Some(bytes)) => {
            log(format!(
                "prepared party=1 session={s:032x} bucket={} products_bytes={bytes} s={:.3}",
                key.label,
                t.elapsed().as_secs_f64()
            ));
            pool.prepared(&job, Some(bytes));
        }
        Ok(None) => {
            log(format!(
                "prepare-skipped party=1 session={s:032x} reason=\"no weights set up for this sharing\""
            ));
            pool.prepared(&job, None);
        }
        Err(e) => {
            let _ = fs::remove_file(&af);
            log(format!("prepare-failed party=1 session={s:032x} error={:?}", e.to_string()));
            pool.prepared(&job, None);
        }
    }
}
