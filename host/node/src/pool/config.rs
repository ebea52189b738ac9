//! What P1 pools: a pool per plan ([`PoolKey`]), the buckets and budget as given on the
//! command line, and opening the pools of a model share.

use std::path::Path;
use std::sync::Arc;

use ditto_core::plan::Plan;
use ditto_dealer::host::PlanParams;
use ditto_models::share_file::ModelShare;
use ditto_models::spec::ModelConfig;

use super::Pool;
use crate::NodeError;
use crate::files::SessionRecord;

/// One pool: the sessions of one plan.
#[derive(Clone, Debug)]
pub struct PoolKey {
    /// What the plan was made for.
    pub params: PlanParams,
    /// The plan's hash.
    pub plan_hash: [u8; 32],
    /// Its name in logs and metrics: `128` (tokens), `32+8` (prompt + generated).
    pub label: String,
    /// Bytes of one session's two files before the first is pooled (an estimate).
    pub estimate: u64,
}

impl PoolKey {
    /// The pool of `plan`, made for `params`.
    pub fn new(params: PlanParams, plan: &Plan) -> Result<Self, NodeError> {
        let label = match (params.generate, params.reveal_token, params.batch) {
            (0, _, 0 | 1) => format!("{}", params.seq),
            (0, _, b) => format!("{}x{b}", params.seq),
            (g, false, _) => format!("{}+{g}", params.seq),
            (g, true, _) => format!("{}+{g}:token", params.seq),
        };
        let estimate = crate::dealer::p1_wire_bytes(plan, ditto_dealer::DEFAULT_CHUNK) + 4096;
        Ok(PoolKey { params, plan_hash: plan.hash()?, label, estimate })
    }

    /// Its directory's name: the label and the plan hash's first 8 bytes (`128-1f2e...`).
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.label.replace(':', "-"), &crate::files::hex(&self.plan_hash)[..16])
    }
}

/// Parses a disk budget: bytes, or a number with `K`, `M`, `G` or `T` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{t:?}: expected bytes, or a number with K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num.parse().map_err(|_| format!("{t:?}: expected bytes, or a number with K, M, G or T"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{t:?}: too large"))
}

/// Parses pool buckets for a model of `positions` positions: a comma-separated list of `N`
/// (tokens; for a decoder, a prompt generating nothing), `NxB` (an encoder's batch of B inputs
/// of N tokens), `N+G` (a prompt of N tokens and G generated, their logits revealed) or
/// `N+G:token` (only the tokens' ids revealed).
pub fn parse_buckets(text: &str, positions: usize, decoder: bool) -> Result<Vec<PlanParams>, String> {
    let mut out: Vec<PlanParams> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || format!("bucket {item:?}: expected N, NxB, N+G or N+G:token");
        let (body, token) = match item.strip_suffix(":token") {
            Some(b) => (b, true),
            None => (item, false),
        };
        let (body, batch) = match body.split_once('x') {
            Some((n, b)) => (n, b.parse::<u32>().map_err(|_| bad())?),
            None => (body, 1),
        };
        if batch > 1 && decoder {
            return Err(format!("bucket {item:?}: batches are for encoders"));
        }
        let rows = u64::from(batch) * u64::from(body.parse::<u32>().unwrap_or(0));
        if batch == 0 || batch > ditto_net::client::MAX_BATCH || rows > ditto_net::client::MAX_ROWS {
            return Err(format!(
                "bucket {item:?}: 1 to {} inputs of at most {} tokens in all",
                ditto_net::client::MAX_BATCH,
                ditto_net::client::MAX_ROWS
            ));
        }
        let (n, g) = match body.split_once('+') {
            Some((n, g)) => (n.parse::<u32>().map_err(|_| bad())?, g.parse::<u32>().map_err(|_| bad())?),
            None => (body.parse::<u32>().map_err(|_| bad())?, 0),
        };
        if (g > 0 || token) && !decoder {
            return Err(format!("bucket {item:?}: an encoder generates no tokens"));
        }
        if token && g == 0 {
            return Err(format!("bucket {item:?}: no tokens generated, none to reveal"));
        }
        if n == 0 || u64::from(n) + u64::from(g) > positions as u64 {
            return Err(format!("bucket {item:?}: {n} + {g} tokens outside 1..={positions}"));
        }
        let p = PlanParams { seq: n, generate: g, reveal_token: token, batch };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err("no pool buckets given".into());
    }
    Ok(out)
}

/// The default pool buckets of `cfg`: for an encoder, the length buckets up to 128 tokens
/// ([`ditto_models::spec::BUCKETS`], capped at the model's positions); a decoder has none
/// (name them with `--pool-buckets`).
pub fn default_buckets(cfg: &ModelConfig) -> Option<String> {
    let ModelConfig::Bert(_) = cfg else { return None };
    let top = ditto_models::spec::bucket(128.min(cfg.positions()), cfg.positions());
    let mut b: Vec<usize> = ditto_models::spec::BUCKETS.iter().copied().filter(|&b| b < top).collect();
    b.push(top);
    Some(b.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
}

/// Opens P1's pools of `share` for `buckets` in `state` ([`Pool::open`]), at most `budget`
/// bytes in all.
pub async fn open_for(
    share: &ModelShare,
    state: &Path,
    buckets: &[PlanParams],
    budget: u64,
    consumed: SessionRecord,
) -> Result<Arc<Pool>, NodeError> {
    let mut keys = Vec::new();
    for p in buckets {
        let plan = crate::party::plan_for(&share.config(), share.quant(), p).await?;
        keys.push(PoolKey::new(*p, &plan)?);
    }
    Pool::open(state, share.share_set(), keys, budget, consumed)
}
