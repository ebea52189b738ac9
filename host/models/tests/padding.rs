//! Length buckets: a BERT input padded with all-zero one-hot rows (what a client sends to hide
//! its length) gives the fixed-point reference's unpadded answer bit for bit (padded keys get
//! exp 0 through a secret score penalty, the pooled sum takes the real rows only), and the
//! secure padded run stays within its ulps of it; for the embedding and for classification.
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use ditto_core::Party;
use ditto_core::fixed::decode;
use ditto_core::prg::Prg;
use ditto_models::bert::Bert;
use ditto_models::bert::secure::{BertOutput, BertShare, SecureBert, share_bert};
use ditto_models::blocks::one_hot;
use ditto_models::quant::QuantConfig;
use ditto_models::seeded;
use ditto_mpc::local::{Local, plan_of, run};
use ditto_mpc::tensor::{reveal, share};
use ditto_mpc::{Engine, Shared};

/// The one-hot of `ids` with zero rows up to `rows`.
fn padded(ids: &[u32], vocab: usize, rows: usize) -> Vec<u32> {
    let mut x = one_hot(ids, vocab).unwrap();
    x.resize(rows * vocab, 0);
    x
}

/// The plaintext reference's answer (raw ring values, widened) on `x` (rows x vocab).
async fn reference(bert: &Bert, q: &QuantConfig, x: &[u32], rows: usize) -> (Vec<u64>, u32) {
    let mut pe = Engine::plaintext();
    let m = SecureBert::setup(&mut pe, BertShare::plaintext(bert, q).unwrap()).await.unwrap();
    match m.infer(&mut pe, &Shared::new(x.to_vec(), &[rows, bert.cfg.vocab_size], 0).unwrap()).await.unwrap()
    {
        BertOutput::PooledSum(s) => (s.data, s.frac),
        BertOutput::Logits(l) => (l.data.iter().map(|v| u64::from(*v)).collect(), l.frac),
    }
}

/// The secure answer on the padded input, as reals, and its scale.
async fn secure(bert: &Bert, q: &QuantConfig, x: &[u32], rows: usize) -> Vec<f64> {
    let mut rng = Prg::with_counter(&[8; 16], 0);
    let shares = share_bert(bert, q, &mut rng).unwrap();
    let v = bert.cfg.vocab_size;
    let xs = share(x, &mut rng);
    let program = async |e: &mut Engine, p: Party| {
        let m = SecureBert::setup(e, shares[p.index()].clone()).await?;
        Ok(match m.infer(e, &Shared::new(xs[p.index()].clone(), &[rows, v], 0)?).await? {
            BertOutput::PooledSum(s) => (s.data, s.frac, 64),
            BertOutput::Logits(l) => (l.data.iter().map(|v| u64::from(*v)).collect(), l.frac, 32),
        })
    };
    let plan = plan_of("padded", &program).await.unwrap();
    let res = run(&plan, &Local { share_set: shares[0].share_set(), ..Local::default() }, program).unwrap();
    let [(a, f, bits), (b, _, _)] = &res.out;
    if *bits == 32 {
        let (a, b): (Vec<u32>, Vec<u32>) =
            (a.iter().map(|v| *v as u32).collect(), b.iter().map(|v| *v as u32).collect());
        return reveal(&a, &b).iter().map(|v| decode(*v, *f)).collect();
    }
    reveal(a, b).iter().map(|v| decode(*v, *f)).collect()
}

fn decode_all(raw: &[u64], frac: u32, bits: u32) -> Vec<f64> {
    raw.iter().map(|v| if bits == 32 { decode(*v as u32, frac) } else { decode(*v, frac) }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_input_gives_the_unpadded_answer() {
    let q = QuantConfig::ditto();
    let embed = seeded::model(3);
    let cls = seeded::with_head(seeded::model(3), &["negative", "positive"], 9);
    for (bert, bits) in [(&embed, 64), (&cls, 32)] {
        let v = bert.cfg.vocab_size;
        for (text, rows) in [("a good day", 16), ("x", 16), ("padding hides the length", 32)] {
            let ids = seeded::tokenize(text);
            let n = ids.len();
            assert!(n < rows, "{text:?} needs padding");
            let (plain, f) = reference(bert, &q, &one_hot(&ids, v).unwrap(), n).await;
            let (pad, fp) = reference(bert, &q, &padded(&ids, v, rows), rows).await;
            assert_eq!((&pad, fp), (&plain, f), "{text:?}: the padded reference differs");
            let want = decode_all(&plain, f, bits);
            let got = secure(bert, &q, &padded(&ids, v, rows), rows).await;
            // Secure vs the reference: the truncations' carries through the layers, as unpadded
            // (measured alike with and without padding: up to 4 ulps of the 8-bit logits, and
            // about 1e-3 of the embedding's norm); bounds 8 ulps and 2e-3 of the norm.
            let norm = want.iter().map(|x| x * x).sum::<f64>().sqrt();
            let tol = if bits == 32 { 8.0 / f64::from(1u32 << f) } else { 2e-3 * norm };
            let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);

            assert!(d <= tol, "{text:?} padded to {rows}: secure vs reference {d}");
        }
    }
}
