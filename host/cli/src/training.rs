//! What the training commands share: the loop options, the progress bar, the data cache and
//! checkpoint reports.

use std::path::{Path, PathBuf};

use ditto_distill::train::{Checkpoint, TrainOptions};

use crate::files::CliError;

/// A command-line count no smaller than `min`.
pub(crate) fn at_least(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| match s.parse::<usize>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!("{s} is not a whole number of at least {min}")),
    }
}

/// A command-line learning rate: a finite number above 0.
pub(crate) fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s} is not a positive number")),
    }
}

/// Options shared by the training commands.
#[derive(clap::Args, Debug, Clone)]
pub struct LoopArgs {
    /// Sequences per step.
    #[arg(long, default_value_t = 16, value_parser = at_least(1))]
    pub batch: usize,
    /// Positions per sequence (at most the model's n_positions).
    #[arg(long, default_value_t = 128, value_parser = at_least(2))]
    pub seq: usize,
    /// Peak learning rate (warm-up, then cosine decay to a tenth).
    #[arg(long, value_parser = positive)]
    pub lr: Option<f64>,
    /// Seed of the batch sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Save a checkpoint (in OUT/checkpoint; a rerun resumes from it) every this many steps.
    #[arg(long, default_value_t = 50)]
    pub every: usize,
}

impl LoopArgs {
    pub(crate) fn options(&self, steps: usize, lr: f64) -> TrainOptions {
        TrainOptions {
            steps,
            batch: self.batch,
            seq: self.seq,
            lr: self.lr.unwrap_or(lr),
            warmup: (steps / 20).max(1),
            seed: self.seed,
            every: self.every,
        }
    }
}

pub(crate) fn err(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// `d`, else `name` in the data cache that `scripts/fetch-data` fills.
pub(crate) fn data_path(d: Option<&Path>, name: &str) -> PathBuf {
    d.map_or_else(|| ditto_models::cache_dir().join("data").join(name), Path::to_path_buf)
}

pub(crate) fn bar(label: &'static str) -> impl FnMut(&str, usize, usize, f64) {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(s) = ProgressStyle::with_template("{prefix:>8} [{bar:32}] {pos}/{len} {msg} {elapsed}/{eta}") {
        bar.set_style(s.progress_chars("=> "));
    }
    bar.set_prefix(label);
    let mut logged = std::time::Instant::now();
    move |phase, done, total, loss| {
        bar.set_prefix(phase.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.4}"));
        // Without a terminal, one line every 30 s (and at the end).
        if bar.is_hidden() && (logged.elapsed().as_secs() >= 30 || done == total) {
            eprintln!("{phase}: step {done}/{total}, loss {loss:.4}");
            logged = std::time::Instant::now();
        }
        if done == total {
            bar.finish_and_clear();
        }
    }
}

pub(crate) fn resumed(ckpt: &Checkpoint) -> Result<(), CliError> {
    if let Some(s) = ckpt.state().map_err(err)? {
        say!("resume  {} from step {} (checkpoint)", s.phase, s.step);
    }
    Ok(())
}
