//! `ditto bench`: a secure run of a published architecture with seeded random weights (dealer,
//! P0 and P1 on this machine over loopback TCP), checked against the plaintext fixed-point
//! reference of the same run (a wrong answer is an error, never a timing), with online time,
//! bytes, rounds, a per-operation and per-layer breakdown, the dealer's output and time, and
//! LAN / WAN times modeled as measured compute + bytes / bandwidth + rounds x RTT.

use std::collections::BTreeMap;
use std::time::Duration;

use ditto_core::plan::Plan;
use ditto_core::prg::Prg;
use ditto_models::bert::local::{LocalInference, infer_local};
use ditto_models::bert::secure::BertOutput;
use ditto_models::generate::{LocalGeneration, generate_local, generate_reference};
use ditto_models::quant::QuantConfig;
use ditto_models::seeded;
use ditto_mpc::WeightStore;
use ditto_mpc::engine::SETUP_STEP;
use ditto_mpc::local::{Local, Net, Outcome};
use ditto_net::counters::Counters;
use serde_json::json;

use crate::files::CliError;
use ditto_models::spec::ModelConfig;

/// Arguments of `ditto bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Architecture: bert-tiny, minilm, bert-base, bert-large, gpt2, gpt2-medium.
    #[arg(long)]
    pub arch: String,
    /// Sequence length (prompt length for GPT-2).
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Tokens to generate (GPT-2; "32+1" is --seq 32 --gen 1).
    #[arg(long = "gen", default_value_t = 1)]
    pub generate: usize,
    /// GEMM and dealer threads per party.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Quantization: ditto (default), accurate, or a QuantConfig file.
    #[arg(long, default_value = "ditto")]
    pub quant: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// INSECURE: the parties' link over plain TCP instead of TLS (to measure what encryption costs).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// GPT-2: what each generated token reveals to the client: logits, or token (secure argmax).
    #[arg(long, default_value = "logits", value_parser = crate::session::parse_reveal)]
    pub reveal: ditto_models::generate::Reveal,
    /// BERT: measure as a serving party with a warm pool runs: weights kept in a store between
    /// sessions, and each party's products A_i F computed from its pooled session before the
    /// input arrives. Runs the input three times (setup, store only, store and products) and
    /// reports the last run with the online time of the one before it.
    #[arg(long)]
    pub precompute: bool,
}

/// A network setting of the Ditto and PUMA papers.
pub struct Profile {
    /// Bandwidth.
    pub bits_per_s: f64,
    /// Round-trip time.
    pub rtt_s: f64,
}

/// 5 Gbps, 0.4 ms.
pub const LAN: Profile = Profile { bits_per_s: 5e9, rtt_s: 0.4e-3 };
/// 400 Mbps, 40 ms.
pub const WAN: Profile = Profile { bits_per_s: 400e6, rtt_s: 0.04 };

/// Measured compute plus the time to move `bytes` (the larger party's) and wait `rounds` RTTs.
#[allow(clippy::cast_precision_loss)]
pub fn modeled(compute_s: f64, bytes: u64, rounds: u32, p: &Profile) -> f64 {
    compute_s + bytes as f64 * 8.0 / p.bits_per_s + f64::from(rounds) * p.rtt_s
}

/// What one secure run and its reference produced.
struct Measured<T> {
    plan: Plan,
    res: Outcome<T>,
    plaintext: Duration,
    agreement: String,
    /// The reference's operations whose input left its admitted range.
    range: ditto_mpc::range::RangeReport,
    /// `--precompute`: the online time of the same session run without products.
    without_products: Option<f64>,
}

async fn bench_bert(
    cfg: ditto_models::config::BertConfig,
    q: &QuantConfig,
    (seq, precompute): (usize, bool),
    local: &Local,
) -> Result<Measured<BertOutput>, CliError> {
    let bert = seeded::bert_of(cfg, 7);
    let ids = input_ids(seq, bert.cfg.vocab_size);
    let (run, without_products) = if precompute {
        let (run, without) = bert_ahead(&bert, q, &ids, local).await?;
        (run, Some(without))
    } else {
        let mut rng = Prg::with_counter(&ditto_node::files::os_random16()?, 0);
        (infer_local(&bert, q, &ids, local, &mut rng, |_, _| {}).await?, None)
    };
    let (s, r) = run.values()?;
    let c = cosine(&s, &r);
    if c < 0.9999 {
        return Err(CliError::Disagree(format!("secure vs fixed-point embedding cosine {c:.6} < 0.9999")));
    }
    Ok(Measured {
        plan: run.plan,
        res: run.outcome,
        plaintext: run.plaintext,
        agreement: format!("embedding cosine with the fixed-point reference {c:.6}"),
        range: run.range,
        without_products,
    })
}

/// `--precompute`: the input three times with one sharing and one dealer model seed, each
/// party keeping its weights in a store (and F in a temporary cache directory, which the store
/// follows): the first run sets the weights up, the second takes them from the store, the third
/// also has each party's products A_i F computed before its online phase. The third run, and
/// the second's online time.
async fn bert_ahead(
    bert: &ditto_models::bert::Bert,
    q: &QuantConfig,
    ids: &[u32],
    local: &Local,
) -> Result<(LocalInference, f64), CliError> {
    let base = std::env::temp_dir().join(format!("ditto-bench-ahead-{}", std::process::id()));
    let dirs = [base.join("p0"), base.join("p1")];
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|source| CliError::File { path: d.clone(), source })?;
    }
    let stores = [WeightStore::default(), WeightStore::default()];
    let watch = |e: &mut ditto_mpc::Engine, p: ditto_core::Party| {
        e.set_weight_cache(&dirs[p.index()]);
        e.set_weight_store(stores[p.index()].clone());
    };
    let sharing = ditto_node::files::os_random16()?;
    let local = Local { model_seed: Some(ditto_node::files::os_random16()?), ..local.clone() };
    let ahead = Local { precompute: Some(stores.clone()), ..local.clone() };
    let result = async {
        let mut runs = Vec::new();
        for l in [&local, &local, &ahead] {
            // The same shares every run (one sharing: the stores fit), fresh sessions.
            let mut rng = Prg::with_counter(&sharing, 0);
            runs.push(infer_local(bert, q, ids, l, &mut rng, watch).await?);
        }
        Ok::<_, CliError>(runs)
    }
    .await;
    let _ = std::fs::remove_dir_all(&base);
    let mut runs = result?;
    let (Some(last), Some(before)) = (runs.pop(), runs.pop()) else {
        return Err(CliError::Disagree("fewer than three runs".into()));
    };
    if last.outcome.precomputed.contains(&0) {
        return Err(CliError::Disagree("no products were precomputed (the stores were not taken)".into()));
    }
    Ok((last, online_of(&before.plan, &before.outcome.counters)))
}

/// The slower party's online time (every step but the weight setup).
fn online_of(plan: &Plan, counters: &[Counters; 2]) -> f64 {
    let (a, b) = (breakdown(plan, &counters[0]).0, breakdown(plan, &counters[1]).0);
    a.time.max(b.time).as_secs_f64()
}

async fn bench_gpt2(
    cfg: ditto_models::config::Gpt2Config,
    q: &QuantConfig,
    (seq, steps): (usize, usize),
    reveal: ditto_models::generate::Reveal,
    local: &Local,
) -> Result<Measured<()>, CliError> {
    let m = seeded::gpt2_of(cfg, 7);
    let ids = input_ids(seq, m.cfg.vocab_size);
    let mut rng = Prg::with_counter(&ditto_node::files::os_random16()?, 0);
    let LocalGeneration { plan, outcome: res, tokens, .. } =
        generate_local(&m, q, &ids, (steps, reveal), local, &mut rng, |_, _| {}).await?;
    let (reference, plaintext, range) = generate_reference(&m, q, &ids, steps, reveal).await?;
    if tokens != reference {
        return Err(CliError::Disagree(format!("generated tokens differ: {tokens:?} vs {reference:?}")));
    }
    Ok(Measured {
        plan,
        res,
        plaintext,
        agreement: format!("{steps} generated tokens equal the fixed-point reference's"),
        range,
        without_products: None,
    })
}

/// Deterministic token ids spread over the vocabulary.
fn input_ids(seq: usize, vocab: usize) -> Vec<u32> {
    (0..seq).map(|i| u32::try_from((1000 + 7919 * i) % vocab).unwrap_or(0)).collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt() * b.iter().map(|x| x * x).sum::<f64>().sqrt())
        .max(1e-300)
}

/// Bytes (the party's sent), rounds and time of a group of steps.
#[derive(Default, Clone, Copy)]
struct Part {
    bytes: u64,
    rounds: u32,
    time: Duration,
}

/// Online figures of one party, setup excluded, grouped by operation kind and by layer.
fn breakdown(plan: &Plan, c: &Counters) -> (Part, BTreeMap<String, Part>, BTreeMap<u16, Part>) {
    let (mut total, mut by_op, mut by_layer) = (Part::default(), BTreeMap::new(), BTreeMap::new());
    for (i, s) in plan.steps.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        let (cost, time) = (c.step(i), c.time(i));
        let tag = format!("{:?}", s.tag).split(['(', ' ']).next().unwrap_or("").to_lowercase();
        for p in [&mut total, by_op.entry(tag).or_default(), by_layer.entry(s.layer).or_default()] {
            p.bytes += cost.sent;
            p.rounds += cost.rounds;
            p.time += time;
        }
    }
    (total, by_op, by_layer)
}

/// Runs `ditto bench`.
#[allow(clippy::cast_precision_loss)]
pub fn run(a: &BenchArgs) -> Result<(), CliError> {
    let q = QuantConfig::from_spec(&a.quant)?;
    let arch = ModelConfig::published(&a.arch)?;
    let net = if a.insecure_plaintext { Net::Tcp } else { Net::Tls };
    let local = Local { net, threads: a.threads.max(1), ..Local::default() };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Net(e.to_string()))?;
    let (plan, counters, dealer_bytes, dealer_time, plaintext, (agreement, range, without), tokens) = rt
        .block_on(async {
            Ok::<_, CliError>(match arch {
                ModelConfig::Bert(cfg) => {
                    let m = bench_bert(cfg, &q, (a.seq, a.precompute), &local).await?;
                    let check = (m.agreement, m.range, m.without_products);
                    (m.plan, m.res.counters, m.res.dealer_bytes, m.res.dealer_time, m.plaintext, check, 0)
                }
                ModelConfig::Gpt2(cfg) => {
                    let g = a.generate.max(1);
                    let m = bench_gpt2(cfg, &q, (a.seq, g), a.reveal, &local).await?;
                    let check = (m.agreement, m.range, None);
                    (m.plan, m.res.counters, m.res.dealer_bytes, m.res.dealer_time, m.plaintext, check, g)
                }
            })
        })?;
    let parts = [breakdown(&plan, &counters[0]), breakdown(&plan, &counters[1])];
    let (t0, t1) = (parts[0].0, parts[1].0);
    let online = t0.time.max(t1.time).as_secs_f64();
    let max_bytes = t0.bytes.max(t1.bytes);
    let (lan, wan) =
        (modeled(online, max_bytes, t0.rounds, &LAN), modeled(online, max_bytes, t0.rounds, &WAN));
    let setup = counters[0].step(SETUP_STEP);
    let part_json =
        |p: &Part| json!({"bytes_p0": p.bytes, "rounds": p.rounds, "time_s": p.time.as_secs_f64()});
    let by_op: serde_json::Map<String, serde_json::Value> =
        parts[0].1.iter().map(|(k, p)| (k.clone(), part_json(p))).collect();
    let by_layer: serde_json::Map<String, serde_json::Value> =
        parts[0].2.iter().map(|(k, p)| (k.to_string(), part_json(p))).collect();
    let seq = if tokens > 0 { format!("{}+{tokens}", a.seq) } else { a.seq.to_string() };
    if a.json {
        let v = json!({
            "arch": a.arch, "seq": a.seq, "gen": tokens, "quant": a.quant, "threads": a.threads.max(1),
            "link": if a.insecure_plaintext { "tcp" } else { "tls" },
            "online_s": online, "plaintext_s": plaintext.as_secs_f64(),
            "online_without_products_s": without,
            "bytes_p0": t0.bytes, "bytes_p1": t1.bytes, "rounds": t0.rounds,
            "dealer_bytes_p0": dealer_bytes[0], "dealer_bytes_p1": dealer_bytes[1],
            "dealer_s": dealer_time.as_secs_f64(), "lan_s": lan, "wan_s": wan,
            "setup_bytes_per_party": setup.sent, "plan_steps": plan.steps.len(),
            "check": agreement,
            "range_issues": range.lines(usize::MAX),
            "breakdown": {"by_op": by_op, "by_layer": by_layer},
        });
        say!("{v}");
        return Ok(());
    }
    let mb = |b: u64| b as f64 / 1e6;
    say!(
        "bench   {} seq {seq}, quant {}, {} thread(s) per party, {} plan steps, link {}",
        a.arch,
        a.quant,
        a.threads.max(1),
        plan.steps.len(),
        if a.insecure_plaintext { "plain TCP (insecure)" } else { "TLS 1.3" }
    );
    say!("check   {agreement}");
    crate::util::say_range(&range);
    say!(
        "online  {online:.3} s (fixed-point plaintext {:.3} s: {:.0}x)",
        plaintext.as_secs_f64(),
        online / plaintext.as_secs_f64().max(1e-9)
    );
    if let Some(w) = without {
        say!(
            "ahead   online {online:.3} s with each party's products A_i F computed before the input; \
             {w:.3} s without them (weights from the store in both): {:.2}x",
            online / w.max(1e-9)
        );
    }
    say!(
        "bytes   P0 sent {:.1} MB, P1 sent {:.1} MB ({:.1} MB together), {} rounds",
        mb(t0.bytes),
        mb(t1.bytes),
        mb(t0.bytes + t1.bytes),
        t0.rounds
    );
    say!(
        "dealer  {:.1} MB to P1, {} B to P0, {:.2} s",
        mb(dealer_bytes[1]),
        dealer_bytes[0],
        dealer_time.as_secs_f64()
    );
    say!("setup   weight masks {:.1} MB per party (once per model; kept by the parties)", mb(setup.sent));
    say!("modeled LAN (5 Gbps, 0.4 ms) {lan:.2} s, WAN (400 Mbps, 40 ms) {wan:.2} s");
    say!("by operation (P0):");
    for (k, p) in &parts[0].1 {
        say!("  {k:<11} {:8.3} s {:9.1} MB {:6} rounds", p.time.as_secs_f64(), mb(p.bytes), p.rounds);
    }
    say!("by layer (P0; 0 = embeddings):");
    for (k, p) in &parts[0].2 {
        say!("  {k:<11} {:8.3} s {:9.1} MB {:6} rounds", p.time.as_secs_f64(), mb(p.bytes), p.rounds);
    }
    Ok(())
}
