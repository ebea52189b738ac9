//! Products: elementwise mul (Beaver triple) and square, matmul with a model-fixed weight mask,
//! batched matmul of two fresh shared tensors. One round each; costs as DESIGN.md §5.

use ditto_core::Ring;
use ditto_core::beaver::{self, Dims, Gemm};
use ditto_core::plan::Op;

use super::{len32, ring_id, scale};
use crate::engine::{Engine, SETUP_STEP, Started};
use crate::gemm::PackedB;
use crate::plain;
use crate::{MpcError, Shared};

/// A model weight W (k x m) prepared for fixed-mask matmuls: F = W - B_W (public, opened once
/// at setup) and G_i, from this party's share of B_W (its model share seed): G_0 = F + B_0,
/// G_1 = B_1 (see [`crate::precompute`]), both packed once for the GEMM in a secure run; the
/// plaintext reference keeps W itself.
pub struct Weight<R> {
    /// Weight id (selects B_W).
    pub id: u32,
    /// Rows.
    pub k: usize,
    /// Columns.
    pub m: usize,
    /// Fractional bits of W.
    pub frac: u32,
    /// Plaintext reference: W, packed.
    plain: Option<PackedB<R>>,
    /// Secure run: F and this party's G_i, packed (shared with the weight store, if any).
    packed: Option<std::sync::Arc<(PackedB<R>, PackedB<R>)>>,
}

impl<R> std::fmt::Debug for Weight<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Weight {{ id: {}, k: {}, m: {}, frac: {} }}", self.id, self.k, self.m, self.frac)
    }
}

impl<R> Weight<R> {
    /// F and this party's G_i, packed (secure runs, after the setup).
    pub(crate) fn packed_for(&self, id: u32) -> Result<(&PackedB<R>, &PackedB<R>), MpcError> {
        match self.packed.as_deref() {
            Some((f, b)) => Ok((f, b)),
            None => Err(MpcError::Setup { detail: format!("weight {id} was not set up for a secure run") }),
        }
    }
}

/// (n, k) of a matmul input x (n x k) against w (k x m).
/// (batch, dims) of a batched product of x [t, n, k] and y [t, k, m].
pub(crate) fn batched_dims<R>(x: &Shared<R>, y: &Shared<R>) -> Result<(usize, Dims), MpcError> {
    let (&[t, n, k], &[t2, k2, m]) = (&x.shape[..], &y.shape[..]) else {
        return Err(MpcError::Shape {
            what: "batched matmul",
            expected: x.shape.clone(),
            got: y.shape.clone(),
        });
    };
    if t != t2 || k != k2 {
        return Err(MpcError::Shape { what: "batched matmul", expected: vec![t, k], got: vec![t2, k2] });
    }
    Ok((t, Dims { n, k, m }))
}

pub(crate) fn matmul_dims<R>(x: &Shared<R>, w: &Weight<R>) -> Result<(usize, usize), MpcError> {
    let [n, k] = x.shape[..] else {
        return Err(MpcError::Shape { what: "matmul input", expected: vec![0, w.k], got: x.shape.clone() });
    };
    if k != w.k {
        return Err(MpcError::Shape { what: "matmul inner dimension", expected: vec![w.k], got: vec![k] });
    }
    Ok((n, k))
}

impl Engine {
    /// The plaintext batched product x y (t products of `d`) with the secure run's GEMM.
    pub(crate) fn batched_plain<R: Ring>(
        &self,
        x: &Shared<R>,
        y: &Shared<R>,
        t: usize,
        d: Dims,
    ) -> Shared<R> {
        let (nk, km, nm) = (d.n * d.k, d.k * d.m, d.n * d.m);
        let mut data = vec![R::ZERO; t * nm];
        for (i, z) in data.chunks_exact_mut(nm).enumerate() {
            self.gemm.gemm_acc(z, &x.data[i * nk..(i + 1) * nk], &y.data[i * km..(i + 1) * km], d);
        }
        Shared { data, shape: vec![t, d.n, d.m], frac: x.frac + y.frac }
    }

    /// The plaintext product x W with the secure run's GEMM (tested against a naive product
    /// in tests/gemm.rs).
    pub(crate) fn matmul_plain<R: Ring>(&self, x: &Shared<R>, w: &Weight<R>) -> Shared<R> {
        let n = x.shape[0];
        let mut z = vec![R::ZERO; n * w.m];
        if let Some(p) = &w.plain {
            self.gemm.gemm_acc_packed(&mut z, &x.data, p, n);
        }
        Shared { data: z, shape: vec![n, w.m], frac: x.frac + w.frac }
    }

    /// x * y elementwise (scale x.frac + y.frac; truncate afterwards as needed).
    pub async fn mul_aa<R: Ring>(&mut self, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>, MpcError> {
        x.same_shape(y, "mul")?;
        let (n, frac) = (x.len(), x.frac + y.frac);
        let op = Op::MulAA { ring: ring_id::<R>()?, len: len32("mul", n)? };
        let b = match self.begin(op, scale("mul", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&x.shape, frac)),
            Started::Plain => return Ok(x.with_data(plain::mul(&x.data, &y.data), frac)),
        };
        let (mut a, mut bb, mut c) = (vec![R::ZERO; n], vec![R::ZERO; n], vec![R::ZERO; n]);
        self.expand(&b, |s, corr| beaver::expand_mul(s, b.index, corr, &mut a, &mut bb, &mut c))?;
        let mut msg = vec![R::ZERO; 2 * n];
        let (e, f) = msg.split_at_mut(n);
        beaver::mul_aa_open(&x.data, &y.data, &a, &bb, e, f)?;
        let opened = self.open(b.index, &msg).await?;
        let mut z = vec![R::ZERO; n];
        beaver::mul_aa_finish(self.party(), &opened[..n], &opened[n..], &a, &bb, &c, &mut z)?;
        Ok(x.with_data(z, frac))
    }

    /// x^2 elementwise (scale 2 x.frac).
    pub async fn square_a<R: Ring>(&mut self, x: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let (n, frac) = (x.len(), 2 * x.frac);
        let op = Op::SquareA { ring: ring_id::<R>()?, len: len32("square", n)? };
        let b = match self.begin(op, scale("square", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&x.shape, frac)),
            Started::Plain => return Ok(x.with_data(plain::mul(&x.data, &x.data), frac)),
        };
        let (mut a, mut c) = (vec![R::ZERO; n], vec![R::ZERO; n]);
        self.expand(&b, |s, corr| beaver::expand_square(s, b.index, corr, &mut a, &mut c))?;
        let mut e = vec![R::ZERO; n];
        beaver::square_a_open(&x.data, &a, &mut e)?;
        let opened = self.open(b.index, &e).await?;
        let mut z = vec![R::ZERO; n];
        beaver::square_a_finish(self.party(), &opened, &a, &c, &mut z)?;
        Ok(x.with_data(z, frac))
    }

    /// One-time setup of weight `id` from this party's share of W (k x m): opens F = W - B_W.
    /// Runs outside the plan (counted under step [`SETUP_STEP`]).
    pub async fn setup_weight<R: Ring>(&mut self, id: u32, w: &Shared<R>) -> Result<Weight<R>, MpcError> {
        let [k, m] = w.shape[..] else {
            return Err(MpcError::Shape { what: "weight", expected: vec![0, 0], got: w.shape.clone() });
        };
        if self.is_planning() || self.is_plaintext() {
            // Plaintext reference: F holds W itself and the mask is zero.
            let plain = self.is_plaintext().then(|| PackedB::new(&w.data, k, m));
            return Ok(Weight { id, k, m, frac: w.frac, plain, packed: None });
        }
        if let Some(t) = &self.setup.taken {
            // Prepared in an earlier session of this party, seed and sharing.
            let p = t.get(&id).cloned().and_then(|p| p.downcast::<(PackedB<R>, PackedB<R>)>().ok());
            return match p {
                Some(p) if p.0.dims() == (k, m) => {
                    Ok(Weight { id, k, m, frac: w.frac, plain: None, packed: Some(p) })
                }
                _ => Err(MpcError::Setup {
                    detail: format!("weight {id} ([{k}, {m}]) is not among the weights prepared before"),
                }),
            };
        }
        let mut b = vec![R::ZERO; k * m];
        self.streams()?.model_prg(id).fill_ring(&mut b);
        let f = if let Some(c) = self.setup.cache.as_mut().filter(|c| c.is_cached()) {
            c.take(id, k * m)?
        } else {
            let mine: Vec<R> = w.data.iter().zip(&b).map(|(x, y)| x.sub(*y)).collect();
            let f = self.open(SETUP_STEP, &mine).await?;
            if let Some(c) = self.setup.cache.as_mut() {
                c.record(id, &f);
            }
            f
        };
        // G_0 = F + B_0 (P0 adds E F, the public part, once), G_1 = B_1.
        if self.party().is_p0() {
            b.iter_mut().zip(&f).for_each(|(b, f)| *b = b.add(*f));
        }
        let packed = std::sync::Arc::new((PackedB::new(&f, k, m), PackedB::new(&b, k, m)));
        self.setup.fresh.insert(id, packed.clone());
        Ok(Weight { id, k, m, frac: w.frac, plain: None, packed: Some(packed) })
    }

    /// x (n x k) times the weight (k x m): opens only E = X - A (scale x.frac + w.frac).
    pub async fn matmul_fixed<R: Ring>(
        &mut self,
        x: &Shared<R>,
        w: &Weight<R>,
    ) -> Result<Shared<R>, MpcError> {
        let (n, k) = matmul_dims(x, w)?;
        let d = Dims { n, k, m: w.m };
        let frac = x.frac + w.frac;
        let op = Op::MatMulFixed {
            ring: ring_id::<R>()?,
            n: len32("matmul", n)?,
            k: len32("matmul", k)?,
            m: len32("matmul", w.m)?,
            weight: w.id,
        };
        let b = match self.begin(op, scale("matmul", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&[n, w.m], frac)),
            Started::Plain => return Ok(self.matmul_plain(x, w)),
        };
        // B_W (this party's share) is held since the setup: only A and C are expanded.
        let (mut a, mut c) = (vec![R::ZERO; n * k], vec![R::ZERO; n * w.m]);
        self.expand(&b, |s, corr| beaver::expand_matmul_fixed_ac(s, b.index, d, corr, &mut a, &mut c))?;
        let mut e = vec![R::ZERO; n * k];
        beaver::matmul_fixed_open(&x.data, &a, &mut e)?;
        let opened = self.open(b.index, &e).await?;
        // Z_i = C_i + A_i F + E G_i, A_i F precomputed when the session's products hold it.
        let (fp, gp) = w.packed_for(w.id)?;
        let mut z = c;
        if !self.add_product(b.index, &mut z)? {
            self.gemm.gemm_acc_packed(&mut z, &a, fp, n);
        }
        self.gemm.gemm_acc_packed(&mut z, &opened, gp, n);
        Ok(Shared { data: z, shape: vec![n, w.m], frac })
    }

    /// Batched products x_t (n x k) * y_t (k x m) of fresh shared tensors, shapes
    /// [batch, n, k] and [batch, k, m] (scale x.frac + y.frac).
    pub async fn matmul_aa<R: Ring>(&mut self, x: &Shared<R>, y: &Shared<R>) -> Result<Shared<R>, MpcError> {
        let (t, d) = batched_dims(x, y)?;
        let (n, k, m) = (d.n, d.k, d.m);
        let frac = x.frac + y.frac;
        let op = Op::MatMulAA {
            ring: ring_id::<R>()?,
            batch: len32("matmul", t)?,
            n: len32("matmul", n)?,
            k: len32("matmul", k)?,
            m: len32("matmul", m)?,
        };
        let (nk, km, nm) = (n * k, k * m, n * m);
        let b = match self.begin(op, scale("matmul", x.frac, frac)?).await? {
            Started::Run(b) => b,
            Started::Planned => return Ok(Shared::zeros(&[t, n, m], frac)),
            Started::Plain => return Ok(self.batched_plain(x, y, t, d)),
        };
        let (mut a, mut bb, mut c) = (vec![R::ZERO; t * nk], vec![R::ZERO; t * km], vec![R::ZERO; t * nm]);
        self.expand(&b, |s, corr| beaver::expand_matmul_aa(s, b.index, t, d, corr, &mut a, &mut bb, &mut c))?;
        let mut msg = vec![R::ZERO; t * (nk + km)];
        let (e, f) = msg.split_at_mut(t * nk);
        beaver::matmul_aa_open(&x.data, &y.data, &a, &bb, e, f)?;
        let opened = self.open(b.index, &msg).await?;
        let (eo, fo) = opened.split_at(t * nk);
        let (mut z, mut scratch) = (vec![R::ZERO; t * nm], vec![R::ZERO; nk]);
        for i in 0..t {
            beaver::matmul_finish(
                self.party(),
                &self.gemm,
                d,
                &eo[i * nk..(i + 1) * nk],
                &fo[i * km..(i + 1) * km],
                &a[i * nk..(i + 1) * nk],
                &bb[i * km..(i + 1) * km],
                &c[i * nm..(i + 1) * nm],
                &mut scratch,
                &mut z[i * nm..(i + 1) * nm],
            )?;
        }
        Ok(Shared { data: z, shape: vec![t, n, m], frac })
    }
}
