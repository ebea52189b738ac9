//! `ditto distill`: quantization-aware distillation of a GPT-2 or a BERT classifier under a
//! QuantConfig (`ditto_distill::lm`, `ditto_distill::sentiment`), with a progress bar and a
//! checkpoint it resumes from.

use std::path::PathBuf;

use ditto_distill::lm;
use ditto_distill::sentiment::{self, Note};
use ditto_distill::student::Mode;
use ditto_distill::train::{Stages, TrainOptions};
use ditto_models::quant::QuantConfig;

use crate::files::CliError;
use crate::training::{LoopArgs, bar, data_path, positive};

/// `ditto distill`.
#[derive(clap::Args, Debug)]
pub struct DistillArgs {
    /// The float teacher: an HF GPT-2 or BERT classifier directory (config.json,
    /// model.safetensors, tokenizer.json).
    #[arg(long)]
    pub teacher: PathBuf,
    /// The student's QuantConfig: `ditto` (the preset) or a JSON file; Quad GeLU only.
    #[arg(long, default_value = "ditto")]
    pub quant: String,
    /// Training data as `scripts/fetch-data` writes it (default: the cache's): Austen's novels
    /// for a GPT-2, polarity.tsv for a BERT classifier (its training split).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory: the student in the teacher's layout, plus quant.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Stage-1 steps (attention scores and hidden states, MSE).
    #[arg(long = "stage1-steps", default_value_t = 200)]
    pub stage1: usize,
    /// Stage-2 steps (logits, soft cross-entropy).
    #[arg(long = "stage2-steps", default_value_t = 300)]
    pub stage2: usize,
    /// Held-out windows scored at the end (float teacher and fixed-point student).
    #[arg(long, default_value_t = 64)]
    pub eval_windows: usize,
    /// BERT: the share of each batch that is perturbed copies of training sentences (tokens
    /// deleted or replaced; the teacher labels them), a larger transfer set against
    /// over-fitting the 3200 training sentences (default 0.5).
    #[arg(long)]
    pub augment: Option<f64>,
    /// BERT: report the fixed-point student's validation accuracy every this many steps of
    /// either stage and at the start of stage 2, i.e. after stage 1 (0: never).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// BERT: keep the student with the best validation accuracy among those reported (every
    /// `--eval-every` steps and at the end) instead of the last one (early stopping).
    #[arg(long)]
    pub keep_best: bool,
    /// BERT: weight in [0, 1] of the cross-entropy against the gold labels of the unperturbed
    /// training sentences in stage 2's loss (the soft cross-entropy against the teacher gets
    /// the rest; default 0: the teacher alone).
    #[arg(long)]
    pub hard_label: Option<f64>,
    /// Peak learning rate of stage 2 alone (default: `--lr` if given, else the stage's own
    /// default, lower than stage 1's).
    #[arg(long = "stage2-lr", value_parser = positive)]
    pub stage2_lr: Option<f64>,
    #[command(flatten)]
    pub train: LoopArgs,
}

impl DistillArgs {
    /// The stages' settings, with these default learning rates.
    fn stages<'a>(
        &'a self,
        data: &'a std::path::Path,
        q: &'a QuantConfig,
        (lr1, lr2): (f64, f64),
    ) -> Stages<'a> {
        Stages {
            teacher: &self.teacher,
            out: &self.out,
            data,
            q,
            stage1: self.stage1_options(lr1),
            stage2: self.stage2_options(lr2),
        }
    }

    /// Stage 1's options (`default_lr` unless `--lr`).
    pub(crate) fn stage1_options(&self, default_lr: f64) -> TrainOptions {
        self.train.options(self.stage1, default_lr)
    }

    /// Stage 2's options: `--stage2-lr`, else `--lr`, else `default_lr`.
    pub(crate) fn stage2_options(&self, default_lr: f64) -> TrainOptions {
        let mut o = self.train.options(self.stage2, default_lr);
        if let Some(lr) = self.stage2_lr {
            o.lr = lr;
        }
        o
    }
}

/// `ditto distill`.
pub fn distill(a: &DistillArgs) -> Result<(), CliError> {
    let q = QuantConfig::from_spec(&a.quant)?;
    Mode::fixed(&q)?;
    if !ditto_models::spec::ModelSpec::Dir(a.teacher.clone()).is_gpt2()? {
        return distill_bert(a, &q);
    }
    if a.augment.is_some() || a.eval_every > 0 || a.keep_best || a.hard_label.is_some() {
        return Err(CliError::Usage(
            "--augment, --eval-every, --keep-best and --hard-label are for a BERT classifier teacher; a \
             GPT-2 student is scored by held-out perplexity at the end"
                .into(),
        ));
    }
    let data = data_path(a.data.as_deref(), "austen");
    let d = lm::Distillation { stages: a.stages(&data, &q, (1e-4, 5e-5)), eval_windows: a.eval_windows };
    d.run(&mut bar("distill"), &mut crate::lm::say_note)?;
    Ok(())
}

/// `ditto distill` of a BERT classifier (see [`sentiment::Distillation`]); prints its reports.
fn distill_bert(a: &DistillArgs, q: &QuantConfig) -> Result<(), CliError> {
    let data = data_path(a.data.as_deref(), "polarity.tsv");
    let d = sentiment::Distillation {
        stages: a.stages(&data, q, (2e-5, 1e-5)),
        augment: a.augment.unwrap_or(0.5),
        hard_label: a.hard_label.unwrap_or(0.0),
        eval_every: a.eval_every,
        keep_best: a.keep_best,
    };
    d.run(&mut bar("distill"), &mut |n| match n {
        Note::Resumed(s) => say!("resume  {} from step {} (checkpoint)", s.phase, s.step),
        Note::Validation { stage, step, accuracy } => {
            say!("stage{stage}: step {step}, validation accuracy of the student {accuracy:.2}%");
        }
        Note::Kept { best: Some((at, score)), last } => say!(
            "best    the student after {} step {} (validation {score:.2}%; the last {last:.2}%)",
            at.phase,
            at.step
        ),
        Note::Kept { best: None, last } => say!("best    the last student (validation {last:.2}%)"),
        Note::Test { teacher, student, undistilled } => say!(
            "test accuracy: float teacher {teacher:.2}%, Ditto-mode student {student:.2}%, undistilled in Ditto mode {undistilled:.2}%"
        ),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Command};

    fn distill_args(extra: &[&str]) -> super::DistillArgs {
        let mut argv = vec!["ditto", "distill", "--teacher", "t", "--out", "o"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("valid command line").command {
            Command::Distill(a) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn stage2_lr_overrides_lr_for_stage_2_only() {
        let (s1, s2) = (2e-5, 1e-5);
        let a = distill_args(&["--stage1-steps", "7", "--stage2-steps", "9"]);
        let (o1, o2) = (a.stage1_options(s1), a.stage2_options(s2));
        assert_eq!((o1.steps, o1.lr, o2.steps, o2.lr), (7, s1, 9, s2));
        let a = distill_args(&["--lr", "3e-4"]);
        assert_eq!((a.stage1_options(s1).lr, a.stage2_options(s2).lr), (3e-4, 3e-4));
        let a = distill_args(&["--lr", "3e-4", "--stage2-lr", "2e-6"]);
        assert_eq!((a.stage1_options(s1).lr, a.stage2_options(s2).lr), (3e-4, 2e-6));
        let a = distill_args(&["--stage2-lr", "2e-6"]);
        assert_eq!((a.stage1_options(s1).lr, a.stage2_options(s2).lr), (s1, 2e-6));
    }

    /// Rates and sizes a run cannot use are refused at parsing, with the value named.
    #[test]
    fn unusable_rates_and_sizes_are_refused() {
        let bad = [
            ("--lr", "0"),
            ("--lr", "-1e-4"),
            ("--lr", "nan"),
            ("--lr", "inf"),
            ("--stage2-lr", "0"),
            ("--batch", "0"),
            ("--seq", "1"),
        ];
        for (flag, value) in bad {
            let arg = format!("{flag}={value}");
            let argv = ["ditto", "distill", "--teacher", "t", "--out", "o", &arg];
            let e = Cli::try_parse_from(argv).expect_err(&format!("{arg} accepted"));
            assert!(e.to_string().contains(value), "{arg}: {e}");
        }
        assert!(Cli::try_parse_from(["ditto", "eval-lm", "--model", "m", "--seq", "0"]).is_err());
        assert!(Cli::try_parse_from(["ditto", "eval-lm", "--model", "m", "--seq", "1"]).is_ok());
        assert_eq!(distill_args(&["--batch", "1", "--seq", "2"]).train.seq, 2);
    }
}
