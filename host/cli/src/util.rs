//! Helpers every command shares: the async runtime, network error wrapping, the range report.

use crate::files::CliError;

/// A network error as the CLI reports it.
pub(crate) fn net(e: impl std::fmt::Display) -> CliError {
    CliError::Net(e.to_string())
}

/// The runtime of a command's async work: two workers (the machines this runs on have two
/// cores; GEMM threads are separate).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(net)
}

/// Prints the fixed-point reference's range report: "range   clean", or one line per operation
/// whose input left its admitted range (its secure result is then not to be trusted).
pub(crate) fn say_range(r: &ditto_mpc::range::RangeReport) {
    if r.is_clean() {
        say!("range   every truncation, conversion, narrow sign and octave input within its admitted range");
        return;
    }
    say!(
        "range   WARNING: {} operations had inputs outside their admitted range (the secure result is unreliable there):",
        r.issues.len()
    );
    for l in r.lines(20) {
        say!("range   {l}");
    }
}
