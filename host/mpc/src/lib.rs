//! ditto-mpc: shared tensors and the online protocols of the two parties.
//!
//! An [`engine::Engine`] runs one party's side of a plan: every operation consumes the next
//! plan step (checked against the operation actually called), expands its correlation (P0 from
//! its seeds, P1 from its seeds plus the dealer's corrections for that step), exchanges one
//! whole-step message per round with the peer, and finishes with the party-local halves of
//! `ditto-core`. The same program run on an engine in *planning* mode records the plan instead,
//! so plans and programs cannot drift apart. [`plain`] is the plaintext fixed-point reference
//! with the same integer arithmetic.
#![deny(missing_docs)]

mod beside;
pub mod engine;
pub mod gemm;
pub mod local;
pub mod nonlinear;
pub mod octave;
pub mod ops;
pub mod plain;
pub mod precompute;
pub mod range;
mod setup;
pub mod softmax;
pub mod tensor;
mod wcache;

pub use engine::Engine;
pub use setup::WeightStore;
pub use tensor::Shared;

/// Errors of the online phase.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// Transport or dealer stream.
    #[error(transparent)]
    Net(#[from] ditto_net::NetError),
    /// Core (shapes, corrections, encodings).
    #[error(transparent)]
    Core(#[from] ditto_core::Error),
    /// Operands of the wrong shape.
    #[error("shape mismatch in {what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// Which operation.
        what: &'static str,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape given.
        got: Vec<usize>,
    },
    /// The program called another operation than the plan holds at this step.
    #[error("plan mismatch at step {step}: the plan has {planned}, the program called {called}")]
    PlanMismatch {
        /// Step index.
        step: u32,
        /// The plan's step.
        planned: String,
        /// The operation called.
        called: String,
    },
    /// The program ran past the end of the plan.
    #[error("the plan has {steps} steps; the program called one more ({called})")]
    PlanExhausted {
        /// Steps in the plan.
        steps: usize,
        /// The operation called.
        called: String,
    },
    /// The program ended before the plan.
    #[error("the program ended after {done} of the plan's {steps} steps")]
    PlanIncomplete {
        /// Steps run.
        done: u32,
        /// Steps in the plan.
        steps: usize,
    },
    /// Weight setup: the parties hold different share sets, or the weight cache is unusable.
    #[error("weight setup: {detail}")]
    Setup {
        /// What is wrong.
        detail: String,
    },
    /// An operation on shares of a ring it does not take (or no plan ring has their width).
    #[error("{what} takes {expected}, not shares of {bits} bits")]
    Ring {
        /// Which operation.
        what: &'static str,
        /// The rings it takes.
        expected: &'static str,
        /// The width given.
        bits: u32,
    },
    /// A softmax mask row that keeps no key.
    #[error("softmax mask row {row} keeps nothing: every query must see at least one key")]
    EmptyMaskRow {
        /// The row.
        row: usize,
    },
    /// An engine asked for what its mode does not have (a plan from a running engine,
    /// correlations from a planner or the plaintext reference).
    #[error("{what}: not available in this engine mode ({mode})")]
    Mode {
        /// What was asked.
        what: &'static str,
        /// The engine's mode.
        mode: &'static str,
    },
    /// The OS random number generator failed.
    #[error("OS random number generator: {0}")]
    Rng(String),
    /// Classification asked of a model without a classification head.
    #[error("the model has no classification head")]
    NoHead,
    /// The client of a generation went away (its channel closed).
    #[error("the client went away")]
    ClientGone,
    /// The client side of a generation received or was given something inconsistent.
    #[error("client: {0}")]
    Client(String),
    /// A local run could not set up one of its parties (identity, runtime, thread), or the
    /// party's thread panicked.
    #[error("local run: party {party}: {what}")]
    LocalParty {
        /// Which party (0 or 1).
        party: usize,
        /// What happened.
        what: String,
    },
    /// Scales that do not fit the operation.
    #[error("scale error in {what}: {detail}")]
    Scale {
        /// Which operation.
        what: &'static str,
        /// Why.
        detail: String,
    },
}
