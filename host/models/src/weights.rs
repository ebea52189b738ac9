//! Weights from a safetensors file, looked up by name with shapes checked. F32, F16 and BF16
//! tensors are read as f32; other tensors (e.g. BERT's I64 `position_ids`) are skipped unless a
//! model asks for them.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::ModelError;

/// Named f32 tensors.
#[derive(Debug, Default)]
pub struct Weights {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    skipped: HashMap<String, String>,
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (31, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

impl Weights {
    /// Reads every float tensor of a safetensors file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes =
            std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses safetensors bytes (`path` names them in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::Safetensors { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut w = Weights::default();
        for (name, view) in st.tensors() {
            let data = view.data();
            let vals: Vec<f32> = match view.dtype() {
                Dtype::F32 => {
                    data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
                }
                Dtype::F16 => {
                    data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()
                }
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                    .collect(),
                other => {
                    w.skipped.insert(name.clone(), format!("{other:?}"));
                    continue;
                }
            };
            w.tensors.insert(name, (view.shape().to_vec(), vals));
        }
        Ok(w)
    }

    /// Adds a tensor (tests and converters).
    pub fn insert(&mut self, name: &str, shape: &[usize], data: Vec<f32>) {
        self.tensors.insert(name.to_string(), (shape.to_vec(), data));
    }

    /// The tensor named by the first of `names` present, which must have `shape`.
    pub fn get(&self, names: &[String], shape: &[usize]) -> Result<&[f32], ModelError> {
        for n in names {
            if let Some((s, v)) = self.tensors.get(n) {
                if s != shape {
                    return Err(ModelError::Shape {
                        name: n.clone(),
                        expected: shape.to_vec(),
                        got: s.clone(),
                    });
                }
                return Ok(v);
            }
            if let Some(d) = self.skipped.get(n) {
                return Err(ModelError::Dtype { name: n.clone(), dtype: d.clone() });
            }
        }
        Err(ModelError::MissingTensor {
            name: names.first().cloned().unwrap_or_default(),
            tried: names.join(", "),
        })
    }

    /// Names of the float tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }
}
