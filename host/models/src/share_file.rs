//! A party's model share on disk (`ditto share-model`): magic `DITTOSHR`, format version (u32
//! LE), header length (u32 LE), a JSON header (config, QuantConfig, tensor names, rings, shapes,
//! scales), then every tensor's elements little-endian in header order. Loading checks every
//! field and size and names what is wrong.

use std::path::Path;

use ditto_core::Ring;
use ditto_mpc::Shared;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::bert::secure::BertShare;
use crate::gpt2::secure::Gpt2Share;
use crate::quant::QuantConfig;
use crate::sharing::{Arch, Share, Tensor};

const MAGIC: &[u8; 8] = b"DITTOSHR";
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct TensorInfo {
    name: String,
    ring: u32,
    shape: Vec<usize>,
    frac: u32,
}

#[derive(Serialize, Deserialize)]
struct Header {
    party: u8,
    /// The share-set id (hex), the same in both parties' files of one sharing.
    share_id: String,
    arch: String,
    config: serde_json::Value,
    quant: QuantConfig,
    tensors: Vec<TensorInfo>,
}

/// Either model's share, as read from a file (a serving party clones it per request, since a
/// session's weight setup consumes its share).
#[derive(Clone)]
pub enum ModelShare {
    /// BERT.
    Bert(Box<BertShare>),
    /// GPT-2.
    Gpt2(Box<Gpt2Share>),
}

impl ModelShare {
    /// The id of the sharing (both parties' files of one `share-model` run carry it).
    pub fn share_set(&self) -> ditto_core::prg::ShareSetId {
        match self {
            ModelShare::Bert(b) => b.share_set(),
            ModelShare::Gpt2(g) => g.share_set(),
        }
    }

    /// The model's config.
    pub fn config(&self) -> crate::spec::ModelConfig {
        match self {
            ModelShare::Bert(b) => crate::spec::ModelConfig::Bert(b.config().clone()),
            ModelShare::Gpt2(g) => crate::spec::ModelConfig::Gpt2(g.config().clone()),
        }
    }

    /// The quantization config.
    pub fn quant(&self) -> &QuantConfig {
        match self {
            ModelShare::Bert(b) => b.quant(),
            ModelShare::Gpt2(g) => g.quant(),
        }
    }

    /// Reads a share file of either architecture; returns it and its party.
    pub fn load(path: &Path) -> Result<(Self, u8), ModelError> {
        let p = read_header(path)?;
        Ok(match p.header.arch.as_str() {
            "bert" => {
                let (s, party) = load_as(path, p)?;
                (ModelShare::Bert(Box::new(s)), party)
            }
            "gpt2" => {
                let (s, party) = load_as(path, p)?;
                (ModelShare::Gpt2(Box::new(s)), party)
            }
            other => return Err(bad(path, format!("unknown architecture {other:?}"))),
        })
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Config { path: path.to_path_buf(), reason: reason.into() }
}

fn put<R: Ring>(out: &mut Vec<u8>, t: &Shared<R>) {
    let start = out.len();
    out.resize(start + t.data.len() * R::BYTES, 0);
    for (v, o) in t.data.iter().zip(out[start..].chunks_exact_mut(R::BYTES)) {
        v.write_le(o);
    }
}

fn take<R: Ring>(
    data: &[u8],
    at: &mut usize,
    shape: &[usize],
    frac: u32,
    path: &Path,
    name: &str,
) -> Result<Shared<R>, ModelError> {
    let bytes = shape
        .iter()
        .try_fold(R::BYTES, |a, d| a.checked_mul(*d))
        .and_then(|n| data.get(*at..at.checked_add(n)?))
        .ok_or_else(|| bad(path, format!("truncated inside tensor {name}")))?;
    *at += bytes.len();
    Ok(Shared { data: bytes.chunks_exact(R::BYTES).map(R::from_le).collect(), shape: shape.to_vec(), frac })
}

fn parse_share_id(hex: &str) -> Option<[u8; 16]> {
    let mut id = [0u8; 16];
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

impl<C: Arch> Share<C> {
    /// Writes party `party`'s share.
    pub fn save(&self, path: &Path, party: u8) -> Result<(), ModelError> {
        let mut tensors = Vec::new();
        let mut data = Vec::new();
        for (name, t) in &self.tensors {
            let frac = match t {
                Tensor::U32(s) => {
                    put(&mut data, s);
                    s.frac
                }
                Tensor::U64(s) => {
                    put(&mut data, s);
                    s.frac
                }
            };
            tensors.push(TensorInfo { name: name.clone(), ring: t.ring(), shape: t.shape().to_vec(), frac });
        }
        let share_id = self.share_id.iter().map(|b| format!("{b:02x}")).collect();
        let config = serde_json::to_value(&self.cfg).map_err(|e| bad(path, e.to_string()))?;
        let header = Header { party, share_id, arch: C::NAME.into(), config, quant: self.q.clone(), tensors };
        let header = serde_json::to_vec(&header).map_err(|e| bad(path, e.to_string()))?;
        let mut out = Vec::with_capacity(16 + header.len() + data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(
            &u32::try_from(header.len()).map_err(|_| bad(path, "header too large"))?.to_le_bytes(),
        );
        out.extend_from_slice(&header);
        out.extend_from_slice(&data);
        std::fs::write(path, out).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })
    }

    /// Reads a share written by [`Share::save`] of this architecture; returns it and its party.
    pub fn load(path: &Path) -> Result<(Self, u8), ModelError> {
        let p = read_header(path)?;
        if p.header.arch != C::NAME {
            return Err(bad(path, format!("a {} share, not a {} one", p.header.arch, C::NAME)));
        }
        load_as(path, p)
    }
}

/// The file's bytes and parsed header.
struct Parsed {
    bytes: Vec<u8>,
    header: Header,
    data_at: usize,
}

fn read_header(path: &Path) -> Result<Parsed, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad(path, "not a ditto model share (bad magic)"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(bad(path, format!("share format version {version}, this build reads {VERSION}")));
    }
    let hlen = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    let Some(hbytes) = bytes.get(16..16 + hlen) else {
        return Err(bad(path, "truncated header"));
    };
    let header: Header = serde_json::from_slice(hbytes).map_err(|e| bad(path, format!("bad header: {e}")))?;
    Ok(Parsed { bytes, header, data_at: 16 + hlen })
}

/// Checks the file's tensor list against the architecture's, then reads every tensor.
fn load_as<C: Arch>(path: &Path, p: Parsed) -> Result<(Share<C>, u8), ModelError> {
    let h = p.header;
    let cfg: C = serde_json::from_value(h.config).map_err(|e| bad(path, format!("bad config: {e}")))?;
    cfg.check().map_err(|e| bad(path, format!("bad config: {e}")))?;
    let specs = cfg.specs(&h.quant);
    if h.tensors.len() != specs.len() {
        return Err(bad(
            path,
            format!("{} tensors, where the config implies {}", h.tensors.len(), specs.len()),
        ));
    }
    let mut at = p.data_at;
    let data = &p.bytes[..];
    let mut tensors = Vec::with_capacity(specs.len());
    for (s, info) in specs.into_iter().zip(&h.tensors) {
        if info.name != s.name || info.ring != s.ring || info.shape != s.shape {
            return Err(bad(
                path,
                format!(
                    "tensor {} (ring {}, shape {:?}) where {} (ring {}, shape {:?}) belongs",
                    info.name, info.ring, info.shape, s.name, s.ring, s.shape
                ),
            ));
        }
        let t = if s.ring == 32 {
            Tensor::U32(take(data, &mut at, &s.shape, info.frac, path, &s.name)?)
        } else {
            Tensor::U64(take(data, &mut at, &s.shape, info.frac, path, &s.name)?)
        };
        tensors.push((s.name, t));
    }
    if at != p.bytes.len() {
        return Err(bad(path, format!("{} bytes after the last tensor", p.bytes.len() - at)));
    }
    let share_id = parse_share_id(&h.share_id).ok_or_else(|| bad(path, "bad share_id in the header"))?;
    Ok((Share { share_id, cfg, q: h.quant, tensors }, h.party))
}
