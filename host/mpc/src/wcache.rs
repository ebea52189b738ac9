//! The opened weight masks F = W - B_W kept on disk between sessions (DESIGN.md §4, step 3).
//!
//! B_W comes from the party's model share seed, which the dealer derives from the provisioned
//! model seed and which is the same in every session, so F is too: a party that opened F once
//! keeps it in its state directory and later sessions skip the opening (MiniLM: 89 MB per party).
//! Both parties must agree, so at setup they exchange their share-set id (written into both
//! share files by `ditto share-model`; different ids mean the parties hold shares of different
//! models and are refused) and the SHA-256 of their cached F. Only equal, non-empty caches are
//! used; otherwise F is opened and written anew. F is public between the two parties, so the
//! digests tell the peer nothing new; the file is still kept owner-only, since F together with
//! the other party's mask share would give W.
//!
//! File: magic `DITTOFC1`, then per weight: id (u32 LE), element bytes (u8), element count (u64
//! LE), elements little-endian. Its name is a hash of the party, its model share seed and the
//! share-set id, so a new model seed or a new sharing never finds an old file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ditto_core::Ring;
use ditto_core::prg::Seed;
use sha2::{Digest, Sha256};

use crate::MpcError;

const MAGIC: &[u8; 8] = b"DITTOFC1";

/// The weight cache of one session.
pub(crate) struct WeightCache {
    path: PathBuf,
    /// The file's bytes, if it exists.
    on_disk: Option<Vec<u8>>,
    /// Cached F per weight id (when both parties hold the same cache).
    cached: Option<BTreeMap<u32, Vec<u8>>>,
    /// F opened in this session, to be written.
    fresh: Vec<(u32, u8, Vec<u8>)>,
}

fn io(path: &Path, e: &std::io::Error) -> MpcError {
    MpcError::Setup { detail: format!("weight cache {}: {e}", path.display()) }
}

impl WeightCache {
    /// The cache file of this party for this share set (read if it exists).
    pub(crate) fn open(dir: &Path, party: u8, model: &Seed, share_id: &[u8; 16]) -> Result<Self, MpcError> {
        let path = Self::unread(dir, party, model, share_id).path;
        let on_disk = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&path, &e)),
        };
        Ok(WeightCache { path, on_disk, cached: None, fresh: Vec::new() })
    }

    /// The cache file of this party for this share set, not read (written anew at the end).
    pub(crate) fn unread(dir: &Path, party: u8, model: &Seed, share_id: &[u8; 16]) -> Self {
        let mut h = Sha256::new();
        h.update(b"ditto weight cache v1");
        h.update([party]);
        h.update(model.expose());
        h.update(share_id);
        let name: String = h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("f-{name}.bin"));
        WeightCache { path, on_disk: None, cached: None, fresh: Vec::new() }
    }

    /// SHA-256 of the file (all zero when there is none).
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.on_disk.as_ref().map_or([0u8; 32], |b| Sha256::digest(b).into())
    }

    /// Uses the file's contents (both parties hold the same cache). A malformed file is an error.
    pub(crate) fn adopt(&mut self) -> Result<(), MpcError> {
        let Some(bytes) = self.on_disk.take() else { return Ok(()) };
        let bad = |what: &str| MpcError::Setup {
            detail: format!("weight cache {}: {what} (delete it to rebuild)", self.path.display()),
        };
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| bad("bad magic"))?;
        let mut map = BTreeMap::new();
        let mut at = 0usize;
        while at < rest.len() {
            let head = rest.get(at..at + 13).ok_or_else(|| bad("truncated entry header"))?;
            let id = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let width = usize::from(head[4]);
            let mut c = [0u8; 8];
            c.copy_from_slice(&head[5..13]);
            let n = usize::try_from(u64::from_le_bytes(c)).map_err(|_| bad("entry too large"))?;
            let len = n.checked_mul(width).ok_or_else(|| bad("entry too large"))?;
            at += 13;
            let data = rest.get(at..at + len).ok_or_else(|| bad("truncated entry"))?;
            if map.insert(id, data.to_vec()).is_some() {
                return Err(bad("weight listed twice"));
            }
            at += len;
        }
        self.cached = Some(map);
        Ok(())
    }

    /// Whether F comes from the cache in this session.
    pub(crate) fn is_cached(&self) -> bool {
        self.cached.is_some()
    }

    /// The cached F of weight `id` with `n` elements.
    pub(crate) fn take<R: Ring>(&mut self, id: u32, n: usize) -> Result<Vec<R>, MpcError> {
        let path = &self.path;
        let data = self.cached.as_mut().and_then(|m| m.remove(&id)).ok_or_else(|| MpcError::Setup {
            detail: format!("weight cache {}: weight {id} is missing", path.display()),
        })?;
        if data.len() != n * R::BYTES {
            return Err(MpcError::Setup {
                detail: format!(
                    "weight cache {}: weight {id} holds {} bytes, the model needs {}",
                    path.display(),
                    data.len(),
                    n * R::BYTES
                ),
            });
        }
        Ok(data.chunks_exact(R::BYTES).map(R::from_le).collect())
    }

    /// Records a freshly opened F.
    pub(crate) fn record<R: Ring>(&mut self, id: u32, f: &[R]) {
        let mut b = vec![0u8; f.len() * R::BYTES];
        for (v, o) in f.iter().zip(b.chunks_exact_mut(R::BYTES)) {
            v.write_le(o);
        }
        self.fresh.push((id, u8::try_from(R::BYTES).unwrap_or(0), b));
    }

    /// Writes the freshly opened F (atomically, owner-only); nothing when F came from the cache.
    /// Returns the digest of what was written.
    pub(crate) fn save(&mut self) -> Result<Option<[u8; 32]>, MpcError> {
        if self.is_cached() || self.fresh.is_empty() {
            return Ok(None);
        }
        let mut out = MAGIC.to_vec();
        for (id, width, data) in self.fresh.drain(..) {
            out.extend_from_slice(&id.to_le_bytes());
            out.push(width);
            out.extend_from_slice(&(data.len() as u64 / u64::from(width.max(1))).to_le_bytes());
            out.extend_from_slice(&data);
        }
        // A temporary file of this writer's own: sessions served at once may save together.
        static WRITER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        write_private(&tmp, &out).map_err(|e| io(&tmp, &e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io(&self.path, &e))?;
        Ok(Some(Sha256::digest(&out).into()))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
