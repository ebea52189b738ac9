//! Admitted input ranges, checked by the plaintext fixed-point reference.
//!
//! Truncation (x in [-2^(l-2), 2^(l-2)) in Z_2^l), upcast (x in [-2^30, 2^30]), downcast by k
//! (x in [-2^(31+k), 2^(31+k)), so that the result fits Z_2^32), the narrow sign (x in
//! [-2^31, 2^31)) and the octave selection of reciprocal and rsqrt (2^lo <= x < 2^hi as a real
//! value) are exact only inside these ranges (core's `trunc` and `convert`, DESIGN.md §5).
//! Outside them the secure result is silently wrong, never leaky, and the plaintext reference
//! computes the same wrong value, so agreement between the two proves nothing there. The
//! reference therefore checks the input of every such operation and records each one that left
//! its range: the operation, plan step, layer and tag, how many values and the worst one, and
//! the bound, in real units (value = integer * 2^-frac). [`crate::Engine::range_report`].

use ditto_core::Ring;
use ditto_core::plan::{Step, Tag};

use crate::Shared;

/// The range an operation admits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// min <= x <= max as a (signed) integer.
    Int {
        /// Smallest admitted.
        min: i64,
        /// Largest admitted.
        max: i64,
    },
    /// 2^lo <= x < 2^hi as a real value.
    Octaves {
        /// Lowest octave.
        lo: i32,
        /// One past the highest octave.
        hi: i32,
    },
}

/// One operation whose input left its admitted range.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeIssue {
    /// The operation (`trunc_a`, `upcast_a`, `downcast_a`, `sign_low_a`, `reciprocal`, `rsqrt`).
    pub op: &'static str,
    /// The plan step it ran as (for reciprocal and rsqrt: the first step of its octave selection).
    pub step: u32,
    /// Layer of the step.
    pub layer: u16,
    /// Tag of the step.
    pub tag: Tag,
    /// Values outside the range.
    pub count: usize,
    /// Values checked.
    pub len: usize,
    /// The value farthest outside the range, in real units.
    pub worst: f64,
    /// The bound.
    pub bound: Bound,
    /// Fractional bits of the input.
    pub frac: u32,
}

impl Bound {
    /// [-2^bits, 2^bits), or [-2^bits, 2^bits] when `inclusive`.
    pub fn pow2(bits: u32, inclusive: bool) -> Self {
        let b = 1i64 << bits.min(62);
        Bound::Int { min: -b, max: if inclusive { b } else { b - 1 } }
    }
}

impl RangeIssue {
    /// The bound in real units, as text.
    pub fn bound_text(&self) -> String {
        match self.bound {
            Bound::Int { min, max } => {
                let s = 2f64.powi(-i32::try_from(self.frac).unwrap_or(0));
                format!("[{}, {}]", min as f64 * s, max as f64 * s)
            }
            Bound::Octaves { lo, hi } => format!("[2^{lo}, 2^{hi})"),
        }
    }
}

impl std::fmt::Display for RangeIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at step {} (layer {}, {:?}): {} of {} values outside {}, worst {:.6e}",
            self.op,
            self.step,
            self.layer,
            self.tag,
            self.count,
            self.len,
            self.bound_text(),
            self.worst
        )
    }
}

/// Every range issue of a plaintext run, in plan order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeReport {
    /// The issues.
    pub issues: Vec<RangeIssue>,
}

impl RangeReport {
    /// Whether every checked value was inside its range.
    pub fn is_clean(&self) -> bool {
        self.issues.is_empty()
    }

    /// Appends another run's issues.
    pub fn extend(&mut self, other: RangeReport) {
        self.issues.extend(other.issues);
    }

    /// The report for a person: one line per issue (the first `max`, then a count).
    pub fn lines(&self, max: usize) -> Vec<String> {
        let mut out: Vec<String> = self.issues.iter().take(max).map(ToString::to_string).collect();
        if self.issues.len() > max {
            out.push(format!("... and {} more operations out of range", self.issues.len() - max));
        }
        out
    }
}

/// The issue of operation `op`, begun as the last of `steps`, if its input `x` leaves `bound`.
pub(crate) fn issue<R: Ring>(
    op: &'static str,
    x: &Shared<R>,
    bound: Bound,
    steps: &[Step],
) -> Option<RangeIssue> {
    let (count, worst) = check(&x.data, x.frac, bound)?;
    let last = steps.last()?;
    Some(RangeIssue {
        op,
        step: u32::try_from(steps.len() - 1).unwrap_or(u32::MAX),
        layer: last.layer,
        tag: last.tag,
        count,
        len: x.len(),
        worst,
        bound,
        frac: x.frac,
    })
}

/// Checks `data` (at `frac` fractional bits) against `bound`; `None` when all are inside.
fn check<R: Ring>(data: &[R], frac: u32, bound: Bound) -> Option<(usize, f64)> {
    let scale = 2f64.powi(-i32::try_from(frac).unwrap_or(0));
    let (mut count, mut worst, mut excess) = (0usize, 0f64, 0f64);
    for v in data {
        let i = i128::from(v.to_i64());
        let (outside, by) = match bound {
            Bound::Int { min, max } => {
                let (min, max) = (i128::from(min), i128::from(max));
                (i < min || i > max, if i < min { (min - i) as f64 } else { (i - max) as f64 })
            }
            Bound::Octaves { lo, hi } => {
                let x = i as f64 * scale;
                let (l, h) = (2f64.powi(lo), 2f64.powi(hi));
                (x < l || x >= h, if x < l { l - x } else { x - h })
            }
        };
        if outside {
            count += 1;
            if count == 1 || by > excess {
                excess = by;
                worst = i as f64 * scale;
            }
        }
    }
    (count > 0).then_some((count, worst))
}
