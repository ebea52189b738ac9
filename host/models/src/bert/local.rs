//! In-process secure runs of a BERT (the model owner, the dealer, P0, P1 and the client in one
//! process over in-memory links): for evaluations over many sentences.

use ditto_core::fixed::decode;
use ditto_core::prg::Prg;
use ditto_mpc::local::{Local, plan_of, run};
use ditto_mpc::tensor::share;
use ditto_mpc::{Engine, Shared};

use super::Bert;
use super::secure::{SecureBert, share_bert};
use crate::ModelError;
use crate::blocks::one_hot;
use crate::quant::QuantConfig;

/// Sentences per secure session in [`classify_local`]: a session holds its inputs' one-hot
/// shares and its correlations in memory at once (400 MiniLM sentences in one session ran out
/// of 24 GiB).
pub const SENTENCES_PER_SESSION: usize = 25;

/// Classifies several sentences (token ids) securely, [`SENTENCES_PER_SESSION`] per session
/// with one weight setup each: the reconstructed logits of each. The model owner's and the
/// client's shares come from `rng`; `local` says how the parties run (links, threads, seeds).
pub async fn classify_local(
    bert: &Bert,
    q: &QuantConfig,
    sentences: &[Vec<u32>],
    local: &Local,
    rng: &mut Prg,
) -> Result<Vec<Vec<f64>>, ModelError> {
    let mut out = Vec::with_capacity(sentences.len());
    for chunk in sentences.chunks(SENTENCES_PER_SESSION) {
        out.extend(classify_session(bert, q, chunk, local, rng).await?);
    }
    Ok(out)
}

/// One session of [`classify_local`].
async fn classify_session(
    bert: &Bert,
    q: &QuantConfig,
    sentences: &[Vec<u32>],
    local: &Local,
    rng: &mut Prg,
) -> Result<Vec<Vec<f64>>, ModelError> {
    let v = bert.cfg.vocab_size;
    let shares = share_bert(bert, q, rng)?;
    let mut xs: [Vec<Vec<u32>>; 2] = [Vec::new(), Vec::new()];
    for s in sentences {
        let [a, b] = share(&one_hot(s, v)?, rng);
        xs[0].push(a);
        xs[1].push(b);
    }
    let program = async |e: &mut Engine, p: ditto_core::Party| {
        let m = SecureBert::setup(e, shares[p.index()].clone()).await?;
        let mut out = Vec::new();
        for (x, s) in xs[p.index()].iter().zip(sentences) {
            out.push(m.classify(e, &Shared::new(x.clone(), &[s.len(), v], 0)?).await?);
        }
        Ok(out)
    };
    let plan = plan_of("classify", &program).await?;
    let local = Local { share_set: shares[0].share_set(), ..local.clone() };
    let res = run(&plan, &local, program).await?;
    let [o0, o1] = &res.out;
    Ok(o0
        .iter()
        .zip(o1)
        .map(|(a, b)| a.data.iter().zip(&b.data).map(|(x, y)| decode(x.wrapping_add(*y), a.frac)).collect())
        .collect())
}
