//! `ditto bench --json` as CI runs it: every key present, the secure run checked against the
//! fixed-point reference, and its measured bytes and rounds equal to what `ditto plan` states for
//! the same architecture (an independent account: the plan's cost formulas vs the link's counters).
#![allow(clippy::cast_precision_loss)]

use std::process::Command;

fn ditto(args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_ditto")).args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn bench_json_has_every_key_and_matches_the_plan() {
    let b = ditto(&["bench", "--arch", "bert-tiny", "--seq", "16", "--json"]);
    for k in [
        "arch",
        "seq",
        "online_s",
        "plaintext_s",
        "bytes_p0",
        "bytes_p1",
        "rounds",
        "dealer_bytes_p0",
        "dealer_bytes_p1",
        "dealer_s",
        "lan_s",
        "wan_s",
        "threads",
        "link",
        "breakdown",
    ] {
        assert!(b.get(k).is_some(), "missing {k} in {b}");
    }
    assert_eq!(b["arch"], "bert-tiny");
    assert_eq!(b["link"], "tls", "the parties' link is TLS unless asked otherwise");
    assert!(b["check"].as_str().unwrap().contains("fixed-point"), "{b}");
    let plan = ditto(&["plan", "--arch", "bert-tiny", "--seq", "16", "--quant", "ditto", "--json"]);
    let total = &plan["total"];
    assert_eq!(b["bytes_p0"], total["online_bytes_per_party"]);
    assert_eq!(b["bytes_p1"], total["online_bytes_per_party"]);
    assert_eq!(b["rounds"], total["rounds"]);
    assert_eq!(b["plan_steps"], total["steps"]);
    // P0's stream is its salt and sealed seeds only; P1's holds every correction plus framing.
    assert_eq!(b["dealer_bytes_p0"], 328);
    let (d1, corr) = (b["dealer_bytes_p1"].as_u64().unwrap(), total["dealer_bytes_p1"].as_u64().unwrap());
    assert!(d1 > corr && d1 < corr + corr / 50 + 4096, "{d1} vs {corr}");
    // The breakdown adds up to the totals, and the modeled times follow their formula.
    let ops = b["breakdown"]["by_op"].as_object().unwrap();
    let sum: u64 = ops.values().map(|p| p["bytes_p0"].as_u64().unwrap()).sum();
    assert_eq!(sum, b["bytes_p0"].as_u64().unwrap());
    for k in ["linear", "softmax", "gelu", "layernorm", "conversion"] {
        assert!(ops.contains_key(k), "{k} missing from {ops:?}");
    }
    let layers = b["breakdown"]["by_layer"].as_object().unwrap();
    assert_eq!(layers.len(), 3, "embeddings and 2 layers");
    let f = |k: &str| b[k].as_f64().unwrap();
    let bytes = f("bytes_p0").max(f("bytes_p1"));
    let rounds = f("rounds");
    assert!((f("lan_s") - (f("online_s") + bytes * 8.0 / 5e9 + rounds * 0.4e-3)).abs() < 1e-9);
    assert!((f("wan_s") - (f("online_s") + bytes * 8.0 / 400e6 + rounds * 0.04)).abs() < 1e-9);
    assert!(f("online_s") > 0.0 && f("plaintext_s") > 0.0 && f("dealer_s") > 0.0);
}

#[test]
fn bench_refuses_an_unknown_architecture() {
    let o =
        Command::new(env!("CARGO_BIN_EXE_ditto")).args(["bench", "--arch", "bert-huge"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown --arch bert-huge"));
}
