//! Plans of whole models, recorded by running the model's own program on the planner (so a
//! plan is exactly what the secure run executes), from the config alone.

use ditto_core::plan::Plan;
use ditto_mpc::local::plan_of;
use ditto_mpc::{Engine, MpcError, Shared};

use crate::bert::secure::{BertShare, SecureBert};
use crate::config::{BertConfig, Gpt2Config};
use crate::generate::{Client, Reveal, generate};
use crate::gpt2::secure::{Gpt2Share, SecureGpt2};
use crate::quant::QuantConfig;

/// The plan of a BERT model's task over `seq` tokens ([`SecureBert::infer`]: the logits of a
/// classification model, else the pooled embedding).
pub async fn bert(name: &str, cfg: &BertConfig, q: &QuantConfig, seq: usize) -> Result<Plan, MpcError> {
    bert_batch(name, cfg, q, seq, 1).await
}

/// [`bert`] for a batch of `batch` inputs of `seq` tokens each (one session for all).
pub async fn bert_batch(
    name: &str,
    cfg: &BertConfig,
    q: &QuantConfig,
    seq: usize,
    batch: usize,
) -> Result<Plan, MpcError> {
    let share = BertShare::zeros(cfg, q);
    let program = async |e: &mut Engine, _p: ditto_core::Party| {
        let m = SecureBert::setup(e, share.clone()).await?;
        m.infer(e, &Shared::zeros(&[batch.max(1), seq, cfg.vocab_size], 0)).await
    };
    plan_of(name, &program).await
}

/// The plan of GPT-2 on a `seq`-token prompt generating `generate` tokens, revealing to the
/// client what `reveal` says.
pub async fn gpt2(
    name: &str,
    cfg: &Gpt2Config,
    q: &QuantConfig,
    (seq, tokens): (usize, usize),
    reveal: Reveal,
) -> Result<Plan, MpcError> {
    let share = Gpt2Share::zeros(cfg, q);
    let program = async |e: &mut Engine, _p: ditto_core::Party| {
        let m = SecureGpt2::setup(e, share.clone()).await?;
        let x = Shared::zeros(&[seq, cfg.vocab_size], 0);
        generate(e, &m, &x, (tokens.max(1), cfg.vocab_size), reveal, Client::Planning).await
    };
    plan_of(name, &program).await
}

/// Plans [`of`] made recently, by model, quantization, lengths and name (recording BERT-base's
/// takes 0.7 s, mostly allocating its zero weights; a serving party and the dealer need the plan
/// of every request).
static RECENT: std::sync::Mutex<Vec<(String, Plan)>> = std::sync::Mutex::new(Vec::new());
/// Plans kept at most.
const RECENT_MAX: usize = 16;

/// The plan of either architecture: [`bert_batch`] over `batch` inputs of `seq` tokens
/// (`generate` and `reveal` unused), or [`gpt2`] on a `seq`-token prompt generating `generate`
/// (one input). Recent plans are remembered (a plan is a function of its arguments).
pub async fn of(
    name: &str,
    cfg: &crate::spec::ModelConfig,
    q: &QuantConfig,
    (seq, generate, batch): (usize, usize, usize),
    reveal: Reveal,
) -> Result<Plan, MpcError> {
    // Debug formats every field (floats exactly), so equal keys are equal arguments.
    let key = format!("{name}|{cfg:?}|{q:?}|{seq}|{generate}|{batch}|{reveal:?}");
    let recent = |k: &str| {
        let g = RECENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.iter().find(|(x, _)| x == k).map(|(_, p)| p.clone())
    };
    if let Some(p) = recent(&key) {
        return Ok(p);
    }
    let plan = make(name, cfg, q, (seq, generate, batch), reveal).await?;
    let mut g = RECENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if g.len() >= RECENT_MAX {
        g.remove(0);
    }
    g.push((key, plan.clone()));
    Ok(plan)
}

async fn make(
    name: &str,
    cfg: &crate::spec::ModelConfig,
    q: &QuantConfig,
    (seq, generate, batch): (usize, usize, usize),
    reveal: Reveal,
) -> Result<Plan, MpcError> {
    match cfg {
        crate::spec::ModelConfig::Bert(c) => bert_batch(name, c, q, seq, batch).await,
        crate::spec::ModelConfig::Gpt2(_) if batch > 1 => Err(MpcError::Shape {
            what: "a GPT-2 request (batches are for BERT)",
            expected: vec![1],
            got: vec![batch],
        }),
        crate::spec::ModelConfig::Gpt2(c) => gpt2(name, c, q, (seq, generate), reveal).await,
    }
}
