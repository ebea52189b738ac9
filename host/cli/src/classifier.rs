//! The sentiment pipeline: `ditto train-classifier` (fine-tunes a BERT such as
//! all-MiniLM-L6-v2 with a classification head on the polarity training split: the teacher),
//! `ditto distill` on it (see `distill.rs`), and `ditto eval-classifier` (test accuracy: float,
//! the Ditto-mode fixed-point model, and secure runs).

use std::path::{Path, PathBuf};

use candle_core::DType;
use ditto_distill::bert;
use ditto_distill::sentiment::{self, Example, accuracy, batch, load, nth_batch, predict, save};
use ditto_distill::student::Mode;
use ditto_distill::train::{self, Checkpoint};
use ditto_models::tokenizer::Tokenizer;

use crate::files::CliError;
use crate::training::{LoopArgs, bar, data_path, err, resumed};
use ditto_models::quant::QuantConfig;

/// `ditto train-classifier`.
#[derive(clap::Args, Debug)]
pub struct TrainClsArgs {
    /// The BERT to fine-tune (default: the all-MiniLM-L6-v2 of scripts/fetch-models).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Labelled sentences as scripts/fetch-data writes them (default: the cache's polarity.tsv).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory: the classifier in the HF layout.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training split.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    #[command(flatten)]
    pub train: LoopArgs,
}

/// `ditto eval-classifier`.
#[derive(clap::Args, Debug)]
pub struct EvalClsArgs {
    /// A BERT classifier directory (with `quant.json` for a distilled student).
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled sentences (default: the cache's polarity.tsv; its test split is scored).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which split to score.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    pub split: Split,
    /// Fixed-point accuracy under this QuantConfig (Ditto mode: Quad GeLU), e.g. to show the
    /// undistilled model with Quad GeLU swapped in. Default: the model's quant.json, if any.
    #[arg(long)]
    pub quant: Option<String>,
    /// Also classify the first N sentences of the split securely (dealer, P0, P1 in one process).
    #[arg(long, default_value_t = 0)]
    pub secure: usize,
}

/// A split of the polarity data (80/10/10, fixed by a seeded shuffle).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 3200 training sentences.
    Train,
    /// The 400 validation sentences.
    Validation,
    /// The 400 test sentences.
    Test,
}

/// The polarity splits, tokenized: `data`, else the cache's polarity.tsv.
fn splits(tok: &Tokenizer, data: Option<&Path>) -> Result<[Vec<Example>; 3], CliError> {
    Ok(sentiment::splits(tok, &data_path(data, "polarity.tsv"))?)
}

/// `ditto train-classifier`.
pub fn train_classifier(a: &TrainClsArgs) -> Result<(), CliError> {
    let dir = a.model.clone().unwrap_or_else(|| ditto_models::cache_dir().join("all-minilm-l6-v2"));
    let (m, tok) = load(&dir, DType::F32, a.train.seed)?;
    let [tr, va, te] = splits(&tok, a.data.as_deref())?;
    say!("data    {} training, {} validation, {} test sentences", tr.len(), va.len(), te.len());
    let steps = a.epochs * tr.len().div_ceil(a.train.batch);
    let opts = a.train.options(steps, 5e-5);
    let ckpt = Checkpoint::new(&a.out.join("checkpoint"));
    resumed(&ckpt)?;
    let started = std::time::Instant::now();
    let mut progress = bar("classifier");
    train::run(
        "classifier",
        &m.params,
        &opts,
        Some(&ckpt),
        &mut |k| {
            let (ids, lengths, labels) = batch(&nth_batch(&tr, opts.batch, opts.seed, k))?;
            let (logits, _) = m.forward(&ids, &lengths, &Mode::Float, false)?;
            bert::class_loss(&logits, &labels)
        },
        &mut progress,
    )
    .map_err(err)?;
    let (pv, pt) = (predict(&m, &Mode::Float, &va)?, predict(&m, &Mode::Float, &te)?);
    say!(
        "trained {steps} steps in {:.0} s; accuracy: validation {:.2}%, test {:.2}%",
        started.elapsed().as_secs_f64(),
        accuracy(&pv, &va),
        accuracy(&pt, &te)
    );
    Ok(save(&m, &dir, &a.out, None)?)
}

/// Sentences the fixed-point reference checks for range issues at least.
const RANGE_SENTENCES: usize = 25;

/// `ditto eval-classifier`.
pub fn eval_classifier(a: &EvalClsArgs) -> Result<(), CliError> {
    let (m, tok) = load(&a.model, DType::F64, 0)?;
    let [tr, va, te] = splits(&tok, a.data.as_deref())?;
    let te = match a.split {
        Split::Train => tr,
        Split::Validation => va,
        Split::Test => te,
    };
    let pf = predict(&m, &Mode::Float, &te)?;
    say!("{:<7} {} sentences", format!("{:?}", a.split).to_lowercase(), te.len());
    say!("accuracy float                 {:.2}%", accuracy(&pf, &te));
    let spec = a
        .quant
        .clone()
        .or_else(|| a.model.join("quant.json").exists().then(|| path_str(&a.model.join("quant.json"))));
    let Some(spec) = spec else { return Ok(()) };
    let q = QuantConfig::from_spec(&spec)?;
    let mode = Mode::fixed(&q).map_err(err)?;
    let px = predict(&m, &mode, &te)?;
    say!(
        "accuracy fixed-point {:<9} {:.2}% (= the secure run within its ulps)",
        a.quant.as_deref().unwrap_or("ditto"),
        accuracy(&px, &te)
    );
    // The fixed-point reference's range report over the sentences run securely (at least the
    // first RANGE_SENTENCES).
    let bertm = m.to_model().map_err(err)?;
    let checked: Vec<Vec<u32>> =
        te.iter().take(a.secure.max(RANGE_SENTENCES)).map(|(s, _)| s.clone()).collect();
    say!("range check on the first {} sentences:", checked.len());
    crate::util::say_range(
        &crate::util::runtime()?.block_on(ditto_models::range::bert(&bertm, &q, &checked))?,
    );
    if a.secure > 0 {
        let n = a.secure.min(te.len());
        let started = std::time::Instant::now();
        let sentences: Vec<Vec<u32>> = te[..n].iter().map(|(s, _)| s.clone()).collect();
        let mut rng = ditto_core::prg::Prg::with_counter(&ditto_node::files::os_random16()?, 0);
        let local = ditto_mpc::local::Local::default();
        let logits = crate::util::runtime()?
            .block_on(ditto_models::bert::local::classify_local(&bertm, &q, &sentences, &local, &mut rng))?;
        let ps: Vec<u32> = logits.iter().map(|l| u32::from(l[1] > l[0])).collect();
        let agree = ps.iter().zip(&px).filter(|(s, x)| s == x).count();
        say!(
            "accuracy secure on the first {n}: {:.2}% (fixed-point on them {:.2}%; labels agree on {agree} of {n}; {:.1} s)",
            accuracy(&ps, &te[..n]),
            accuracy(&px[..n], &te[..n]),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
