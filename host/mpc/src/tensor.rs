//! Shared tensors: this party's additive share, row-major, with a shape and a fractional scale.

use ditto_core::Ring;

use crate::MpcError;

/// This party's share of a fixed-point tensor (value = integer * 2^-frac).
#[derive(Clone, PartialEq, Eq)]
pub struct Shared<R> {
    /// Share elements, row-major.
    pub data: Vec<R>,
    /// Shape (the product is `data.len()`).
    pub shape: Vec<usize>,
    /// Fractional bits.
    pub frac: u32,
}

impl<R> std::fmt::Debug for Shared<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shares never print.
        write!(f, "Shared {{ shape: {:?}, frac: {} }}", self.shape, self.frac)
    }
}

impl<R: Ring> Shared<R> {
    /// A share from its elements.
    pub fn new(data: Vec<R>, shape: &[usize], frac: u32) -> Result<Self, MpcError> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(MpcError::Shape { what: "tensor", expected: shape.to_vec(), got: vec![data.len()] });
        }
        Ok(Shared { data, shape: shape.to_vec(), frac })
    }

    /// A zero share (the share of 0 held by both parties; also the planning placeholder).
    pub fn zeros(shape: &[usize], frac: u32) -> Self {
        Shared { data: vec![R::ZERO; shape.iter().product()], shape: shape.to_vec(), frac }
    }

    /// Element count.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for an empty tensor.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Same data, another shape of the same size.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self, MpcError> {
        if shape.iter().product::<usize>() != self.data.len() {
            return Err(MpcError::Shape {
                what: "reshape",
                expected: self.shape.clone(),
                got: shape.to_vec(),
            });
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    pub(crate) fn same_shape(&self, o: &Shared<R>, what: &'static str) -> Result<(), MpcError> {
        if self.shape != o.shape {
            return Err(MpcError::Shape { what, expected: self.shape.clone(), got: o.shape.clone() });
        }
        Ok(())
    }

    pub(crate) fn with_data<S: Ring>(&self, data: Vec<S>, frac: u32) -> Shared<S> {
        Shared { data, shape: self.shape.clone(), frac }
    }
}

/// Splits a plaintext into two random additive shares (tests and the client).
pub fn share<R: Ring>(x: &[R], rng: &mut impl ditto_core::rand_core::Rng) -> [Vec<R>; 2] {
    let mut x0 = vec![R::ZERO; x.len()];
    for v in &mut x0 {
        let mut b = [0u8; 8];
        rng.fill_bytes(&mut b);
        *v = R::from_u64(u64::from_le_bytes(b));
    }
    let x1 = x.iter().zip(&x0).map(|(a, b)| a.sub(*b)).collect();
    [x0, x1]
}

/// Adds two share vectors: reconstructs a plaintext.
pub fn reveal<R: Ring>(a: &[R], b: &[R]) -> Vec<R> {
    a.iter().zip(b).map(|(x, y)| x.add(*y)).collect()
}
