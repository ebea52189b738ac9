//! Range checks of whole models: the plaintext fixed-point reference run over sample inputs,
//! reporting every operation whose input left its admitted range ([`ditto_mpc::range`]). What
//! `ditto calibrate` runs before it proposes a QuantConfig, and what the demo, benchmarks and
//! evaluations print beside their results.

use ditto_mpc::range::RangeReport;
use ditto_mpc::{Engine, Shared};

use crate::ModelError;
use crate::bert::Bert;
use crate::bert::secure::{BertShare, SecureBert};
use crate::blocks::one_hot;
use crate::gpt2::Gpt2;
use crate::gpt2::secure::{Gpt2Share, SecCache, SecureGpt2};
use crate::quant::QuantConfig;

/// The range report of `bert` under `q` over each input (token ids) in turn.
pub async fn bert(bert: &Bert, q: &QuantConfig, inputs: &[Vec<u32>]) -> Result<RangeReport, ModelError> {
    let v = bert.cfg.vocab_size;
    let mut e = Engine::plaintext();
    let m = SecureBert::setup(&mut e, BertShare::plaintext(bert, q)?).await?;
    for ids in inputs {
        m.infer(&mut e, &Shared::new(one_hot(ids, v)?, &[ids.len(), v], 0)?).await?;
    }
    Ok(e.range_report())
}

/// The range report of `m` under `q` over each input (at most `n_positions` tokens of it, fed
/// as one prompt: causal attention gives every position the values generation would).
pub async fn gpt2(m: &Gpt2, q: &QuantConfig, inputs: &[Vec<u32>]) -> Result<RangeReport, ModelError> {
    let v = m.cfg.vocab_size;
    let mut e = Engine::plaintext();
    let pm = SecureGpt2::setup(&mut e, Gpt2Share::plaintext(m, q)?).await?;
    for ids in inputs.iter().filter(|ids| !ids.is_empty()) {
        let ids = &ids[..ids.len().min(m.cfg.n_positions)];
        let x = Shared::new(one_hot(ids, v)?, &[ids.len(), v], 0)?;
        pm.forward(&mut e, &x, &mut SecCache::default()).await?;
    }
    Ok(e.range_report())
}
