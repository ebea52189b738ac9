//! `ditto average`: the element-wise mean of BERT classifier students distilled from one teacher
//! under one QuantConfig (a uniform model soup), re-encoded at that QuantConfig's fixed-point
//! scales, so the result loads like any distilled student.

use std::path::PathBuf;

use candle_core::DType;

use crate::classifier::{load, save_student};
use crate::distill::err;
use crate::files::CliError;

/// `ditto average`.
#[derive(clap::Args, Debug)]
pub struct AverageArgs {
    /// Output directory: the averaged student in the same layout, plus quant.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Student directories (two or more), each with the same config.json and quant.json.
    #[arg(required = true, num_args = 2..)]
    pub models: Vec<PathBuf>,
}

/// Averages the students' weights and writes the result.
pub fn average(a: &AverageArgs) -> Result<(), CliError> {
    let quant = |i: usize| -> Result<ditto_models::quant::QuantConfig, CliError> {
        let p = a.models[i].join("quant.json");
        if !p.exists() {
            return Err(CliError::Usage(format!(
                "{} has no quant.json: average distilled students",
                a.models[i].display()
            )));
        }
        crate::calibrate::load_quant(&p.to_string_lossy())
    };
    let q = quant(0)?;
    let mut students: Vec<ditto_distill::bert::CandleBert> = Vec::with_capacity(a.models.len());
    for (i, dir) in a.models.iter().enumerate() {
        if quant(i)? != q {
            return Err(CliError::Usage(format!(
                "{}'s quant.json differs from {}'s: average students of one QuantConfig",
                dir.display(),
                a.models[0].display()
            )));
        }
        let (m, _) = load(dir, DType::F64, 0)?;
        if let Some(first) = students.first()
            && m.cfg != first.cfg
        {
            return Err(CliError::Usage(format!(
                "{}'s config.json differs from {}'s",
                dir.display(),
                a.models[0].display()
            )));
        }
        students.push(m);
    }
    let soup = &students[0];
    soup.params.set_mean(&students.iter().map(|s| &s.params).collect::<Vec<_>>()).map_err(err)?;
    save_student(soup, &a.models[0], &a.out, &q)?;
    say!("averaged {} students into {}", students.len(), a.out.display());
    Ok(())
}
