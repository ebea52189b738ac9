//! P1's pool of sessions dealt ahead of requests (`ditto party --serve --pool SIZE`).
//!
//! The dealer creates each session ([`Deal::NewSession`]: id and salt fresh from its RNG) and
//! sends both parties' sealed streams to P1, which keeps them on disk, one pair of files per
//! session under `STATE/pool/SHARE-SET/BUCKET-PLAN/`: `SESSION.p0` (P0's stream, a few hundred bytes,
//! relayed to P0 in the request's routing frame) and `SESSION.p1` (P1's corrections). A pool
//! per plan: per model sharing and length bucket (and, for decoders, tokens generated).
//!
//! * Filling ([`fill`], a thread of its own): the shallowest pool first, while the disk budget
//!   has room for one more session of it; files are written as `.tmp`, synced, renamed (P1's
//!   last: a session is in the pool once its `.p1` exists) and the directory synced. A stream
//!   is copied frame by frame and checked to its end frame ([`copy_stream`]). While requests
//!   are under way the filler stops reading (the dealer's generation then waits on its full
//!   socket), so the online phase keeps the cores.
//! * Taking ([`Pool::take`]): the session is claimed in P1's record of consumed sessions
//!   (created exclusively, synced) before anything of it is read; its files are deleted when
//!   the request ends. On start, every pooled session already claimed is deleted, as are
//!   unfinished `.tmp` files: a restart never reuses a pooled session, and P0 claims it too.
//! * On demand ([`fetch_new`]): with the pool empty, the same request to the dealer, P1's
//!   stream read while the request runs.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ditto_core::prg::{SessionId, ShareSetId};

use crate::NodeError;
use crate::files::{SessionRecord, hex};

mod config;
mod fill;

pub use config::{PoolKey, default_buckets, open_for, parse_buckets, parse_size};
pub use fill::{Dealer, NewSession, Prepare, fetch_new, fill};

/// File extension of a pooled session's products ([`crate::ahead`]).
pub(crate) const PRODUCTS: &str = "af";

/// A pooled session.
#[derive(Debug)]
struct Entry {
    session: SessionId,
    /// Its files' bytes (products included).
    bytes: u64,
    /// Whether its products are prepared ([`crate::ahead`]).
    prep: Prep,
}

/// The state of a pooled session's products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prep {
    /// Not computed yet.
    No,
    /// Being computed (a request may still take the session, without them).
    Running,
    /// On disk (`SESSION.af`).
    Yes,
    /// Could not be computed (the request computes A_1 F online).
    Failed,
}

struct Inner {
    /// Pooled sessions by key index, oldest first.
    queues: Vec<VecDeque<Entry>>,
    /// Bytes on disk: pooled sessions and those taken and not yet deleted.
    bytes: u64,
    /// The last session's size per key (the estimate until one is pooled).
    sizes: Vec<u64>,
}

/// P1's pools of one model sharing (see the module docs).
pub struct Pool {
    root: PathBuf,
    share_set: ShareSetId,
    keys: Vec<PoolKey>,
    budget: u64,
    consumed: SessionRecord,
    inner: Mutex<Inner>,
    /// Sessions pooled, failed fills, sessions taken from the pool.
    pub(crate) filled: AtomicU64,
    pub(crate) fill_errors: AtomicU64,
    pub(crate) taken: AtomicU64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (depths, bytes) = self.depths();
        f.debug_struct("Pool")
            .field("root", &self.root)
            .field("depths", &depths)
            .field("bytes", &bytes)
            .finish()
    }
}

/// A session taken from the pool: claimed; its files go when it is dropped.
pub struct Taken {
    /// The session.
    pub session: SessionId,
    /// P0's sealed stream, to relay.
    pub p0_stream: Vec<u8>,
    /// P1's stream file.
    pub p1_path: PathBuf,
    /// P1's products of the session, when prepared.
    pub products: Option<PathBuf>,
    pool: Arc<Pool>,
    bytes: u64,
}

impl Drop for Taken {
    fn drop(&mut self) {
        let p0 = self.p1_path.with_extension("p0");
        let _ = fs::remove_file(&self.p1_path);
        let _ = fs::remove_file(p0);
        let _ = fs::remove_file(self.p1_path.with_extension(PRODUCTS));
        let mut g = self.pool.lock();
        g.bytes = g.bytes.saturating_sub(self.bytes);
    }
}

pub(crate) fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::File { path: path.to_path_buf(), source }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(file_err(dir))
}

fn parse_session(name: &str) -> Option<SessionId> {
    let b = crate::files::parse_hex16(name)?;
    Some(SessionId(b))
}

impl Pool {
    /// Opens the pools of sharing `share_set` for `keys` in `state` (creating the directories),
    /// deleting unfinished files and sessions already consumed; at most `budget` bytes in all.
    pub fn open(
        state: &Path,
        share_set: ShareSetId,
        keys: Vec<PoolKey>,
        budget: u64,
        consumed: SessionRecord,
    ) -> Result<Arc<Self>, NodeError> {
        let root = state.join("pool").join(hex(&share_set.0));
        let mut inner = Inner {
            queues: keys.iter().map(|_| VecDeque::new()).collect(),
            bytes: 0,
            sizes: keys.iter().map(|k| k.estimate).collect(),
        };
        for (i, k) in keys.iter().enumerate() {
            let dir = root.join(k.dir_name());
            fs::create_dir_all(&dir).map_err(file_err(&dir))?;
            let found = scan(&dir, &consumed)?;
            for e in found {
                inner.bytes += e.bytes;
                inner.sizes[i] = e.bytes;
                inner.queues[i].push_back(e);
            }
            sync_dir(&dir)?;
        }
        Ok(Arc::new(Pool {
            root,
            share_set,
            keys,
            budget,
            consumed,
            inner: Mutex::new(inner),
            filled: AtomicU64::new(0),
            fill_errors: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn dir(&self, key: usize) -> PathBuf {
        self.root.join(self.keys[key].dir_name())
    }

    /// The pools' keys.
    pub fn keys(&self) -> &[PoolKey] {
        &self.keys
    }

    /// The model sharing the pools are for.
    pub fn share_set(&self) -> ShareSetId {
        self.share_set
    }

    /// Sessions pooled per key (in [`Pool::keys`] order) and bytes on disk.
    pub fn depths(&self) -> (Vec<usize>, u64) {
        let g = self.lock();
        (g.queues.iter().map(VecDeque::len).collect(), g.bytes)
    }

    /// Pooled sessions whose products are ready, per key.
    pub fn prepared_depths(&self) -> Vec<usize> {
        let g = self.lock();
        g.queues.iter().map(|q| q.iter().filter(|e| e.prep == Prep::Yes).count()).collect()
    }

    /// The pool of the plan with `plan_hash`.
    pub fn key_of(&self, plan_hash: &[u8; 32]) -> Option<usize> {
        self.keys.iter().position(|k| &k.plan_hash == plan_hash)
    }

    /// Takes the oldest pooled session of key `key`, claimed in the record of consumed
    /// sessions before anything of it is read; `None` when that pool is empty.
    pub fn take(self: &Arc<Self>, key: usize) -> Result<Option<Taken>, NodeError> {
        loop {
            let Some(e) = self.lock().queues[key].pop_front() else { return Ok(None) };
            let p1_path = self.dir(key).join(format!("{:032x}.p1", e.session.as_u128()));
            // Dropped on any failure below: its files go.
            let products = (e.prep == Prep::Yes).then(|| p1_path.with_extension(PRODUCTS));
            let mut taken = Taken {
                session: e.session,
                p0_stream: Vec::new(),
                p1_path,
                products,
                pool: Arc::clone(self),
                bytes: e.bytes,
            };
            match self.consumed.claim(&e.session) {
                Ok(()) => {}
                // Claimed by another process sharing the state directory: drop it, try the next.
                Err(NodeError::SessionReused { .. }) => continue,
                Err(err) => return Err(err),
            }
            let p0 = taken.p1_path.with_extension("p0");
            taken.p0_stream = fs::read(&p0).map_err(file_err(&p0))?;
            self.taken.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(taken));
        }
    }

    /// The oldest pooled session whose products are not prepared, marked as being prepared
    /// (a request may still take it: it runs without them); report with [`Pool::prepared`].
    pub(crate) fn unprepared(&self) -> Option<Preparing> {
        let mut g = self.lock();
        for (key, q) in g.queues.iter_mut().enumerate() {
            if let Some(e) = q.iter_mut().find(|e| e.prep == Prep::No) {
                e.prep = Prep::Running;
                return Some(Preparing { key, session: e.session, dir: self.dir(key) });
            }
        }
        None
    }

    /// Ends a preparation from [`Pool::unprepared`]: the session's products are on disk
    /// (`Some(bytes)`) or could not be made. When a request took the session meanwhile, its
    /// products are deleted.
    pub(crate) fn prepared(&self, job: &Preparing, products: Option<u64>) {
        let mut g = self.lock();
        let Some(e) = g.queues[job.key].iter_mut().find(|e| e.session == job.session) else {
            drop(g);
            let _ = fs::remove_file(job.file(PRODUCTS));
            return;
        };
        e.prep = if products.is_some() { Prep::Yes } else { Prep::Failed };
        if let Some(b) = products {
            e.bytes += b;
            // The next session of this key will take its products' room too.
            let size = e.bytes;
            g.bytes += b;
            g.sizes[job.key] = g.sizes[job.key].max(size);
        }
    }

    /// The key to fill next: the shallowest pool whose next session fits the budget.
    fn next_to_fill(&self) -> Option<usize> {
        let g = self.lock();
        (0..self.keys.len())
            .filter(|&i| g.bytes + g.sizes[i] <= self.budget)
            .min_by_key(|&i| (g.queues[i].len(), i))
    }
}

/// The finished, unconsumed sessions in `dir`, oldest first; every other file there
/// (unfinished, a half, consumed, unknown) is deleted.
fn scan(dir: &Path, consumed: &SessionRecord) -> Result<Vec<Entry>, NodeError> {
    let mut names = std::collections::BTreeSet::new();
    for e in fs::read_dir(dir).map_err(file_err(dir))? {
        names.insert(e.map_err(file_err(dir))?.file_name().to_string_lossy().into_owned());
    }
    let mut found = BTreeMap::new();
    for n in &names {
        let Some(stem) = n.strip_suffix(".p1") else { continue };
        let Some(s) = parse_session(stem) else { continue };
        if !names.contains(&format!("{stem}.p0")) || consumed.contains(&s)? {
            continue;
        }
        let (p0, p1) = (dir.join(format!("{stem}.p0")), dir.join(n));
        let af = format!("{stem}.{}", PRODUCTS);
        let prep = if names.contains(&af) { Prep::Yes } else { Prep::No };
        let files = [p0, p1, dir.join(&af)];
        let bytes = files.iter().map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum::<u64>();
        found.insert((modified(&files[1]), stem.to_string()), Entry { session: s, bytes, prep });
    }
    let keep: std::collections::HashSet<String> = found
        .keys()
        .flat_map(|(_, stem)| [format!("{stem}.p0"), format!("{stem}.p1"), format!("{stem}.{}", PRODUCTS)])
        .collect();
    for n in names.iter().filter(|n| !keep.contains(*n)) {
        let path = dir.join(n);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NodeError::File { path, source: e }),
        }
    }
    Ok(found.into_values().collect())
}

fn modified(p: &Path) -> std::time::SystemTime {
    fs::metadata(p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH)
}

/// A pooled session whose products are being computed ([`Pool::unprepared`]).
pub(crate) struct Preparing {
    key: usize,
    session: SessionId,
    dir: PathBuf,
}

impl Preparing {
    /// Its pool's key index.
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// The session.
    pub(crate) fn session(&self) -> SessionId {
        self.session
    }

    /// Its file with extension `ext` (`p0`, `p1`, [`PRODUCTS`]).
    pub(crate) fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{:032x}.{ext}", self.session.as_u128()))
    }
}

pub(crate) fn create_private(path: &Path) -> Result<fs::File, NodeError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map_err(file_err(path))
}
