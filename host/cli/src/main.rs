//! `ditto`: the command line of ditto.
//!
//! * `ditto provision --out DIR`: party keys and the model-mask seed for a dealer deployment;
//! * `ditto keygen --out DIR --name p0 ...`: TLS identities; every link is TLS 1.3 with pinned
//!   peers unless `--insecure-plaintext`;
//! * `ditto dealer ...`: generate a session's correlated randomness for a plan and serve it to
//!   P0 and P1 over TCP, or write it to files for offline pre-generation;
//! * `ditto demo`: dealer, P0 and P1 in one process over loopback TLS, on the GPT-2 shipped in
//!   ditto (or a BERT, or a model directory);
//! * `ditto share-model`, `party`, `client`: the same run across processes or hosts;
//! * `ditto bench`: a published architecture with seeded weights, timed and checked.

/// Prints a line on stdout; a closed stdout (e.g. `| head -1`) is not an error worth a panic.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

mod average;
mod bench;
mod calibrate;
mod classifier;
mod dealer;
mod demo;
mod demo_gpt2;
mod distill;
mod files;
mod identity;
mod lm;
mod plan;
mod progress;
mod session;
mod shape;
mod training;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Quantization-aware secure Transformer inference with a trusted dealer.
#[derive(Parser, Debug)]
#[command(name = "ditto", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create party keys (p0.key, p1.key), a model-mask seed (model.seed), a dealer board's relay
    /// key (relay.key) and its key page (board-keys.bin) in a directory.
    Provision(files::ProvisionArgs),
    /// Create TLS identities (NAME.identity) and a `trust` file of their fingerprints.
    Keygen(identity::KeygenArgs),
    /// Choose static fixed-point scales for a BERT model from sample text (writes a QuantConfig).
    Calibrate(calibrate::CalibrateArgs),
    /// The plan of a model's secure run: steps, bytes, rounds, dealer bytes.
    Plan(plan::PlanArgs),
    /// Generate and serve (or write) one session's correlated randomness.
    Dealer(Box<dealer::DealerArgs>),
    /// Local demo: dealer, P0 and P1 in one process over loopback TLS (the shipped GPT-2 by default).
    Demo(demo::DemoArgs),
    /// Split a model (BERT or GPT-2) into the two parties' shares (model owner).
    ShareModel(session::ShareArgs),
    /// Run P0 or P1 for one client request.
    Party(Box<session::PartyArgs>),
    /// Send private text to the parties and reconstruct the answer (embedding, label or text).
    Client(session::ClientArgs),
    /// Benchmark a published architecture (seeded weights): time, bytes, rounds, breakdown.
    Bench(bench::BenchArgs),
    /// Train a small float GPT-2 on Jane Austen's novels (the teacher of the default model).
    TrainLm(Box<lm::TrainLmArgs>),
    /// Quantization-aware distillation of a GPT-2 or a BERT classifier under a QuantConfig (writes the student).
    Distill(Box<distill::DistillArgs>),
    /// Fine-tune a BERT (default all-MiniLM-L6-v2) with a classification head on sentence polarity.
    TrainClassifier(Box<classifier::TrainClsArgs>),
    /// Test accuracy of a BERT classifier: float, fixed-point under a QuantConfig, secure.
    EvalClassifier(Box<classifier::EvalClsArgs>),
    /// Average the weights of BERT classifier students distilled under one QuantConfig.
    Average(average::AverageArgs),
    /// Held-out perplexity of a GPT-2: float, and secure under QuantConfigs.
    EvalLm(Box<lm::EvalLmArgs>),
    /// Relay one TCP connection through an emulated link (rate, delay): `tc netem` in userspace.
    Shape(shape::ShapeArgs),
}

fn main() -> ExitCode {
    // Logs on stderr; RUST_LOG=ditto=info shows a span per model layer (time, bytes, rounds).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Provision(a) => files::provision(&a),
        Command::Keygen(a) => identity::keygen(&a),
        Command::Dealer(a) => dealer::run(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Calibrate(a) => calibrate::run(&a),
        Command::Demo(a) => match demo::which(&a) {
            Ok((spec, false)) => demo::run(&a, &spec),
            Ok((spec, true)) => util::runtime().and_then(|rt| demo_gpt2::run(&a, &spec, &rt)),
            Err(e) => Err(e),
        },
        Command::ShareModel(a) => session::share_model(&a),
        Command::Party(a) => session::party(&a),
        Command::Client(a) => session::client(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Shape(a) => shape::run(&a),
        Command::TrainLm(a) => lm::train_lm(&a),
        Command::Distill(a) => distill::distill(&a),
        Command::EvalLm(a) => lm::eval_lm(&a),
        Command::TrainClassifier(a) => classifier::train_classifier(&a),
        Command::EvalClassifier(a) => classifier::eval_classifier(&a),
        Command::Average(a) => average::average(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ditto: error: {e}");
            ExitCode::FAILURE
        }
    }
}
