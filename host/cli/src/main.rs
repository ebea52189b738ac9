//! `ditto`: the command line of ditto (dealer, parties, demo, bench).
//!
//! The subcommands arrive with their issues; today the binary reports the protocol and plan
//! versions it speaks and says plainly what is not there yet.

use std::process::ExitCode;

const USAGE: &str = "\
ditto - quantization-aware secure Transformer inference with a trusted dealer

usage: ditto <command>

commands:
  demo      local demo: dealer, P0 and P1 on the shipped small model (arrives with issue 5)
  dealer    serve correlated randomness to the parties (arrives with issue 3)
  party     run P0 or P1 (arrives with issue 4)
  bench     benchmarks (arrives with issue 6)
  version   print the versions this build speaks
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("version" | "--version" | "-V") => {
            println!(
                "ditto {} (plan format v{}, frame format v{})",
                env!("CARGO_PKG_VERSION"),
                ditto_core::plan::PLAN_VERSION,
                ditto_core::frame::FRAME_VERSION
            );
            ExitCode::SUCCESS
        }
        Some(cmd @ ("demo" | "dealer" | "party" | "bench")) => {
            eprintln!(
                "ditto {cmd}: not available yet. This build has the no_std core (rings, fixed point, \
                 PRG, plans, correlation formats, framing, protocol halves); `{cmd}` arrives with its \
                 issue (see README.md)."
            );
            ExitCode::from(2)
        }
        Some(other) => {
            eprintln!("ditto: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(64)
        }
    }
}
