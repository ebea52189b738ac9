//! `ditto calibrate`: runs the float BERT or GPT-2 on sample text, records the value ranges, and writes
//! the QuantConfig with the most fractional bits that keep every value inside its ring (with
//! headroom for the conversion primitives). Static: nothing is measured at run time. The chosen
//! config is then run as the plaintext fixed-point reference on the same text; while any
//! operation's input leaves its admitted range, it gives up a fractional bit (or widens the
//! LayerNorm octaves) and tries again, and it never writes a config the text drives out of range.

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

/// A model to calibrate and its sample inputs (token ids).
enum Sampled {
    Bert(Box<Bert>, Vec<Vec<u32>>),
    Gpt2(Box<ditto_models::gpt2::Gpt2>, Vec<Vec<u32>>),
}

impl Sampled {
    fn load(dir: &Path, lines: &[String]) -> Result<Self, CliError> {
        if ditto_models::spec::ModelSpec::Dir(dir.to_path_buf()).is_gpt2()? {
            use ditto_models::config::Gpt2Config;
            let cfg = Gpt2Config::load(&dir.join("config.json"))?;
            let m = ditto_models::gpt2::Gpt2::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)?;
            let tok = Tokenizer::gpt2_dir(dir)?;
            let ids = lines.iter().map(|l| tok.encode(l, cfg.n_positions)).collect::<Result<_, _>>()?;
            return Ok(Sampled::Gpt2(Box::new(m), ids));
        }
        let cfg = BertConfig::load(&dir.join("config.json"))?;
        let bert = Bert::load(&cfg, &Weights::load(&dir.join("model.safetensors"))?)?;
        let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
        let ids =
            lines.iter().map(|l| tok.encode(l, cfg.max_position_embeddings)).collect::<Result<_, _>>()?;
        Ok(Sampled::Bert(Box::new(bert), ids))
    }

    /// The float model's value ranges over the inputs.
    fn ranges(&self) -> Result<Ranges, CliError> {
        Ok(match self {
            Sampled::Bert(b, inputs) => {
                let mut r = b.weight_ranges();
                for ids in inputs {
                    b.forward_ranges(ids, Some(&mut r))?;
                }
                r
            }
            Sampled::Gpt2(m, inputs) => {
                let mut r = m.weight_ranges();
                for ids in inputs {
                    m.forward_ranges(ids, &mut ditto_models::gpt2::KvCache::default(), Some(&mut r))?;
                }
                r
            }
        })
    }

    /// The fixed-point reference's range report under `q` over the inputs.
    fn range_report(&self, q: &QuantConfig) -> Result<ditto_mpc::range::RangeReport, CliError> {
        let rt = crate::util::runtime()?;
        Ok(match self {
            Sampled::Bert(b, inputs) => rt.block_on(ditto_models::range::bert(b, q, inputs))?,
            Sampled::Gpt2(m, inputs) => rt.block_on(ditto_models::range::gpt2(m, q, inputs))?,
        })
    }
}

/// Fractional bits given up at most while the reference reports inputs out of range.
const RETRIES: usize = 8;

/// `q`, or the nearest config with fewer fractional bits (or wider LayerNorm octaves) that keeps
/// every input of the sample in range in the fixed-point reference; an error naming the
/// remaining issues when none within [`RETRIES`] steps does.
fn in_range(model: &Sampled, mut q: QuantConfig) -> Result<QuantConfig, CliError> {
    let mut retries = 0;
    loop {
        let report = model.range_report(&q)?;
        crate::util::say_range(&report);
        if report.is_clean() {
            return Ok(q);
        }
        if retries == RETRIES || !loosen(&report, &mut q) {
            return Err(CliError::OutOfRange { retries, issues: report.lines(5).join("; ") });
        }
        retries += 1;
        say!(
            "retry   act_frac {}, weight_frac {}, LayerNorm octaves {:?}",
            q.act_frac,
            q.weight_frac,
            q.ln_octaves
        );
    }
}

/// One step away from what `report` shows out of range: wider LayerNorm octaves for rsqrt,
/// else an activation bit, else a weight bit; false when nothing is left to give up.
fn loosen(report: &ditto_mpc::range::RangeReport, q: &mut QuantConfig) -> bool {
    if report.issues.iter().any(|i| i.op == "rsqrt") {
        q.ln_octaves = (q.ln_octaves.0 - 1, q.ln_octaves.1 + 1);
    } else if q.act_frac > 4 {
        q.act_frac -= 1;
    } else if q.weight_frac > 4 {
        q.weight_frac -= 1;
        q.dense_frac.values_mut().for_each(|f| *f = (*f).saturating_sub(1).max(4));
    } else {
        return false;
    }
    true
}

/// Runs `ditto calibrate`.
pub fn run(a: &CalibrateArgs) -> Result<(), CliError> {
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
    let model = Sampled::load(&a.model, &lines)?;
    let r = model.ranges()?;
    let q = in_range(&model, r.choose())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_of_range_config_gives_up_bits_until_the_sample_runs_clean() {
        let bert = ditto_models::seeded::model(1);
        let inputs =
            vec![ditto_models::seeded::tokenize("calibration sample"), ditto_models::seeded::tokenize("x")];
        let model = Sampled::Bert(Box::new(bert), inputs);
        // 14 + 14 fractional bits drive the built-in BERT out of range (attention scores above 4).
        let mut hot = QuantConfig::accurate();
        (hot.act_frac, hot.weight_frac) = (14, 14);
        assert!(!model.range_report(&hot).unwrap().is_clean());
        let q = in_range(&model, hot.clone()).unwrap();
        assert!(model.range_report(&q).unwrap().is_clean());
        assert!(q.act_frac < hot.act_frac && q.weight_frac == hot.weight_frac, "{q:?}");
        // The nearest clean config: one more activation bit is out of range again.
        let mut more = q.clone();
        more.act_frac += 1;
        assert!(!model.range_report(&more).unwrap().is_clean(), "{q:?} is not the nearest");
        // A config already in range comes back unchanged.
        assert_eq!(in_range(&model, QuantConfig::accurate()).unwrap(), QuantConfig::accurate());
    }
}
