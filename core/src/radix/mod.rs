//! The radix comparison: the sign bit (x < 0) in 4 rounds for l = 32 and l = 64 (the bitwise
//! circuit of [`crate::compare`] takes 7 and 8), optionally multiplied by a shared value in
//! its last round ([x < 0] * v, a selection).
//!
//! As in [`crate::compare`], sign(x) = msb(y) ^ msb(r) ^ [y mod 2^(l-1) < r mod 2^(l-1)] with
//! y = x + r opened. The comparison of the public y with the dealer's r runs on chunks:
//!
//! * **Leaves, no communication.** The low l - 1 bits are cut into chunks of 4 (the top one
//!   narrower). For each chunk the dealer shares (by XOR) the one-hot vector of r's chunk value
//!   u, e[t] = [u == t]. With v the public chunk of y, G = [v < u] = xor_{t > v} e[t] and
//!   P = [v == u] = e[v] are local.
//! * **Levels of fan-in 4, one round each.** A node over children 0..k (0 least significant)
//!   computes G = xor_j G_j prod_{i>j} P_i and, except for the lowest node of a level, P =
//!   prod_j P_j. Every wire w in a product is opened once masked, w^ = w ^ m_w, and a product
//!   over a wire set W expands to xor_{S in W} (prod_{W \ S} w^) m_S: public coefficients times
//!   shares of the mask products m_S, which the dealer supplies for every S with |S| >= 2 (a
//!   node's family, [`shape::Family`]: 15 sets for fan-in 4 without P, 22 with). The top
//!   child's G enters linearly and is never opened. l = 32: 8 chunks -> 2 -> 1 (2 levels);
//!   l = 64: 16 chunks -> 4 -> 1 (2 levels).
//! * **B2A, one round**, with a daBit (d, D): open e = s ^ d, s = [P0] e + (1 - 2e) D. With a
//!   multiplicand v (ring O), v - a is opened in round 1 beside y and the last round gives
//!   s v = e v + (1 - 2e) (f D + D a) with f = v - a and the dealer's share of D a: the
//!   selection costs no round of its own.
//!
//! Correlation per group of 64 lanes (streams of both parties unless noted):
//! r (R, ring elements); msb(r) (RBits: one word, P0; P1 correction); one-hot words (OneHot:
//! [`RadixShape::onehot_words`], P0; P1 correction); wire masks (WireMask: 2k words per node);
//! mask products (MaskProd: the families, P0; P1 correction); daBit d (DaBitB, one word) and D
//! (DaBitA, lanes elements of O, P0; P1 correction); with a multiplicand, its mask a (A, lanes
//! elements of O) and D a (C, P0; P1 correction).
//!
//! P1's corrections per group: [msb word][one-hot words][product words][lanes D1][lanes (Da)1].

mod party;
mod shape;
pub mod top;
mod top_party;

pub use party::{radix_b2a_open, radix_leaves, radix_level_finish, radix_level_open, radix_mul_finish};
pub use shape::{Family, Level, Node, RadixShape};

use core::ops::Range;

use embedded_io::Write;

use crate::corr::{Corrections, DealerStreams, Streams, at, put_ring};
use crate::prg::{Prg, Purpose};
use crate::ring::{RingId, check_len};
use crate::{Error, Party, Ring};

/// Rounds: open, the levels, B2A (the selection rides on the B2A round).
pub const fn rounds(ring: RingId) -> u32 {
    2 + RadixShape::new(ring.bits(), 1).levels()
}

/// P1 correction bytes for `len` comparisons on `ring` with results in `out`.
pub fn correction_bytes(ring: RingId, out: RingId, len: u32, mul: bool) -> u64 {
    let sh = RadixShape::new(ring.bits(), len as usize);
    let words = (1 + sh.onehot_words() + sh.prod_words()) as u64;
    let per = if mul { 2 } else { 1 };
    sh.groups() as u64 * words * 8 + u64::from(len) * out.bytes() as u64 * per
}

/// Online bytes per party: y (and f = v - a with a multiplicand), the level messages and one
/// B2A word per group.
pub fn online_bytes(ring: RingId, out: RingId, len: u32, mul: bool) -> u64 {
    let sh = RadixShape::new(ring.bits(), len as usize);
    let levels: usize = (0..sh.levels()).map(|l| sh.level_msg_words(l)).sum();
    let f = if mul { u64::from(len) * out.bytes() as u64 } else { 0 };
    u64::from(len) * ring.bytes() as u64 + f + sh.groups() as u64 * (levels as u64 + 1) * 8
}

/// The circuit part of a comparison's correlation, the same in the 4-round and the 3-round
/// form (each sizes the masks and products per group by its own strides): r, t = msb(r), the
/// one-hot words, the wire masks and the mask products, in caller-provided buffers.
#[derive(Debug)]
pub struct Circuit<'a, R> {
    /// r share (len).
    pub r: &'a mut [R],
    /// Boolean share of msb(r) (one word per group).
    pub msb: &'a mut [u64],
    /// One-hot words (groups * onehot_words).
    pub onehot: &'a mut [u64],
    /// Wire masks (groups * the form's mask words).
    pub masks: &'a mut [u64],
    /// Mask products (groups * the form's product words).
    pub prods: &'a mut [u64],
}

impl<R: Ring> Circuit<'_, R> {
    /// Checks the buffers and fills what comes from the streams: r and the wire masks (both
    /// parties), and P0's msb, one-hot and product words.
    fn expand(
        &mut self,
        s: &Streams<'_>,
        step: u32,
        sh: &RadixShape,
        st: party::Strides,
    ) -> Result<(), Error> {
        let g = sh.groups();
        check_len("radix msb words", g, self.msb.len())?;
        check_len("radix one-hot words", g * sh.onehot_words(), self.onehot.len())?;
        check_len("radix mask words", g * st.masks, self.masks.len())?;
        check_len("radix product words", g * st.prods, self.prods.len())?;
        s.prg(step, Purpose::R).fill_ring(self.r);
        s.prg(step, Purpose::WireMask).fill_ring(self.masks);
        if s.party.is_p0() {
            s.prg(step, Purpose::RBits).fill_ring(self.msb);
            s.prg(step, Purpose::OneHot).fill_ring(self.onehot);
            s.prg(step, Purpose::MaskProd).fill_ring(self.prods);
        }
        Ok(())
    }

    /// P1: group `gi`'s corrections of the circuit: its msb, one-hot and product words.
    fn read_group(
        &mut self,
        corr: &mut Corrections<'_>,
        gi: usize,
        ow: usize,
        pw: usize,
    ) -> Result<(), Error> {
        corr.read_words(&mut self.msb[gi..=gi])?;
        corr.read_words(&mut self.onehot[gi * ow..(gi + 1) * ow])?;
        corr.read_words(&mut self.prods[gi * pw..(gi + 1) * pw])
    }
}

/// A party's radix-comparison correlation in caller-provided buffers, sized by
/// [`RadixShape`] (`mul_a`, `mul_c` empty without a multiplicand). The circuit runs on ring
/// `R`; the result (and the multiplicand) live in ring `O`.
#[derive(Debug)]
pub struct RadixMaterial<'a, R, O> {
    /// The circuit's part.
    pub c: Circuit<'a, R>,
    /// daBit, boolean (one word per group).
    pub dabit_b: &'a mut [u64],
    /// daBit, arithmetic (len).
    pub dabit_a: &'a mut [O],
    /// Mask a of the multiplicand (len, or empty).
    pub mul_a: &'a mut [O],
    /// D a (len, or empty).
    pub mul_c: &'a mut [O],
}

/// Expands a party's radix-comparison correlation for step `step`.
pub fn expand_radix<R: Ring, O: Ring>(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    m: &mut RadixMaterial<'_, R, O>,
) -> Result<(), Error> {
    let sh = RadixShape::new(R::BITS, m.c.r.len());
    let (g, n) = (sh.groups(), sh.len);
    m.c.expand(s, step, &sh, party::Strides::of(&sh))?;
    check_len("daBit words", g, m.dabit_b.len())?;
    check_len("daBit elements", n, m.dabit_a.len())?;
    let mul = !m.mul_a.is_empty();
    if mul {
        check_len("multiplicand mask", n, m.mul_a.len())?;
    }
    check_len("multiplicand product", m.mul_a.len(), m.mul_c.len())?;
    s.prg(step, Purpose::DaBitB).fill_ring(m.dabit_b);
    s.prg(step, Purpose::A).fill_ring(m.mul_a);
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::DaBitA).fill_ring(m.dabit_a);
            s.prg(step, Purpose::C).fill_ring(m.mul_c);
        }
        Party::P1 => {
            for gi in 0..g {
                let lanes = 64 * gi..n.min(64 * (gi + 1));
                m.c.read_group(corr, gi, sh.onehot_words(), sh.prod_words())?;
                corr.read_ring(&mut m.dabit_a[lanes.clone()])?;
                if mul {
                    corr.read_ring(&mut m.mul_c[lanes])?;
                }
            }
        }
    }
    Ok(())
}

/// The dealer's walk over the groups of a radix comparison: per group, the mask r (both
/// parties' streams), msb(r) and the one-hot words (written), the wire masks and the level
/// products (written), in the order of [`expand_radix`]; shared by [`deal_radix`] and
/// [`top::deal_radix_top`], which append their own words after the levels'.
pub(crate) struct GroupDealer<'d, R> {
    sh: RadixShape,
    step: u32,
    r: [Prg; 2],
    msb0: Prg,
    oh0: Prg,
    masks: [Prg; 2],
    pr0: Prg,
    _ring: core::marker::PhantomData<&'d R>,
}

impl<'d, R: Ring> GroupDealer<'d, R> {
    /// Streams positioned at group `g0`, with `strides` words of masks and products per group.
    pub(crate) fn new(
        d: &DealerStreams<'d>,
        step: u32,
        sh: RadixShape,
        g0: usize,
        strides: party::Strides,
    ) -> Self {
        let words = |s: &Streams<'_>, q, i| at::<u64>(s.prg(step, q), i);
        GroupDealer {
            sh,
            step,
            r: [at::<R>(d.p0.prg(step, Purpose::R), 64 * g0), at::<R>(d.p1.prg(step, Purpose::R), 64 * g0)],
            msb0: words(&d.p0, Purpose::RBits, g0),
            oh0: words(&d.p0, Purpose::OneHot, g0 * sh.onehot_words()),
            masks: [
                words(&d.p0, Purpose::WireMask, g0 * strides.masks),
                words(&d.p1, Purpose::WireMask, g0 * strides.masks),
            ],
            pr0: words(&d.p0, Purpose::MaskProd, g0 * strides.prods),
            _ring: core::marker::PhantomData,
        }
    }

    /// Group of `lanes` lanes: r into `r`, P1's msb and one-hot words written; returns msb(r).
    pub(crate) fn leaves<W: Write>(
        &mut self,
        lanes: usize,
        r: &mut [R; 64],
        w: &mut W,
    ) -> Result<u64, Error> {
        let (mut x0, mut x1) = ([R::ZERO; 64], [R::ZERO; 64]);
        self.r[0].fill_ring(&mut x0[..lanes]);
        self.r[1].fill_ring(&mut x1[..lanes]);
        for i in 0..lanes {
            r[i] = x0[i].add(x1[i]);
        }
        let mut msb = 0u64;
        for (lane, v) in r[..lanes].iter().enumerate() {
            msb ^= u64::from(v.msb()) << lane;
        }
        put_ring(w, &[msb ^ self.msb0.next_elem::<u64>()])?;
        for c in 0..self.sh.chunks() {
            let cb = self.sh.chunk_bits(c);
            let mut oh = [0u64; 1 << shape::CHUNK_BITS];
            let oh = &mut oh[..1 << cb];
            self.oh0.fill_ring(oh);
            for (lane, v) in r[..lanes].iter().enumerate() {
                oh[self.sh.chunk_of(v.to_u64(), c)] ^= 1 << lane;
            }
            put_ring(w, oh)?;
        }
        Ok(msb)
    }

    /// The next `out.len()` wire masks (both parties' shares combined).
    pub(crate) fn masks(&mut self, out: &mut [u64]) {
        let mut m1 = [0u64; 2 * shape::FAN];
        for chunk in out.chunks_mut(m1.len()) {
            self.masks[0].fill_ring(chunk);
            self.masks[1].fill_ring(&mut m1[..chunk.len()]);
            for (a, b) in chunk.iter_mut().zip(&m1) {
                *a ^= b;
            }
        }
    }

    /// P1's product words of the nodes of `level` (their masks drawn in order); node i's masks
    /// are left in `masks[i]`.
    pub(crate) fn level<W: Write>(
        &mut self,
        level: u32,
        masks: &mut [[u64; 2 * shape::FAN]; shape::MAX_NODES],
        w: &mut W,
    ) -> Result<(), Error> {
        if level >= 2 {
            return Err(Error::BadStep {
                step: self.step,
                reason: "radix comparison deeper than two levels",
            });
        }
        for ((nd, fam), mk) in self.sh.level(level).iter().zip(masks.iter_mut()) {
            *mk = [0u64; 2 * shape::FAN];
            self.masks(&mut mk[..2 * nd.k]);
            let mut out = [0u64; shape::MAX_FAMILY];
            let out = &mut out[..fam.sets().len()];
            self.pr0.fill_ring(out);
            for (o, &set) in out.iter_mut().zip(fam.sets()) {
                *o ^= mask_product(mk, set);
            }
            put_ring(w, out)?;
        }
        Ok(())
    }

    /// P1's share of `v` (a word of products), against P0's next product word.
    pub(crate) fn product_word<W: Write>(&mut self, v: u64, w: &mut W) -> Result<(), Error> {
        put_ring(w, &[v ^ self.pr0.next_elem::<u64>()])
    }
}

/// prod_{b in set} m_b over a node's wire masks.
pub(crate) fn mask_product(mk: &[u64], set: u16) -> u64 {
    let mut p = u64::MAX;
    for (b, m) in mk.iter().enumerate() {
        if set >> b & 1 == 1 {
            p &= m;
        }
    }
    p
}

/// Dealer: P1's corrections for groups `groups` of a radix comparison of `len` values
/// (layout in the module docs); `mul`: with a multiplicand.
pub fn deal_radix<R: Ring, O: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    len: usize,
    mul: bool,
    groups: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let sh = RadixShape::new(R::BITS, len);
    let g0 = groups.start;
    let mut gd = GroupDealer::<R>::new(d, step, sh, g0, party::Strides::of(&sh));
    let elems = |s: &Streams<'_>, q| at::<O>(s.prg(step, q), 64 * g0);
    let (mut d0, mut d1) =
        (at::<u64>(d.p0.prg(step, Purpose::DaBitB), g0), at::<u64>(d.p1.prg(step, Purpose::DaBitB), g0));
    let mut da0 = elems(&d.p0, Purpose::DaBitA);
    let (mut a0, mut a1, mut c0) =
        (elems(&d.p0, Purpose::A), elems(&d.p1, Purpose::A), elems(&d.p0, Purpose::C));
    let mut r = [R::ZERO; 64];
    let mut xo = [O::ZERO; 64];
    let mut masks = [[0u64; 2 * shape::FAN]; shape::MAX_NODES];
    for g in groups {
        let lanes = (len - 64 * g).min(64);
        gd.leaves(lanes, &mut r, w)?;
        for level in 0..sh.levels() {
            gd.level(level, &mut masks, w)?;
        }
        // daBit and, with a multiplicand, D a.
        let dbit = d0.next_elem::<u64>() ^ d1.next_elem::<u64>();
        da0.fill_ring(&mut xo[..lanes]);
        for (lane, v) in xo[..lanes].iter_mut().enumerate() {
            *v = O::from_bit(dbit >> lane).sub(*v);
        }
        put_ring(w, &xo[..lanes])?;
        if mul {
            for (lane, v) in xo[..lanes].iter_mut().enumerate() {
                let a = a0.next_elem::<O>().add(a1.next_elem::<O>());
                *v = O::from_bit(dbit >> lane).mul(a).sub(c0.next_elem::<O>());
            }
            put_ring(w, &xo[..lanes])?;
        }
    }
    Ok(())
}
