//! `ditto calibrate`: chooses a QuantConfig for a BERT or GPT-2 directory from sample text
//! (`ditto_models::calibrate`: float ranges, then the fixed-point reference's range checks) and
//! writes it. Static: nothing is measured at run time.

use std::path::PathBuf;

use ditto_models::calibrate::Calibration;
use ditto_models::spec::ModelSpec;

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
    let spec = ModelSpec::Dir(a.model.clone());
    let (model, tok) = (spec.load()?, spec.tokens()?);
    let positions = spec.config()?.positions();
    let inputs = lines.iter().map(|l| tok.encode(l, positions)).collect::<Result<_, _>>()?;
    let c = Calibration { model, inputs };
    let r = c.ranges()?;
    let q = crate::util::runtime()?.block_on(c.in_range(r.choose(), |report, next| {
        crate::util::say_range(report);
        if let Some(q) = next {
            say!(
                "retry   act_frac {}, weight_frac {}, LayerNorm octaves {:?}",
                q.act_frac,
                q.weight_frac,
                q.ln_octaves
            );
        }
    }))?;
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
