//! Sign bit (x < 0), returned as an arithmetic share in the same ring.
//! Rounds: 1 (open) + ceil(log2(l - 1)) (AND levels) + 1 (B2A): 7 for l = 32, 8 for l = 64.
//!
//! sign(x) = msb(y) ^ msb(r) ^ [y mod 2^(l-1) < r mod 2^(l-1)] with y = x + r opened. The
//! comparison of public y with the dealer-shared bits of r is a log-depth prefix circuit over
//! (generate, propagate) pairs, MSB-first: leaf j has G_j = !y_j & r_j and
//! P_j = !(y_j ^ r_j) (both local, y is public); combining (hi, lo) gives
//! (G_hi ^ (P_hi & G_lo), P_hi & P_lo). The lowest node's P is never needed, which saves one
//! AND per level. Everything is bit-sliced: one `u64` word carries 64 comparisons (a group).
//! The boolean result becomes arithmetic with a daBit (d boolean and arithmetic): open
//! e = s ^ d, then s = [P0] e + (1 - 2e) D.
//!
//! Correlation per group g (lanes = values in the group):
//! * r: ring elements (stream R, both parties, element index), r = r0 + r1;
//! * bits of r: l words (stream RBits for P0; P1 correction);
//! * AND triples: T = [`and_count`] words each of a, b (streams AndA, AndB, both parties) and
//!   c (AndC for P0; P1 correction);
//! * daBit: one word d (DaBitB, both parties, d = d0 ^ d1) and lanes ring elements D
//!   (DaBitA for P0; P1 correction).
//!
//! P1's corrections per group: [l bit words][T AND c-words][lanes D1 elements].

use embedded_io::Write;

use crate::bits::{and_finish, and_open, groups, lane_mask};
use core::ops::Range;

use crate::corr::{CHUNK, Corrections, DealerStreams, Streams, at, put_ring};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::{Error, Party, Ring};

/// Prefix-circuit levels for `w` leaves: ceil(log2 w).
pub const fn levels(w: u32) -> u32 {
    let mut l = 0;
    let mut cnt = w;
    while cnt > 1 {
        cnt = cnt.div_ceil(2);
        l += 1;
    }
    l
}

/// Node count before `level`.
const fn nodes_before(w: u32, level: u32) -> u32 {
    let mut cnt = w;
    let mut i = 0;
    while i < level {
        cnt = cnt.div_ceil(2);
        i += 1;
    }
    cnt
}

/// AND gates per group at `level` (2 per pair, minus the lowest pair's unused P).
pub const fn level_ands(w: u32, level: u32) -> u32 {
    let pairs = nodes_before(w, level) / 2;
    if pairs == 0 { 0 } else { 2 * pairs - 1 }
}

/// AND gates per group before `level`.
pub const fn ands_before(w: u32, level: u32) -> u32 {
    let mut s = 0;
    let mut i = 0;
    while i < level {
        s += level_ands(w, i);
        i += 1;
    }
    s
}

/// AND triples per group for a ring of `bits` bits: 55 for l = 32, 118 for l = 64.
pub const fn and_count(bits: u32) -> u32 {
    ands_before(bits - 1, levels(bits - 1))
}

/// Rounds of the sign protocol.
pub const fn rounds(ring: RingId) -> u32 {
    2 + levels(ring.bits() - 1)
}

fn group_count(len: u32) -> u64 {
    groups(len as usize) as u64
}

/// P1 correction bytes: per group l bit words and the AND c-words; per element D1.
pub fn correction_bytes(ring: RingId, len: u32) -> u64 {
    correction_bytes_into(ring, ring, len)
}

/// [`correction_bytes`] for a circuit on `ring` with daBits in `out`.
pub fn correction_bytes_into(ring: RingId, out: RingId, len: u32) -> u64 {
    let words = u64::from(ring.bits() + and_count(ring.bits()));
    group_count(len) * words * 8 + u64::from(len) * out.bytes() as u64
}

/// Online bytes per party: y, two words per AND per group, one B2A word per group (the same
/// whatever ring the result is in).
pub fn online_bytes(ring: RingId, len: u32) -> u64 {
    u64::from(len) * ring.bytes() as u64 + group_count(len) * (2 * u64::from(and_count(ring.bits())) + 1) * 8
}

/// Sizes of one sign step's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignShape {
    /// Elements compared.
    pub len: usize,
    /// Ring width l.
    pub bits: u32,
}

impl SignShape {
    /// Shape for `len` elements of ring `R`.
    pub fn of<R: Ring>(len: usize) -> Self {
        SignShape { len, bits: R::BITS }
    }
    /// Groups of 64 lanes.
    pub fn groups(&self) -> usize {
        groups(self.len)
    }
    /// Leaves of the prefix circuit, l - 1.
    pub fn leaves(&self) -> usize {
        (self.bits - 1) as usize
    }
    /// Circuit levels (AND rounds).
    pub fn levels(&self) -> u32 {
        levels(self.bits - 1)
    }
    /// AND triples per group.
    pub fn ands(&self) -> usize {
        and_count(self.bits) as usize
    }
    /// Words of `rbits`: groups * l.
    pub fn rbits_words(&self) -> usize {
        self.groups() * self.bits as usize
    }
    /// Words of each AND-triple buffer: groups * T.
    pub fn and_words(&self) -> usize {
        self.groups() * self.ands()
    }
    /// Words of the circuit state: groups * 2 * (l - 1).
    pub fn state_words(&self) -> usize {
        self.groups() * 2 * self.leaves()
    }
    /// Words of this party's message at `level`: groups * 2 * ANDs(level).
    pub fn level_msg_words(&self, level: u32) -> usize {
        self.groups() * 2 * level_ands(self.bits - 1, level) as usize
    }
}

/// A party's sign correlation, in caller-provided buffers sized by [`SignShape`]. The circuit
/// runs on ring `R`; the daBits' arithmetic part (and so the result) lives in ring `O` (`O = R`
/// for [`crate::plan::Op::SignA`], `R = u32, O = u64` for [`crate::plan::Op::SignLowA`]).
#[derive(Debug)]
pub struct SignMaterial<'a, R, O = R> {
    /// r share (len).
    pub r: &'a mut [R],
    /// Boolean shares of the bits of r (groups * l; word g*l + j = bit j of group g).
    pub rbits: &'a mut [u64],
    /// AND triples a, b, c (groups * T each; word g*T + t).
    pub and_a: &'a mut [u64],
    /// See `and_a`.
    pub and_b: &'a mut [u64],
    /// See `and_a`.
    pub and_c: &'a mut [u64],
    /// daBit, boolean (one word per group).
    pub dabit_b: &'a mut [u64],
    /// daBit, arithmetic (len).
    pub dabit_a: &'a mut [O],
}

/// Expands a party's sign correlation.
pub fn expand_sign<R: Ring, O: Ring>(
    s: &Streams<'_>,
    step: u32,
    corr: &mut Corrections<'_>,
    m: &mut SignMaterial<'_, R, O>,
) -> Result<(), Error> {
    let sh = SignShape::of::<R>(m.r.len());
    check_len("sign rbits", sh.rbits_words(), m.rbits.len())?;
    for (what, l) in [("and a", m.and_a.len()), ("and b", m.and_b.len()), ("and c", m.and_c.len())] {
        check_len(what, sh.and_words(), l)?;
    }
    check_len("daBit words", sh.groups(), m.dabit_b.len())?;
    check_len("daBit elements", sh.len, m.dabit_a.len())?;
    s.prg(step, Purpose::R).fill_ring(m.r);
    s.prg(step, Purpose::AndA).fill_ring(m.and_a);
    s.prg(step, Purpose::AndB).fill_ring(m.and_b);
    s.prg(step, Purpose::DaBitB).fill_ring(m.dabit_b);
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::RBits).fill_ring(m.rbits);
            s.prg(step, Purpose::AndC).fill_ring(m.and_c);
            s.prg(step, Purpose::DaBitA).fill_ring(m.dabit_a);
        }
        Party::P1 => {
            let (l, t) = (sh.bits as usize, sh.ands());
            for g in 0..sh.groups() {
                corr.read_words(&mut m.rbits[g * l..(g + 1) * l])?;
                corr.read_words(&mut m.and_c[g * t..(g + 1) * t])?;
                let hi = sh.len.min(64 * (g + 1));
                corr.read_ring(&mut m.dabit_a[64 * g..hi])?;
            }
        }
    }
    Ok(())
}

fn put_words<W: Write>(w: &mut W, xs: &[u64]) -> Result<(), Error> {
    put_ring(w, xs)
}

/// Dealer: P1's sign corrections for groups `groups` of a step of `len` elements (layout in
/// the module docs).
pub fn deal_sign<R: Ring, O: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    len: usize,
    groups: Range<usize>,
    w: &mut W,
) -> Result<(), Error> {
    let sh = SignShape::of::<R>(len);
    let (g0, l, t) = (groups.start, sh.bits as usize, sh.ands());
    let p = |s: &Streams<'_>, q, i| at::<u64>(s.prg(step, q), i);
    let (mut r0, mut r1) =
        (at::<R>(d.p0.prg(step, Purpose::R), 64 * g0), at::<R>(d.p1.prg(step, Purpose::R), 64 * g0));
    let mut bits0 = p(&d.p0, Purpose::RBits, g0 * l);
    let (mut a0, mut b0, mut c0) =
        (p(&d.p0, Purpose::AndA, g0 * t), p(&d.p0, Purpose::AndB, g0 * t), p(&d.p0, Purpose::AndC, g0 * t));
    let (mut a1, mut b1) = (p(&d.p1, Purpose::AndA, g0 * t), p(&d.p1, Purpose::AndB, g0 * t));
    let (mut d0, mut d1) = (p(&d.p0, Purpose::DaBitB, g0), p(&d.p1, Purpose::DaBitB, g0));
    let mut da0 = at::<O>(d.p0.prg(step, Purpose::DaBitA), 64 * g0);
    let (mut x0, mut x1) = ([R::ZERO; 64], [R::ZERO; 64]);
    let mut xo = [O::ZERO; 64];
    let mut words = [0u64; 64];
    for g in groups {
        let lanes = (len - 64 * g).min(64);
        r0.fill_ring(&mut x0[..lanes]);
        r1.fill_ring(&mut x1[..lanes]);
        // Bits of r, transposed into words.
        bits0.fill_ring(&mut words[..l]);
        for lane in 0..lanes {
            let r = x0[lane].add(x1[lane]);
            for (j, wd) in (0u32..).zip(words[..l].iter_mut()) {
                *wd ^= r.bit(j) << lane;
            }
        }
        put_words(w, &words[..l])?;
        // AND triples.
        let mut left = sh.ands();
        while left > 0 {
            let n = left.min(CHUNK);
            let mut t = [[0u64; CHUNK]; 5];
            let [ta0, tb0, tc0, ta1, tb1] = &mut t;
            a0.fill_ring(&mut ta0[..n]);
            b0.fill_ring(&mut tb0[..n]);
            c0.fill_ring(&mut tc0[..n]);
            a1.fill_ring(&mut ta1[..n]);
            b1.fill_ring(&mut tb1[..n]);
            for i in 0..n {
                tc0[i] ^= (ta0[i] ^ ta1[i]) & (tb0[i] ^ tb1[i]);
            }
            put_words(w, &tc0[..n])?;
            left -= n;
        }
        // daBit.
        let dbit = d0.next_elem::<u64>() ^ d1.next_elem::<u64>();
        da0.fill_ring(&mut xo[..lanes]);
        for (lane, v) in xo[..lanes].iter_mut().enumerate() {
            *v = O::from_bit(dbit >> lane).sub(*v);
        }
        put_ring(w, &xo[..lanes])?;
    }
    Ok(())
}

/// Online, round 1: this party's message y_i = x_i + r_i.
pub fn sign_open<R: Ring>(x: &[R], r: &[R], y: &mut [R]) -> Result<(), Error> {
    crate::ring::add_into(x, r, y)
}

/// Local: the circuit leaves (G, P per bit, per group) from the opened y.
/// State layout: group g at [g*2w, (g+1)*2w): G_0..G_{w-1}, then P_0..P_{w-1}.
pub fn sign_leaves<R: Ring>(party: Party, y: &[R], rbits: &[u64], state: &mut [u64]) -> Result<(), Error> {
    let sh = SignShape::of::<R>(y.len());
    check_len("sign rbits", sh.rbits_words(), rbits.len())?;
    check_len("sign state", sh.state_words(), state.len())?;
    let (w, l) = (sh.leaves(), sh.bits as usize);
    for g in 0..sh.groups() {
        let lanes = &y[64 * g..sh.len.min(64 * (g + 1))];
        let st = &mut state[g * 2 * w..(g + 1) * 2 * w];
        for (jb, j) in (0u32..).zip(0..w) {
            let mut yw = 0u64;
            for (lane, v) in lanes.iter().enumerate() {
                yw |= v.bit(jb) << lane;
            }
            let rb = rbits[g * l + j];
            st[j] = !yw & rb;
            st[w + j] = if party.is_p0() { rb ^ !yw } else { rb };
        }
    }
    Ok(())
}

fn level_pairs(sh: &SignShape, level: u32) -> (usize, usize) {
    let cnt = nodes_before(sh.bits - 1, level) as usize;
    (cnt, cnt / 2)
}

/// Round 2 + level: this party's AND messages for circuit `level`.
pub fn sign_level_open(
    sh: &SignShape,
    level: u32,
    state: &[u64],
    and_a: &[u64],
    and_b: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    check_len("sign state", sh.state_words(), state.len())?;
    check_len("sign level message", sh.level_msg_words(level), msg.len())?;
    let (w, t) = (sh.leaves(), sh.ands());
    let (_, pairs) = level_pairs(sh, level);
    let base = ands_before(sh.bits - 1, level) as usize;
    let per = level_ands(sh.bits - 1, level) as usize;
    for g in 0..sh.groups() {
        let st = &state[g * 2 * w..(g + 1) * 2 * w];
        let mut idx = 0;
        for p in 0..pairs {
            let (lo, hi) = (2 * p, 2 * p + 1);
            let mut gate = |x: u64, y: u64| {
                let tr = g * t + base + idx;
                let m = and_open(x, y, and_a[tr], and_b[tr]);
                msg[2 * (g * per + idx)] = m[0];
                msg[2 * (g * per + idx) + 1] = m[1];
                idx += 1;
            };
            gate(st[w + hi], st[lo]);
            if p > 0 {
                gate(st[w + hi], st[w + lo]);
            }
        }
    }
    Ok(())
}

/// Round 2 + level: applies the opened AND messages and collapses the level in place.
pub fn sign_level_finish(
    party: Party,
    sh: &SignShape,
    level: u32,
    state: &mut [u64],
    opened: &[u64],
    m: (&[u64], &[u64], &[u64]),
) -> Result<(), Error> {
    check_len("sign state", sh.state_words(), state.len())?;
    check_len("sign level opened", sh.level_msg_words(level), opened.len())?;
    let (and_a, and_b, and_c) = m;
    let (w, t) = (sh.leaves(), sh.ands());
    let (cnt, pairs) = level_pairs(sh, level);
    let base = ands_before(sh.bits - 1, level) as usize;
    let per = level_ands(sh.bits - 1, level) as usize;
    for g in 0..sh.groups() {
        let st = &mut state[g * 2 * w..(g + 1) * 2 * w];
        let mut idx = 0;
        let gate = |idx: usize| {
            let tr = g * t + base + idx;
            let o = 2 * (g * per + idx);
            and_finish(party, opened[o], opened[o + 1], and_a[tr], and_b[tr], and_c[tr])
        };
        for p in 0..pairs {
            let hi = 2 * p + 1;
            let gz = gate(idx);
            idx += 1;
            let pz = if p > 0 {
                idx += 1;
                gate(idx - 1)
            } else {
                0
            };
            st[p] = st[hi] ^ gz;
            st[w + p] = pz;
        }
        if cnt % 2 == 1 {
            st[pairs] = st[cnt - 1];
            st[w + pairs] = st[w + cnt - 1];
        }
    }
    Ok(())
}

/// Last round: the B2A message e = s ^ d per group, s = [P0] msb(y) ^ msb(r) ^ lt.
pub fn sign_b2a_open<R: Ring>(
    party: Party,
    y: &[R],
    rbits: &[u64],
    state: &[u64],
    dabit_b: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    let sh = SignShape::of::<R>(y.len());
    check_len("sign state", sh.state_words(), state.len())?;
    check_len("sign rbits", sh.rbits_words(), rbits.len())?;
    check_len("daBit words", sh.groups(), dabit_b.len())?;
    check_len("b2a message", sh.groups(), msg.len())?;
    let (w, l) = (sh.leaves(), sh.bits as usize);
    for g in 0..sh.groups() {
        let mut s = state[g * 2 * w] ^ rbits[g * l + l - 1];
        if party.is_p0() {
            for (lane, v) in y[64 * g..sh.len.min(64 * (g + 1))].iter().enumerate() {
                s ^= u64::from(v.msb()) << lane;
            }
        }
        msg[g] = (s ^ dabit_b[g]) & lane_mask(sh.len, g);
    }
    Ok(())
}

/// Last round: the arithmetic share of the sign, z_i = [P0] e_i + (1 - 2 e_i) D_i.
pub fn sign_b2a_finish<O: Ring>(party: Party, e: &[u64], dabit_a: &[O], z: &mut [O]) -> Result<(), Error> {
    check_len("b2a opened", groups(z.len()), e.len())?;
    check_len("daBit elements", z.len(), dabit_a.len())?;
    for (i, (o, dv)) in z.iter_mut().zip(dabit_a).enumerate() {
        let bit = (e[i / 64] >> (i % 64)) & 1;
        let mut v = if bit == 1 { dv.neg() } else { *dv };
        if party.is_p0() {
            v = v.add(O::from_bit(bit));
        }
        *o = v;
    }
    Ok(())
}
