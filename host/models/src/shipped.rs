//! The model shipped inside ditto: `models/austen-gpt2` of the repository, a small GPT-2
//! (4 layers, hidden 128, 2 heads, 64 positions, a 1024-entry byte-level BPE) trained with
//! `ditto train-lm` on five of Jane Austen's novels and distilled into Ditto mode with
//! `ditto distill` (its `quant.json`). Compiled into the binary, so `ditto demo` needs no file.

use std::path::Path;

use crate::ModelError;
use crate::config::Gpt2Config;
use crate::gpt2::Gpt2;
use crate::quant::QuantConfig;
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

const CONFIG: &str = include_str!("../../../models/austen-gpt2/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../../models/austen-gpt2/model.safetensors");
const TOKENIZER: &[u8] = include_bytes!("../../../models/austen-gpt2/tokenizer.json");
const QUANT: &str = include_str!("../../../models/austen-gpt2/quant.json");

/// Where the shipped model lives in the repository.
pub const PATH: &str = "models/austen-gpt2";

/// The shipped GPT-2, its tokenizer and its QuantConfig.
pub fn gpt2() -> Result<(Gpt2, Tokenizer, QuantConfig), ModelError> {
    let p = |f: &str| Path::new(PATH).join(f);
    let cfg = Gpt2Config::from_json(CONFIG, &p("config.json"))?;
    let m = Gpt2::load(&cfg, &Weights::from_bytes(WEIGHTS, &p("model.safetensors"))?)?;
    let tok = Tokenizer::from_bytes(TOKENIZER, PATH)?;
    let q = QuantConfig::from_json(QUANT)
        .map_err(|reason| ModelError::Config { path: p("quant.json"), reason })?;
    Ok((m, tok, q))
}
