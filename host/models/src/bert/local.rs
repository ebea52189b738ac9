//! In-process secure runs of a BERT (the model owner, the dealer, P0, P1 and the client in one
//! process over in-memory links): for evaluations over many sentences.

use std::time::{Duration, Instant};

use ditto_core::Party;
use ditto_core::fixed::decode;
use ditto_core::plan::Plan;
use ditto_core::prg::Prg;
use ditto_mpc::local::{Local, Outcome, plan_of, run};
use ditto_mpc::range::RangeReport;
use ditto_mpc::tensor::{reveal, share};
use ditto_mpc::{Engine, Shared};

use super::Bert;
use super::secure::{BertOutput, BertShare, SecureBert, share_bert};
use crate::ModelError;
use crate::blocks::one_hot;
use crate::quant::QuantConfig;

/// What an in-process secure inference and its fixed-point reference produced.
pub struct LocalInference {
    /// The plan run.
    pub plan: Plan,
    /// Each party's output share, counters, dealer bytes and times.
    pub outcome: Outcome<BertOutput>,
    /// The plaintext fixed-point reference's output.
    pub reference: BertOutput,
    /// The reference's time.
    pub plaintext: Duration,
    /// The reference's operations whose input left its admitted range.
    pub range: RangeReport,
}

impl LocalInference {
    /// The secure output, opened and decoded, and the reference's, decoded: the pooled sum
    /// (divide by the tokens for the mean) or the logits.
    pub fn values(&self) -> Result<(Vec<f64>, Vec<f64>), ModelError> {
        fn dec<R: ditto_core::Ring>(a: &Shared<R>, b: &Shared<R>, r: &Shared<R>) -> (Vec<f64>, Vec<f64>) {
            let d = |v: &[R], frac| v.iter().map(|x| decode(*x, frac)).collect();
            (d(&reveal(&a.data, &b.data), a.frac), d(&r.data, r.frac))
        }
        match (&self.outcome.out, &self.reference) {
            ([BertOutput::PooledSum(a), BertOutput::PooledSum(b)], BertOutput::PooledSum(r)) => {
                Ok(dec(a, b, r))
            }
            ([BertOutput::Logits(a), BertOutput::Logits(b)], BertOutput::Logits(r)) => Ok(dec(a, b, r)),
            _ => Err(ModelError::Mpc(ditto_mpc::MpcError::Client(
                "the parties and the reference computed different kinds of output".into(),
            ))),
        }
    }
}

/// One secure inference of `bert` on token ids `ids` with the model owner, the dealer, P0, P1
/// and the client in one process (`local` says how), then the plaintext fixed-point reference
/// on the same input. The shares come from `rng`; `watch` sees each party's engine first.
pub async fn infer_local(
    bert: &Bert,
    q: &QuantConfig,
    ids: &[u32],
    local: &Local,
    rng: &mut Prg,
    watch: impl Fn(&mut Engine, Party) + Sync,
) -> Result<LocalInference, ModelError> {
    let (n, v) = (ids.len(), bert.cfg.vocab_size);
    let shares = share_bert(bert, q, rng)?;
    let x = one_hot(ids, v)?;
    let xs = share(&x, rng);
    let program = async |e: &mut Engine, p: Party| {
        watch(e, p);
        let m = SecureBert::setup(e, shares[p.index()].clone()).await?;
        m.infer(e, &Shared::new(xs[p.index()].clone(), &[n, v], 0)?).await
    };
    let plan = plan_of("local", &program).await?;
    let local = Local { share_set: shares[0].share_set(), ..local.clone() };
    let outcome = run(&plan, &local, program)?;
    drop(shares);
    let mut pe = Engine::plaintext();
    let pm = SecureBert::setup(&mut pe, BertShare::plaintext(bert, q)?).await?;
    let t = Instant::now();
    let reference = pm.infer(&mut pe, &Shared::new(x, &[n, v], 0)?).await?;
    Ok(LocalInference { plan, outcome, reference, plaintext: t.elapsed(), range: pe.range_report() })
}

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
    let res = run(&plan, &local, program)?;
    let [o0, o1] = &res.out;
    Ok(o0
        .iter()
        .zip(o1)
        .map(|(a, b)| a.data.iter().zip(&b.data).map(|(x, y)| decode(x.wrapping_add(*y), a.frac)).collect())
        .collect())
}
