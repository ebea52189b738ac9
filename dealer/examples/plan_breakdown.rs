//! Prints a plan's P1 correction bytes and online bytes per party, by operation kind:
//! `cargo run -p ditto-dealer --features std --example plan_breakdown -- bert-base`.
#![allow(missing_docs, clippy::cast_precision_loss)]

use std::collections::BTreeMap;

use ditto_dealer::plans;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "bert-base".into());
    let shape = plans::by_name(&name).expect("architecture");
    let (seq, generate) = if shape.decoder { (32, 1) } else { (128, 0) };
    let plan = plans::plan(&name, &shape, seq, generate).unwrap();
    let mut by: BTreeMap<String, (u64, u64, u32)> = BTreeMap::new();
    for s in &plan.steps {
        let op = format!("{:?}", s.op);
        let kind = op.split([' ', '{']).next().unwrap_or("").to_string();
        let tag = format!("{:?}", s.tag);
        let tag = tag.split([' ', '{', '(']).next().unwrap_or("").to_string();
        let e = by.entry(format!("{tag:<11} {kind}")).or_default();
        e.0 += s.p1_correction_bytes();
        e.1 += s.online_bytes_per_party();
        e.2 += s.rounds();
    }
    let (mut c, mut o, mut r) = (0, 0, 0);
    println!("{:<24} {:>12} {:>14} {:>7}", "tag / op", "dealer MB", "online MB/party", "rounds");
    for (k, (cb, ob, rr)) in &by {
        println!("{k:<24} {:12.1} {:14.1} {rr:7}", *cb as f64 / 1e6, *ob as f64 / 1e6);
        c += cb;
        o += ob;
        r += rr;
    }
    println!("{:<24} {:12.1} {:14.1} {r:7}", "total", c as f64 / 1e6, o as f64 / 1e6);
}
