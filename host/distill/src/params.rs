//! Trainable parameters by Hugging Face name, and their safetensors files.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::DistillError;

/// A model's tensors by their Hugging Face names, each a candle variable (trainable).
#[derive(Clone)]
pub struct Params {
    vars: BTreeMap<String, Var>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Params {{ tensors: {} }}", self.vars.len())
    }
}

impl Params {
    /// Variables from named f32 data with their shapes, as `dtype` on `dev`.
    pub fn from_f32<'a>(
        items: impl IntoIterator<Item = (String, &'a [f32], Vec<usize>)>,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self, DistillError> {
        let mut vars = BTreeMap::new();
        for (name, data, shape) in items {
            let t = Tensor::from_slice(data, shape.as_slice(), dev)?.to_dtype(dtype)?;
            vars.insert(name, Var::from_tensor(&t)?);
        }
        Ok(Params { vars })
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Result<&Tensor, DistillError> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor())
            .ok_or_else(|| DistillError::MissingTensor(name.to_string()))
    }

    /// Every variable (for an optimizer).
    pub fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    /// The tensor `name` as f32 data.
    pub fn f32_data(&self, name: &str) -> Result<Vec<f32>, DistillError> {
        Ok(self.get(name)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Writes every tensor as `dtype` (F32 or F16) to a safetensors file, atomically.
    pub fn save(&self, path: &Path, dtype: DType) -> Result<(), DistillError> {
        let map = self
            .vars
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(dtype)?)))
            .collect::<Result<BTreeMap<_, _>, candle_core::Error>>()?;
        Self::save_tensors(&map, path)
    }

    /// Writes named tensors (each in its own dtype) to a safetensors file, atomically.
    pub fn save_tensors(map: &BTreeMap<String, Tensor>, path: &Path) -> Result<(), DistillError> {
        let tmp = path.with_extension("part");
        let map: std::collections::HashMap<&str, Tensor> =
            map.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        candle_core::safetensors::save(&map, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| DistillError::Io { path: path.to_path_buf(), source: e })
    }

    /// Every tensor encoded at its fixed-point scale `frac(name)` (what the secure model holds),
    /// ready to save: encoding them again on loading is exact. Tensors whose encoded values f16
    /// holds exactly (weight matrices at 8 bits) are f16, the rest f32.
    pub fn fixed_point(&self, frac: impl Fn(&str) -> u32) -> Result<BTreeMap<String, Tensor>, DistillError> {
        let same = |a: &Tensor, b: &Tensor| -> Result<bool, DistillError> {
            Ok(a.to_dtype(DType::F64)?.eq(b)?.to_dtype(DType::F64)?.min_all()?.to_scalar::<f64>()? == 1.0)
        };
        let mut out = BTreeMap::new();
        for (name, v) in &self.vars {
            let e = crate::fixed::encode(&v.as_tensor().to_dtype(DType::F64)?, frac(name))?;
            let (h, s) = (e.to_dtype(DType::F16)?, e.to_dtype(DType::F32)?);
            if !same(&s, &e)? {
                return Err(DistillError::Quant(format!("{name}: its fixed-point values do not fit f32")));
            }
            out.insert(name.clone(), if same(&h, &e)? { h } else { s });
        }
        Ok(out)
    }

    /// Sets every variable to the element-wise mean of the same-named tensors of `models`
    /// (computed in f64; names and shapes checked): a uniform model soup.
    pub fn set_mean(&self, models: &[&Params]) -> Result<(), DistillError> {
        let mismatch = |reason: String| DistillError::Data(format!("cannot average: {reason}"));
        if models.is_empty() {
            return Err(mismatch("no models".into()));
        }
        for (name, v) in &self.vars {
            let mut sum = Tensor::zeros(v.dims(), DType::F64, v.device())?;
            for m in models {
                let t = m.vars.get(name).ok_or_else(|| mismatch(format!("a model has no {name}")))?;
                if t.dims() != v.dims() {
                    return Err(mismatch(format!(
                        "{name} has shape {:?}, expected {:?}",
                        t.dims(),
                        v.dims()
                    )));
                }
                sum = (sum + t.as_tensor().to_dtype(DType::F64)?)?;
            }
            #[allow(clippy::cast_precision_loss)]
            let mean = (sum / models.len() as f64)?;
            v.set(&mean.to_dtype(v.dtype())?)?;
        }
        Ok(())
    }

    /// Names of every variable.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// Loads the values of every variable from a safetensors file written by [`Params::save`]
    /// (names and shapes checked).
    pub fn load_values(&self, path: &Path) -> Result<(), DistillError> {
        let dev = self.vars.values().next().map_or(Device::Cpu, |v| v.device().clone());
        let map = candle_core::safetensors::load(path, &dev)
            .map_err(|e| DistillError::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?;
        for (name, v) in &self.vars {
            let t = map.get(name).ok_or_else(|| DistillError::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("no tensor {name}"),
            })?;
            if t.dims() != v.dims() {
                return Err(DistillError::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!("{name} has shape {:?}, expected {:?}", t.dims(), v.dims()),
                });
            }
            v.set(&t.to_dtype(v.dtype())?)?;
        }
        Ok(())
    }
}
