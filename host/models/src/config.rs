//! Model configs mirroring Hugging Face `config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// BERT's `config.json` (fields ditto uses; others are ignored).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN inner size.
    pub intermediate_size: usize,
    /// Activation ("gelu").
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Position embeddings.
    pub max_position_embeddings: usize,
    /// Token types.
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "eps12")]
    pub layer_norm_eps: f64,
    /// HF model classes; `BertForSequenceClassification` means a classification head (pooler
    /// and classifier) follows the encoder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Label names by index ("0", "1", ...) of the classification head.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub id2label: BTreeMap<String, String>,
}

fn gelu() -> String {
    "gelu".into()
}
fn two() -> usize {
    2
}
fn eps12() -> f64 {
    1e-12
}

fn read_text(path: &Path) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })
}

fn parse_json<T: for<'de> Deserialize<'de>>(text: &str, path: &Path) -> Result<T, ModelError> {
    serde_json::from_str(text)
        .map_err(|e| ModelError::Config { path: path.to_path_buf(), reason: e.to_string() })
}

impl BertConfig {
    /// Reads and checks a BERT `config.json`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_json(&read_text(path)?, path)
    }

    /// Parses and checks the text of a BERT `config.json` (`path` names it in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let c: BertConfig = parse_json(text, path)?;
        c.check().map_err(|reason| ModelError::Config { path: path.to_path_buf(), reason })?;
        Ok(c)
    }

    /// Checks the values ditto supports.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_pytorch_tanh") {
            return Err(format!("hidden_act {:?} is not supported (gelu, gelu_new)", self.hidden_act));
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.vocab_size == 0
            || self.num_hidden_layers == 0
            || self.intermediate_size == 0
            || self.max_position_embeddings == 0
        {
            return Err("vocab_size, num_hidden_layers, intermediate_size and max_position_embeddings must be positive".into());
        }
        if let Some(n) = self.num_labels()
            && (0..n).any(|i| !self.id2label.is_empty() && !self.id2label.contains_key(&i.to_string()))
        {
            return Err(format!("id2label must name labels 0..{n} (has {:?})", self.id2label.keys()));
        }
        Ok(())
    }

    /// Labels of the classification head, or None for a bare encoder.
    pub fn num_labels(&self) -> Option<usize> {
        let head = self.architectures.iter().any(|a| a == "BertForSequenceClassification");
        head.then_some(if self.id2label.is_empty() { 2 } else { self.id2label.len() })
    }

    /// Name of label `i` (`LABEL_i` when the config names none).
    pub fn label(&self, i: usize) -> String {
        self.id2label.get(&i.to_string()).cloned().unwrap_or_else(|| format!("LABEL_{i}"))
    }

    /// Head size.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// GPT-2's `config.json` (fields ditto uses).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Positions.
    pub n_positions: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Layers.
    pub n_layer: usize,
    /// Heads.
    pub n_head: usize,
    /// FFN inner size (default 4 n_embd).
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// Activation ("gelu_new").
    #[serde(default = "gelu_new")]
    pub activation_function: String,
    /// LayerNorm epsilon.
    #[serde(default = "eps5")]
    pub layer_norm_epsilon: f64,
}

fn gelu_new() -> String {
    "gelu_new".into()
}
fn eps5() -> f64 {
    1e-5
}

impl Gpt2Config {
    /// Reads and checks a GPT-2 `config.json`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_json(&read_text(path)?, path)
    }

    /// Parses and checks the text of a GPT-2 `config.json` (`path` names it in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ModelError> {
        let c: Gpt2Config = parse_json(text, path)?;
        c.check().map_err(|reason| ModelError::Config { path: path.to_path_buf(), reason })?;
        Ok(c)
    }

    /// Checks the values ditto supports.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.activation_function.as_str(), "gelu_new" | "gelu" | "gelu_pytorch_tanh") {
            return Err(format!(
                "activation_function {:?} is not supported (gelu_new, gelu)",
                self.activation_function
            ));
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(format!("n_embd {} is not a multiple of n_head {}", self.n_embd, self.n_head));
        }
        if self.vocab_size == 0 || self.n_layer == 0 || self.n_positions == 0 {
            return Err("vocab_size, n_layer and n_positions must be positive".into());
        }
        Ok(())
    }

    /// FFN inner size.
    pub fn inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

/// True when the `config.json` text is a GPT-2 config (it has `n_embd`), false for BERT.
pub fn is_gpt2_config(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.get("n_embd").is_some())
}
