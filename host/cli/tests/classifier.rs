//! The sentiment pipeline end to end on a tiny BERT and a synthetic, separable polarity file:
//! `ditto train-classifier` (MiniLM's layout: no head, a seeded one is added), `ditto distill`
//! (stage 1, stage 2 with perturbed copies and validation reports, resumed), and
//! `ditto eval-classifier` (float, fixed-point and secure accuracy on a chosen split).

mod common;

use std::path::Path;

use candle_core::{DType, Device};
use common::{ditto, path, run};
use ditto_distill::bert::CandleBert;
use ditto_distill::params::Params;
use ditto_models::config::BertConfig;

const POSITIVE: [&str; 6] = ["good", "great", "fine", "lovely", "superb", "warm"];
const NEGATIVE: [&str; 6] = ["bad", "awful", "dull", "poor", "boring", "cold"];
const NEUTRAL: [&str; 8] = ["the", "film", "movie", "was", "a", "very", "plot", "and"];

/// A BERT directory as scripts/fetch-models writes MiniLM's: config.json, model.safetensors
/// without pooler or classifier, and a WordPiece tokenizer.json.
fn base_model(dir: &Path) {
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;
    std::fs::create_dir_all(dir).unwrap();
    let words: Vec<&str> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        .into_iter()
        .chain(POSITIVE)
        .chain(NEGATIVE)
        .chain(NEUTRAL)
        .collect();
    std::fs::write(dir.join("vocab.txt"), words.join("\n")).unwrap();
    let wp =
        WordPiece::builder().files(path(&dir.join("vocab.txt"))).unk_token("[UNK]".into()).build().unwrap();
    let mut tok = tokenizers::Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::default()))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), 3), ("[CLS]".into(), 2))));
    tok.save(dir.join("tokenizer.json"), false).unwrap();
    let cfg = BertConfig {
        vocab_size: words.len(),
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..ditto_models::seeded::config()
    };
    // MiniLM's layout: the encoder only (CandleBert wants a head; it is left out of the file).
    let bert = ditto_models::seeded::with_head(ditto_models::seeded::bert_of(cfg.clone(), 5), &["a", "b"], 5);
    let m = CandleBert::from_model(&bert, DType::F32, &Device::Cpu).unwrap();
    let encoder: std::collections::BTreeMap<String, candle_core::Tensor> = m
        .params
        .names()
        .filter(|n| !n.contains("pooler") && !n.contains("classifier"))
        .map(|n| (n.to_string(), m.params.get(n).unwrap().clone()))
        .collect();
    assert!(encoder.len() + 4 == m.params.names().count());
    std::fs::write(dir.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    Params::save_tensors(&encoder, &dir.join("model.safetensors")).unwrap();
}

/// 200 labelled sentences: a sentiment word among neutral ones.
fn polarity(file: &Path) {
    let mut rows = Vec::new();
    for k in 0..200usize {
        let (label, words) = if k % 2 == 0 { (1, POSITIVE) } else { (0, NEGATIVE) };
        let n = NEUTRAL.len();
        let s = format!(
            "{} {} {} {} {}",
            NEUTRAL[k % n],
            NEUTRAL[(k / 2 + 3) % n],
            words[(k / 2) % 6],
            NEUTRAL[(k / 3 + 1) % n],
            NEUTRAL[(k / 5) % n]
        );
        rows.push(format!("{label}\t{s}"));
    }
    std::fs::write(file, rows.join("\n")).unwrap();
}

/// The percentage after `label` on a line of `out`.
fn percent(out: &str, label: &str) -> f64 {
    let line = out.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label:?} in {out}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.trim_start().split('%').next().unwrap().trim().parse().unwrap()
}

/// How many secure labels agree with the fixed-point ones, from eval-classifier's report.
fn agreed(out: &str) -> usize {
    let rest = out.split("labels agree on ").nth(1).unwrap_or_else(|| panic!("no agreement in {out}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn train_distill_resume_and_evaluate_a_classifier() {
    let d = std::env::temp_dir().join(format!("ditto-classifier-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    base_model(&d.join("base"));
    polarity(&d.join("polarity.tsv"));
    let (base, data) = (path(&d.join("base")), path(&d.join("polarity.tsv")));
    let (teacher, student) = (path(&d.join("teacher")), path(&d.join("student")));
    let small = ["--batch", "8", "--every", "4", "--lr", "3e-3"];

    let out = run(&[
        &["train-classifier", "--model", &base, "--data", &data, "--out", &teacher, "--epochs", "3"],
        &small[..],
    ]
    .concat());
    assert!(out.contains("160 training, 20 validation, 20 test sentences"), "{out}");
    // The sentiment word decides; a trained classifier finds it.
    assert!(percent(&out, ", test") >= 90.0, "{out}");

    let distill = |stage2: &str| {
        let a = ["distill", "--teacher", &teacher, "--data", &data, "--out", &student, "--stage1-steps", "8"];
        let b = [
            "--stage2-steps",
            stage2,
            "--augment",
            "0.5",
            "--eval-every",
            "4",
            "--keep-best",
            "--hard-label",
            "0.5",
        ];
        run(&[&a[..], &b[..], &small[..]].concat())
    };
    let first = distill("8");
    assert!(first.contains("stage1: step 4, validation accuracy of the student"), "{first}");
    assert!(first.contains("stage2: step 4, validation accuracy of the student"), "{first}");
    assert!(first.contains("stage2: step 0, validation accuracy of the student"), "{first}");
    let second = distill("12");
    assert!(second.contains("resume  stage2 from step 8"), "{second}");
    assert!(second.contains("stage2: step 8, validation accuracy"), "{second}");
    assert!(!second.contains("stage1:"), "{second}");
    // --keep-best: the kept student's validation accuracy is the highest of every report.
    let reports: Vec<f64> = [&first, &second]
        .iter()
        .flat_map(|o| o.lines())
        .filter(|l| l.contains("validation accuracy of the student") || l.starts_with("best "))
        .map(|l| {
            let v = l.split("(validation ").nth(1).or_else(|| l.split(" of the student ").nth(1)).unwrap();
            v.trim().split('%').next().unwrap().parse().unwrap()
        })
        .collect();
    let kept = reports[reports.len() - 1];
    assert!(first.contains("best    the ") && second.contains("best    the "), "{second}");
    assert!(reports.iter().all(|&r| r <= kept), "{reports:?}\n{first}\n{second}");
    for f in ["config.json", "model.safetensors", "tokenizer.json", "quant.json"] {
        assert!(d.join("student").join(f).exists(), "{f}");
    }

    // Bad options are refused with a clear error before any training.
    for (extra, says) in [
        (&["--augment", "1.5"][..], "--augment 1.5 is not a share in [0, 1]"),
        (&["--keep-best"][..], "--keep-best chooses by validation accuracy"),
        (&["--hard-label", "1.5"][..], "--hard-label 1.5 is not a weight in [0, 1]"),
    ] {
        let x = path(&d.join("x"));
        let a = ["distill", "--teacher", &teacher, "--data", &data, "--out", &x];
        let bad = ditto().args([&a[..], extra].concat()).output().unwrap();
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains(says), "{extra:?}");
    }

    // The student in Ditto mode: fixed-point (exact) and secure on the validation split.
    let out = run(&[
        "eval-classifier",
        "--model",
        &student,
        "--data",
        &data,
        "--split",
        "validation",
        "--secure",
        "6",
    ]);
    assert!(out.contains("validation 20 sentences"), "{out}");
    let fixed = percent(&out, "accuracy fixed-point ditto");
    assert!(fixed >= 80.0, "{out}");
    // The saved model is the kept one (exact f64 here, f32 emulation in training: one
    // sentence of 20 may differ).
    assert!((fixed - kept).abs() <= 5.0, "kept {kept}%: {out}");
    let agree = agreed(&out);
    // Secure equals fixed-point within its ulps: a label may flip only at a near tie.
    assert!(agree >= 5, "{out}");

    // A uniform soup of two students: every weight is their mean, rounded to its fixed-point
    // scale (8 fractional bits at the coarsest: within 2^-9); a student with itself is itself.
    let other = path(&d.join("student2"));
    let a = ["distill", "--teacher", &teacher, "--data", &data, "--out", &other, "--seed", "2"];
    run(&[&a[..], &["--stage1-steps", "6", "--stage2-steps", "2"], &small[..]].concat());
    let tensors = |dir: &str| {
        let m =
            candle_core::safetensors::load(d.join(dir).join("model.safetensors"), &candle_core::Device::Cpu)
                .unwrap();
        let f = |t: &candle_core::Tensor| {
            t.to_dtype(candle_core::DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
        };
        m.iter().map(|(k, t)| (k.clone(), f(t))).collect::<std::collections::BTreeMap<_, _>>()
    };
    let (avg, same) = (path(&d.join("avg")), path(&d.join("same")));
    run(&["average", "--out", &avg, &student, &other]);
    run(&["average", "--out", &same, &student, &student]);
    let (x, y, m) = (tensors("student"), tensors("student2"), tensors("avg"));
    assert_eq!(tensors("same"), x);
    assert_eq!(m.keys().collect::<Vec<_>>(), x.keys().collect::<Vec<_>>());
    let mut moved = 0;
    for (name, v) in &m {
        for ((a, b), v) in x[name].iter().zip(&y[name]).zip(v) {
            assert!((v - (a + b) / 2.0).abs() <= 1.0 / 512.0, "{name}: {v} vs mean of {a} and {b}");
            moved += usize::from(v != a && v != b);
        }
    }
    assert!(moved > 0, "the two students are different models");
    assert_eq!(
        std::fs::read(d.join("avg/quant.json")).unwrap(),
        std::fs::read(d.join("student/quant.json")).unwrap()
    );
    // More sentences than one secure session takes (25): the sessions' labels join up in order.
    let out =
        run(&["eval-classifier", "--model", &avg, "--data", &data, "--split", "train", "--secure", "30"]);
    assert!(percent(&out, "accuracy fixed-point ditto") >= 80.0, "{out}");
    let agree = agreed(&out);
    assert!(out.contains("secure on the first 30") && agree >= 28, "{out}");
    // Averaging needs two distilled students of one QuantConfig.
    for (models, says) in [
        (vec![student.as_str()], "2 values required"),
        (vec![student.as_str(), teacher.as_str()], "has no quant.json"),
    ] {
        let bad = ditto()
            .args([&["average", "--out", &path(&d.join("x"))][..], &models[..]].concat())
            .output()
            .unwrap();
        assert!(!bad.status.success());
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains(says), "{models:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
