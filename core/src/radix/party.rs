//! The party halves of the radix comparison: leaves from the opened y, one round per level,
//! the B2A round with or without a multiplicand.

use super::shape::{CHUNK_BITS, FAN, Family, RadixShape};
use crate::bits::lane_mask;
use crate::ring::check_len;
use crate::{Error, Party, Ring};

/// Local: each chunk's (G, P) = ([v < u], [v == u]) from the opened y and the one-hot shares.
/// State layout per group: G of chunks 0..C, then P of chunks 0..C (C = chunks); the levels
/// collapse it in place.
pub fn radix_leaves<R: Ring>(y: &[R], onehot: &[u64], state: &mut [u64]) -> Result<(), Error> {
    let sh = RadixShape::new(R::BITS, y.len());
    let (c_n, ow) = (sh.chunks(), sh.onehot_words());
    check_len("radix one-hot words", sh.groups() * ow, onehot.len())?;
    check_len("radix state", sh.groups() * sh.state_words(), state.len())?;
    for g in 0..sh.groups() {
        let lanes = &y[64 * g..sh.len.min(64 * (g + 1))];
        let st = &mut state[g * 2 * c_n..(g + 1) * 2 * c_n];
        for c in 0..c_n {
            let cb = sh.chunk_bits(c);
            // eq[t]: the lanes whose chunk value is t.
            let mut eq = [0u64; 1 << CHUNK_BITS];
            for (lane, v) in lanes.iter().enumerate() {
                eq[sh.chunk_of(v.to_u64(), c)] |= 1 << lane;
            }
            let e = &onehot[g * ow + sh.onehot_offset(c)..][..1 << cb];
            let (mut gt, mut p, mut below) = (0u64, 0u64, 0u64);
            for (t, et) in e.iter().enumerate() {
                // below: the lanes with v < t.
                gt ^= et & below;
                p ^= et & eq[t];
                below |= eq[t];
            }
            st[c] = gt;
            st[c_n + c] = p;
        }
    }
    Ok(())
}

/// Value of wire `b` of node children starting at `first` (wire 2j: G_j, 2j + 1: P_j).
fn wire(st: &[u64], c_n: usize, first: usize, b: usize) -> u64 {
    let child = first + b / 2;
    if b.is_multiple_of(2) { st[child] } else { st[c_n + child] }
}

/// Round of `level`: this party's masked wires, per group and node in wire order.
pub fn radix_level_open(
    sh: &RadixShape,
    level: u32,
    state: &[u64],
    masks: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    level_open(sh, Strides::of(sh), level, state, masks, msg)
}

/// Per-group word strides of the mask and product buffers: the radix comparison's own, or
/// those of a protocol that runs its levels and appends words of its own ([`super::top`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strides {
    pub masks: usize,
    pub prods: usize,
}

impl Strides {
    pub(crate) fn of(sh: &RadixShape) -> Self {
        Strides { masks: sh.mask_words(), prods: sh.prod_words() }
    }
}

/// [`radix_level_open`] with explicit strides.
pub(super) fn level_open(
    sh: &RadixShape,
    strides: Strides,
    level: u32,
    state: &[u64],
    masks: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    let (c_n, mw, per) = (sh.chunks(), strides.masks, sh.level_msg_words(level));
    check_len("radix state", sh.groups() * sh.state_words(), state.len())?;
    check_len("radix mask words", sh.groups() * mw, masks.len())?;
    check_len("radix level message", sh.groups() * per, msg.len())?;
    let (moff, _) = sh.level_offsets(level);
    let lv = sh.level(level);
    for g in 0..sh.groups() {
        let st = &state[g * 2 * c_n..(g + 1) * 2 * c_n];
        let (mut mo, mut o) = (g * mw + moff, g * per);
        for (nd, fam) in lv.iter() {
            for b in (0..2 * nd.k).filter(|b| fam.used >> b & 1 == 1) {
                msg[o] = wire(st, c_n, nd.first, b) ^ masks[mo + b];
                o += 1;
            }
            mo += 2 * nd.k;
        }
    }
    Ok(())
}

/// Share of prod_{w in set} w from the opened wires `hat` (this party's mask shares `mk`,
/// product shares `pr` in `fam`'s order): xor over S in set of prod_{set \ S} hat * m_S.
fn product(party: Party, set: u16, hat: &[u64; 2 * FAN], mk: &[u64], pr: &[u64], fam: &Family) -> u64 {
    expand_set(set, hat, |s| match s.count_ones() {
        0 => {
            if party.is_p0() {
                u64::MAX
            } else {
                0
            }
        }
        1 => mk[s.trailing_zeros() as usize],
        _ => pr[fam.pos(s)],
    })
}

/// xor over the subsets S of `set` of prod_{set \ S} hat * share(S): a party's share of
/// prod_{w in set} (hat_w ^ m_w) * c, where share(S) is its share of c prod_{w in S} m_w.
pub(super) fn expand_set(set: u16, hat: &[u64; 2 * FAN], share: impl Fn(u16) -> u64) -> u64 {
    let mut acc = 0u64;
    let mut s = set;
    loop {
        let mut coef = u64::MAX;
        let rest = set & !s;
        for (b, h) in hat.iter().enumerate() {
            if rest >> b & 1 == 1 {
                coef &= h;
            }
        }
        acc ^= coef & share(s);
        if s == 0 {
            return acc;
        }
        s = (s - 1) & set;
    }
}

/// Round of `level`: applies the opened wires and collapses the level in place.
pub fn radix_level_finish(
    party: Party,
    sh: &RadixShape,
    level: u32,
    state: &mut [u64],
    opened: &[u64],
    masks: &[u64],
    prods: &[u64],
) -> Result<(), Error> {
    level_finish(party, sh, Strides::of(sh), level, state, opened, masks, prods)
}

/// [`radix_level_finish`] with explicit strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn level_finish(
    party: Party,
    sh: &RadixShape,
    strides: Strides,
    level: u32,
    state: &mut [u64],
    opened: &[u64],
    masks: &[u64],
    prods: &[u64],
) -> Result<(), Error> {
    let (c_n, per) = (sh.chunks(), sh.level_msg_words(level));
    let (mw, pw) = (strides.masks, strides.prods);
    check_len("radix state", sh.groups() * sh.state_words(), state.len())?;
    check_len("radix level opened", sh.groups() * per, opened.len())?;
    check_len("radix mask words", sh.groups() * mw, masks.len())?;
    check_len("radix product words", sh.groups() * pw, prods.len())?;
    let (moff, poff) = sh.level_offsets(level);
    let lv = sh.level(level);
    for g in 0..sh.groups() {
        let st = &mut state[g * 2 * c_n..(g + 1) * 2 * c_n];
        let (mut mo, mut po, mut o) = (g * mw + moff, g * pw + poff, g * per);
        for (i, (nd, fam)) in lv.iter().enumerate() {
            let mut hat = [0u64; 2 * FAN];
            for b in (0..2 * nd.k).filter(|b| fam.used >> b & 1 == 1) {
                hat[b] = opened[o];
                o += 1;
            }
            let (mk, pr) = (&masks[mo..mo + 2 * nd.k], &prods[po..po + fam.sets().len()]);
            let top = nd.first + nd.k - 1;
            let mut gz = st[top];
            for t in fam.g_terms() {
                gz ^= product(party, t, &hat, mk, pr, fam);
            }
            let pz = match (nd.need_p, nd.k) {
                (false, _) => 0,
                (true, 1) => st[c_n + nd.first],
                (true, _) => product(party, fam.p_term(), &hat, mk, pr, fam),
            };
            st[i] = gz;
            st[c_n + i] = pz;
            mo += 2 * nd.k;
            po += fam.sets().len();
        }
    }
    Ok(())
}

/// Last round: the B2A message e = s ^ d per group, s = [P0] msb(y) ^ msb(r) ^ lt.
pub fn radix_b2a_open<R: Ring>(
    party: Party,
    y: &[R],
    msb: &[u64],
    state: &[u64],
    dabit_b: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    let sh = RadixShape::new(R::BITS, y.len());
    let g_n = sh.groups();
    check_len("radix state", g_n * sh.state_words(), state.len())?;
    for (what, l) in
        [("radix msb words", msb.len()), ("daBit words", dabit_b.len()), ("b2a message", msg.len())]
    {
        check_len(what, g_n, l)?;
    }
    for g in 0..g_n {
        let mut s = state[g * sh.state_words()] ^ msb[g];
        if party.is_p0() {
            for (lane, v) in y[64 * g..sh.len.min(64 * (g + 1))].iter().enumerate() {
                s ^= u64::from(v.msb()) << lane;
            }
        }
        msg[g] = (s ^ dabit_b[g]) & lane_mask(sh.len, g);
    }
    Ok(())
}

/// Last round with a multiplicand: this party's share of s v,
/// e v_i + (1 - 2e) (f D_i + (D a)_i), from the opened e and f = v - a.
pub fn radix_mul_finish<O: Ring>(
    e: &[u64],
    f: &[O],
    v: &[O],
    dabit_a: &[O],
    mul_c: &[O],
    z: &mut [O],
) -> Result<(), Error> {
    let n = z.len();
    check_len("b2a opened", n.div_ceil(64), e.len())?;
    for (what, l) in [("f", f.len()), ("v", v.len()), ("daBit elements", dabit_a.len()), ("D a", mul_c.len())]
    {
        check_len(what, n, l)?;
    }
    for i in 0..n {
        let t = f[i].mul(dabit_a[i]).add(mul_c[i]);
        z[i] = if (e[i / 64] >> (i % 64)) & 1 == 1 { v[i].sub(t) } else { t };
    }
    Ok(())
}
