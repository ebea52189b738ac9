//! ditto-distill: quantization-aware distillation (QAD, DESIGN.md §1) with candle on the CPU.
//!
//! The teacher is the float model; the student is the same model fake-quantized under a
//! Ditto-mode QuantConfig, whose forward pass computes exactly what the fixed-point reference
//! (and so the secure run, within its ulps) computes, while gradients flow through
//! straight-through estimators ([`student`]). Stage 1 fits the student's attention scores and
//! hidden states to the teacher's layer by layer (MSE); stage 2 its logits (soft cross-entropy,
//! temperature 1).
#![deny(missing_docs)]

pub mod bert;
pub mod data;
pub mod fixed;
pub mod gpt2;
pub mod lm;
pub mod params;
pub mod sentiment;
pub mod student;
pub mod train;

use std::path::PathBuf;

/// An I/O error on `path` as a [`DistillError`].
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DistillError + '_ {
    move |source| DistillError::Io { path: path.to_path_buf(), source }
}

/// Errors of distillation and training.
#[derive(Debug, thiserror::Error)]
pub enum DistillError {
    /// A tensor operation failed (shapes, dtypes).
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    /// A model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] ditto_models::ModelError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A parameter the model needs is absent.
    #[error("no parameter {0}")]
    MissingTensor(String),
    /// A checkpoint that does not match the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A QuantConfig the student cannot train.
    #[error("quantization config: {0}")]
    Quant(String),
    /// Options a run cannot use.
    #[error("{0}")]
    Options(String),
    /// Training data that cannot be used.
    #[error("data: {0}")]
    Data(String),
}
