//! The plan hash and the plan-level rules a step list must keep (a product after a downcast
//! follows it; an opening beside others is used by exactly one product).

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Op, PLAN_VERSION, PlanHeader, Step};
use crate::Error;

const HASH_LABEL: &[u8] = b"ditto plan v1\0";

/// Incremental plan hash, for a dealer that receives the plan one step at a time.
pub struct PlanHasher {
    sha: Sha256,
    steps: u32,
    declared: u32,
    /// The step before (a matmul after a downcast must follow its downcast).
    prev: Option<Step>,
    /// The last `OpenBesideA` not yet used by a product: (step, elements).
    open: Option<(u32, u32)>,
    /// The last `TruncCenterSquareA` whose d no product has used: (step, its op).
    centred: Option<(u32, Op)>,
}

impl PlanHasher {
    /// Starts a hash with the plan header (checks the version).
    pub fn new(header: &PlanHeader) -> Result<Self, Error> {
        if header.version != PLAN_VERSION {
            return Err(Error::Version { expected: PLAN_VERSION, got: header.version });
        }
        let mut h = PlanHasher {
            sha: Sha256::new(),
            steps: 0,
            declared: header.n_steps,
            prev: None,
            open: None,
            centred: None,
        };
        h.sha.update(HASH_LABEL);
        h.absorb(header)?;
        Ok(h)
    }

    fn absorb<T: Serialize>(&mut self, v: &T) -> Result<(), Error> {
        let mut buf = [0u8; 128];
        let used = postcard::to_slice(v, &mut buf).map_err(|_| Error::Encoding("plan item"))?;
        let len = u32::try_from(used.len()).map_err(|_| Error::Encoding("plan item"))?;
        self.sha.update(len.to_le_bytes());
        self.sha.update(&*used);
        Ok(())
    }

    /// Adds the next step (validated).
    pub fn push(&mut self, step: &Step) -> Result<(), Error> {
        step.validate(self.steps)?;
        if let Op::MatMulDownA { n, k, shift, .. } = step.op {
            let fits = matches!(self.prev.and_then(|p| p.op.trunc_down()), Some((len, s))
                if u64::from(len) == u64::from(n) * u64::from(k) && s == u32::from(shift));
            if !fits {
                return Err(Error::BadStep {
                    step: self.steps,
                    reason: "a matmul after a downcast must follow a truncate-then-downcast of its input",
                });
            }
        }
        self.check_opening(step)?;
        self.absorb(step)?;
        self.steps += 1;
        self.prev = Some(*step);
        Ok(())
    }

    /// A product's opening is used once: a `MatMulDownAA` must follow a truncate-then-downcast
    /// of its X and name the last `OpenBesideA` not yet used, of its Y's size (one pending at a
    /// time: a second opening before the first is used is refused). Likewise a
    /// `TruncMulRowsCenteredA` names the last centring, of its shape, that no product used.
    fn check_opening(&mut self, step: &Step) -> Result<(), Error> {
        let bad = |reason| Err(Error::BadStep { step: self.steps, reason });
        match step.op {
            Op::OpenBesideA { len } => {
                if self.open.is_some() {
                    return bad("an opening beside others before the last one was used");
                }
                self.open = Some((self.steps, len));
            }
            Op::MatMulDownAA { batch, n, k, m, shift, open } => {
                let x_len = u64::from(batch) * u64::from(n) * u64::from(k);
                let follows = matches!(self.prev.and_then(|p| p.op.trunc_down()), Some((len, s))
                    if u64::from(len) == x_len && s == u32::from(shift));
                if !follows {
                    return bad(
                        "a matmul after a downcast must follow a truncate-then-downcast of its input",
                    );
                }
                let y_len = u64::from(batch) * u64::from(k) * u64::from(m);
                if self.open.take().is_none_or(|(at, len)| at != open || u64::from(len) != y_len) {
                    return bad("a matmul after a downcast must use the last unused opening of its Y");
                }
            }
            Op::TruncCenterSquareA { .. } => self.centred = Some((self.steps, step.op)),
            Op::TruncMulRowsCenteredA { ring, rows, cols, center, center_shift, .. } => {
                let names = matches!(self.centred.take(), Some((at, Op::TruncCenterSquareA { ring: r, rows: n, cols: c, shift }))
                    if at == center && r == ring && n == rows && c == cols && shift == center_shift);
                if !names {
                    return bad("centred row products must name the last unused centring of their shape");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The 256-bit plan hash; fails if the step count differs from the header's.
    pub fn finish(self) -> Result<[u8; 32], Error> {
        if self.steps != self.declared {
            return Err(Error::PlanStepCount { declared: self.declared, actual: self.steps });
        }
        Ok(self.sha.finalize().into())
    }
}

/// The hash of a plan given as a header and a slice of steps (validates every step).
pub fn plan_hash(header: &PlanHeader, steps: &[Step]) -> Result<[u8; 32], Error> {
    let mut h = PlanHasher::new(header)?;
    for s in steps {
        h.push(s)?;
    }
    h.finish()
}
