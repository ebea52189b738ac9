//! Bit-sliced boolean shares: a `u64` word holds one bit of 64 independent values (lanes),
//! shared by XOR. AND gates use dealer AND triples (a, b, c = a & b), 1 round:
//! open d = x ^ a and e = y ^ b, then z = c ^ (d & b) ^ (e & a) ^ [P0](d & e).

use crate::ring::check_len;
use crate::{Error, Party};

/// Words needed for `lanes` bit-sliced values.
pub const fn groups(lanes: usize) -> usize {
    lanes.div_ceil(64)
}

/// The lanes of group `g` that hold real values, as a mask (the last group may be partial).
pub fn lane_mask(lanes: usize, g: usize) -> u64 {
    let n = lanes - 64 * g;
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// One AND gate's message: (d, e) = (x ^ a, y ^ b).
#[inline]
pub fn and_open(x: u64, y: u64, a: u64, b: u64) -> [u64; 2] {
    [x ^ a, y ^ b]
}

/// One AND gate's output share from the opened (d, e).
#[inline]
pub fn and_finish(party: Party, d: u64, e: u64, a: u64, b: u64, c: u64) -> u64 {
    let z = c ^ (d & b) ^ (e & a);
    if party.is_p0() { z ^ (d & e) } else { z }
}

/// Bit-sliced AND of word vectors: this party's messages, `out` = [d_0, e_0, d_1, e_1, ...].
pub fn and_open_words(x: &[u64], y: &[u64], a: &[u64], b: &[u64], out: &mut [u64]) -> Result<(), Error> {
    for (what, l) in [("and y", y.len()), ("and a", a.len()), ("and b", b.len())] {
        check_len(what, x.len(), l)?;
    }
    check_len("and message", 2 * x.len(), out.len())?;
    for i in 0..x.len() {
        let [d, e] = and_open(x[i], y[i], a[i], b[i]);
        out[2 * i] = d;
        out[2 * i + 1] = e;
    }
    Ok(())
}

/// Bit-sliced AND: z_i from the opened messages (`opened` laid out like [`and_open_words`]).
pub fn and_finish_words(
    party: Party,
    opened: &[u64],
    a: &[u64],
    b: &[u64],
    c: &[u64],
    z: &mut [u64],
) -> Result<(), Error> {
    check_len("and opened", 2 * z.len(), opened.len())?;
    for (what, l) in [("and a", a.len()), ("and b", b.len()), ("and c", c.len())] {
        check_len(what, z.len(), l)?;
    }
    for i in 0..z.len() {
        z[i] = and_finish(party, opened[2 * i], opened[2 * i + 1], a[i], b[i], c[i]);
    }
    Ok(())
}

/// out_i = x_i ^ y_i: reconstructs opened boolean values.
pub fn xor_into(x: &[u64], y: &[u64], out: &mut [u64]) -> Result<(), Error> {
    check_len("xor operand", x.len(), y.len())?;
    check_len("xor output", x.len(), out.len())?;
    for ((o, p), q) in out.iter_mut().zip(x).zip(y) {
        *o = p ^ q;
    }
    Ok(())
}
