//! `ditto demo` on a BERT: dealer, P0 and P1 in one process over loopback TLS; prints
//! the secure embedding's agreement with the fixed-point and float models (or, for a
//! classification model, the three logit vectors and labels), time, bytes and rounds. Exits
//! non-zero when secure and fixed-point disagree (cosine below 0.9999, or another label).

use std::path::PathBuf;

use ditto_core::prg::Prg;
use ditto_models::bert::Bert;
use ditto_models::bert::local::infer_local;
use ditto_models::bert::secure::BertOutput;
use ditto_models::quant::QuantConfig;
use ditto_models::spec::{Model, ModelSpec};
use ditto_mpc::Engine;
use ditto_mpc::local::{Local, Net};

use crate::files::CliError;
use ditto_node::files::os_random16;

/// Arguments of `ditto demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The model. Default (or `shipped`): the GPT-2 shipped in ditto (models/austen-gpt2: 4
    /// layers, hidden 128, trained on Jane Austen's novels and distilled into Ditto mode), which
    /// generates text.
    /// Or a Hugging Face directory (config.json, model.safetensors, tokenizer.json) of a BERT
    /// (e.g. the all-MiniLM-L6-v2 that scripts/fetch-models caches; a classification model runs
    /// its head) or a GPT-2 (generates; with its `quant.json` if it has one); or a seeded model
    /// with random weights (the pipeline is real, the output means nothing): `seeded` (BERT,
    /// 2 layers, hidden 64, byte tokens), `seeded-classifier` (with a two-label head),
    /// `seeded-gpt2` (GPT-2, byte tokens), or `arch:NAME` (a published shape, seeded).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The private input text (default: a BERT sentence, or a GPT-2 prompt).
    #[arg(long)]
    pub text: Option<String>,
    /// Quantization: a preset (accurate for unmodified models, ditto for QAD-distilled ones) or a
    /// QuantConfig JSON file (`ditto calibrate`, `ditto distill`). Default: the model's
    /// quant.json if it has one, else accurate.
    #[arg(long)]
    pub quant: Option<String>,
    /// Threads for GEMM and dealer generation.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Tokens a GPT-2 generates (the client picks each greedily and feeds it back as a private
    /// input); default 24 for the shipped model, 10 for seeded-gpt2.
    #[arg(long = "gen")]
    pub generate: Option<usize>,
    /// GPT-2: what each generated token reveals to the client: logits (the client picks), or
    /// token (the parties pick it with a secure argmax; the client learns only the ids).
    #[arg(long, default_value = "logits", value_parser = crate::session::parse_reveal)]
    pub reveal: ditto_models::generate::Reveal,
}

impl DemoArgs {
    /// The input text.
    pub fn text(&self, gpt2: bool) -> &str {
        match (&self.text, gpt2) {
            (Some(t), _) => t,
            (None, false) => "secure inference keeps the input private.",
            (None, true) => "It is a truth universally acknowledged, that",
        }
    }
}

/// The model the demo runs (the shipped GPT-2 unless `--model` names one) and whether it is a
/// GPT-2 (which generates).
pub(crate) fn which(a: &DemoArgs) -> Result<(ModelSpec, bool), CliError> {
    let spec = a.model.as_deref().map_or(ModelSpec::Shipped, |m| ModelSpec::parse(&m.to_string_lossy()));
    let gpt2 = spec.is_gpt2()?;
    if !gpt2 && a.generate.is_some() {
        return Err(CliError::Usage("--gen needs a GPT-2 model (a BERT does not generate)".into()));
    }
    Ok((spec, gpt2))
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}

/// Mean pooling (the sum over `n` tokens) and L2 normalisation.
fn embedding(sum: &[f64], n: usize) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    let v: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

fn load(a: &DemoArgs, spec: &ModelSpec) -> Result<(Bert, Vec<u32>, String), CliError> {
    let Model::Bert(bert) = spec.load()? else {
        return Err(CliError::Usage(format!("{} is not a BERT", spec.describe())));
    };
    let ids = spec.tokens()?.encode(a.text(false), bert.cfg.max_position_embeddings)?;
    let what = match spec {
        ModelSpec::Dir(d) => {
            format!(
                "{} ({} layers, hidden {})",
                d.display(),
                bert.cfg.num_hidden_layers,
                bert.cfg.hidden_size
            )
        }
        other => other.describe(),
    };
    Ok((*bert, ids, what))
}

fn quant(a: &DemoArgs) -> Result<QuantConfig, CliError> {
    Ok(QuantConfig::from_spec(a.quant.as_deref().unwrap_or("accurate"))?)
}

/// Runs the BERT demo (`main` sends a GPT-2 to `demo_gpt2`).
pub fn run(a: &DemoArgs, spec: &ModelSpec) -> Result<(), CliError> {
    let q = quant(a)?;
    let (bert, ids, what) = load(a, spec)?;
    let n = ids.len();
    say!("model   {what}");
    say!("input   {:?} ({n} tokens, private: one-hot shares)", a.text(false));
    crate::util::runtime()?.block_on(async {
        // The model owner shares the weights; the client shares its one-hot input.
        let mut rng = Prg::with_counter(&os_random16()?, 0);
        let local = Local { net: Net::Tls, threads: a.threads.max(1), ..Local::default() };
        let watch = |e: &mut Engine, p: ditto_core::Party| {
            if p.is_p0() {
                e.set_progress(crate::progress::plan_steps("inference"));
            }
        };
        let run = infer_local(&bert, &q, &ids, &local, &mut rng, watch).await?;
        let (plan, res, plain_time) = (&run.plan, &run.outcome, run.plaintext);
        crate::util::say_range(&run.range);
        // The one-time weight setup (opening F = W - B_W) is counted apart from the inference.
        let setup = |i: usize| res.counters[i].step(ditto_mpc::engine::SETUP_STEP);
        let tot = |i: usize| res.counters[i].total();
        say!("plan    {} steps, {} rounds", plan.steps.len(), tot(0).rounds - setup(0).rounds);
        say!(
            "time    {:.3} s for setup and inference (fixed-point plaintext: {:.3} s)",
            res.online_time.as_secs_f64(),
            plain_time.as_secs_f64()
        );
        #[allow(clippy::cast_precision_loss)]
        let mb = |b: u64| b as f64 / 1e6;
        say!(
            "bytes   inference: P0 sent {:.2} MB, P1 sent {:.2} MB; weight setup (once per model): {:.2} MB each",
            mb(tot(0).sent - setup(0).sent),
            mb(tot(1).sent - setup(1).sent),
            mb(setup(0).sent)
        );
        say!(
            "dealer  {:.2} MB to P1, {} B to P0, {:.3} s",
            mb(res.dealer_bytes[1]),
            res.dealer_bytes[0],
            res.dealer_time.as_secs_f64()
        );
        let round4 = |v: &[f64]| v.iter().take(6).map(|x| (x * 1e4).round() / 1e4).collect::<Vec<_>>();
        let (secure, fixed) = run.values()?;
        if matches!(run.reference, BertOutput::PooledSum(_)) {
            let (secure, fixed) = (embedding(&secure, n), embedding(&fixed, n));
            let float: Vec<f64> = bert.embed(&ids)?.iter().map(|x| f64::from(*x)).collect();
            let (c_sf, c_sx, c_xf) = (cosine(&secure, &fixed), cosine(&secure, &float), cosine(&fixed, &float));
            say!("cosine  secure vs fixed-point {c_sf:.6}, secure vs float {c_sx:.6}, fixed-point vs float {c_xf:.6}");
            say!("embedding[..6] secure {:?}", round4(&secure));
            say!("embedding[..6] float  {:?}", round4(&float));
            if c_sf < 0.9999 {
                return Err(CliError::Disagree(format!("embedding cosine {c_sf:.6} < 0.9999")));
            }
        } else {
            let float: Vec<f64> = bert.classify(&ids)?.iter().map(|x| f64::from(*x)).collect();
            let label = |v: &[f64]| bert.cfg.label((0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b }));
            say!("logits  secure {:?}, fixed-point {:?}, float {:?}", round4(&secure), round4(&fixed), round4(&float));
            say!("label   secure {}, fixed-point {}, float {}", label(&secure), label(&fixed), label(&float));
            if label(&secure) != label(&fixed) {
                return Err(CliError::Disagree(format!("label {} vs {}", label(&secure), label(&fixed))));
            }
        }
        Ok(())
    })
}
