//! `ditto demo --gen N`: secure greedy generation with GPT-2, the client in the loop.

use ditto_core::prg::Prg;
use ditto_models::generate::{LocalGeneration, generate_local, generate_reference};
use ditto_models::gpt2::Gpt2;
use ditto_models::quant::QuantConfig;
use ditto_models::spec::{Model, ModelSpec, Tokens};
use ditto_mpc::Engine;
use ditto_mpc::local::{Local, Net};

use crate::demo::DemoArgs;
use crate::files::CliError;
use ditto_node::files::os_random16;

fn load(spec: &ModelSpec) -> Result<(Gpt2, Tokens, String, Option<QuantConfig>), CliError> {
    let Model::Gpt2(m) = spec.load()? else {
        return Err(CliError::Usage(format!("{} is not a GPT-2", spec.describe())));
    };
    let (what, q) = match spec {
        ModelSpec::Shipped => (
            format!(
                "{} (built in: GPT-2, {} layers, hidden {}, trained on Jane Austen, distilled into Ditto mode)",
                ditto_models::shipped::PATH,
                m.cfg.n_layer,
                m.cfg.n_embd
            ),
            Some(ditto_models::shipped::gpt2()?.2),
        ),
        ModelSpec::Dir(dir) => {
            let qp = dir.join("quant.json");
            let q = match std::fs::read_to_string(&qp) {
                Ok(t) => Some(
                    QuantConfig::from_json(&t)
                        .map_err(|e| CliError::Usage(format!("{}: {e}", qp.display())))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(CliError::File { path: qp, source }),
            };
            (format!("{} ({} layers, hidden {})", dir.display(), m.cfg.n_layer, m.cfg.n_embd), q)
        }
        other => (other.describe(), None),
    };
    Ok((*m, spec.tokens()?, what, q))
}

/// How far below the fixed-point reference's best logit a secure greedy pick may be: the secure
/// logits stray from the reference's by the ±1 ulp of each truncation carried through the
/// layers (measured on the shipped model's top logits: up to about 0.1).
const NEAR_TIE: f64 = 0.25;

/// Runs the GPT-2 demo.
pub fn run(a: &DemoArgs, spec: &ModelSpec, rt: &tokio::runtime::Runtime) -> Result<(), CliError> {
    let (m, tok, what, model_q) = load(spec)?;
    let (q, qname) = match (&a.quant, model_q) {
        (Some(spec), _) => (QuantConfig::from_spec(spec)?, spec.clone()),
        (None, Some(q)) => (q, "the model's quant.json".to_string()),
        (None, None) => (QuantConfig::accurate(), "accurate".to_string()),
    };
    let q = &q;
    let shipped = *spec == ModelSpec::Shipped;
    let steps = a.generate.unwrap_or(if shipped { 24 } else { 10 });
    let text = a.text(true);
    let ids = tok.encode(text, m.cfg.n_positions)?;
    let n = ids.len();
    ditto_models::spec::check_input(n, steps, m.cfg.n_positions)?;
    say!("model   {what}");
    say!("quant   {qname}: {} / {} fractional bits, GeLU {:?}", q.act_frac, q.weight_frac, q.gelu);
    say!("prompt  {text:?} ({n} tokens, private: one-hot shares); generating {steps} tokens");
    rt.block_on(async {
        let mut rng = Prg::with_counter(&os_random16()?, 0);
        let local = Local { net: Net::Tls, threads: a.threads.max(1), ..Local::default() };
        let watch = |e: &mut Engine, p: ditto_core::Party| {
            if p.is_p0() {
                e.set_progress(crate::progress::plan_steps("inference"));
            }
        };
        let LocalGeneration { plan, outcome: res, tokens, logits } =
            generate_local(&m, q, &ids, (steps, a.reveal), &local, &mut rng, watch).await?;
        let (reference, _, range) = generate_reference(&m, q, &ids, steps, a.reveal).await?;
        crate::util::say_range(&range);
        let setup = |i: usize| res.counters[i].step(ditto_mpc::engine::SETUP_STEP);
        let tot = |i: usize| res.counters[i].total();
        #[allow(clippy::cast_precision_loss)]
        let mb = |b: u64| b as f64 / 1e6;
        say!("secure      {:?} -> {:?}", tokens, tok.decode(&tokens));
        say!("fixed-point {:?} -> {:?}", reference, tok.decode(&reference));
        say!("plan    {} steps, {} rounds", plan.steps.len(), tot(0).rounds - setup(0).rounds);
        say!("time    {:.3} s for setup and generation", res.online_time.as_secs_f64());
        say!(
            "bytes   generation: P0 sent {:.2} MB, P1 sent {:.2} MB; weight setup (once per model): {:.2} MB each",
            mb(tot(0).sent - setup(0).sent),
            mb(tot(1).sent - setup(1).sent),
            mb(setup(0).sent)
        );
        say!("dealer  {:.2} MB to P1, {} B to P0, {:.3} s", mb(res.dealer_bytes[1]), res.dealer_bytes[0], res.dealer_time.as_secs_f64());
        // Secure truncation differs from the reference's rounding by up to one ulp each time, so
        // the secure logits stray a little from the fixed-point reference's, and where two
        // logits nearly tie the greedy picks may part. Along the secure path (teacher forcing),
        // each secure pick must be the reference's best up to NEAR_TIE.
        let along = ditto_models::generate::reference_logits_along(&m, q, &ids, &tokens).await?;
        let frac = q.act_frac + q.weight_frac;
        let (mut gap, mut dev) = (0.0f64, 0.0f64);
        for (k, (re, t)) in along.iter().zip(&tokens).enumerate() {
            let best = re.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            gap = gap.max(best - re[*t as usize]);
            // How far the secure logits (when the client saw them) stray on the reference's
            // five best tokens.
            let Some(sec) = logits.get(k) else { continue };
            let mut order: Vec<usize> = (0..re.len()).collect();
            order.sort_by(|a, b| re[*b].total_cmp(&re[*a]));
            for &i in order.iter().take(5) {
                dev = dev.max((ditto_core::fixed::decode(sec[i], frac) - re[i]).abs());
            }
        }
        if logits.is_empty() {
            say!("logits  none: the parties picked the tokens and revealed only their ids (--reveal token)");
        } else {
            say!("logits  the secure top-5 logits stay within {dev:.4} of the fixed-point reference's");
        }
        if gap > NEAR_TIE {
            return Err(CliError::Disagree(format!(
                "a secure pick is {gap:.4} below the fixed-point reference's best (tolerance {NEAR_TIE}); tokens {tokens:?} vs {reference:?}"
            )));
        }
        match tokens.iter().zip(&reference).position(|(a, b)| a != b) {
            None => say!("secure and fixed-point generation agree"),
            Some(k) => say!(
                "secure and fixed-point generation agree up to a near tie: from step {k} on the secure picks are the reference's best within {gap:.4} (tolerance {NEAR_TIE})"
            ),
        }
        Ok(())
    })
}
