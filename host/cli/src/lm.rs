//! `ditto train-lm` (a float GPT-2 on public-domain text: the teacher of the default model)
//! and `ditto eval-lm` (held-out perplexity, float and secure).

use std::path::PathBuf;

use ditto_distill::student::Mode;
use ditto_distill::{data, lm, train};
use ditto_models::config::Gpt2Config;
use ditto_models::quant::QuantConfig;

use crate::files::CliError;
use crate::training::{LoopArgs, at_least, bar, data_path, err};

/// `ditto train-lm`.
#[derive(clap::Args, Debug)]
pub struct TrainLmArgs {
    /// Jane Austen's novels as `scripts/fetch-data` writes them (default: the cache's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory: config.json, tokenizer.json, model.safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// BPE vocabulary size (byte-level, trained on the training novels).
    #[arg(long, default_value_t = 2048)]
    pub vocab: usize,
    /// Layers.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Width.
    #[arg(long, default_value_t = 192)]
    pub embd: usize,
    /// Heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Positions.
    #[arg(long, default_value_t = 128)]
    pub positions: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    #[command(flatten)]
    pub train: LoopArgs,
}

/// Prints a training run's reports.
pub(crate) fn say_note(n: lm::Note) {
    match n {
        lm::Note::Data { train, held_out, vocab } => {
            say!("data    {train} training tokens, {held_out} held-out (vocabulary {vocab})");
        }
        lm::Note::Resumed(s) => say!("resume  {} from step {} (checkpoint)", s.phase, s.step),
        lm::Note::Trained { steps, loss, perplexity } => {
            say!("trained {steps} steps, last loss {loss:.3}; held-out perplexity {perplexity:.2}");
        }
        lm::Note::Distilled { tokens, teacher, student } => say!(
            "held-out perplexity ({tokens} tokens): float teacher {teacher:.2}, Ditto-mode student (fixed-point) {student:.2}"
        ),
    }
}

/// `ditto train-lm`.
pub fn train_lm(a: &TrainLmArgs) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let p = lm::Pretraining {
        data: &data_path(a.data.as_deref(), "austen"),
        out: &a.out,
        vocab: a.vocab,
        shape: Gpt2Config {
            vocab_size: a.vocab,
            n_positions: a.positions,
            n_embd: a.embd,
            n_layer: a.layers,
            n_head: a.heads,
            n_inner: None,
            activation_function: "gelu_new".into(),
            layer_norm_epsilon: 1e-5,
        },
        train: a.train.options(a.steps, 1e-3),
    };
    p.run(&mut bar("lm"), &mut |n| match n {
        lm::Note::Trained { steps, loss, perplexity } => say!(
            "trained {steps} steps in {:.0} s, last loss {loss:.3}; held-out perplexity {perplexity:.2}",
            started.elapsed().as_secs_f64()
        ),
        n => say_note(n),
    })?;
    Ok(())
}

/// `ditto eval-lm`.
#[derive(clap::Args, Debug)]
pub struct EvalLmArgs {
    /// An HF GPT-2 directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Also run the model securely (dealer, P0, P1 and the scoring client in one process) under
    /// these QuantConfigs: presets (accurate, ditto) or JSON files; repeatable.
    #[arg(long)]
    pub quant: Vec<String>,
    /// Austen's novels as `scripts/fetch-data` writes them (default: the cache's); the held-out
    /// novel is scored.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Windows of the held-out text to score (each starts afresh).
    #[arg(long, default_value_t = 4)]
    pub windows: usize,
    /// Predicted positions per window.
    #[arg(long, default_value_t = 127, value_parser = at_least(1))]
    pub seq: usize,
}

/// `ditto eval-lm`: held-out perplexity of the float model and of secure runs.
pub fn eval_lm(a: &EvalLmArgs) -> Result<(), CliError> {
    let (model, tok) = lm::load(&a.model)?;
    let seq = a.seq.min(model.cfg.n_positions - 1);
    let (_, test_text) = data::austen(&data_path(a.data.as_deref(), "austen")).map_err(err)?;
    let test = lm::encode(&tok, &test_text)?;
    let windows: Vec<&[u32]> = test.windows(seq + 1).step_by(seq).take(a.windows).collect();
    #[allow(clippy::cast_precision_loss)]
    let total = (windows.len() * seq) as f64;
    // The same windows: consecutive, `seq` apart, from the start.
    let scored = &test[..windows.len() * seq + 1];
    let float_ppl = train::perplexity(&model, &Mode::Float, scored, seq).map_err(err)?;
    say!(
        "held-out: {} windows of {seq} predicted tokens ({} tokens of {})",
        windows.len(),
        windows.len() * (seq + 1),
        data::AUSTEN_HELD_OUT
    );
    say!("perplexity float            {float_ppl:.3}");
    let m = model.to_model().map_err(err)?;
    let rt = crate::util::runtime()?;
    for spec in &a.quant {
        let q = QuantConfig::from_spec(spec)?;
        let started = std::time::Instant::now();
        let mut s = 0.0;
        for w in &windows {
            let mut rng = ditto_core::prg::Prg::with_counter(&ditto_node::files::os_random16()?, 0);
            let local = ditto_mpc::local::Local::default();
            let logits =
                rt.block_on(ditto_models::generate::score_local(&m, &q, w, &local, &mut rng))?.logits;
            for (l, next) in logits.iter().zip(&w[1..]) {
                let v: Vec<f64> =
                    l.iter().map(|x| ditto_core::fixed::decode(*x, q.act_frac + q.weight_frac)).collect();
                s += lm::nll(&v, *next);
            }
        }
        say!(
            "perplexity secure {spec:<10} {:.3} ({:.1} s)",
            (s / total).exp(),
            started.elapsed().as_secs_f64()
        );
        let inputs: Vec<Vec<u32>> = windows.iter().map(|w| w.to_vec()).collect();
        crate::util::say_range(&rt.block_on(ditto_models::range::gpt2(&m, &q, &inputs))?);
    }
    Ok(())
}
