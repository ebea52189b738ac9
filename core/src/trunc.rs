//! Truncation by k bits with the MSB trick (DESIGN.md §5), 1 round.
//!
//! Admitted input: x in [-2^(l-2), 2^(l-2)). Each party biases by 2^(l-2) (P0 only) so
//! x' = x + 2^(l-2) lies in [0, 2^(l-1)), masks with r and opens y = x' + r mod 2^l. Because
//! x' < 2^(l-1) the wrap bit is w = msb(r) (1 - msb(y)), so
//! x' >> k = (y >> k) - (r >> k) + 2^(l-k) w - c with the dropped carry c in {0, 1}: the result
//! is floor(x / 2^k) or one more. Outside the admitted range the result is still right modulo
//! 2^(l-k) but is off by a multiple of 2^(l-k) with probability (x' - 2^(l-1)) / 2^(l-1), where
//! x' = x + 2^(l-2) mod 2^l lies in [2^(l-1), 2^l): rare just outside the range, about 1/2 near
//! ±2^(l-1). The protocol never fails or leaks; callers keep inputs in range.
//!
//! Correlation: r uniform in Z_2^l; shares of r >> k in Z_2^l and of msb(r) modulo 2^k. The
//! msb share only ever appears multiplied by 2^(l-k), so its low k bits are all that matter:
//! P1's correction for it is k bits, not l (an improvement on DESIGN.md's 2l per element).
//! P0: r0 (stream R), rh0 (RHigh), m0 (Msb, reduced mod 2^k). P1: r1 (R); corrections, per
//! element interleaved: [rh1 (l/8 bytes), m1 (ceil(k/8) bytes, little-endian)].

use embedded_io::Write;

use core::ops::Range;

use crate::corr::{CHUNK, Corrections, DealerStreams, Streams, at};
use crate::prg::Purpose;
use crate::ring::{RingId, check_len};
use crate::{Error, Party, Ring};

/// Rounds of truncation.
pub const ROUNDS: u32 = 1;

/// P1 correction bytes: r >> k (one ring element) and msb(r) mod 2^k (ceil(k/8) bytes).
pub fn correction_bytes(ring: RingId, len: u32, shift: u8) -> u64 {
    u64::from(len) * (ring.bytes() + msb_bytes(u32::from(shift))) as u64
}

/// Bytes of a msb share that matters modulo 2^bits.
pub const fn msb_bytes(bits: u32) -> usize {
    bits.div_ceil(8) as usize
}

/// Online bytes per party: the masked value y (l bits).
pub fn online_bytes(ring: RingId, len: u32) -> u64 {
    u64::from(len) * ring.bytes() as u64
}

/// The admitted bound: inputs lie in [-2^bound_bits(), 2^bound_bits()).
pub const fn bound_bits<R: Ring>() -> u32 {
    R::BITS - 2
}

/// Expands a party's truncation-by-`k` mask shares: r, r >> k, msb(r) mod 2^k.
pub fn expand_trunc<R: Ring>(
    s: &Streams<'_>,
    step: u32,
    k: u32,
    corr: &mut Corrections<'_>,
    r: &mut [R],
    rh: &mut [R],
    m: &mut [R],
) -> Result<(), Error> {
    expand_msb_mask(s, step, k, corr, r, rh, m)
}

/// The MSB-trick mask shared by truncation and upcast: r in the source ring S (stream R), a
/// function of r ("hi": r >> k, or r lifted) in the target ring T, and msb(r) modulo
/// 2^`mbits` (held in T). P0 expands hi and msb from streams RHigh and Msb; P1 reads
/// interleaved records [hi1, m1 in msb_bytes(mbits) bytes].
pub(crate) fn expand_msb_mask<S: Ring, T: Ring>(
    s: &Streams<'_>,
    step: u32,
    mbits: u32,
    corr: &mut Corrections<'_>,
    r: &mut [S],
    hi: &mut [T],
    m: &mut [T],
) -> Result<(), Error> {
    check_len("mask high part", r.len(), hi.len())?;
    s.prg(step, Purpose::R).fill_ring(r);
    expand_hi_msb(s, step, mbits, corr, hi, m)
}

/// (hi, msb mod 2^`mbits`) pairs of a mask: P0 from streams RHigh and Msb, P1 from records
/// [hi1 (T bytes), m1 (ceil(mbits/8) bytes, little-endian)] (the MSB trick's correlation, also
/// dealt per variant by `chain` and per lane by `fuse`).
pub(crate) fn expand_hi_msb<T: Ring>(
    s: &Streams<'_>,
    step: u32,
    mbits: u32,
    corr: &mut Corrections<'_>,
    hi: &mut [T],
    m: &mut [T],
) -> Result<(), Error> {
    check_len("mask msb", hi.len(), m.len())?;
    match s.party {
        Party::P0 => {
            s.prg(step, Purpose::RHigh).fill_ring(hi);
            s.prg(step, Purpose::Msb).fill_ring(m);
            m.iter_mut().for_each(|v| *v = v.low_bits(mbits));
        }
        Party::P1 => {
            for (h, b) in hi.iter_mut().zip(m.iter_mut()) {
                (*h, *b) = read_hi_msb(corr, mbits)?;
            }
        }
    }
    Ok(())
}

/// P1's next (hi, msb) record (see [`expand_hi_msb`]).
pub(crate) fn read_hi_msb<T: Ring>(corr: &mut Corrections<'_>, mbits: u32) -> Result<(T, T), Error> {
    let mb = msb_bytes(mbits);
    let rec = corr.read_bytes(T::BYTES + mb)?;
    let mut w = [0u8; 8];
    w[..mb].copy_from_slice(&rec[T::BYTES..]);
    Ok((T::from_le(rec), T::from_u64(u64::from_le_bytes(w)).low_bits(mbits)))
}

/// P1's record for the true (hi, msb) given P0's shares (hi0, m0), into `out`
/// (T::BYTES + ceil(mbits/8) bytes).
pub(crate) fn hi_msb_record<T: Ring>(out: &mut [u8], (hi, msb): (T, T), (hi0, m0): (T, T), mbits: u32) {
    hi.sub(hi0).write_le(&mut out[..T::BYTES]);
    let m1 = msb.sub(m0.low_bits(mbits)).low_bits(mbits);
    out[T::BYTES..].copy_from_slice(&m1.to_u64().to_le_bytes()[..msb_bytes(mbits)]);
}

/// Dealer: P1's corrections [(r >> k) - rh0, msb(r) - m0] per element.
pub fn deal_trunc<R: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    k: u32,
    w: &mut W,
) -> Result<(), Error> {
    deal_msb_mask::<R, R, W>(d, step, units, |r| r.shr(k), k, w)
}

/// Dealer side of [`expand_msb_mask`]: [hi(r) - hi0, (msb(r) - m0) mod 2^mbits] per element,
/// r = r0 + r1.
pub(crate) fn deal_msb_mask<S: Ring, T: Ring, W: Write>(
    d: &DealerStreams<'_>,
    step: u32,
    units: Range<usize>,
    hi: impl Fn(S) -> T,
    mbits: u32,
    w: &mut W,
) -> Result<(), Error> {
    let s = units.start;
    let mut r0 = at::<S>(d.p0.prg(step, Purpose::R), s);
    let mut r1 = at::<S>(d.p1.prg(step, Purpose::R), s);
    let mut h0 = at::<T>(d.p0.prg(step, Purpose::RHigh), s);
    let mut m0 = at::<T>(d.p0.prg(step, Purpose::Msb), s);
    let (mut x0, mut x1) = ([S::ZERO; CHUNK], [S::ZERO; CHUNK]);
    let (mut y0, mut z0) = ([T::ZERO; CHUNK], [T::ZERO; CHUNK]);
    let rec = T::BYTES + msb_bytes(mbits);
    let mut out = [0u8; CHUNK * 16];
    for start in units.clone().step_by(CHUNK) {
        let n = CHUNK.min(units.end - start);
        r0.fill_ring(&mut x0[..n]);
        r1.fill_ring(&mut x1[..n]);
        h0.fill_ring(&mut y0[..n]);
        m0.fill_ring(&mut z0[..n]);
        for i in 0..n {
            let r = x0[i].add(x1[i]);
            let msb = T::from_u64(u64::from(r.msb()));
            hi_msb_record(&mut out[i * rec..(i + 1) * rec], (hi(r), msb), (y0[i], z0[i]), mbits);
        }
        w.write_all(&out[..n * rec]).map_err(crate::corr::io_err)?;
    }
    Ok(())
}

/// Online: this party's message y_i = x_i + r_i (+ 2^(l-2) for P0). Shared with upcast.
pub fn masked_open<R: Ring>(party: Party, x: &[R], r: &[R], y: &mut [R]) -> Result<(), Error> {
    check_len("mask", x.len(), r.len())?;
    check_len("masked output", x.len(), y.len())?;
    let bias = if party.is_p0() { R::pow2(R::BITS - 2) } else { R::ZERO };
    for i in 0..x.len() {
        y[i] = x[i].add(r[i]).add(bias);
    }
    Ok(())
}

/// Online: this party's message for truncation (see [`masked_open`]).
pub fn trunc_a_open<R: Ring>(party: Party, x: &[R], r: &[R], y: &mut [R]) -> Result<(), Error> {
    masked_open(party, x, r, y)
}

/// Online: z_i = [P0]((y >> k) - 2^(l-2-k)) - rh_i + 2^(l-k) (1 - msb(y)) m_i, from the opened y.
pub fn trunc_a_finish<R: Ring>(
    party: Party,
    k: u32,
    y: &[R],
    rh: &[R],
    m: &[R],
    z: &mut [R],
) -> Result<(), Error> {
    for (what, l) in [("trunc r>>k", rh.len()), ("trunc msb", m.len()), ("trunc output", z.len())] {
        check_len(what, y.len(), l)?;
    }
    let unbias = R::pow2(R::BITS - 2).shr(k);
    let wrap = R::pow2(R::BITS - k);
    for i in 0..y.len() {
        let mut v = rh[i].neg();
        if y[i].msb() == 0 {
            v = v.add(wrap.mul(m[i]));
        }
        if party.is_p0() {
            v = v.add(y[i].shr(k)).sub(unbias);
        }
        z[i] = v;
    }
    Ok(())
}
