//! Work a party can do for a session before its input arrives: the products of its mask shares
//! with the public weight masks F.
//!
//! A product with a fixed weight, Z = X W, opens E = X - A and each party computes
//!
//! ```text
//! Z_i = C_i + A_i F + E G_i,    G_0 = F + B_0,  G_1 = B_1    (F = W - B_W, B_W = B_0 + B_1)
//! ```
//!
//! (summed over the parties: C + A F + E F + E B_W = A B_W + (A + E) F + E B_W = X W). A_i is
//! party i's share of the step's input mask: for `MatMulFixed` it comes from the session's
//! seeds (`Purpose::A` of the step), for `MatMulDownA` it is minus the output mask of the
//! truncate-then-downcast just before (P0: its seed; P1: its correction). Neither depends on the
//! input, so A_i F can be computed as soon as the party holds its session's stream and F (from
//! a weight store, [`crate::setup::WeightStore`]): online, each fixed-weight product is one GEMM
//! (E G_i) instead of two. The products are the party's own secret (they determine A_i where F
//! has full rank) and are kept like its stream: only by that party, for that session.
//!
//! [`Products`] are bound to the party, the session, the plan and the weights (the store key:
//! party, model-mask seed and sharing); an engine refuses products of anything else.

use std::collections::BTreeMap;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::corr::{Corrections, Streams};
use ditto_core::plan::{Op, Plan};
use ditto_core::prg::{Purpose, SessionId, ShareSetId};
use ditto_core::ring::{Ring, RingId};
use ditto_dealer::keys::PartyKey;
use ditto_net::dealer::{DealerFeed, Source};

use crate::MpcError;
use crate::gemm::{FastGemm, PackedB};
use crate::setup::{Prepared, WeightStore, store_key};

/// How [`Products::compute`] runs: its GEMM threads, the dealer stream's time-out, and when
/// to hold back (a serving party computes products only while no request is under way).
pub struct Pace<'a> {
    /// GEMM threads.
    pub threads: usize,
    /// Longest wait for the dealer stream.
    pub timeout: Duration,
    /// Checked before every step: while it returns true, no step is started.
    pub hold: &'a (dyn Fn() -> bool + Sync),
}

/// How often a held computation checks whether it may go on.
const HOLD_POLL: Duration = Duration::from_millis(10);

/// File magic and version of [`Products::encode`].
const MAGIC: [u8; 8] = *b"DITTOAF1";

/// Bytes of a session's products for `plan` (each party's; the file adds a few per step).
pub fn products_bytes(plan: &Plan) -> u64 {
    plan.steps
        .iter()
        .map(|s| match s.op {
            Op::MatMulFixed { ring: RingId::Z32, n, m, .. } | Op::MatMulDownA { n, m, .. } => {
                4 * u64::from(n) * u64::from(m)
            }
            Op::MatMulFixed { ring: RingId::Z64, n, m, .. } => 8 * u64::from(n) * u64::from(m),
            _ => 0,
        })
        .sum()
}

/// A session's precomputed products A_i F, by plan step (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Products {
    /// The party they belong to.
    pub party: Party,
    /// The session.
    pub session: SessionId,
    /// The plan's hash.
    pub plan_hash: [u8; 32],
    /// The weights' store key (party, model-mask seed, sharing).
    pub weights: [u8; 32],
    /// Step index -> A_i F (n x m ring elements, little-endian).
    steps: BTreeMap<u32, Vec<u8>>,
}

impl std::fmt::Debug for Products {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The products are secret: sizes only.
        write!(f, "Products {{ {:?}, {} steps, {} bytes }}", self.party, self.steps.len(), self.bytes())
    }
}

impl Products {
    /// Computes the products of `party`'s session from its dealer stream (P1 reads and checks
    /// the whole stream) and the weights `store` holds for the stream's model-mask seed and
    /// `share_set`. `None` when the store holds no weights for them (a session of another
    /// sharing, or before the first session of the process set its weights up).
    pub async fn compute(
        party: Party,
        (dealer, key): (Source, PartyKey),
        plan: &Plan,
        (session, share_set): (SessionId, ShareSetId),
        store: &WeightStore,
        pace: Pace<'_>,
    ) -> Result<Option<Products>, MpcError> {
        let mut feed = DealerFeed::open(dealer, key, party, (session, share_set), plan, pace.timeout).await?;
        let weights = store_key(u8::from(party == Party::P1), &feed.seeds().model, &share_set.0);
        let Some((_, stored)) = store.get(&weights) else { return Ok(None) };
        let gemm = FastGemm::new(pace.threads);
        let mut steps = BTreeMap::new();
        // The output mask share of the last truncate-then-downcast, for a MatMulDownA after it.
        let mut down: Option<(u32, Vec<u32>)> = None;
        for (i, step) in plan.steps.iter().enumerate() {
            let index = u32::try_from(i).map_err(|_| MpcError::Setup { detail: "plan too long".into() })?;
            // The stream's reader waits meanwhile (its time-out counts only reads we wait on).
            while (pace.hold)() {
                tokio::time::sleep(HOLD_POLL).await;
            }
            let corr = if party == Party::P1 { feed.step(index).await? } else { Vec::new() };
            let seeds = feed.seeds();
            let s = Streams::new(party, &seeds.session, &seeds.model, session);
            match step.op {
                Op::MatMulFixed { ring, n, k, m, weight } => {
                    let (n, k, m) = (n as usize, k as usize, m as usize);
                    let p = match ring {
                        RingId::Z32 => {
                            let mut a = vec![0u32; n * k];
                            s.prg(index, Purpose::A).fill_ring(&mut a);
                            product(&gemm, &a, f_of::<u32>(&stored, weight, (k, m))?, n)?
                        }
                        RingId::Z64 => {
                            let mut a = vec![0u64; n * k];
                            s.prg(index, Purpose::A).fill_ring(&mut a);
                            product(&gemm, &a, f_of::<u64>(&stored, weight, (k, m))?, n)?
                        }
                    };
                    steps.insert(index, p);
                }
                Op::TruncDowncastA { len, .. } | Op::TruncDowncastNarrowA { len, .. } => {
                    let (mut r, mut d) = (vec![0u64; len as usize], vec![0u32; len as usize]);
                    let mut c = corrections(party, &corr);
                    ditto_core::chain::expand_trunc_down(&s, index, &mut c, &mut r, &mut d)?;
                    down = Some((index, d));
                }
                Op::MatMulDownA { n, k, m, weight, .. } => {
                    let (n, k, m) = (n as usize, k as usize, m as usize);
                    let d = match down.take() {
                        Some((j, d)) if j + 1 == index && d.len() == n * k => d,
                        _ => {
                            return Err(MpcError::Setup {
                                detail: format!(
                                    "plan step {index}: a matmul after a downcast without one before it"
                                ),
                            });
                        }
                    };
                    let a: Vec<u32> = d.iter().map(|x| x.wrapping_neg()).collect();
                    steps.insert(index, product(&gemm, &a, f_of::<u32>(&stored, weight, (k, m))?, n)?);
                }
                _ => {}
            }
        }
        if !feed.is_finished() {
            feed.finish().await?;
        }
        Ok(Some(Products { party, session, plan_hash: plan.hash()?, weights, steps }))
    }

    /// Bytes of products held.
    pub fn bytes(&self) -> usize {
        self.steps.values().map(Vec::len).sum()
    }

    /// Steps with a product.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step has a product.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The product of step `index`, decoded (`len` ring elements), if there is one.
    pub(crate) fn get<R: Ring>(&self, index: u32, len: usize) -> Result<Option<Vec<R>>, MpcError> {
        let Some(b) = self.steps.get(&index) else { return Ok(None) };
        if b.len() != len * R::BYTES {
            return Err(MpcError::Setup {
                detail: format!(
                    "the precomputed product of step {index} holds {} bytes, the step needs {}",
                    b.len(),
                    len * R::BYTES
                ),
            });
        }
        let mut out = vec![R::ZERO; len];
        ditto_core::ring::decode_slice(b, &mut out)?;
        Ok(Some(out))
    }

    /// The file form: magic, party, session, plan hash, weights key, step count, then per step
    /// its index, byte length and bytes (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes() + 128 + 8 * self.steps.len());
        out.extend_from_slice(&MAGIC);
        out.push(u8::from(self.party == Party::P1));
        out.extend_from_slice(&self.session.0);
        out.extend_from_slice(&self.plan_hash);
        out.extend_from_slice(&self.weights);
        out.extend_from_slice(&(self.steps.len() as u64).to_le_bytes());
        for (i, b) in &self.steps {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        out
    }

    /// Reads [`Products::encode`]'s form; anything else is an error naming what was expected.
    pub fn decode(bytes: &[u8]) -> Result<Products, MpcError> {
        let bad = |what: &str| MpcError::Setup { detail: format!("precomputed products: {what}") };
        let mut r = Reader(bytes);
        if r.take(8).ok_or_else(|| bad("truncated header"))? != MAGIC {
            return Err(bad("not a products file (magic DITTOAF1 expected)"));
        }
        let party = match r.take(1).ok_or_else(|| bad("truncated header"))?[0] {
            0 => Party::P0,
            1 => Party::P1,
            _ => return Err(bad("party byte must be 0 or 1")),
        };
        let mut arr = |n| r.take(n).ok_or_else(|| bad("truncated header")).map(<[u8]>::to_vec);
        let (session, plan_hash, weights) = (arr(16)?, arr(32)?, arr(32)?);
        let count = r.u64().ok_or_else(|| bad("truncated header"))?;
        let mut steps = BTreeMap::new();
        for _ in 0..count {
            let i = r.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let (Some(i), Some(len)) = (i, r.u64()) else { return Err(bad("truncated step head")) };
            let len = usize::try_from(len).map_err(|_| bad("step too long"))?;
            let b = r.take(len).ok_or_else(|| bad("truncated step"))?;
            if steps.insert(i, b.to_vec()).is_some() {
                return Err(bad("a step appears twice"));
            }
        }
        if !r.0.is_empty() {
            return Err(bad("bytes after the last step"));
        }
        let fixed = |v: Vec<u8>| -> [u8; 32] {
            let mut a = [0u8; 32];
            a.copy_from_slice(&v);
            a
        };
        let mut s = [0u8; 16];
        s.copy_from_slice(&session);
        Ok(Products {
            party,
            session: SessionId(s),
            plan_hash: fixed(plan_hash),
            weights: fixed(weights),
            steps,
        })
    }
}

impl crate::Engine {
    /// Gives the engine its session's products (secure runs, after [`crate::Engine::start`]):
    /// each fixed-weight product with one adds it instead of computing A_i F. Products of
    /// another party, session or plan are refused here, of other weights when first used.
    pub fn set_products(&mut self, p: std::sync::Arc<Products>) -> Result<(), MpcError> {
        let Some((session, plan)) = self.session_plan() else {
            return Err(MpcError::Mode { what: "set_products", mode: "only a secure run uses products" });
        };
        if p.party != self.party() || p.session != session || p.plan_hash != plan.hash()? {
            return Err(MpcError::Setup {
                detail: format!(
                    "precomputed products of {:?}, session {:032x} do not belong to this run ({:?}, session \
                     {:032x}, or another plan)",
                    p.party,
                    p.session.as_u128(),
                    self.party(),
                    session.as_u128()
                ),
            });
        }
        self.products = Some(p);
        Ok(())
    }

    /// Adds step `index`'s precomputed A_i F to `z`; false when there is none.
    pub(crate) fn add_product<R: Ring>(&self, index: u32, z: &mut [R]) -> Result<bool, MpcError> {
        let Some(p) = &self.products else { return Ok(false) };
        if Some(p.weights) != self.setup.weights_key {
            return Err(MpcError::Setup {
                detail: "the precomputed products were made with other weights than this session's".into(),
            });
        }
        let Some(v) = p.get::<R>(index, z.len())? else { return Ok(false) };
        z.iter_mut().zip(&v).for_each(|(z, v)| *z = z.add(*v));
        Ok(true)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
}

fn corrections(party: Party, corr: &[u8]) -> Corrections<'_> {
    if party == Party::P0 { Corrections::none() } else { Corrections::new(corr) }
}

/// F of weight `id` from the stored weights, with its shape checked.
fn f_of<R: Ring>(
    stored: &BTreeMap<u32, Prepared>,
    id: u32,
    (k, m): (usize, usize),
) -> Result<&PackedB<R>, MpcError> {
    let p = stored.get(&id).and_then(|p| p.downcast_ref::<(PackedB<R>, PackedB<R>)>());
    match p {
        Some((f, _)) if f.dims() == (k, m) => Ok(f),
        _ => Err(MpcError::Setup {
            detail: format!("weight {id} ([{k}, {m}]) is not among the stored weights"),
        }),
    }
}

/// A F (n x m), encoded.
fn product<R: Ring>(gemm: &FastGemm, a: &[R], f: &PackedB<R>, n: usize) -> Result<Vec<u8>, MpcError> {
    let mut z = vec![R::ZERO; n * f.dims().1];
    gemm.gemm_acc_packed(&mut z, a, f, n);
    let mut out = vec![0u8; z.len() * R::BYTES];
    ditto_core::ring::encode_slice(&z, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Products {
        let mut steps = BTreeMap::new();
        steps.insert(3, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        steps.insert(9, vec![0xff; 16]);
        Products {
            party: Party::P1,
            session: SessionId([7; 16]),
            plan_hash: [1; 32],
            weights: [2; 32],
            steps,
        }
    }

    #[test]
    fn the_file_form_reads_back_and_damage_is_an_error() {
        let p = sample();
        let b = p.encode();
        assert_eq!(Products::decode(&b).unwrap(), p);
        assert_eq!(p.get::<u32>(3, 2).unwrap(), Some(vec![0x0403_0201, 0x0807_0605]));
        assert_eq!(p.get::<u64>(9, 2).unwrap(), Some(vec![u64::MAX; 2]));
        assert_eq!(p.get::<u32>(4, 2).unwrap(), None);
        assert!(p.get::<u32>(3, 3).unwrap_err().to_string().contains("holds 8 bytes, the step needs 12"));
        for cut in [0, 7, 40, b.len() - 1] {
            let e = Products::decode(&b[..cut]).unwrap_err().to_string();
            assert!(e.contains("truncated"), "{cut}: {e}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(Products::decode(&longer).unwrap_err().to_string().contains("after the last step"));
        let mut magic = b.clone();
        magic[0] ^= 1;
        assert!(Products::decode(&magic).unwrap_err().to_string().contains("magic"));
        let mut party = b;
        party[8] = 2;
        assert!(Products::decode(&party).unwrap_err().to_string().contains("party byte"));
        // Debug shows sizes only.
        assert_eq!(format!("{p:?}"), "Products { P1, 2 steps, 24 bytes }");
    }
}
