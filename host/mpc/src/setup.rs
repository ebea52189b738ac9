//! The one-time weight setup of a session (outside the plan): F = W - B_W opened, or read from
//! the state directory's cache ([`crate::wcache`]), or, for a party serving many sessions,
//! taken from the weights it prepared in an earlier session ([`WeightStore`]).
//!
//! A [`WeightStore`] keeps, for one party, model-mask seed and sharing, every weight's F and
//! G_i (F + B_0 at P0, B_1 at P1: see [`crate::precompute`]) packed for the GEMM, and the digest of the cache file they match. A later session of the
//! same party, seed and sharing states that digest in the setup exchange; when the peer states
//! the same one, the session takes the stored weights (shared, read-only: no PRG expansion of
//! B_W, no file read, no packing; for BERT-base about 2.5 s and 0.8 GB per session); otherwise
//! the setup runs as without a store and its weights replace the stored ones. B_W is the
//! party's own mask share, which every session re-derives from the same seed anyway.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ditto_core::prg::Seed;
use sha2::{Digest, Sha256};

use crate::engine::SETUP_STEP;
use crate::wcache::WeightCache;
use crate::{Engine, MpcError};

/// A weight's F and G_i, packed (`(PackedB<R>, PackedB<R>)` for its ring R).
pub(crate) type Prepared = Arc<dyn Any + Send + Sync>;
/// Prepared weights by id.
pub(crate) type Weights = Arc<BTreeMap<u32, Prepared>>;

/// Weights prepared by one party for one model-mask seed and sharing (see the module docs).
/// Cloning shares it.
#[derive(Clone, Default)]
pub struct WeightStore(Arc<Mutex<Option<Stored>>>);

struct Stored {
    /// Hash of the party, its model-mask seed and the share-set id.
    key: [u8; 32],
    /// Digest of the cache file these weights match.
    digest: [u8; 32],
    weights: Weights,
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().as_ref().map_or(0, |s| s.weights.len());
        write!(f, "WeightStore {{ {n} weights }}")
    }
}

impl WeightStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Stored>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Weights stored for `key`, and their digest.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<([u8; 32], Weights)> {
        self.lock().as_ref().filter(|s| &s.key == key).map(|s| (s.digest, Arc::clone(&s.weights)))
    }

    fn put(&self, key: [u8; 32], digest: [u8; 32], weights: BTreeMap<u32, Prepared>) {
        *self.lock() = Some(Stored { key, digest, weights: Arc::new(weights) });
    }

    /// Whether weights are stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_none()
    }
}

/// The engine's setup state.
#[derive(Default)]
pub(crate) struct Setup {
    /// Where opened weight masks are kept between sessions.
    dir: Option<std::path::PathBuf>,
    /// The weight cache of the setup under way.
    pub(crate) cache: Option<WeightCache>,
    /// The process's store, if any.
    store: Option<WeightStore>,
    /// This setup's store key and the digest both parties stated.
    key: Option<([u8; 32], [u8; 32])>,
    /// Stored weights this session takes (both parties stated the store's digest).
    pub(crate) taken: Option<Weights>,
    /// Weights prepared in this setup, for the store.
    pub(crate) fresh: BTreeMap<u32, Prepared>,
    /// The store key of this session's weights (kept after the setup ends).
    pub(crate) weights_key: Option<[u8; 32]>,
}

/// The store key of `party` (0 or 1), its model-mask seed and the sharing.
pub(crate) fn store_key(party: u8, model: &Seed, share_id: &[u8; 16]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"ditto weight store v1");
    h.update([party]);
    h.update(model.expose());
    h.update(share_id);
    h.finalize().into()
}

impl Engine {
    /// Keeps the opened weight masks F = W - B_W in `dir` so that later sessions with the same
    /// share set and model seed skip opening them (see [`Engine::begin_weight_setup`]).
    pub fn set_weight_cache(&mut self, dir: &std::path::Path) {
        self.setup.dir = Some(dir.to_path_buf());
    }

    /// Takes the weights `store` holds when they fit this session (same party, model-mask seed
    /// and sharing, and the peer's cache digest), and leaves this session's in it otherwise.
    /// Needs [`Engine::set_weight_cache`] (the store follows the cache file).
    pub fn set_weight_store(&mut self, store: WeightStore) {
        self.setup.store = Some(store);
    }

    /// Starts the weight setup: exchanges the share-set id (parties holding shares of different
    /// sharings are refused) and the digest of each party's cached F; when both hold the same
    /// cache, the following [`Engine::setup_weight`] calls take the stored weights or read F from
    /// the cache instead of opening it. Returns whether F comes from a cache or the store.
    /// Nothing happens in planning or plaintext mode.
    pub async fn begin_weight_setup(&mut self, share_id: [u8; 16]) -> Result<bool, MpcError> {
        let Some((share_set, model)) = self.sharing() else { return Ok(false) };
        if share_id != share_set.0 {
            return Err(MpcError::Setup {
                detail: format!(
                    "the model share and the session belong to different sharings (share {}, session {}: \
                     the session's dealer stream carries its sharing's weight masks); start the engine \
                     with the share's id",
                    ditto_core::prg::ShareSetId(share_id),
                    share_set
                ),
            });
        }
        let party = if self.party().is_p0() { 0 } else { 1 };
        let key = store_key(party, model, &share_id);
        let stored = self.setup.store.as_ref().and_then(|s| s.get(&key));
        let mut cache = match (&self.setup.dir, &stored) {
            (Some(dir), None) => Some(WeightCache::open(dir, party, model, &share_id)?),
            // The store stands for the file (its digest); the file is read only on a miss.
            (Some(dir), Some(_)) => Some(WeightCache::unread(dir, party, model, &share_id)),
            (None, _) => None,
        };
        let digest = match (&stored, &cache) {
            (Some((d, _)), _) => *d,
            (None, Some(c)) => c.digest(),
            (None, None) => [0u8; 32],
        };
        let mut mine = share_id.to_vec();
        mine.extend_from_slice(&digest);
        let peer = self.exchange_bytes(SETUP_STEP, &mine).await?;
        if peer.len() != mine.len() {
            return Err(MpcError::Setup {
                detail: format!("malformed setup message ({} bytes)", peer.len()),
            });
        }
        if peer[..16] != share_id {
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            return Err(MpcError::Setup {
                detail: format!(
                    "the parties hold shares of different sharings (this party {}, the peer {}): give both \
                     parties the files of one `ditto share-model` run",
                    hex(&share_id),
                    hex(&peer[..16])
                ),
            });
        }
        let agreed = digest != [0u8; 32] && peer[16..] == digest;
        self.setup.key = Some((key, digest));
        self.setup.weights_key = Some(key);
        self.setup.fresh.clear();
        if let (true, Some((_, weights))) = (agreed, stored) {
            self.setup.taken = Some(weights);
            self.setup.cache = None;
            return Ok(true);
        }
        self.setup.taken = None;
        let hit = match &mut cache {
            Some(c) if agreed => {
                c.adopt()?;
                true
            }
            _ => false,
        };
        self.setup.cache = cache;
        Ok(hit)
    }

    /// Ends the weight setup: writes the freshly opened F to the cache (if one is set) and
    /// leaves the prepared weights in the store (if one is set).
    pub fn end_weight_setup(&mut self) -> Result<(), MpcError> {
        let written = match self.setup.cache.take() {
            Some(mut c) => c.save()?,
            None => None,
        };
        let fresh = std::mem::take(&mut self.setup.fresh);
        if let (Some(store), Some((key, agreed)), false) =
            (&self.setup.store, self.setup.key.take(), self.setup.taken.is_some())
        {
            // The digest of the file these weights match: the one written, or the one both
            // parties stated when F came from the file.
            let digest = written.unwrap_or(agreed);
            if digest != [0u8; 32] && !fresh.is_empty() {
                store.put(key, digest, fresh);
            }
        }
        self.setup.taken = None;
        Ok(())
    }
}
