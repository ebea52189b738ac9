//! A party's model share on disk (`ditto share-model`): magic `DITTOSHR`, format version (u32
//! LE), header length (u32 LE), a JSON header (config, QuantConfig, tensor names, rings, shapes,
//! scales), then every tensor's elements little-endian in header order. Loading checks every
//! field and size and names what is wrong.

use std::path::Path;

use ditto_core::Ring;
use ditto_mpc::Shared;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::config::BertConfig;
use crate::quant::QuantConfig;
use crate::secure_bert::BertShare;

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

/// A model whose shares can be written and read.
pub(crate) trait ShareTensors: Sized {
    /// "bert" or "gpt2".
    const ARCH: &'static str;
    /// The config as JSON.
    fn config_json(&self) -> serde_json::Value;
    /// The quantization config.
    fn quant_config(&self) -> &QuantConfig;
    /// The share-set id.
    fn share_id(&mut self) -> &mut [u8; 16];
    /// Zero tensors of the shapes a config implies.
    fn zeros_from(config: serde_json::Value, q: &QuantConfig) -> Result<Self, String>;
    /// Every tensor in a fixed order.
    fn visit_tensors(
        &mut self,
        f: &mut dyn FnMut(&str, TensorMut<'_>) -> Result<(), ModelError>,
    ) -> Result<(), ModelError>;
}

/// Either model's share, as read from a file.
pub enum ModelShare {
    /// BERT.
    Bert(Box<BertShare>),
    /// GPT-2.
    Gpt2(Box<crate::secure_gpt2::Gpt2Share>),
}

impl ModelShare {
    /// The id of the sharing (both parties' files of one `share-model` run carry it).
    pub fn share_set(&self) -> ditto_core::prg::ShareSetId {
        match self {
            ModelShare::Bert(b) => b.share_set(),
            ModelShare::Gpt2(g) => g.share_set(),
        }
    }

    /// Reads a share file of either architecture; returns it and its party.
    pub fn load(path: &Path) -> Result<(Self, u8), ModelError> {
        let (arch, h) = read_header(path)?;
        Ok(match arch.as_str() {
            "bert" => {
                let (s, p) = load_as::<BertShare>(path, h)?;
                (ModelShare::Bert(Box::new(s)), p)
            }
            "gpt2" => {
                let (s, p) = load_as::<crate::secure_gpt2::Gpt2Share>(path, h)?;
                (ModelShare::Gpt2(Box::new(s)), p)
            }
            other => return Err(bad(path, format!("unknown architecture {other:?}"))),
        })
    }
}

/// A tensor of a share, either ring.
pub(crate) enum TensorMut<'a> {
    /// Z_2^32.
    U32(&'a mut Shared<u32>),
    /// Z_2^64.
    U64(&'a mut Shared<u64>),
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
    t: &mut Shared<R>,
    path: &Path,
    name: &str,
) -> Result<(), ModelError> {
    let n = t.data.len() * R::BYTES;
    let Some(bytes) = data.get(*at..*at + n) else {
        return Err(bad(path, format!("truncated inside tensor {name}")));
    };
    for (v, b) in t.data.iter_mut().zip(bytes.chunks_exact(R::BYTES)) {
        *v = R::from_le(b);
    }
    *at += n;
    Ok(())
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

/// Writes party `party`'s share of any model.
pub(crate) fn save<S: ShareTensors>(share: &mut S, path: &Path, party: u8) -> Result<(), ModelError> {
    let (config, quant) = (share.config_json(), share.quant_config().clone());
    let mut tensors = Vec::new();
    let mut data = Vec::new();
    share.visit_tensors(&mut |name, t| {
        let (ring, shape, frac) = match &t {
            TensorMut::U32(s) => (32, s.shape.clone(), s.frac),
            TensorMut::U64(s) => (64, s.shape.clone(), s.frac),
        };
        match t {
            TensorMut::U32(s) => put(&mut data, s),
            TensorMut::U64(s) => put(&mut data, s),
        }
        tensors.push(TensorInfo { name: name.to_string(), ring, shape, frac });
        Ok(())
    })?;
    let share_id = share.share_id().iter().map(|b| format!("{b:02x}")).collect();
    let header =
        serde_json::to_vec(&Header { party, share_id, arch: S::ARCH.into(), config, quant, tensors })
            .map_err(|e| bad(path, e.to_string()))?;
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

/// The file's bytes and parsed header.
struct Parsed {
    bytes: Vec<u8>,
    header: Header,
    data_at: usize,
}

fn read_header(path: &Path) -> Result<(String, Parsed), ModelError> {
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
    Ok((header.arch.clone(), Parsed { bytes, header, data_at: 16 + hlen }))
}

fn load_as<S: ShareTensors>(path: &Path, p: Parsed) -> Result<(S, u8), ModelError> {
    let h = p.header;
    let mut share = S::zeros_from(h.config, &h.quant).map_err(|e| bad(path, format!("bad config: {e}")))?;
    let mut at = p.data_at;
    let mut i = 0;
    let data = &p.bytes[..];
    share.visit_tensors(&mut |name, t| {
        let Some(info) = h.tensors.get(i) else {
            return Err(bad(path, format!("tensor {name} missing from the header")));
        };
        i += 1;
        let (ring, shape) = match &t {
            TensorMut::U32(s) => (32, &s.shape),
            TensorMut::U64(s) => (64, &s.shape),
        };
        if info.name != name || info.ring != ring || &info.shape != shape {
            return Err(bad(
                path,
                format!(
                    "tensor {} (ring {}, shape {:?}) where {name} (ring {ring}, shape {shape:?}) belongs",
                    info.name, info.ring, info.shape
                ),
            ));
        }
        match t {
            TensorMut::U32(s) => {
                s.frac = info.frac;
                take(data, &mut at, s, path, name)
            }
            TensorMut::U64(s) => {
                s.frac = info.frac;
                take(data, &mut at, s, path, name)
            }
        }
    })?;
    if at != p.bytes.len() {
        return Err(bad(path, format!("{} bytes after the last tensor", p.bytes.len() - at)));
    }
    *share.share_id() = parse_share_id(&h.share_id).ok_or_else(|| bad(path, "bad share_id in the header"))?;
    Ok((share, h.party))
}

impl BertShare {
    /// Writes party `party`'s share.
    pub fn save(&mut self, path: &Path, party: u8) -> Result<(), ModelError> {
        save(self, path, party)
    }

    /// Reads a BERT share written by [`BertShare::save`]; returns it and its party.
    pub fn load(path: &Path) -> Result<(Self, u8), ModelError> {
        match ModelShare::load(path)? {
            (ModelShare::Bert(s), p) => Ok((*s, p)),
            (ModelShare::Gpt2(_), _) => Err(bad(path, "a GPT-2 share, not a BERT one")),
        }
    }
}

impl ShareTensors for BertShare {
    const ARCH: &'static str = "bert";
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.config()).unwrap_or_default()
    }
    fn quant_config(&self) -> &QuantConfig {
        self.quant()
    }
    fn share_id(&mut self) -> &mut [u8; 16] {
        &mut self.share_id
    }
    fn zeros_from(config: serde_json::Value, q: &QuantConfig) -> Result<Self, String> {
        let c: BertConfig = serde_json::from_value(config).map_err(|e| e.to_string())?;
        Ok(BertShare::zeros(&c, q))
    }
    fn visit_tensors(
        &mut self,
        f: &mut dyn FnMut(&str, TensorMut<'_>) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        self.visit(f)
    }
}
