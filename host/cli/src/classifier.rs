//! The sentiment pipeline: `ditto train-classifier` (fine-tunes a BERT such as
//! all-MiniLM-L6-v2 with a classification head on the polarity training split: the teacher),
//! `ditto distill` on it (see `distill.rs`), and `ditto eval-classifier` (test accuracy: float,
//! the Ditto-mode fixed-point model, and secure runs).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ditto_distill::bert::{self, CandleBert};
use ditto_distill::data::{self, SplitMix};
use ditto_distill::student::Mode;
use ditto_distill::train::{self, Checkpoint, State};
use ditto_models::bert::Bert;
use ditto_models::config::BertConfig;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;

use crate::distill::{LoopArgs, bar, err, resumed};
use crate::files::CliError;
use ditto_models::quant::QuantConfig;

/// A tokenized, labelled sentence.
pub type Example = (Vec<u32>, u32);

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

/// Token ids of every sentence, at most `max` tokens (longer ones keep their first max - 1
/// tokens and the final [SEP]).
pub fn tokenize(tok: &Tokenizer, rows: &data::Labelled, max: usize) -> Result<Vec<Example>, CliError> {
    rows.iter()
        .map(|(label, text)| {
            let mut ids = tok.encode(text, usize::MAX)?;
            if ids.len() > max {
                let sep = ids[ids.len() - 1];
                ids.truncate(max - 1);
                ids.push(sep);
            }
            Ok((ids, *label))
        })
        .collect()
}

/// A padded batch: ids [n, longest], lengths, labels.
pub fn batch(items: &[&Example]) -> Result<(Tensor, Vec<usize>, Vec<u32>), CliError> {
    let t = items.iter().map(|(ids, _)| ids.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(items.len() * t);
    for (s, _) in items {
        ids.extend(s);
        ids.extend(std::iter::repeat_n(0, t - s.len()));
    }
    let lengths = items.iter().map(|(s, _)| s.len()).collect();
    let labels = items.iter().map(|(_, l)| *l).collect();
    Ok((Tensor::from_vec(ids, (items.len(), t), &Device::Cpu).map_err(err)?, lengths, labels))
}

/// The `k`-th batch of an epoch-wise shuffled pass over `items` (shuffle seeded per epoch).
pub fn nth_batch(items: &[Example], size: usize, seed: u64, k: usize) -> Vec<&Example> {
    let per = items.len().div_ceil(size).max(1);
    let mut order: Vec<usize> = (0..items.len()).collect();
    SplitMix::new(seed ^ (k / per) as u64).shuffle(&mut order);
    let i = (k % per) * size;
    order[i..(i + size).min(items.len())].iter().map(|&j| &items[j]).collect()
}

/// The tokens between a sentence's [CLS] and [SEP] (none for a shorter list).
fn inner(ids: &[u32]) -> &[u32] {
    ids.get(1..ids.len().saturating_sub(1)).unwrap_or(&[])
}

/// [`nth_batch`] with its last `share` of sentences replaced by [`data::perturb`]ed copies
/// (drawn deterministically from `seed`, `k` and `stage`, so a resumed run sees the same
/// batches), and the number of unperturbed sentences (the first ones; their labels hold).
fn augmented_batch(
    items: &[Example],
    pool: &[u32],
    share: f64,
    size: usize,
    seed: u64,
    k: usize,
    stage: u8,
) -> (Vec<Example>, usize) {
    let mut out: Vec<Example> = nth_batch(items, size, seed, k).into_iter().cloned().collect();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let perturbed = ((share * out.len() as f64).round() as usize).min(out.len());
    let mut rng = SplitMix::new(seed ^ 0xA5A5_0000 ^ ((k as u64) << 8) ^ u64::from(stage));
    let n = out.len();
    for (ids, _) in &mut out[n - perturbed..] {
        *ids = data::perturb(ids, pool, &mut rng);
    }
    (out, n - perturbed)
}

/// Predicted labels of `items` under `mode`.
pub fn predict(m: &CandleBert, mode: &Mode, items: &[Example]) -> Result<Vec<u32>, CliError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(32) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let (ids, lengths, _) = batch(&refs)?;
        let (logits, _) = m.forward(&ids, &lengths, mode, false).map_err(err)?;
        out.extend(bert::predictions(&logits).map_err(err)?);
    }
    Ok(out)
}

/// Percentage of `pred` equal to the labels of `items`.
pub fn accuracy(pred: &[u32], items: &[Example]) -> f64 {
    let ok = pred.iter().zip(items).filter(|(p, (_, l))| *p == l).count();
    #[allow(clippy::cast_precision_loss)]
    let a = 100.0 * ok as f64 / items.len().max(1) as f64;
    a
}

fn labelled_config(dir: &Path) -> Result<BertConfig, CliError> {
    let mut cfg = BertConfig::load(&dir.join("config.json"))?;
    if cfg.num_labels().is_none() {
        cfg.architectures = vec!["BertForSequenceClassification".into()];
        cfg.id2label =
            [("0", "negative"), ("1", "positive")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    }
    Ok(cfg)
}

/// Loads a BERT classifier directory (a model without a head gets a fresh one, seeded).
pub fn load(dir: &Path, dtype: DType, seed: u64) -> Result<(CandleBert, Tokenizer), CliError> {
    let cfg = labelled_config(dir)?;
    let mut w = Weights::load(&dir.join("model.safetensors"))?;
    let (h, labels) = (cfg.hidden_size, cfg.num_labels().unwrap_or(2));
    if !w.names().any(|n| n.ends_with("classifier.weight")) {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = ditto_core::prg::Prg::with_counter(&key, 7);
        let a = 0.02 * 3f32.sqrt();
        w.insert("pooler.dense.weight", &[h, h], ditto_models::seeded::uniform(&mut rng, h * h, a));
        w.insert("pooler.dense.bias", &[h], vec![0.0; h]);
        w.insert("classifier.weight", &[labels, h], ditto_models::seeded::uniform(&mut rng, labels * h, a));
        w.insert("classifier.bias", &[labels], vec![0.0; labels]);
    }
    let m = Bert::load(&cfg, &w)?;
    let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
    Ok((CandleBert::from_model(&m, dtype, &Device::Cpu).map_err(err)?, tok))
}

/// Writes a classifier directory: config.json, model.safetensors (`tensors`), tokenizer.json.
pub fn save(
    m: &CandleBert,
    from: &Path,
    out: &Path,
    tensors: Option<std::collections::BTreeMap<String, Tensor>>,
) -> Result<(), CliError> {
    std::fs::create_dir_all(out).map_err(|e| CliError::File { path: out.to_path_buf(), source: e })?;
    let cfg = serde_json::to_string_pretty(&m.cfg).map_err(err)?;
    std::fs::write(out.join("config.json"), cfg)
        .map_err(|e| CliError::File { path: out.join("config.json"), source: e })?;
    match tensors {
        Some(t) => {
            ditto_distill::params::Params::save_tensors(&t, &out.join("model.safetensors")).map_err(err)?
        }
        None => m.params.save(&out.join("model.safetensors"), DType::F32).map_err(err)?,
    }
    if from != out {
        std::fs::copy(from.join("tokenizer.json"), out.join("tokenizer.json"))
            .map_err(|e| CliError::File { path: out.join("tokenizer.json"), source: e })?;
    }
    Ok(())
}

/// The polarity splits, tokenized (64 tokens at most).
pub fn splits(tok: &Tokenizer, data: Option<&Path>) -> Result<[Vec<Example>; 3], CliError> {
    let s = data::polarity(&crate::distill::data_path(data, "polarity.tsv")).map_err(err)?;
    Ok([tokenize(tok, &s.train, 64)?, tokenize(tok, &s.valid, 64)?, tokenize(tok, &s.test, 64)?])
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
            let (ids, lengths, labels) =
                batch(&nth_batch(&tr, opts.batch, opts.seed, k)).map_err(data_err)?;
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
    save(&m, &dir, &a.out, None)
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
        let logits = crate::demo::classify_local(
            &bertm,
            &q,
            &te[..n].iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        )?;
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

/// A CLI error inside a training loop.
pub fn data_err(e: CliError) -> ditto_distill::DistillError {
    ditto_distill::DistillError::Data(e.to_string())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `ditto distill` of a BERT classifier: stage 1 on every layer's scores and hidden states,
/// stage 2 on the classification logits, then test accuracy of the teacher, the student and
/// the undistilled model in Ditto mode (f32 emulation; `eval-classifier` is exact).
pub fn distill_bert(
    a: &crate::distill::DistillArgs,
    q: &ditto_models::quant::QuantConfig,
    mode: &Mode,
) -> Result<(), CliError> {
    let augment = a.augment.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&augment) {
        return Err(CliError::Usage(format!("--augment {augment} is not a share in [0, 1]")));
    }
    let hard_label = a.hard_label.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&hard_label) {
        return Err(CliError::Usage(format!("--hard-label {hard_label} is not a weight in [0, 1]")));
    }
    if a.keep_best && a.eval_every == 0 {
        return Err(CliError::Usage(
            "--keep-best chooses by validation accuracy: it needs --eval-every N (N > 0)".into(),
        ));
    }
    let (teacher, tok) = load(&a.teacher, DType::F32, 0)?;
    let (student, _) = load(&a.teacher, DType::F32, 0)?;
    let [tr, va, te] = splits(&tok, a.data.as_deref())?;
    let ckpt = Checkpoint::new(&a.out.join("checkpoint"));
    resumed(&ckpt)?;
    let mut progress = bar("distill");
    let pool: Vec<u32> = tr.iter().flat_map(|(s, _)| inner(s).iter().copied()).collect();
    let step = |stage: u8, k: usize, seed: u64, size: usize| -> Result<Tensor, ditto_distill::DistillError> {
        let (items, clean) = augmented_batch(&tr, &pool, augment, size, seed, k, stage);
        let (ids, lengths, labels) = batch(&items.iter().collect::<Vec<_>>()).map_err(data_err)?;
        // Stage 2's step 0 is the student stage 1 left.
        if a.eval_every > 0 && (k > 0 || stage == 2) && k.is_multiple_of(a.eval_every) {
            let acc = accuracy(&predict(&student, mode, &va).map_err(data_err)?, &va);
            say!("stage{stage}: step {k}, validation accuracy of the student {acc:.2}%");
            if a.keep_best {
                ckpt.offer_best(&student.params, &State { phase: format!("stage{stage}"), step: k }, acc)?;
            }
        }
        let (tl, tt) = teacher.forward(&ids, &lengths, &Mode::Float, stage == 1)?;
        let (sl, st) = student.forward(&ids, &lengths, mode, stage == 1)?;
        if stage == 1 {
            train::stage1_loss(&st, &tt)
        } else {
            bert::labelled_stage2_loss(&sl, &tl, &labels[..clean], hard_label)
        }
    };
    let state = ckpt.state().map_err(err)?;
    if state.as_ref().is_some_and(|s| s.phase == "stage2") {
        ckpt.restore(&student.params).map_err(err)?;
    } else {
        let o1 = a.stage1_options(2e-5);
        train::run(
            "stage1",
            &student.params,
            &o1,
            Some(&ckpt),
            &mut |k| step(1, k, o1.seed, o1.batch),
            &mut progress,
        )
        .map_err(err)?;
    }
    let o2 = a.stage2_options(1e-5);
    train::run(
        "stage2",
        &student.params,
        &o2,
        Some(&ckpt),
        &mut |k| step(2, k, o2.seed ^ 2, o2.batch),
        &mut progress,
    )
    .map_err(err)?;
    if a.keep_best {
        keep_best(&ckpt, &student, mode, &va, o2.steps)?;
    }
    let acc =
        |m: &CandleBert, md: &Mode| -> Result<f64, CliError> { Ok(accuracy(&predict(m, md, &te)?, &te)) };
    say!(
        "test accuracy: float teacher {:.2}%, Ditto-mode student {:.2}%, undistilled in Ditto mode {:.2}%",
        acc(&teacher, &Mode::Float)?,
        acc(&student, mode)?,
        acc(&teacher, mode)?
    );
    save_student(&student, &a.teacher, &a.out, q)
}

/// Writes a distilled student: its weights encoded at `q`'s fixed-point scales, and quant.json.
pub fn save_student(
    m: &CandleBert,
    from: &Path,
    out: &Path,
    q: &ditto_models::quant::QuantConfig,
) -> Result<(), CliError> {
    save(m, from, out, Some(m.fixed_point_tensors(q).map_err(err)?))?;
    let qp = out.join("quant.json");
    std::fs::write(&qp, serde_json::to_string_pretty(q).map_err(err)?)
        .map_err(|e| CliError::File { path: qp, source: e })
}

/// Offers the last student too, then loads the best one reported (ties keep the earlier).
fn keep_best(
    ckpt: &Checkpoint,
    student: &CandleBert,
    mode: &Mode,
    va: &[Example],
    steps: usize,
) -> Result<(), CliError> {
    let last = accuracy(&predict(student, mode, va)?, va);
    let end = State { phase: "stage2".into(), step: steps };
    ckpt.offer_best(&student.params, &end, last).map_err(err)?;
    if let Some(b) = ckpt.best().map_err(err)?
        && b.at != end
    {
        ckpt.restore_best(&student.params).map_err(err)?;
        say!(
            "best    the student after {} step {} (validation {:.2}%; the last {last:.2}%)",
            b.at.phase,
            b.at.step,
            b.score
        );
    } else {
        say!("best    the last student (validation {last:.2}%)");
    }
    Ok(())
}
