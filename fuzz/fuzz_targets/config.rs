//! HF `config.json` parsing and checking, BERT and GPT-2, on the same text.
#![no_main]

use std::path::Path;

use ditto_models::config::{BertConfig, Gpt2Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = BertConfig::from_json(text, Path::new("config.json")) {
        let _ = (c.num_labels(), c.label(0), c.head_dim());
    }
    let _ = Gpt2Config::from_json(text, Path::new("config.json"));
});
