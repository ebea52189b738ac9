//! The radix comparison in 3 rounds: its last tree level and the B2A become one round whose
//! output is arithmetic (plan op `SignRadixTopA`), for circuits of 32 bits (a top over 2
//! level-0 nodes) and 64 bits (over 4).
//!
//! The 4-round circuit of [`super`] has one level of fan-in 4 over the chunks (node 0, the
//! lowest, gives G_0; nodes j >= 1 give G_j and P_j), a top node c = carry over the level-0
//! nodes, and a B2A of s = msb(y) ^ t ^ c, t = msb(r). Here the top computes t ^ c directly as
//! an integer. For one node over a lower carry c', t ^ (G_j or P_j c') is
//!
//! * t = 0: G_j + P_j c' (G_j and P_j never both hold);
//! * t = 1: not (G_j or P_j c') = L_j + P_j (not c'), with L_j = (not G_j)(not P_j) = 1 ^ G_j ^ P_j
//!   (P_j implies not G_j),
//!
//! that is X_j + P_j (t ^ c') with X_j = G_j ^ t ^ t P_j. Unrolled over K nodes:
//!
//!   t ^ c = X_(K-1) + P_(K-1) X_(K-2) + ... + P_(K-1) ... P_1 Q_0,   Q_0 = G_0 ^ t,
//!
//! a sum of K products ("terms") of the 2K - 1 wires V_0 = Q_0, V_j = X_j and P_j (j >= 1), all
//! XOR-shared after level 0: t P_j expands like P_j itself (a product over node j's P wires)
//! with the dealer's XOR shares of t m_S for every non-empty subset S of those wires (and t
//! itself for S empty). Round 3 opens every wire masked (w^ = w ^ m_w); with w = w^ + (1 - 2w^)
//! m_w, each term expands into public coefficients times the products m_S of its wire masks:
//!
//!   s = msb(y) + (1 - 2 msb(y)) (t ^ c) = c_0 + sum_S c_S m_S
//!
//! over the monomials S (every non-empty subset of some term: 4 for K = 2, 22 for K = 4), so a
//! share of s needs arithmetic shares of the monomials (dealt in the result ring O). With a
//! multiplicand v (v - a = f opened in round 1), s v = c_0 v + sum_S c_S (f m_S + m_S a): the
//! dealer deals m_S a as well.
//!
//! Cost against the 4-round form: one round fewer and the same online bytes; the dealer deals
//! 15 (K - 1) more words per group and M (2M with a multiplicand) ring elements per value
//! instead of 1 (2), M the monomials: callers spend it where values are few. Exact for every
//! input: the sign equals [x < 0] for every x of the circuit's ring.
//!
//! P1's corrections per group: [msb word][one-hot words][level-0 product words][t m_S words,
//! nodes 1..K][M lanes monomials, lane-major][with a multiplicand: M lanes monomials times a].

use core::ops::Range;

use embedded_io::Write;

pub use super::top_party::{
    TopMul, radix_top_finish, radix_top_level_finish, radix_top_level_open, radix_top_open,
};

use super::party::Strides;
use super::shape::{FAN, MAX_NODES};
use super::{Circuit, GroupDealer, RadixShape, mask_product};
use crate::corr::{Corrections, DealerStreams, Streams, at, put_ring};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::{Error, Party, Ring};

/// Rounds: open y, level 0, the arithmetic top.
pub const ROUNDS: u32 = 3;
/// Most monomials of a top (K = 4).
pub const MAX_MONOMIALS: usize = 22;
/// Most wires of a top (2K - 1 for K = 4).
pub(super) const MAX_WIRES: usize = 2 * MAX_NODES - 1;

/// The top's algebra over K level-0 nodes: wire w < K is V_w (Q_0, then X_1 ..), wire K - 1 + j
/// is P_j (j = 1 .. K-1); term j = V_j times P_i for every i > j; the monomials are every
/// non-empty subset of some term, in increasing order as bit sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Top {
    /// K.
    pub k: usize,
    terms: [u8; MAX_NODES],
    mono: [u8; MAX_MONOMIALS],
    n_mono: usize,
}

impl Top {
    /// The top over `k` (2..=4) nodes.
    pub fn new(k: usize) -> Self {
        let mut t = Top { k, terms: [0; MAX_NODES], mono: [0; MAX_MONOMIALS], n_mono: 0 };
        for j in 0..k {
            t.terms[j] = 1 << j;
            for i in j + 1..k {
                t.terms[j] |= 1 << (k - 1 + i.max(1));
            }
        }
        for s in 1u8..(1 << (2 * k - 1)) {
            if t.n_mono < MAX_MONOMIALS && t.terms[..k].iter().any(|&tm| s & !tm == 0) {
                t.mono[t.n_mono] = s;
                t.n_mono += 1;
            }
        }
        t
    }

    /// Wires opened in round 3.
    pub const fn wires(&self) -> usize {
        2 * self.k - 1
    }

    /// The monomials (bit sets over the wires).
    pub fn monomials(&self) -> &[u8] {
        &self.mono[..self.n_mono]
    }

    /// The terms (bit sets over the wires).
    pub fn terms(&self) -> &[u8] {
        &self.terms[..self.k]
    }
}

/// The shape of a 3-round comparison of `len` values on a `bits`-bit circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopShape {
    /// The radix shape whose level 0 this protocol runs.
    pub radix: RadixShape,
    /// The top over level 0's nodes.
    pub top: Top,
}

impl TopShape {
    /// The shape for `len` values of a `bits`-bit circuit (32 or 64).
    pub fn new(bits: u32, len: usize) -> Self {
        let radix = RadixShape::new(bits, len);
        TopShape { radix, top: Top::new(radix.width(1).clamp(2, MAX_NODES)) }
    }

    /// Errors unless the circuit's tree is level 0 and one top over 2..=4 nodes.
    pub fn check(&self, step: u32) -> Result<(), Error> {
        if self.radix.levels() != 2 || !(2..=MAX_NODES).contains(&self.radix.width(1)) {
            return Err(Error::BadStep { step, reason: "3-round comparison: level 0 and one top node" });
        }
        Ok(())
    }

    /// Groups of 64 lanes.
    pub const fn groups(&self) -> usize {
        self.radix.groups()
    }

    /// t m_S words per group of node `j` (>= 1): its P wires' non-empty subsets.
    pub(super) fn t_words_of(&self, j: usize) -> usize {
        (1 << self.radix.node(0, j).k) - 1
    }

    /// t m_S words per group.
    pub fn t_words(&self) -> usize {
        (1..self.top.k).map(|j| self.t_words_of(j)).sum()
    }

    /// Mask words per group: level 0's, then the top's wires.
    pub fn mask_words(&self) -> usize {
        self.radix.level_offsets(1).0 + self.top.wires()
    }

    /// Product words per group: level 0's family products, then the t m_S.
    pub fn prod_words(&self) -> usize {
        self.radix.level_offsets(1).1 + self.t_words()
    }

    pub(crate) fn strides(&self) -> Strides {
        Strides { masks: self.mask_words(), prods: self.prod_words() }
    }

    /// Words each party sends per group in round 2.
    pub fn level_msg_words(&self) -> usize {
        self.radix.level_msg_words(0)
    }

    /// Monomials per value.
    pub fn monomials(&self) -> usize {
        self.top.monomials().len()
    }
}

/// P1 correction bytes for `len` comparisons on `ring` with results in `out`.
pub fn correction_bytes(ring: RingId, out: RingId, len: u32, mul: bool) -> u64 {
    let sh = TopShape::new(ring.bits(), len as usize);
    let words = (1 + sh.radix.onehot_words() + sh.prod_words()) as u64;
    let per = if mul { 2 } else { 1 } * sh.monomials() as u64;
    sh.groups() as u64 * words * 8 + u64::from(len) * out.bytes() as u64 * per
}

/// Online bytes per party: y (and f with a multiplicand), level 0's words, the top's wires.
pub fn online_bytes(ring: RingId, out: RingId, len: u32, mul: bool) -> u64 {
    let sh = TopShape::new(ring.bits(), len as usize);
    let f = if mul { u64::from(len) * out.bytes() as u64 } else { 0 };
    let words = (sh.level_msg_words() + sh.top.wires()) as u64;
    u64::from(len) * ring.bytes() as u64 + f + sh.groups() as u64 * words * 8
}

/// A party's correlation for the 3-round comparison, sized by [`TopShape`] (`mul_a`, `mul_c`
/// empty without a multiplicand). The circuit runs on ring `C`, the result in `O`; the
/// circuit's products are level 0's, then the t m_S.
#[derive(Debug)]
pub struct TopMaterial<'a, C, O> {
    /// The circuit's part.
    pub c: Circuit<'a, C>,
    /// The monomials, lane-major (M len).
    pub mono: &'a mut [O],
    /// Mask a of the multiplicand (len, or empty).
    pub mul_a: &'a mut [O],
    /// The monomials times a (M len, or empty).
    pub mul_c: &'a mut [O],
}

/// Expands a party's correlation for step `step`.
pub fn expand_radix_top<C: Ring, O: Ring>(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    m: &mut TopMaterial<'_, C, O>,
) -> Result<(), Error> {
    let sh = TopShape::new(C::BITS, m.c.r.len());
    sh.check(step)?;
    let (g, n, mn) = (sh.groups(), m.c.r.len(), sh.monomials());
    m.c.expand(s, step, &sh.radix, sh.strides())?;
    check_len("radix monomials", mn * n, m.mono.len())?;
    let mul = !m.mul_a.is_empty();
    if mul {
        check_len("multiplicand mask", n, m.mul_a.len())?;
    }
    check_len("multiplicand products", mn * m.mul_a.len(), m.mul_c.len())?;
    s.prg(step, Purpose::A).fill_ring(m.mul_a);
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::DaBitA).fill_ring(m.mono);
            s.prg(step, Purpose::C).fill_ring(m.mul_c);
        }
        Party::P1 => {
            for gi in 0..g {
                let lanes = mn * 64 * gi..mn * n.min(64 * (gi + 1));
                m.c.read_group(corr, gi, sh.radix.onehot_words(), sh.prod_words())?;
                corr.read_ring(&mut m.mono[lanes.clone()])?;
                if mul {
                    corr.read_ring(&mut m.mul_c[lanes])?;
                }
            }
        }
    }
    Ok(())
}

/// The rank of subset `s` of a node's P wires `p_term` among their non-empty subsets (the
/// order of the t m_S words).
pub(super) fn t_rank(p_term: u16, s: u16) -> usize {
    let (mut c, mut j) = (0usize, 0);
    for b in 0..2 * FAN {
        if p_term >> b & 1 == 1 {
            c |= usize::from(s >> b & 1 == 1) << j;
            j += 1;
        }
    }
    c - 1
}

/// Dealer: P1's corrections for groups `groups` of `len` comparisons on ring `C` (layout in
/// the module docs); `mul`: with a multiplicand.
pub fn deal_radix_top<C: Ring, O: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    len: usize,
    mul: bool,
    groups: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let sh = TopShape::new(C::BITS, len);
    sh.check(step)?;
    let (g0, mn) = (groups.start, sh.monomials());
    let mut gd = GroupDealer::<C>::new(d, step, sh.radix, g0, sh.strides());
    let elems = |s: &Streams<'_>, q, per| at::<O>(s.prg(step, q), per * 64 * g0);
    let mut mono0 = elems(&d.p0, Purpose::DaBitA, mn);
    let (mut a0, mut a1, mut c0) =
        (elems(&d.p0, Purpose::A, 1), elems(&d.p1, Purpose::A, 1), elems(&d.p0, Purpose::C, mn));
    let lv = sh.radix.level(0);
    let mut r = [C::ZERO; 64];
    let mut masks = [[0u64; 2 * FAN]; MAX_NODES];
    let mut xo = [O::ZERO; MAX_MONOMIALS * 64];
    for g in groups {
        let lanes = (len - 64 * g).min(64);
        let t = gd.leaves(lanes, &mut r, w)?;
        gd.level(0, &mut masks, w)?;
        for ((_, fam), mk) in lv.iter().zip(&masks).skip(1) {
            let p_term = fam.p_term();
            let mut tp = [0u64; (1 << FAN) - 1];
            let mut s = p_term;
            while s != 0 {
                tp[t_rank(p_term, s)] = t & mask_product(mk, s);
                s = (s - 1) & p_term;
            }
            for v in &tp[..(1 << fam.k) - 1] {
                gd.product_word(*v, w)?;
            }
        }
        let mut top = [0u64; MAX_WIRES];
        gd.masks(&mut top[..sh.top.wires()]);
        let words: [u64; MAX_MONOMIALS] = core::array::from_fn(|i| {
            sh.top.monomials().get(i).map_or(0, |&s| mask_product(&top, u16::from(s)))
        });
        let bit = |m: u64, lane: usize| O::from_bit(m >> lane);
        let xo = &mut xo[..mn * lanes];
        mono0.fill_ring(xo);
        for lane in 0..lanes {
            for (o, m) in xo[mn * lane..][..mn].iter_mut().zip(&words) {
                *o = bit(*m, lane).sub(*o);
            }
        }
        put_ring(w, xo)?;
        if mul {
            c0.fill_ring(xo);
            for lane in 0..lanes {
                let a = a0.next_elem::<O>().add(a1.next_elem::<O>());
                for (o, m) in xo[mn * lane..][..mn].iter_mut().zip(&words) {
                    *o = bit(*m, lane).mul(a).sub(*o);
                }
            }
            put_ring(w, xo)?;
        }
    }
    Ok(())
}
