//! `ditto plan`: the plan a model's secure run executes (recorded from the model's own
//! program), with per-step and total online bytes and rounds and dealer bytes; `--json` prints
//! it all, `--out FILE` writes the plan for `ditto dealer --plan FILE`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ditto_core::plan::Plan;
use ditto_dealer::HashHex;
use ditto_models::spec::ModelConfig;

use crate::files::CliError;
use ditto_models::quant::QuantConfig;

/// Arguments of `ditto plan`.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// A Hugging Face BERT or GPT-2 directory (only config.json is read).
    #[arg(long, conflicts_with = "arch")]
    pub model: Option<PathBuf>,
    /// A published shape instead: bert-tiny, minilm, bert-base, bert-large, gpt2, gpt2-medium.
    #[arg(long)]
    pub arch: Option<String>,
    /// Sequence length (prompt length for GPT-2).
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Tokens to generate (GPT-2).
    #[arg(long = "gen", default_value_t = 1)]
    pub generate: usize,
    /// BERT: inputs of `--seq` tokens in one session (a batch; the client's `--batch`).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// GPT-2: what each generated token reveals to the client: logits, or token (a secure
    /// argmax over the vocabulary; the client learns only the ids).
    #[arg(long, default_value = "logits", value_parser = crate::session::parse_reveal)]
    pub reveal: ditto_models::generate::Reveal,
    /// Quantization: accurate, ditto, or a QuantConfig JSON file (`ditto calibrate`).
    #[arg(long, default_value = "accurate")]
    pub quant: String,
    /// Print the whole plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the plan (postcard) for `ditto dealer --plan`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The plan of a model (a Hugging Face directory's config, or a published shape) over `seq`
/// tokens (a GPT-2 prompt generating `generate`), named after the model, length and quant:
/// what `ditto plan` prints and `ditto dealer --arch` serves.
pub(crate) fn build(
    model: (Option<&std::path::Path>, Option<&str>),
    (seq, generate, batch): (usize, usize, usize),
    reveal: ditto_models::generate::Reveal,
    quant: &str,
) -> Result<Plan, CliError> {
    let (name, cfg) = match model {
        (Some(dir), _) => (
            dir.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned()),
            ModelConfig::load_dir(dir)?,
        ),
        (None, Some(a)) => (a.to_string(), ModelConfig::published(a)?),
        (None, None) => return Err(CliError::Usage("give --model DIR or --arch NAME".into())),
    };
    if seq == 0 {
        return Err(CliError::Usage("--seq must be at least 1".into()));
    }
    if batch == 0 || batch > ditto_net::client::MAX_BATCH as usize {
        return Err(CliError::Usage(format!(
            "--batch {batch}: expected 1 to {}",
            ditto_net::client::MAX_BATCH
        )));
    }
    let q = QuantConfig::from_spec(quant)?;
    let rt =
        tokio::runtime::Builder::new_current_thread().build().map_err(|e| CliError::Net(e.to_string()))?;
    let name = match &cfg {
        ModelConfig::Bert(_) if batch > 1 => format!("{name}/seq{seq}x{batch}/{quant}"),
        ModelConfig::Bert(_) => format!("{name}/seq{seq}/{quant}"),
        ModelConfig::Gpt2(_) => {
            format!("{name}/seq{seq}+{generate}/{quant}{}", if reveal.is_token() { "/token" } else { "" })
        }
    };
    Ok(rt.block_on(ditto_models::plans::of(&name, &cfg, &q, (seq, generate, batch), reveal))?)
}

/// Runs `ditto plan`.
pub fn run(a: &PlanArgs) -> Result<(), CliError> {
    let lengths = (a.seq, a.generate, a.batch);
    let plan = build((a.model.as_deref(), a.arch.as_deref()), lengths, a.reveal, &a.quant)?;
    let hash = plan.hash()?;
    if let Some(out) = &a.out {
        std::fs::write(out, plan.to_bytes()?)
            .map_err(|source| CliError::File { path: out.clone(), source })?;
    }
    let (mut online, mut rounds, mut dealer) = (0u64, 0u32, 0u64);
    let mut by: BTreeMap<String, (u64, u32, u64)> = BTreeMap::new();
    let mut steps = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let (o, r, d) = (s.online_bytes_per_party(), s.rounds(), s.p1_correction_bytes());
        online += o;
        rounds += r;
        dealer += d;
        let tag = format!("{:?}", s.tag);
        let e = by.entry(tag.split(['(', ' ']).next().unwrap_or("").to_string()).or_default();
        e.0 += o;
        e.1 += r;
        e.2 += d;
        if a.json {
            steps.push(format!(
                "{{\"index\": {i}, \"op\": {:?}, \"tag\": {:?}, \"layer\": {}, \"online_bytes\": {o}, \"rounds\": {r}, \"dealer_bytes\": {d}}}",
                format!("{:?}", s.op),
                format!("{:?}", s.tag),
                s.layer
            ));
        }
    }
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let products = ditto_mpc::precompute::products_bytes(&plan);
    if a.json {
        say!(
            "{{\"name\": {:?}, \"hash\": \"{hex}\", \"total\": {{\"steps\": {}, \"online_bytes_per_party\": {online}, \"rounds\": {rounds}, \"dealer_bytes_p1\": {dealer}, \"products_bytes_per_party\": {products}}}, \"steps\": [{}]}}",
            plan.header.name.as_str(),
            plan.steps.len(),
            steps.join(", ")
        );
        return Ok(());
    }
    #[allow(clippy::cast_precision_loss)]
    let mb = |b: u64| b as f64 / 1e6;
    say!("plan    {} ({} steps, hash {})", plan.header.name, plan.steps.len(), HashHex::of(&hash));
    say!("total   online {:.1} MB per party, {rounds} rounds, dealer {:.1} MB to P1", mb(online), mb(dealer));
    say!("ahead   products A_i F of a pooled session: {:.1} MB per party", mb(products));
    for (k, (o, r, d)) in by {
        say!("  {k:<11} online {:9.1} MB  rounds {r:6}  dealer {:9.1} MB", mb(o), mb(d));
    }
    Ok(())
}
