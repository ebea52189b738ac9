//! The party halves of the 3-round comparison's last two rounds ([`super::top`]): level 0
//! with the form's strides, the top's masked wires, and the arithmetic finish.

use super::party::{expand_set, level_finish, level_open};
use super::shape::FAN;
use super::top::{MAX_MONOMIALS, MAX_WIRES, TopShape, t_rank};
use crate::ring::check_len;
use crate::{Error, Party, Ring};

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

/// Round 3: this party's masked wires per group (the top's wires), from the state after
/// level 0, level 0's opened wires `opened0` (each node's P wires give t P_j) and t's shares
/// `msb`.
pub fn radix_top_open(
    sh: &TopShape,
    state: &[u64],
    opened0: &[u64],
    msb: &[u64],
    masks: &[u64],
    prods: &[u64],
    msg: &mut [u64],
) -> Result<(), Error> {
    let (g_n, c_n, k, nw) = (sh.groups(), sh.radix.chunks(), sh.top.k, sh.top.wires());
    let (mw, pw, per) = (sh.mask_words(), sh.prod_words(), sh.level_msg_words());
    check_len("radix state", g_n * sh.radix.state_words(), state.len())?;
    check_len("radix level opened", g_n * per, opened0.len())?;
    check_len("radix msb words", g_n, msb.len())?;
    check_len("radix mask words", g_n * mw, masks.len())?;
    check_len("radix product words", g_n * pw, prods.len())?;
    check_len("radix top message", g_n * nw, msg.len())?;
    let lv = sh.radix.level(0);
    for g in 0..g_n {
        let st = &state[g * 2 * c_n..(g + 1) * 2 * c_n];
        let t = msb[g];
        let mut wires = [0u64; MAX_WIRES];
        wires[0] = st[0] ^ t;
        let (mut o, mut tpo) = (g * per, g * pw + (pw - sh.t_words()));
        for (j, (nd, fam)) in lv.iter().enumerate() {
            // Node j's opened wires, in the level-0 message after the nodes before it.
            let mut hat = [0u64; 2 * FAN];
            let used = (0..2 * nd.k).filter(|b| fam.used >> b & 1 == 1);
            for (oo, b) in (o..).zip(used) {
                hat[b] = opened0[oo];
            }
            o += fam.opened();
            if j == 0 {
                continue;
            }
            let p_term = fam.p_term();
            let tp = &prods[tpo..tpo + sh.t_words_of(j)];
            tpo += sh.t_words_of(j);
            let t_p = expand_set(p_term, &hat, |s| if s == 0 { t } else { tp[t_rank(p_term, s)] });
            wires[j] = st[j] ^ t ^ t_p;
            wires[k - 1 + j] = st[c_n + j];
        }
        let m = &masks[g * mw + (mw - nw)..(g + 1) * mw];
        for (j, wv) in wires[..nw].iter().enumerate() {
            msg[g * nw + j] = wv ^ m[j];
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
    /// This party's shares of m_S a (M len, lane-major).
    pub mul_c: &'a [O],
}

/// Round 3 finish: this party's share of s = [x < 0] into `s`, and with a multiplicand of
/// s v into `sv`, from the opened wires (`opened`) and the public y.
#[allow(clippy::too_many_arguments)]
pub fn radix_top_finish<C: Ring, O: Ring>(
    party: Party,
    sh: &TopShape,
    y: &[C],
    opened: &[u64],
    mono: &[O],
    mul: Option<TopMul<'_, O>>,
    s: &mut [O],
    sv: &mut [O],
) -> Result<(), Error> {
    let (n, nw, mn) = (y.len(), sh.top.wires(), sh.monomials());
    check_len("radix top opened", nw * n.div_ceil(64), opened.len())?;
    check_len("radix monomials", mn * n, mono.len())?;
    check_len("sign", n, s.len())?;
    if let Some(m) = &mul {
        for (what, l) in [("f", m.f.len()), ("v", m.v.len()), ("sv", sv.len())] {
            check_len(what, n, l)?;
        }
        check_len("multiplicand products", mn * n, m.mul_c.len())?;
    }
    let p0 = party.is_p0();
    let monos = sh.top.monomials();
    for i in 0..n {
        let z: u8 =
            (0..nw).fold(0, |acc, j| acc | (((opened[nw * (i / 64) + j] >> (i % 64)) & 1) as u8) << j);
        // Each term prod_(w in T) (w^ + (1 - 2 w^) m_w) = sum over S in T of
        // prod_(T \ S) w^ * prod_S (1 - 2 w^) * m_S; integer coefficients, then times sigma.
        let (mut c0, mut coef) = (0i64, [0i64; MAX_MONOMIALS]);
        for &tm in sh.top.terms() {
            c0 += i64::from(z & tm == tm);
            for (c, &sm) in coef.iter_mut().zip(monos) {
                let rest = tm & !sm;
                if sm & !tm == 0 && z & rest == rest {
                    // prod over S of (1 - 2 w^): -1 per opened one in S.
                    *c += if (z & sm).count_ones() % 2 == 1 { -1 } else { 1 };
                }
            }
        }
        let my = y[i].msb() == 1;
        let sigma: i64 = if my { -1 } else { 1 };
        let cst = O::from_i64(i64::from(my) + sigma * c0);
        let mo = &mono[mn * i..][..mn];
        let mut acc = if p0 { cst } else { O::ZERO };
        for (c, m) in coef.iter().zip(mo) {
            acc = acc.add(O::from_i64(sigma * c).mul(*m));
        }
        s[i] = acc;
        if let Some(m) = &mul {
            let mc = &m.mul_c[mn * i..][..mn];
            let mut acc = cst.mul(m.v[i]);
            for ((c, mm), ma) in coef.iter().zip(mo).zip(mc) {
                acc = acc.add(O::from_i64(sigma * c).mul(m.f[i].mul(*mm).add(*ma)));
            }
            sv[i] = acc;
        }
    }
    Ok(())
}
