//! The radix comparison of 32-bit values in 3 rounds: its last tree level and the B2A round
//! become one round whose output is arithmetic (plan op `SignRadixTopA`).
//!
//! For l = 32 the circuit of [`super`] has 8 chunks, one level of fan-in 4 (node 0 over chunks
//! 0-3, which needs only G_0; node 1 over chunks 4-7, which gives G_1 and P_1), and a top node
//! c = G_1 ^ P_1 G_0 followed by a B2A of s = msb(y) ^ t ^ c, t = msb(r). Here the top node
//! computes t ^ c directly as an integer:
//!
//! * t = 0: t ^ c = c = G_1 + P_1 G_0 (G_1 and P_1 never both hold);
//! * t = 1: t ^ c = not c = L_1 + P_1 (not G_0), with L_1 = (not G_1)(not P_1) = 1 ^ G_1 ^ P_1,
//!   since not (G_1 or P_1 G_0) = (not G_1)(not P_1 or not G_0) and P_1 implies not G_1.
//!
//! So t ^ c = X + P Q with X = G_1 ^ t ^ t P_1, P = P_1, Q = G_0 ^ t, all three XOR-shared
//! after level 0: t P_1 expands like P_1 itself (a product over node 1's P wires) with the
//! dealer's XOR shares of t m_S for every subset S of those wires (15 words; t itself for S
//! empty). Round 3 opens X, P, Q masked (x^ = X ^ m_x, ...); with X = x^ + (1 - 2x^) m_x and
//! likewise for P and Q,
//!
//!   s = msb(y) + (1 - 2 msb(y)) (X + P Q) = c_0 + c_x m_x + c_p m_p + c_q m_q + c_pq m_p m_q
//!
//! with public coefficients, so a share of s needs arithmetic shares of the four monomials
//! m_x, m_p, m_q, m_p m_q (dealt in the result ring O). With a multiplicand v (v - a = f opened
//! in round 1), s v = c_0 v + sum_T c_T (f m_T + m_T a): the dealer deals m_T a as well.
//!
//! Cost against the 4-round form: one round fewer and the same online bytes; the dealer
//! deals 15 more words per group and 4 (8 with a multiplicand) ring elements per value
//! instead of 1 (2). Exact for every input: the sign equals [x < 0] for every x in Z_2^32.
//!
//! P1's corrections per group: [msb word][one-hot words][level-0 product words][15 t m_S
//! words][4 lanes monomials, lane-major][with a multiplicand: 4 lanes monomials times a].

use core::ops::Range;

use embedded_io::Write;

use super::party::{Strides, expand_set, level_finish, level_open};
use super::shape::FAN;
use super::{GroupDealer, RadixShape, mask_product};
use crate::corr::{Corrections, DealerStreams, Streams, at, put_ring};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::{Error, Party, Ring};

/// Rounds: open y, level 0, the arithmetic top.
pub const ROUNDS: u32 = 3;
/// Monomials of the top: m_x, m_p, m_q, m_p m_q.
pub const MONOMIALS: usize = 4;
/// Words of t m_S per group (the non-empty subsets of node 1's four P wires).
pub const T_WORDS: usize = 15;
/// Wire masks of the top per group (X, P, Q).
pub const TOP_MASKS: usize = 3;
/// Circuit width.
const BITS: u32 = 32;

/// The shape of a 3-round comparison of `len` 32-bit values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopShape {
    /// The radix shape whose level 0 this protocol runs.
    pub radix: RadixShape,
}

impl TopShape {
    /// The shape for `len` values.
    pub const fn new(len: usize) -> Self {
        TopShape { radix: RadixShape::new(BITS, len) }
    }

    /// Groups of 64 lanes.
    pub const fn groups(&self) -> usize {
        self.radix.groups()
    }

    /// Mask words per group: level 0's, then the top's 3.
    pub fn mask_words(&self) -> usize {
        self.radix.level_offsets(1).0 + TOP_MASKS
    }

    /// Product words per group: level 0's family products, then the 15 t m_S.
    pub fn prod_words(&self) -> usize {
        self.radix.level_offsets(1).1 + T_WORDS
    }

    pub(crate) fn strides(&self) -> Strides {
        Strides { masks: self.mask_words(), prods: self.prod_words() }
    }

    /// Words each party sends per group in round 2.
    pub fn level_msg_words(&self) -> usize {
        self.radix.level_msg_words(0)
    }
}

/// P1 correction bytes for `len` comparisons with results in `out`.
pub fn correction_bytes(out: RingId, len: u32, mul: bool) -> u64 {
    let sh = TopShape::new(len as usize);
    let words = (1 + sh.radix.onehot_words() + sh.prod_words()) as u64;
    let per = if mul { 2 } else { 1 } * MONOMIALS as u64;
    sh.groups() as u64 * words * 8 + u64::from(len) * out.bytes() as u64 * per
}

/// Online bytes per party: y (and f with a multiplicand), level 0's words, the top's 3 words.
pub fn online_bytes(out: RingId, len: u32, mul: bool) -> u64 {
    let sh = TopShape::new(len as usize);
    let f = if mul { u64::from(len) * out.bytes() as u64 } else { 0 };
    u64::from(len) * 4 + f + sh.groups() as u64 * (sh.level_msg_words() + TOP_MASKS) as u64 * 8
}

/// A party's correlation for the 3-round comparison, sized by [`TopShape`] (`mul_a`, `mul_c`
/// empty without a multiplicand).
#[derive(Debug)]
pub struct TopMaterial<'a, O> {
    /// r share (len).
    pub r: &'a mut [u32],
    /// Boolean share of t = msb(r) (one word per group).
    pub msb: &'a mut [u64],
    /// One-hot words (groups * onehot_words).
    pub onehot: &'a mut [u64],
    /// Wire masks (groups * mask_words).
    pub masks: &'a mut [u64],
    /// Level-0 mask products and t m_S (groups * prod_words).
    pub prods: &'a mut [u64],
    /// The monomials m_x, m_p, m_q, m_p m_q, lane-major (4 len).
    pub mono: &'a mut [O],
    /// Mask a of the multiplicand (len, or empty).
    pub mul_a: &'a mut [O],
    /// The monomials times a (4 len, or empty).
    pub mul_c: &'a mut [O],
}

/// Expands a party's correlation for step `step`.
pub fn expand_radix_top<O: Ring>(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    m: &mut TopMaterial<'_, O>,
) -> Result<(), Error> {
    let sh = TopShape::new(m.r.len());
    let (g, n) = (sh.groups(), m.r.len());
    let (ow, pw) = (sh.radix.onehot_words(), sh.prod_words());
    check_len("radix msb words", g, m.msb.len())?;
    check_len("radix one-hot words", g * ow, m.onehot.len())?;
    check_len("radix mask words", g * sh.mask_words(), m.masks.len())?;
    check_len("radix product words", g * pw, m.prods.len())?;
    check_len("radix monomials", MONOMIALS * n, m.mono.len())?;
    let mul = !m.mul_a.is_empty();
    if mul {
        check_len("multiplicand mask", n, m.mul_a.len())?;
    }
    check_len("multiplicand products", MONOMIALS * m.mul_a.len(), m.mul_c.len())?;
    s.prg(step, Purpose::R).fill_ring(m.r);
    s.prg(step, Purpose::WireMask).fill_ring(m.masks);
    s.prg(step, Purpose::A).fill_ring(m.mul_a);
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::RBits).fill_ring(m.msb);
            s.prg(step, Purpose::OneHot).fill_ring(m.onehot);
            s.prg(step, Purpose::MaskProd).fill_ring(m.prods);
            s.prg(step, Purpose::DaBitA).fill_ring(m.mono);
            s.prg(step, Purpose::C).fill_ring(m.mul_c);
        }
        Party::P1 => {
            for gi in 0..g {
                let lanes = MONOMIALS * 64 * gi..MONOMIALS * n.min(64 * (gi + 1));
                corr.read_words(&mut m.msb[gi..=gi])?;
                corr.read_words(&mut m.onehot[gi * ow..(gi + 1) * ow])?;
                corr.read_words(&mut m.prods[gi * pw..(gi + 1) * pw])?;
                corr.read_ring(&mut m.mono[lanes.clone()])?;
                if mul {
                    corr.read_ring(&mut m.mul_c[lanes])?;
                }
            }
        }
    }
    Ok(())
}

/// Node 1's P wires (a bit set over its 8 wires) and the rank of subset `s` among their
/// non-empty subsets (the order of the t m_S words).
fn t_rank(p_term: u16, s: u16) -> usize {
    let (mut c, mut j) = (0usize, 0);
    for b in 0..2 * FAN {
        if p_term >> b & 1 == 1 {
            c |= usize::from(s >> b & 1 == 1) << j;
            j += 1;
        }
    }
    c - 1
}

/// Dealer: P1's corrections for groups `groups` of `len` comparisons (layout in the module
/// docs); `mul`: with a multiplicand.
pub fn deal_radix_top<O: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    len: usize,
    mul: bool,
    groups: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let sh = TopShape::new(len);
    let g0 = groups.start;
    let mut gd = GroupDealer::<u32>::new(d, step, sh.radix, g0, sh.strides());
    let elems = |s: &Streams<'_>, q, per| at::<O>(s.prg(step, q), per * 64 * g0);
    let mut mono0 = elems(&d.p0, Purpose::DaBitA, MONOMIALS);
    let (mut a0, mut a1, mut c0) =
        (elems(&d.p0, Purpose::A, 1), elems(&d.p1, Purpose::A, 1), elems(&d.p0, Purpose::C, MONOMIALS));
    let p_term = sh.radix.level(0).iter().nth(1).map(|(_, f)| f.p_term()).unwrap_or(0);
    let mut r = [0u32; 64];
    let mut node1 = [0u64; 2 * FAN];
    let mut xo = [O::ZERO; MONOMIALS * 64];
    for g in groups {
        let lanes = (len - 64 * g).min(64);
        let t = gd.leaves(lanes, &mut r, w)?;
        gd.level(0, &mut node1, w)?;
        let mut tp = [0u64; T_WORDS];
        let mut s = p_term;
        while s != 0 {
            tp[t_rank(p_term, s)] = t & mask_product(&node1, s);
            s = (s - 1) & p_term;
        }
        for v in tp {
            gd.product_word(v, w)?;
        }
        let mut top = [0u64; TOP_MASKS];
        gd.masks(&mut top);
        let xo = &mut xo[..MONOMIALS * lanes];
        mono0.fill_ring(xo);
        let bit = |m: u64, lane: usize| O::from_bit(m >> lane);
        for lane in 0..lanes {
            let mono = [bit(top[0], lane), bit(top[1], lane), bit(top[2], lane), bit(top[1] & top[2], lane)];
            for (o, m) in xo[MONOMIALS * lane..][..MONOMIALS].iter_mut().zip(mono) {
                *o = m.sub(*o);
            }
        }
        put_ring(w, xo)?;
        if mul {
            c0.fill_ring(xo);
            for lane in 0..lanes {
                let a = a0.next_elem::<O>().add(a1.next_elem::<O>());
                let mono = [top[0], top[1], top[2], top[1] & top[2]];
                for (o, m) in xo[MONOMIALS * lane..][..MONOMIALS].iter_mut().zip(mono) {
                    *o = bit(m, lane).mul(a).sub(*o);
                }
            }
            put_ring(w, xo)?;
        }
    }
    Ok(())
}

/// Round 2 (level 0): this party's masked wires, as [`super::radix_level_open`].
pub fn radix_top_level_open(
    sh: &TopShape,
    state: &[u64],
    masks: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    level_open(&sh.radix, sh.strides(), 0, state, masks, msg)
}

/// Round 2 (level 0): applies the opened wires, as [`super::radix_level_finish`].
pub fn radix_top_level_finish(
    party: Party,
    sh: &TopShape,
    state: &mut [u64],
    opened: &[u64],
    masks: &[u64],
    prods: &[u64],
) -> Result<(), Error> {
    level_finish(party, &sh.radix, sh.strides(), 0, state, opened, masks, prods)
}

/// Round 3: this party's masked X, P, Q per group (3 words), from the state after level 0,
/// level 0's opened wires `opened0` (node 1's P wires give t P_1) and t's shares `msb`.
pub fn radix_top_open(
    sh: &TopShape,
    state: &[u64],
    opened0: &[u64],
    msb: &[u64],
    masks: &[u64],
    prods: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    let (g_n, c_n) = (sh.groups(), sh.radix.chunks());
    let (mw, pw, per) = (sh.mask_words(), sh.prod_words(), sh.level_msg_words());
    check_len("radix state", g_n * sh.radix.state_words(), state.len())?;
    check_len("radix level opened", g_n * per, opened0.len())?;
    check_len("radix msb words", g_n, msb.len())?;
    check_len("radix mask words", g_n * mw, masks.len())?;
    check_len("radix product words", g_n * pw, prods.len())?;
    check_len("radix top message", g_n * TOP_MASKS, msg.len())?;
    let lv = sh.radix.level(0);
    let mut nodes = lv.iter();
    let (Some((_, f0)), Some((n1, f1)), None) = (nodes.next(), nodes.next(), nodes.next()) else {
        return Err(Error::Length { what: "radix top level nodes", expected: 2, got: lv.iter().count() });
    };
    let p_term = f1.p_term();
    for g in 0..g_n {
        let st = &state[g * 2 * c_n..(g + 1) * 2 * c_n];
        // Node 1's opened wires follow node 0's in the level-0 message.
        let mut hat = [0u64; 2 * FAN];
        let wires = (0..2 * n1.k).filter(|b| f1.used >> b & 1 == 1);
        for (o, b) in (g * per + f0.opened()..).zip(wires) {
            hat[b] = opened0[o];
        }
        let tp = &prods[g * pw + (pw - T_WORDS)..(g + 1) * pw];
        let t = msb[g];
        let t_p1 = expand_set(p_term, &hat, |s| if s == 0 { t } else { tp[t_rank(p_term, s)] });
        let (g0, g1, p1) = (st[0], st[1], st[c_n + 1]);
        let m = &masks[g * mw + (mw - TOP_MASKS)..(g + 1) * mw];
        let wires = [g1 ^ t ^ t_p1, p1, g0 ^ t];
        for (j, wv) in wires.iter().enumerate() {
            msg[g * TOP_MASKS + j] = wv ^ m[j];
        }
    }
    Ok(())
}

/// The multiplicand of round 3: f = v - a (opened in round 1), this party's shares of v and
/// of the monomials times a.
#[derive(Clone, Copy, Debug)]
pub struct TopMul<'a, O> {
    /// Opened v - a (len).
    pub f: &'a [O],
    /// This party's share of v (len).
    pub v: &'a [O],
    /// This party's shares of m_T a (4 len, lane-major).
    pub mul_c: &'a [O],
}

/// Round 3 finish: this party's share of s = [x < 0] into `s`, and with a multiplicand of
/// s v into `sv`, from the opened X, P, Q (`opened`, 3 words per group) and the public y.
pub fn radix_top_finish<O: Ring>(
    party: Party,
    y: &[u32],
    opened: &[u64],
    mono: &[O],
    mul: Option<TopMul<'_, O>>,
    s: &mut [O],
    sv: &mut [O],
) -> Result<(), Error> {
    let n = y.len();
    check_len("radix top opened", TOP_MASKS * n.div_ceil(64), opened.len())?;
    check_len("radix monomials", MONOMIALS * n, mono.len())?;
    check_len("sign", n, s.len())?;
    if let Some(m) = &mul {
        for (what, l) in [("f", m.f.len()), ("v", m.v.len()), ("sv", sv.len())] {
            check_len(what, n, l)?;
        }
        check_len("multiplicand products", MONOMIALS * n, m.mul_c.len())?;
    }
    let p0 = party.is_p0();
    for i in 0..n {
        let z = |j: usize| (opened[TOP_MASKS * (i / 64) + j] >> (i % 64)) & 1 == 1;
        let (zx, zp, zq) = (z(0), z(1), z(2));
        // s = msb(y) + sigma (X + P Q), sigma = 1 - 2 msb(y); each opened wire w^ enters as
        // w^ + (1 - 2 w^) m_w.
        let flip = |v: bool| if v { O::ZERO.sub(O::ONE) } else { O::ONE };
        let my = y[i].msb() == 1;
        let sigma = flip(my);
        let c0 = O::from_bit(u64::from(my))
            .add(sigma.mul(O::from_bit(u64::from(zx)).add(O::from_bit(u64::from(zp && zq)))));
        let coef = [
            sigma.mul(flip(zx)),
            sigma.mul(O::from_bit(u64::from(zq))).mul(flip(zp)),
            sigma.mul(O::from_bit(u64::from(zp))).mul(flip(zq)),
            sigma.mul(flip(zp)).mul(flip(zq)),
        ];
        let mo = &mono[MONOMIALS * i..][..MONOMIALS];
        let mut acc = if p0 { c0 } else { O::ZERO };
        for (c, m) in coef.iter().zip(mo) {
            acc = acc.add(c.mul(*m));
        }
        s[i] = acc;
        if let Some(m) = &mul {
            let mc = &m.mul_c[MONOMIALS * i..][..MONOMIALS];
            let mut acc = c0.mul(m.v[i]);
            for ((c, mm), ma) in coef.iter().zip(mo).zip(mc) {
                acc = acc.add(c.mul(m.f[i].mul(*mm).add(*ma)));
            }
            sv[i] = acc;
        }
    }
    Ok(())
}
