//! Model shares and the one traversal that defines them.
//!
//! Each architecture lists its tensors once, in a `build` function that asks a [`Source`] for
//! every tensor by name, shape and scale (candle's `VarBuilder`). Everything else follows from
//! that list:
//!
//! * [`Record`] answers with zeros and notes each request: the share's [`Spec`]s, which give a
//!   share of zeros (plans from a config alone), the order and names of a share file, and the
//!   check of a loaded file;
//! * [`Share::split`] encodes the float model's tensors at the recorded scales and splits each
//!   into two additive shares (the model owner's step);
//! * [`Share::setup`] opens F = W - B_W for every weight matrix in list order (their weight ids)
//!   and [`Take`] then answers the build from the share's own tensors: the secure model.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use ditto_core::Ring;
use ditto_core::rand_core::Rng;
use ditto_mpc::ops::arith::Weight;
use ditto_mpc::tensor::share;
use ditto_mpc::{Engine, MpcError, Shared};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ModelError;
use crate::quant::QuantConfig;

/// Where a model's tensors come from, by name.
pub(crate) trait Source {
    /// What a weight matrix (a product's fixed operand) becomes.
    type W;
    /// A weight matrix [rows, cols] at `frac` fractional bits (Z_2^32, masked by B_W).
    fn weight(&mut self, name: &str, shape: [usize; 2], frac: u32) -> Result<Self::W, MpcError>;
    /// Any other Z_2^32 tensor (biases, embedding tables selected by public positions).
    fn u32(&mut self, name: &str, shape: &[usize], frac: u32) -> Result<Shared<u32>, MpcError>;
    /// A Z_2^64 tensor (LayerNorm gains and biases).
    fn u64(&mut self, name: &str, shape: &[usize], frac: u32) -> Result<Shared<u64>, MpcError>;
}

/// A tensor of a share, in either ring.
#[derive(Clone)]
pub(crate) enum Tensor {
    /// Z_2^32.
    U32(Shared<u32>),
    /// Z_2^64.
    U64(Shared<u64>),
}

impl Tensor {
    pub(crate) fn ring(&self) -> u32 {
        match self {
            Tensor::U32(_) => 32,
            Tensor::U64(_) => 64,
        }
    }

    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            Tensor::U32(s) => &s.shape,
            Tensor::U64(s) => &s.shape,
        }
    }
}

/// One tensor of a model's list: name, ring (32 or 64), shape, scale, and whether it is a
/// weight matrix (opened once at setup).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) ring: u32,
    pub(crate) shape: Vec<usize>,
    pub(crate) frac: u32,
    pub(crate) weight: bool,
}

/// The source that records the list and answers with zeros (weights stay unbuilt).
#[derive(Default)]
pub(crate) struct Record {
    pub(crate) specs: Vec<Spec>,
}

impl Record {
    fn note(&mut self, name: &str, ring: u32, shape: &[usize], frac: u32, weight: bool) {
        self.specs.push(Spec { name: name.into(), ring, shape: shape.to_vec(), frac, weight });
    }
}

impl Source for Record {
    type W = ();
    fn weight(&mut self, name: &str, shape: [usize; 2], frac: u32) -> Result<(), MpcError> {
        self.note(name, 32, &shape, frac, true);
        Ok(())
    }
    fn u32(&mut self, name: &str, shape: &[usize], frac: u32) -> Result<Shared<u32>, MpcError> {
        self.note(name, 32, shape, frac, false);
        Ok(Shared::zeros(&[0], frac))
    }
    fn u64(&mut self, name: &str, shape: &[usize], frac: u32) -> Result<Shared<u64>, MpcError> {
        self.note(name, 64, shape, frac, false);
        Ok(Shared::zeros(&[0], frac))
    }
}

/// The source of the secure model: the share's tensors by name, and the weights opened at
/// setup in list order.
pub(crate) struct Take {
    tensors: HashMap<String, Tensor>,
    weights: VecDeque<Weight<u32>>,
}

fn missing(name: &str, what: String) -> MpcError {
    MpcError::Setup { detail: format!("model share tensor {name}: {what}") }
}

impl Take {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, MpcError> {
        let t = self.tensors.remove(name).ok_or_else(|| missing(name, "absent".into()))?;
        if t.shape() != shape {
            return Err(missing(name, format!("shape {:?}, expected {shape:?}", t.shape())));
        }
        Ok(t)
    }
}

impl Source for Take {
    type W = Weight<u32>;
    fn weight(&mut self, name: &str, [k, m]: [usize; 2], _frac: u32) -> Result<Weight<u32>, MpcError> {
        let w = self.weights.pop_front().ok_or_else(|| missing(name, "no opened weight left".into()))?;
        if (w.k, w.m) != (k, m) {
            return Err(missing(name, format!("opened as [{}, {}], expected [{k}, {m}]", w.k, w.m)));
        }
        Ok(w)
    }
    fn u32(&mut self, name: &str, shape: &[usize], _frac: u32) -> Result<Shared<u32>, MpcError> {
        match self.tensor(name, shape)? {
            Tensor::U32(s) => Ok(s),
            Tensor::U64(_) => Err(missing(name, "in Z_2^64, expected Z_2^32".into())),
        }
    }
    fn u64(&mut self, name: &str, shape: &[usize], _frac: u32) -> Result<Shared<u64>, MpcError> {
        match self.tensor(name, shape)? {
            Tensor::U64(s) => Ok(s),
            Tensor::U32(_) => Err(missing(name, "in Z_2^32, expected Z_2^64".into())),
        }
    }
}

/// A model architecture: its config type names it and lists its tensors.
pub trait Arch: Clone + Serialize + DeserializeOwned {
    /// The architecture's name in share files ("bert", "gpt2").
    const NAME: &'static str;
    /// Checks a config read from a file.
    fn check(&self) -> Result<(), String>;
    /// Every tensor of a share under `q`, in order (records the architecture's build).
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn specs(&self, q: &QuantConfig) -> Vec<Spec>;
}

/// One party's share of a model: every tensor of the architecture's list, in order, as
/// additive shares at their scales, and the id of the sharing it belongs to.
#[derive(Clone)]
pub struct Share<C> {
    /// Random id common to both parties' shares of one sharing (checked at setup).
    pub(crate) share_id: [u8; 16],
    pub(crate) cfg: C,
    pub(crate) q: QuantConfig,
    pub(crate) tensors: Vec<(String, Tensor)>,
}

impl<C: Arch> std::fmt::Debug for Share<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share {{ arch: {}, tensors: {}, quant: {:?} }}", C::NAME, self.tensors.len(), self.q)
    }
}

impl<C: Arch> Share<C> {
    /// Zero tensors of the model's shapes: enough to record the plan (`Engine::planner`)
    /// from the config alone, without weights.
    pub fn zeros(cfg: &C, q: &QuantConfig) -> Self {
        let tensors = cfg
            .specs(q)
            .into_iter()
            .map(|s| {
                let t = match s.ring {
                    32 => Tensor::U32(Shared::zeros(&s.shape, s.frac)),
                    _ => Tensor::U64(Shared::zeros(&s.shape, s.frac)),
                };
                (s.name, t)
            })
            .collect();
        Share { share_id: [0; 16], cfg: cfg.clone(), q: q.clone(), tensors }
    }

    /// The model owner's step: encodes each float tensor (`floats`, by name, in the share's
    /// layout) at its scale and splits it into two parties' shares under a fresh sharing id.
    pub(crate) fn split(
        cfg: &C,
        q: &QuantConfig,
        floats: Vec<(String, Cow<'_, [f32]>)>,
        rng: &mut impl Rng,
    ) -> Result<[Self; 2], ModelError> {
        let floats: HashMap<String, Cow<'_, [f32]>> = floats.into_iter().collect();
        let (mut t0, mut t1) = (Vec::new(), Vec::new());
        for s in cfg.specs(q) {
            let v = floats.get(&s.name).ok_or_else(|| ModelError::MissingTensor {
                name: s.name.clone(),
                tried: format!("the {} model's tensors", C::NAME),
            })?;
            let len: usize = s.shape.iter().product();
            if v.len() != len {
                return Err(ModelError::Shape {
                    name: s.name.clone(),
                    expected: s.shape.clone(),
                    got: vec![v.len()],
                });
            }
            let (a, b) = match s.ring {
                32 => {
                    let [a, b] = split(enc::<u32>(&s.name, v, s.frac)?, &s.shape, s.frac, rng);
                    (Tensor::U32(a), Tensor::U32(b))
                }
                _ => {
                    let [a, b] = split(enc::<u64>(&s.name, v, s.frac)?, &s.shape, s.frac, rng);
                    (Tensor::U64(a), Tensor::U64(b))
                }
            };
            t0.push((s.name.clone(), a));
            t1.push((s.name, b));
        }
        let mut share_id = [0u8; 16];
        rng.fill_bytes(&mut share_id);
        let mk = |tensors| Share { share_id, cfg: cfg.clone(), q: q.clone(), tensors };
        Ok([mk(t0), mk(t1)])
    }

    /// The plaintext model as "shares" held by P0 alone (for `Engine::plaintext`).
    pub(crate) fn plaintext_of(
        cfg: &C,
        q: &QuantConfig,
        floats: Vec<(String, Cow<'_, [f32]>)>,
    ) -> Result<Self, ModelError> {
        // With a zero "random" share, the second share is the value itself.
        let [_, p] = Self::split(cfg, q, floats, &mut Zero)?;
        Ok(p)
    }

    /// The id of the sharing this share belongs to (both parties' shares carry it).
    pub fn share_set(&self) -> ditto_core::prg::ShareSetId {
        ditto_core::prg::ShareSetId(self.share_id)
    }

    /// The model config.
    pub fn config(&self) -> &C {
        &self.cfg
    }

    /// The quantization config.
    pub fn quant(&self) -> &QuantConfig {
        &self.q
    }

    /// Setup: opens F = W - B_W for every weight matrix (outside the plan; weight ids in list
    /// order from 1) and returns the source the architecture builds its secure model from.
    pub(crate) async fn setup(self, e: &mut Engine) -> Result<(C, QuantConfig, Take), MpcError> {
        e.begin_weight_setup(self.share_id).await?;
        let specs = self.cfg.specs(&self.q);
        let mut weights = VecDeque::new();
        let mut tensors = HashMap::new();
        let mut id = 0u32;
        for (s, (name, t)) in specs.iter().zip(self.tensors) {
            match t {
                Tensor::U32(w) if s.weight => {
                    id += 1;
                    weights.push_back(e.setup_weight(id, &w).await?);
                }
                t => {
                    tensors.insert(name, t);
                }
            }
        }
        e.end_weight_setup()?;
        Ok((self.cfg, self.q, Take { tensors, weights }))
    }
}

/// Encodes floats at `frac` fractional bits in ring R (`name` says which tensor failed).
fn enc<R: Ring>(name: &str, v: &[f32], frac: u32) -> Result<Vec<R>, ModelError> {
    v.iter()
        .map(|x| {
            ditto_core::fixed::encode::<R>(f64::from(*x), frac).map_err(|e| ModelError::Config {
                path: name.into(),
                reason: format!("does not fit its ring at {frac} fractional bits: {e}"),
            })
        })
        .collect()
}

/// Splits plaintext ring values into two parties' shares.
fn split<R: Ring>(v: Vec<R>, shape: &[usize], frac: u32, rng: &mut impl Rng) -> [Shared<R>; 2] {
    let [a, b] = share(&v, rng);
    [Shared { data: a, shape: shape.to_vec(), frac }, Shared { data: b, shape: shape.to_vec(), frac }]
}

/// [out, in] -> [in, out] (a float dense layer in the shares' layout).
pub(crate) fn transpose(w: &[f32], dout: usize, din: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for o in 0..dout {
        for i in 0..din {
            t[i * dout + o] = w[o * din + i];
        }
    }
    t
}

/// An RNG that yields zeros: "sharing" with it puts the whole value in the second share
/// (value - 0), which [`Share::plaintext`] hands to the plaintext engine.
struct Zero;

impl ditto_core::rand_core::TryRng for Zero {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> {
        d.fill(0);
        Ok(())
    }
}
