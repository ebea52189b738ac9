//! Progress bars on long runs (stderr; drawn only when stderr is a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over a secure run's plan steps, for `Engine::set_progress`.
pub fn plan_steps(label: &'static str) -> impl FnMut(u32, u32) + Send + 'static {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{prefix:>9} [{bar:32}] {pos}/{len} steps, {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label);
    move |done, total| {
        bar.set_length(u64::from(total));
        bar.set_position(u64::from(done));
        if done >= total {
            bar.finish_and_clear();
        }
    }
}

/// A bar over `total` bytes written (wrap a writer with `wrap_write`).
pub fn bytes(label: &'static str, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>9} [{bar:32}] {bytes}/{total_bytes} {binary_bytes_per_sec}, ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label);
    bar
}
