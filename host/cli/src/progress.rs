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
