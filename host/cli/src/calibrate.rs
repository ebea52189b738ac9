//! `ditto calibrate`: runs the float BERT or GPT-2 on sample text, records the value ranges, and writes
//! the QuantConfig with the most fractional bits that keep every value inside its ring (with
//! headroom for the conversion primitives). Static: nothing is measured at run time.

use std::path::{Path, PathBuf};

use ditto_models::bert::Bert;
use ditto_models::config::BertConfig;
use ditto_models::quant::{QuantConfig, Ranges};
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;

use crate::files::CliError;

/// Varied English sentences used when no --text file is given.
const SAMPLE: &[&str] = &[
    "A man is eating food.",
    "The girl is carrying a baby.",
    "Two men pushed carts through the woods.",
    "It was the best of times, it was the worst of times.",
    "How many people live in Berlin?",
    "The stock market fell sharply on Tuesday after the announcement.",
    "Please pass the salt and the pepper.",
    "Quantum computers use qubits instead of bits.",
    "I can't believe it's already 2026!",
    "She sells sea shells by the sea shore.",
];

/// Arguments of `ditto calibrate`.
#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// A Hugging Face BERT or GPT-2 directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Sample text, one sentence per line (default: built-in sentences).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Where to write the QuantConfig (default: quant.json in the model directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A QuantConfig by preset name (accurate, ditto) or from a JSON file.
pub fn load_quant(spec: &str) -> Result<QuantConfig, CliError> {
    match spec {
        "accurate" => Ok(QuantConfig::accurate()),
        "ditto" => Ok(QuantConfig::ditto()),
        path => {
            let p = Path::new(path);
            let text = std::fs::read_to_string(p)
                .map_err(|source| CliError::File { path: p.to_path_buf(), source })?;
            QuantConfig::from_json(&text).map_err(|e| CliError::Usage(format!("{path}: {e}")))
        }
    }
}

fn bert_ranges(dir: &Path, lines: &[String]) -> Result<Ranges, CliError> {
    let cfg = BertConfig::load(&dir.join("config.json"))?;
    let bert = Bert::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)?;
    let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
    let mut r = bert.weight_ranges();
    for l in lines {
        let ids = tok.encode(l, cfg.max_position_embeddings)?;
        bert.forward_ranges(&ids, Some(&mut r))?;
    }
    Ok(r)
}

fn gpt2_ranges(dir: &Path, lines: &[String]) -> Result<Ranges, CliError> {
    use ditto_models::config::Gpt2Config;
    use ditto_models::gpt2::{Gpt2, KvCache};
    let cfg = Gpt2Config::load(&dir.join("config.json"))?;
    let m = Gpt2::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)?;
    let tok = Tokenizer::gpt2_dir(dir)?;
    let mut r = m.weight_ranges();
    for l in lines {
        let ids = tok.encode(l, cfg.n_positions)?;
        m.forward_ranges(&ids, &mut KvCache::default(), Some(&mut r))?;
    }
    Ok(r)
}

/// Runs `ditto calibrate`.
pub fn run(a: &CalibrateArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(a.model.join("config.json"))
        .map_err(|source| CliError::File { path: a.model.join("config.json"), source })?;
    let lines: Vec<String> = match &a.text {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|source| CliError::File { path: p.clone(), source })?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => SAMPLE.iter().map(|s| (*s).to_string()).collect(),
    };
    if lines.is_empty() {
        return Err(CliError::Usage("no sample text".into()));
    }
    let r = if ditto_models::config::is_gpt2_config(&text) {
        gpt2_ranges(&a.model, &lines)?
    } else {
        bert_ranges(&a.model, &lines)?
    };
    let q = r.choose();
    let out = a.out.clone().unwrap_or_else(|| a.model.join("quant.json"));
    let json = serde_json::to_string_pretty(&q).map_err(|e| CliError::Usage(e.to_string()))?;
    std::fs::write(&out, json + "\n").map_err(|source| CliError::File { path: out.clone(), source })?;
    say!("ranges  {r:?} over {} sentences", lines.len());
    say!(
        "chosen  act_frac {}, weight_frac {} ({} linear layers with more weight bits), LayerNorm octaves {:?}",
        q.act_frac,
        q.weight_frac,
        q.dense_frac.len(),
        q.ln_octaves
    );
    say!("wrote   {}", out.display());
    Ok(())
}
