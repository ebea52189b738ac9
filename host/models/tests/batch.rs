//! Batches: B inputs of one bucket in one session (B x n one-hot rows). Each input's answer in
//! the fixed-point reference equals its answer alone and unpadded, bit for bit (every row's
//! computation is its own; attention sees the input's own keys only), the secure batched run
//! stays within the usual ulps, and the batch's plan has the single input's steps and rounds;
//! for the embedding and for classification.
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

const TEXTS: [&str; 4] = ["a good day", "x", "padding hides the length", "batches share rounds"];

/// The answer's raw values (widened), scale and ring bits.
fn raw(o: BertOutput) -> (Vec<u64>, u32, u32) {
    match o {
        BertOutput::PooledSum(s) => (s.data, s.frac, 64),
        BertOutput::Logits(l) => (l.data.iter().map(|v| u64::from(*v)).collect(), l.frac, 32),
    }
}

/// The plaintext reference on a one-hot input of `shape`.
async fn reference(bert: &Bert, q: &QuantConfig, x: Vec<u32>, shape: &[usize]) -> (Vec<u64>, u32, u32) {
    let mut pe = Engine::plaintext();
    let m = SecureBert::setup(&mut pe, BertShare::plaintext(bert, q).unwrap()).await.unwrap();
    raw(m.infer(&mut pe, &Shared::new(x, shape, 0).unwrap()).await.unwrap())
}

/// The batch's one-hot: each input padded to `rows`.
fn batch(ids: &[Vec<u32>], vocab: usize, rows: usize) -> Vec<u32> {
    ids.iter()
        .flat_map(|v| {
            let mut x = one_hot(v, vocab).unwrap();
            x.resize(rows * vocab, 0);
            x
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_input_of_a_batch_gets_its_own_answer() {
    let q = QuantConfig::ditto();
    let embed = seeded::model(3);
    let cls = seeded::with_head(seeded::model(3), &["negative", "positive"], 9);
    let rows = 32;
    for bert in [&embed, &cls] {
        let v = bert.cfg.vocab_size;
        let ids: Vec<Vec<u32>> = TEXTS.iter().map(|t| seeded::tokenize(t)).collect();
        let b = ids.len();
        // Alone and unpadded, one after the other.
        let mut alone = Vec::new();
        let mut alone_frac = 0;
        for i in &ids {
            let (r, f, _) = reference(bert, &q, one_hot(i, v).unwrap(), &[i.len(), v]).await;
            alone.extend(r);
            alone_frac = f;
        }
        let x = batch(&ids, v, rows);
        let (batched, f, bits) = reference(bert, &q, x.clone(), &[b, rows, v]).await;
        assert_eq!(
            (&batched, f),
            (&alone, alone_frac),
            "the batched reference differs from the inputs alone"
        );

        // Secure, batched.
        let mut rng = Prg::with_counter(&[8; 16], 0);
        let shares = share_bert(bert, &q, &mut rng).unwrap();
        let xs = share(&x, &mut rng);
        let program = async |e: &mut Engine, p: Party| {
            let m = SecureBert::setup(e, shares[p.index()].clone()).await?;
            Ok(raw(m.infer(e, &Shared::new(xs[p.index()].clone(), &[b, rows, v], 0)?).await?))
        };
        let plan = plan_of("batch", &program).await.unwrap();
        let res =
            run(&plan, &Local { share_set: shares[0].share_set(), ..Local::default() }, program).unwrap();
        let [(s0, _, _), (s1, _, _)] = &res.out;
        let got: Vec<f64> = if bits == 32 {
            let (a, c): (Vec<u32>, Vec<u32>) =
                (s0.iter().map(|v| *v as u32).collect(), s1.iter().map(|v| *v as u32).collect());
            reveal(&a, &c).iter().map(|v| decode(*v, f)).collect()
        } else {
            reveal(s0, s1).iter().map(|v| decode(*v, f)).collect()
        };
        let want: Vec<f64> =
            alone.iter().map(|v| if bits == 32 { decode(*v as u32, f) } else { decode(*v, f) }).collect();
        assert_eq!(got.len(), want.len());
        // Per input, the tolerance of a single padded input (tests/padding.rs): 8 ulps of the
        // logits, 2e-3 of the embedding's norm.
        let per = want.len() / b;
        for (i, (g, w)) in got.chunks(per).zip(want.chunks(per)).enumerate() {
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            let tol = if bits == 32 { 8.0 / f64::from(1u32 << f) } else { 2e-3 * norm };
            let d = g.iter().zip(w).map(|(a, c)| (a - c).abs()).fold(0.0, f64::max);
            assert!(d <= tol, "input {i} ({:?}): secure vs reference {d}", TEXTS[i]);
        }
    }
}

#[tokio::test]
async fn a_batch_has_the_single_inputs_steps_and_rounds() {
    let cfg = seeded::config();
    let q = QuantConfig::ditto();
    let one = ditto_models::plans::bert("one", &cfg, &q, 32).await.unwrap();
    let four = ditto_models::plans::bert_batch("four", &cfg, &q, 32, 4).await.unwrap();
    assert_eq!(one.steps.len(), four.steps.len());
    let total = |p: &ditto_core::plan::Plan| -> (u32, u64) {
        p.steps.iter().fold((0, 0), |(r, b), s| (r + s.rounds(), b + s.online_bytes_per_party()))
    };
    let ((r1, b1), (r4, b4)) = (total(&one), total(&four));
    // The same rounds, except where a 64-bit comparison step grows past the 3-round form's
    // limit (`ditto_mpc::ops::compare::top_pays`: its dealer material is 22x the 4-round
    // form's), one more round each.
    let mut grown = 0;
    for (a, b) in one.steps.iter().zip(&four.steps) {
        if a.rounds() != b.rounds() {
            use ditto_core::plan::Op;
            assert!(
                matches!((a.op, b.op), (Op::SignRadixTopA { len: l1, .. }, Op::SignRadixA { len: l4, .. })
                    if l4 == 4 * l1 && l4 as usize > ditto_mpc::ops::compare::TOP_MAX_LEN_64),
                "{:?} -> {:?}",
                a.op,
                b.op
            );
            assert_eq!(b.rounds(), a.rounds() + 1);
            grown += 1;
        }
    }
    assert_eq!(r4, r1 + grown, "a batch adds rounds");
    // The weights' openings are per session, the rest per input: between 3x and 4x the bytes.
    assert!(b4 > 3 * b1 && b4 <= 4 * b1, "{b1} -> {b4}");
    assert_ne!(one.hash().unwrap(), four.hash().unwrap());
}
