//! Operations on shared tensors. Local ones (add, subtract, public constants, shifts) need no
//! communication; the others consume one plan step each:
//! [`arith`] (mul, square, matmul), [`convert`] (truncate, upcast, downcast),
//! [`compare`] (sign, ReLU, row-wise max).

pub mod arith;
pub mod center;
pub mod chain;
pub mod compare;
pub mod convert;
pub mod fuse;
mod machines;
pub mod max;
pub mod opened;
pub mod rows;
pub mod sign_beside;

use ditto_core::plan::Scale;
use ditto_core::ring::RingId;
use ditto_core::{Party, Ring};

use crate::engine::Engine;
use crate::{MpcError, Shared};

pub(crate) fn ring_id<R: Ring>() -> Result<RingId, MpcError> {
    R::ID.ok_or(MpcError::Ring { what: "a plan step", expected: "Z_2^16, Z_2^32 or Z_2^64", bits: R::BITS })
}

pub(crate) fn len32(what: &'static str, n: usize) -> Result<u32, MpcError> {
    u32::try_from(n).map_err(|_| MpcError::Shape { what, expected: vec![u32::MAX as usize], got: vec![n] })
}

pub(crate) fn scale(what: &'static str, frac_in: u32, frac_out: u32) -> Result<Scale, MpcError> {
    let f = |v: u32| {
        u8::try_from(v).map_err(|_| MpcError::Scale { what, detail: format!("{v} fractional bits") })
    };
    Ok(Scale { frac_in: f(frac_in)?, frac_out: f(frac_out)? })
}

impl Engine {
    /// Opens two messages of one step in one exchange (y, then f, in one frame); returns the
    /// opened values (this party's plus the peer's).
    pub(crate) async fn open_two<R: Ring>(
        &mut self,
        index: u32,
        y: &[R],
        f: &[R],
    ) -> Result<(Vec<R>, Vec<R>), MpcError> {
        self.open_two_bits(index, (y, f), (R::BITS, R::BITS)).await
    }

    /// [`Engine::open`] of values right modulo 2^bits, each in its low ceil(bits/8) bytes (the
    /// ring's own encoding at the full width).
    pub(crate) async fn open_bits<R: Ring>(
        &mut self,
        index: u32,
        y: &[R],
        bits: u32,
    ) -> Result<Vec<R>, MpcError> {
        if bits >= R::BITS {
            return self.open(index, y).await;
        }
        Ok(self.open_two_bits(index, (y, &[]), (bits, bits)).await?.0)
    }

    /// [`Engine::open_two`] of values right modulo 2^bits (y's, f's): each travels in its low
    /// ceil(bits/8) bytes (little-endian, as the full width's encoding), and the opened values
    /// are reduced modulo 2^bits.
    pub(crate) async fn open_two_bits<R: Ring>(
        &mut self,
        index: u32,
        (y, f): (&[R], &[R]),
        (yb, fb): (u32, u32),
    ) -> Result<(Vec<R>, Vec<R>), MpcError> {
        let (by, bf) = (yb.div_ceil(8) as usize, fb.div_ceil(8) as usize);
        let (ny, nf) = (y.len() * by, f.len() * bf);
        let mut wire = vec![0u8; ny + nf];
        let put = |v: &[R], b: usize, out: &mut [u8]| {
            for (o, x) in out.chunks_exact_mut(b).zip(v) {
                o.copy_from_slice(&x.to_u64().to_le_bytes()[..b]);
            }
        };
        put(y, by, &mut wire[..ny]);
        put(f, bf, &mut wire[ny..]);
        let peer = self.exchange_bytes(index, &wire).await?;
        if peer.len() != wire.len() {
            let e = ditto_net::NetError::Length { step: index, expected: wire.len(), got: peer.len() };
            return Err(e.into());
        }
        let open = |mine: &[R], theirs: &[u8], bits: u32, b: usize| {
            mine.iter()
                .zip(theirs.chunks_exact(b))
                .map(|(m, t)| {
                    let mut w = [0u8; 8];
                    w[..b].copy_from_slice(t);
                    m.add(R::from_u64(u64::from_le_bytes(w))).low_bits(bits)
                })
                .collect::<Vec<_>>()
        };
        Ok((open(y, &peer[..ny], yb, by), open(f, &peer[ny..], fb, bf)))
    }

    /// x + y (same shape and scale).
    pub fn add<R: Ring>(&self, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>, MpcError> {
        x.same_shape(y, "add")?;
        same_frac("add", x.frac, y.frac)?;
        Ok(x.with_data(x.data.iter().zip(&y.data).map(|(a, b)| a.add(*b)).collect(), x.frac))
    }

    /// x - y (same shape and scale).
    pub fn sub<R: Ring>(&self, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>, MpcError> {
        x.same_shape(y, "sub")?;
        same_frac("sub", x.frac, y.frac)?;
        Ok(x.with_data(x.data.iter().zip(&y.data).map(|(a, b)| a.sub(*b)).collect(), x.frac))
    }

    /// x + c for a public c of the same scale (P0 adds it to its share), elementwise.
    pub fn add_public<R: Ring>(&self, x: &Shared<R>, c: &[R]) -> Result<Shared<R>, MpcError> {
        if c.len() != x.len() {
            return Err(MpcError::Shape {
                what: "add_public",
                expected: x.shape.clone(),
                got: vec![c.len()],
            });
        }
        let data = if self.party() == Party::P0 {
            x.data.iter().zip(c).map(|(a, b)| a.add(*b)).collect()
        } else {
            x.data.clone()
        };
        Ok(x.with_data(data, x.frac))
    }

    /// x + c for one public constant c (integer of x's scale).
    pub fn add_const<R: Ring>(&self, x: &Shared<R>, c: R) -> Shared<R> {
        let data = if self.party() == Party::P0 {
            x.data.iter().map(|a| a.add(c)).collect()
        } else {
            x.data.clone()
        };
        x.with_data(data, x.frac)
    }

    /// c * x for a public integer c with `c_frac` fractional bits (scale x.frac + c_frac).
    pub fn mul_const<R: Ring>(&self, x: &Shared<R>, c: R, c_frac: u32) -> Shared<R> {
        x.with_data(x.data.iter().map(|a| a.mul(c)).collect(), x.frac + c_frac)
    }

    /// c_i * x_i for public integers c with `c_frac` fractional bits.
    pub fn mul_public<R: Ring>(&self, x: &Shared<R>, c: &[R], c_frac: u32) -> Result<Shared<R>, MpcError> {
        if c.len() != x.len() {
            return Err(MpcError::Shape {
                what: "mul_public",
                expected: x.shape.clone(),
                got: vec![c.len()],
            });
        }
        Ok(x.with_data(x.data.iter().zip(c).map(|(a, b)| a.mul(*b)).collect(), x.frac + c_frac))
    }

    /// x * 2^k as the same real value at scale frac + k (exact, local).
    pub fn rescale_up<R: Ring>(&self, x: &Shared<R>, k: u32) -> Shared<R> {
        x.with_data(x.data.iter().map(|a| a.shl(k)).collect(), x.frac + k)
    }

    /// -x.
    pub fn neg<R: Ring>(&self, x: &Shared<R>) -> Shared<R> {
        x.with_data(x.data.iter().map(|a| a.neg()).collect(), x.frac)
    }
}

fn same_frac(what: &'static str, a: u32, b: u32) -> Result<(), MpcError> {
    if a == b { Ok(()) } else { Err(MpcError::Scale { what, detail: format!("scales {a} and {b} differ") }) }
}
