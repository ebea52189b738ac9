//! Models by name, as every command takes them: `seeded` (a BERT-shaped model with seeded
//! random weights and byte tokens), `seeded-classifier` (the same with a two-label head),
//! `seeded-gpt2` (a GPT-2-shaped one), `shipped` (the GPT-2 compiled into ditto),
//! `arch:NAME` (a published shape with seeded weights: [`PUBLISHED`]), or a Hugging Face
//! directory holding a BERT or a GPT-2 (`config.json`, `model.safetensors`, `tokenizer.json`).

use std::path::{Path, PathBuf};

use crate::ModelError;
use crate::bert::Bert;
use crate::config::{BertConfig, Gpt2Config, is_gpt2_config};
use crate::gpt2::Gpt2;
use crate::seeded;
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

/// Published shapes `arch:NAME` and `ditto bench --arch NAME` take.
pub const PUBLISHED: &[&str] = &["bert-tiny", "minilm", "bert-base", "bert-large", "gpt2", "gpt2-medium"];

/// A model's config, of either architecture.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    /// BERT encoder.
    Bert(BertConfig),
    /// GPT-2 decoder.
    Gpt2(Gpt2Config),
}

impl ModelConfig {
    /// The config of a published shape (one of [`PUBLISHED`]).
    pub fn published(name: &str) -> Result<Self, ModelError> {
        // (layers, hidden, heads, FFN inner size, vocabulary, decoder)
        let (l, h, heads, f, v, decoder) = match name {
            "bert-tiny" => (2, 128, 2, 512, 30522, false),
            "minilm" => (6, 384, 12, 1536, 30522, false),
            "bert-base" => (12, 768, 12, 3072, 30522, false),
            "bert-large" => (24, 1024, 16, 4096, 30522, false),
            "gpt2" => (12, 768, 12, 3072, 50257, true),
            "gpt2-medium" => (24, 1024, 16, 4096, 50257, true),
            other => {
                return Err(ModelError::UnknownModel(format!(
                    "unknown --arch {other} (or arch:{other}): expected one of {}",
                    PUBLISHED.join(", ")
                )));
            }
        };
        Ok(if decoder {
            ModelConfig::Gpt2(Gpt2Config {
                vocab_size: v,
                n_positions: 1024,
                n_embd: h,
                n_layer: l,
                n_head: heads,
                n_inner: Some(f),
                activation_function: "gelu_new".into(),
                layer_norm_epsilon: 1e-5,
            })
        } else {
            ModelConfig::Bert(BertConfig {
                vocab_size: v,
                hidden_size: h,
                num_hidden_layers: l,
                num_attention_heads: heads,
                intermediate_size: f,
                hidden_act: "gelu".into(),
                max_position_embeddings: 512,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
                architectures: Vec::new(),
                id2label: std::collections::BTreeMap::new(),
            })
        })
    }

    /// Reads a Hugging Face directory's `config.json`, BERT or GPT-2 (GPT-2's has `n_embd`).
    pub fn load_dir(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|source| ModelError::Io { path: path.clone(), source })?;
        Ok(if is_gpt2_config(&text) {
            ModelConfig::Gpt2(Gpt2Config::from_json(&text, &path)?)
        } else {
            ModelConfig::Bert(BertConfig::from_json(&text, &path)?)
        })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        match self {
            ModelConfig::Bert(c) => c.vocab_size,
            ModelConfig::Gpt2(c) => c.vocab_size,
        }
    }

    /// Positions (the longest input, prompt plus generated tokens for GPT-2).
    pub fn positions(&self) -> usize {
        match self {
            ModelConfig::Bert(c) => c.max_position_embeddings,
            ModelConfig::Gpt2(c) => c.n_positions,
        }
    }

    /// Label names of a BERT classification model (empty for an encoder or a GPT-2).
    pub fn labels(&self) -> Vec<String> {
        match self {
            ModelConfig::Bert(c) => (0..c.num_labels().unwrap_or(0)).map(|i| c.label(i)).collect(),
            ModelConfig::Gpt2(_) => Vec::new(),
        }
    }
}

/// A model with its weights, of either architecture.
#[derive(Clone, Debug)]
pub enum Model {
    /// BERT encoder.
    Bert(Box<Bert>),
    /// GPT-2 decoder.
    Gpt2(Box<Gpt2>),
}

/// A model named on the command line (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    /// `seeded`.
    Seeded,
    /// `seeded-classifier`.
    SeededClassifier,
    /// `seeded-gpt2`.
    SeededGpt2,
    /// `shipped`: the GPT-2 compiled into ditto ([`crate::shipped`]).
    Shipped,
    /// `arch:NAME`.
    Published(String),
    /// A Hugging Face directory.
    Dir(PathBuf),
}

/// Weights seed of the `arch:NAME` models (the same on every host, so parties and dealers
/// started apart agree on them).
const PUBLISHED_SEED: u8 = 7;

impl ModelSpec {
    /// Parses a model name.
    pub fn parse(name: &str) -> Self {
        match name {
            "seeded" => ModelSpec::Seeded,
            "seeded-classifier" => ModelSpec::SeededClassifier,
            "seeded-gpt2" => ModelSpec::SeededGpt2,
            "shipped" => ModelSpec::Shipped,
            n => match n.strip_prefix("arch:") {
                Some(a) => ModelSpec::Published(a.to_string()),
                None => ModelSpec::Dir(PathBuf::from(n)),
            },
        }
    }

    /// True for a GPT-2 (reads a directory's config).
    pub fn is_gpt2(&self) -> Result<bool, ModelError> {
        Ok(matches!(self.config()?, ModelConfig::Gpt2(_)))
    }

    /// The model's config (a directory's `config.json` only; no weights are read).
    pub fn config(&self) -> Result<ModelConfig, ModelError> {
        Ok(match self {
            ModelSpec::Seeded => ModelConfig::Bert(seeded::config()),
            ModelSpec::SeededClassifier => ModelConfig::Bert(seeded::classifier(1).cfg),
            ModelSpec::SeededGpt2 => ModelConfig::Gpt2(seeded::gpt2(1).cfg),
            ModelSpec::Shipped => ModelConfig::Gpt2(crate::shipped::gpt2()?.0.cfg),
            ModelSpec::Published(a) => ModelConfig::published(a)?,
            ModelSpec::Dir(d) => ModelConfig::load_dir(d)?,
        })
    }

    /// The model with its weights.
    pub fn load(&self) -> Result<Model, ModelError> {
        Ok(match self {
            ModelSpec::Seeded => Model::Bert(Box::new(seeded::model(1))),
            ModelSpec::SeededClassifier => Model::Bert(Box::new(seeded::classifier(1))),
            ModelSpec::SeededGpt2 => Model::Gpt2(Box::new(seeded::gpt2(1))),
            ModelSpec::Shipped => Model::Gpt2(Box::new(crate::shipped::gpt2()?.0)),
            ModelSpec::Published(a) => match ModelConfig::published(a)? {
                ModelConfig::Bert(c) => Model::Bert(Box::new(seeded::bert_of(c, PUBLISHED_SEED))),
                ModelConfig::Gpt2(c) => Model::Gpt2(Box::new(seeded::gpt2_of(c, PUBLISHED_SEED))),
            },
            ModelSpec::Dir(d) => {
                let w = Weights::load(&d.join("model.safetensors"))?;
                match ModelConfig::load_dir(d)? {
                    ModelConfig::Bert(c) => Model::Bert(Box::new(Bert::load(&c, &w)?)),
                    ModelConfig::Gpt2(c) => Model::Gpt2(Box::new(Gpt2::load(&c, &w)?)),
                }
            }
        })
    }

    /// The client's side of the model: its tokenizer.
    pub fn tokens(&self) -> Result<Tokens, ModelError> {
        Ok(match self {
            ModelSpec::Seeded | ModelSpec::SeededClassifier => Tokens::BertBytes,
            ModelSpec::SeededGpt2 => Tokens::Gpt2Bytes,
            ModelSpec::Shipped => Tokens::Hf(Box::new(crate::shipped::gpt2()?.1)),
            ModelSpec::Published(a) => Tokens::Synthetic(ModelConfig::published(a)?.vocab()),
            ModelSpec::Dir(d) => Tokens::Hf(Box::new(match ModelConfig::load_dir(d)? {
                ModelConfig::Gpt2(_) => Tokenizer::gpt2_dir(d)?,
                ModelConfig::Bert(_) => Tokenizer::load(&d.join("tokenizer.json"))?,
            })),
        })
    }

    /// A short description for logs and demos.
    pub fn describe(&self) -> String {
        match self {
            ModelSpec::Seeded => {
                "seeded BERT-shaped model (2 layers, hidden 64, byte tokens; random weights)".into()
            }
            ModelSpec::SeededClassifier => {
                "seeded BERT-shaped model with a seeded classification head (2 layers, \
                                            hidden 64, byte tokens; random weights)"
                    .into()
            }
            ModelSpec::SeededGpt2 => {
                "seeded GPT-2-shaped model (2 layers, hidden 64, byte tokens; random weights)".into()
            }
            ModelSpec::Shipped => format!("{} (the GPT-2 built into ditto)", crate::shipped::PATH),
            ModelSpec::Published(a) => format!("{a} shape with seeded random weights"),
            ModelSpec::Dir(d) => d.display().to_string(),
        }
    }
}

/// Checks an input of `prompt` tokens generating `generate` more against a model of
/// `positions` positions: at least one token, and room for all.
pub fn check_input(prompt: usize, generate: usize, positions: usize) -> Result<(), ModelError> {
    if prompt == 0 {
        return Err(ModelError::Empty);
    }
    if prompt + generate > positions {
        return Err(ModelError::NoRoom { prompt, generate, positions });
    }
    Ok(())
}

/// The lengths a BERT client pads its input to, so that the parties learn only which bucket
/// its length falls in: the next bucket up, or the model's positions when that is shorter.
pub const BUCKETS: [usize; 6] = [16, 32, 64, 128, 256, 512];

/// The bucket of an input of `n` tokens for a model of `positions` positions (`n` itself past
/// the last bucket; `n <= positions` is [`check_input`]'s).
pub fn bucket(n: usize, positions: usize) -> usize {
    BUCKETS.iter().find(|&&b| b >= n).map_or(n, |&b| b.min(positions)).max(n)
}

/// A model's tokenizer as its client uses it.
pub enum Tokens {
    /// Byte tokens between [CLS] and [SEP] (the seeded BERTs).
    BertBytes,
    /// Byte tokens (the seeded GPT-2).
    Gpt2Bytes,
    /// A Hugging Face tokenizer.
    Hf(Box<Tokenizer>),
    /// A seeded published shape: one id per byte of the text, spread over the vocabulary.
    Synthetic(usize),
}

impl Tokens {
    /// Token ids of `text`, at most `max` of them (else [`ModelError::TooLong`]).
    pub fn encode(&self, text: &str, max: usize) -> Result<Vec<u32>, ModelError> {
        let ids: Vec<u32> = match self {
            Tokens::BertBytes => seeded::tokenize(text),
            Tokens::Gpt2Bytes => text.bytes().map(u32::from).collect(),
            Tokens::Hf(t) => return t.encode(text, max),
            Tokens::Synthetic(v) => text
                .bytes()
                .enumerate()
                .map(|(i, b)| u32::try_from((1000 + 7919 * i + 131 * usize::from(b)) % v).unwrap_or(0))
                .collect(),
        };
        if ids.len() > max {
            return Err(ModelError::TooLong { max, got: ids.len() });
        }
        Ok(ids)
    }

    /// Text of token ids (ids as a list for synthetic tokens).
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokens::BertBytes | Tokens::Gpt2Bytes => seeded::decode_bytes(ids),
            Tokens::Hf(t) => t.decode(ids).unwrap_or_else(|e| format!("<{e}>")),
            Tokens::Synthetic(_) => format!("{ids:?}"),
        }
    }
}
