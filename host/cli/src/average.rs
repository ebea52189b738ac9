//! `ditto average`: the element-wise mean of BERT classifier students distilled from one teacher
//! under one QuantConfig (a uniform model soup), re-encoded at that QuantConfig's fixed-point
//! scales, so the result loads like any distilled student.

use std::path::{Path, PathBuf};

use candle_core::DType;
use ditto_models::quant::QuantConfig;

use crate::files::CliError;
use crate::training::err;
use ditto_distill::sentiment::{load, save_student};

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
    let quant = |dir: &Path| -> Result<QuantConfig, CliError> {
        let p = dir.join("quant.json");
        if !p.exists() {
            return Err(CliError::Usage(format!(
                "{} has no quant.json: average distilled students",
                dir.display()
            )));
        }
        Ok(QuantConfig::from_spec(&p.to_string_lossy())?)
    };
    let differs = |dir: &Path, file: &str| {
        CliError::Usage(format!("{}'s {file} differs from {}'s", dir.display(), a.models[0].display()))
    };
    let q = quant(&a.models[0])?;
    let (soup, _) = load(&a.models[0], DType::F64, 0)?;
    let mut others = Vec::with_capacity(a.models.len().saturating_sub(1));
    for dir in &a.models[1..] {
        if quant(dir)? != q {
            return Err(differs(dir, "quant.json"));
        }
        let (m, _) = load(dir, DType::F64, 0)?;
        if m.cfg != soup.cfg {
            return Err(differs(dir, "config.json"));
        }
        others.push(m);
    }
    let all: Vec<_> = std::iter::once(&soup.params).chain(others.iter().map(|m| &m.params)).collect();
    soup.params.set_mean(&all).map_err(err)?;
    save_student(&soup, &a.models[0], &a.out, &q)?;
    say!("averaged {} students into {}", all.len(), a.out.display());
    Ok(())
}
