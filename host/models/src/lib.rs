//! ditto-models: BERT and GPT-2 from Hugging Face files (`config.json`, `model.safetensors`,
//! `tokenizer.json`), as an f32 float reference and on the MPC engine, where one
//! definition runs as the plaintext fixed-point reference, the planner and the secure run.
#![deny(missing_docs)]

pub mod bert;
pub mod blocks;
pub mod calibrate;
pub mod config;
pub mod float;
pub mod generate;
pub mod gpt2;
pub mod plans;
pub mod quant;
pub mod range;
pub mod seeded;
pub mod share_file;
pub mod sharing;
pub mod shipped;
pub mod spec;
pub mod tokenizer;
pub mod weights;

/// Where `scripts/fetch-models` caches the real models and tokenizers: `$DITTO_CACHE`, else
/// `$XDG_CACHE_HOME/ditto`, else `~/.cache/ditto`.
pub fn cache_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    std::env::var_os("DITTO_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"))
            .join("ditto")
    })
}

/// Errors of model loading and running. Names the file, tensor or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A config file that does not parse or has an unsupported value.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A weights file that is not valid safetensors.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A tensor the model needs is absent.
    #[error("missing tensor {name} (tried {tried})")]
    MissingTensor {
        /// Its name.
        name: String,
        /// The names looked up.
        tried: String,
    },
    /// A tensor of the wrong shape.
    #[error("tensor {name} has shape {got:?}, expected {expected:?}")]
    Shape {
        /// Its name.
        name: String,
        /// Expected.
        expected: Vec<usize>,
        /// Found.
        got: Vec<usize>,
    },
    /// A tensor of an unsupported element type.
    #[error("tensor {name} has dtype {dtype}; supported: F32, F16, BF16")]
    Dtype {
        /// Its name.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tokenizer that cannot be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Input longer than the model or plan allows.
    #[error("input has {got} tokens, more than the {max} allowed")]
    TooLong {
        /// Limit.
        max: usize,
        /// Tokens.
        got: usize,
    },
    /// A prompt and generation longer than the model's positions.
    #[error(
        "a {prompt}-token prompt and {generate} generated tokens need {} positions; the model has {positions}",
        prompt + generate
    )]
    NoRoom {
        /// Prompt tokens.
        prompt: usize,
        /// Tokens to generate.
        generate: usize,
        /// The model's positions.
        positions: usize,
    },
    /// An input of no tokens.
    #[error("the input is empty: give at least one token of text")]
    Empty,
    /// No QuantConfig near the calibrated one keeps the sample inputs in range.
    #[error(
        "no QuantConfig within {retries} steps of the calibrated one keeps the sample text in range; the \
         fixed-point reference still reports: {issues}"
    )]
    OutOfRange {
        /// Steps tried.
        retries: usize,
        /// The remaining issues.
        issues: String,
    },
    /// A model name that names no model.
    #[error("{0}")]
    UnknownModel(String),
    /// A secure or reference run failed.
    #[error(transparent)]
    Mpc(#[from] ditto_mpc::MpcError),
    /// Classification asked of a model without a classification head.
    #[error(
        "the model has no classification head (config.json architectures lacks BertForSequenceClassification)"
    )]
    NoHead,
    /// A token id outside the vocabulary.
    #[error("token id {id} outside the vocabulary of {vocab}")]
    UnknownToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
}
