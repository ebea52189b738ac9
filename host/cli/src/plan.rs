//! `ditto plan`: the plan a model's secure run executes (recorded from the model's own
//! program), with per-step and total online bytes and rounds and dealer bytes; `--json` prints
//! it all, `--out FILE` writes the plan for `ditto dealer --plan FILE`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ditto_core::plan::Plan;
use ditto_dealer::HashHex;
use ditto_models::config::{BertConfig, Gpt2Config};

use crate::files::CliError;

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

/// A model architecture with its config.
#[derive(Clone)]
pub(crate) enum Arch {
    /// BERT encoder.
    Bert(BertConfig),
    /// GPT-2 decoder.
    Gpt2(Gpt2Config),
}

fn arch(a: &PlanArgs) -> Result<(String, Arch), CliError> {
    if let Some(dir) = &a.model {
        let path = dir.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|source| CliError::File { path: path.clone(), source })?;
        let is_gpt2 = ditto_models::config::is_gpt2_config(&text);
        let name = dir.file_name().map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        return Ok(if is_gpt2 {
            (name, Arch::Gpt2(Gpt2Config::load(&path)?))
        } else {
            (name, Arch::Bert(BertConfig::load(&path)?))
        });
    }
    let name = a.arch.clone().ok_or_else(|| CliError::Usage("give --model DIR or --arch NAME".into()))?;
    Ok((name.clone(), published(&name)?))
}

/// The config of a published shape: bert-tiny, minilm, bert-base, bert-large, gpt2, gpt2-medium.
pub(crate) fn published(name: &str) -> Result<Arch, CliError> {
    let s = ditto_dealer::plans::by_name(name).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown --arch {name}: expected bert-tiny, minilm, bert-base, bert-large, gpt2, gpt2-medium"
        ))
    })?;
    let (h, l, heads, f, v) =
        (s.hidden as usize, s.layers as usize, s.heads as usize, s.ffn as usize, s.vocab as usize);
    Ok(if s.decoder {
        let c = Gpt2Config {
            vocab_size: v,
            n_positions: 1024,
            n_embd: h,
            n_layer: l,
            n_head: heads,
            n_inner: Some(f),
            activation_function: "gelu_new".into(),
            layer_norm_epsilon: 1e-5,
        };
        Arch::Gpt2(c)
    } else {
        let c = BertConfig {
            vocab_size: v,
            hidden_size: h,
            num_hidden_layers: l,
            num_attention_heads: heads,
            intermediate_size: f,
            hidden_act: "gelu".into(),
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            architectures: Vec::new(),
            id2label: std::collections::BTreeMap::new(),
        };
        Arch::Bert(c)
    })
}

/// Builds the plan of the arguments.
pub fn build(a: &PlanArgs) -> Result<Plan, CliError> {
    let q = crate::calibrate::load_quant(&a.quant)?;
    let (name, arch) = arch(a)?;
    let rt =
        tokio::runtime::Builder::new_current_thread().build().map_err(|e| CliError::Net(e.to_string()))?;
    Ok(rt.block_on(async {
        match arch {
            Arch::Bert(c) => {
                ditto_models::plans::bert(&format!("{name}/seq{}/{}", a.seq, a.quant), &c, &q, a.seq).await
            }
            Arch::Gpt2(c) => {
                let reveal = if a.reveal.is_token() { "/token" } else { "" };
                ditto_models::plans::gpt2(
                    &format!("{name}/seq{}+{}/{}{reveal}", a.seq, a.generate, a.quant),
                    &c,
                    &q,
                    (a.seq, a.generate),
                    a.reveal,
                )
                .await
            }
        }
    })?)
}

/// Runs `ditto plan`.
pub fn run(a: &PlanArgs) -> Result<(), CliError> {
    let plan = build(a)?;
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
    if a.json {
        say!(
            "{{\"name\": {:?}, \"hash\": \"{hex}\", \"total\": {{\"steps\": {}, \"online_bytes_per_party\": {online}, \"rounds\": {rounds}, \"dealer_bytes_p1\": {dealer}}}, \"steps\": [{}]}}",
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
    for (k, (o, r, d)) in by {
        say!("  {k:<11} online {:9.1} MB  rounds {r:6}  dealer {:9.1} MB", mb(o), mb(d));
    }
    Ok(())
}
