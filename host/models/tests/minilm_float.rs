//! The real all-MiniLM-L6-v2 (fetched by scripts/fetch-models) through the Rust loader,
//! tokenizer and f32 float model, against an independent float64 numpy implementation
//! (scripts/reference/minilm_numpy.py, committed vectors): same token ids, embeddings within 1e-4.

#![allow(clippy::cast_possible_truncation)]

use std::path::PathBuf;

use ditto_models::bert::Bert;
use ditto_models::config::BertConfig;
use ditto_models::tokenizer::Tokenizer;
use ditto_models::weights::Weights;

fn model_dir() -> PathBuf {
    let d = ditto_models::cache_dir().join("all-minilm-l6-v2");
    assert!(d.join("model.safetensors").exists(), "{} is missing: run scripts/fetch-models", d.display());
    d
}

#[test]
fn minilm_float_matches_the_numpy_reference() {
    let dir = model_dir();
    let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let w = Weights::load(&dir.join("model.safetensors")).unwrap();
    let bert = Bert::load(&cfg, &w).unwrap();
    let tok = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/minilm-float.json")).unwrap();
    for s in v["sentences"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let want_ids: Vec<u32> =
            s["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let ids = tok.encode(text, 128).unwrap();
        assert_eq!(ids, want_ids, "token ids of {text:?}");
        let e = bert.embed(&ids).unwrap();
        let want: Vec<f64> = s["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let err = e.iter().zip(&want).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-4, "{text:?}: max difference {err}");
    }
}

#[test]
fn loader_errors_name_the_tensor_or_field() {
    let dir = model_dir();
    let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let w = Weights::load(&dir.join("model.safetensors")).unwrap();
    // A config that does not match the weights: the first mis-shaped tensor is named.
    let mut wrong = cfg.clone();
    wrong.hidden_size = 768;
    wrong.num_attention_heads = 12;
    let e = Bert::load(&wrong, &w).unwrap_err().to_string();
    assert!(e.contains("embeddings.word_embeddings.weight") && e.contains("[30522, 768]"), "{e}");
    // A missing tensor.
    let mut deep = cfg.clone();
    deep.num_hidden_layers = 7;
    let e = Bert::load(&deep, &w).unwrap_err().to_string();
    assert!(e.contains("missing tensor encoder.layer.6."), "{e}");
    // The I64 position_ids tensor is skipped, and asking for it says why.
    let e = w.get(&["embeddings.position_ids".to_string()], &[1, 512]).unwrap_err().to_string();
    assert!(e.contains("I64"), "{e}");
    // Unreadable and malformed files.
    let tmp = std::env::temp_dir().join(format!("ditto-models-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let bad = tmp.join("model.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxx").unwrap();
    let e = Weights::load(&bad).unwrap_err().to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    let e = Weights::load(&tmp.join("absent.safetensors")).unwrap_err().to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
    std::fs::write(
        tmp.join("config.json"),
        r#"{"vocab_size": 10, "hidden_size": 30, "num_hidden_layers": 1,
        "num_attention_heads": 4, "intermediate_size": 8, "max_position_embeddings": 8}"#,
    )
    .unwrap();
    let e = BertConfig::load(&tmp.join("config.json")).unwrap_err().to_string();
    assert!(e.contains("not a multiple of num_attention_heads"), "{e}");
    std::fs::write(tmp.join("config.json"), r#"{"vocab_size": 10}"#).unwrap();
    let e = BertConfig::load(&tmp.join("config.json")).unwrap_err().to_string();
    assert!(e.contains("missing field `hidden_size`"), "{e}");
    // Too long input and unknown tokens.
    let tok = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let long = "word ".repeat(200);
    assert!(matches!(tok.encode(&long, 128), Err(ditto_models::ModelError::TooLong { max: 128, .. })));
    let bert = Bert::load(&cfg, &w).unwrap();
    assert!(matches!(
        bert.forward(&[101, 40000, 102]),
        Err(ditto_models::ModelError::UnknownToken { id: 40000, .. })
    ));
}
