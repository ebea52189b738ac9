//! The work a dealer does for one session of a plan, counted: stream bytes per party, AES-128
//! blocks of PRG keystream, multiply-adds of matrix products, and the sealing (AES-GCM: one AES
//! block and one GHASH block per 16 stream bytes). The board's throughput model
//! (firmware/README.md) multiplies these by published per-operation costs.
//!
//! ```sh
//! ditto plan --arch minilm --seq 32 --quant ditto --out /tmp/minilm.plan
//! cargo run --release -p ditto-dealer --features std,count --example dealer_work -- /tmp/minilm.plan
//! ```
#![allow(missing_docs)]

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::DEFAULT_CHUNK;
use ditto_dealer::host::CountingSink;
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};

/// A board for the throughput model: clock, per-operation cycles, link rate.
struct Profile {
    name: &'static str,
    hz: f64,
    /// Cycles per byte of AES-128 keystream (PRG and sealing).
    aes: f64,
    /// Cycles per byte of GHASH (sealing).
    ghash: f64,
    /// Cycles per ring multiply-add (load, MLA, loop).
    mac: f64,
    /// Link payload bytes per second.
    link: f64,
}

/// Per-operation costs (firmware/README.md says where each comes from).
const PROFILES: [Profile; 4] = [
    // Software AES: published constant-time (bitsliced / fixsliced) AES-128 on Cortex-M4 runs at
    // 80-102 cycles/byte in assembly; the portable Rust fixslice backend is taken at twice that.
    Profile {
        name: "STM32F407, software AES, UART 921600",
        hz: 168e6,
        aes: 170.0,
        ghash: 40.0,
        mac: 2.0,
        link: 92e3,
    },
    Profile {
        name: "STM32F407 + PHY, software AES, Ethernet",
        hz: 168e6,
        aes: 170.0,
        ghash: 40.0,
        mac: 2.0,
        link: 11.5e6,
    },
    // CRYP: 14 cycles per AES-128 block (RM0090) plus 8 register accesses and the counter: ~3.
    // The nucleo-f439zi image over its UART, then over its Ethernet.
    Profile {
        name: "STM32F439, CRYP AES, UART 921600",
        hz: 168e6,
        aes: 3.0,
        ghash: 40.0,
        mac: 2.0,
        link: 92e3,
    },
    Profile {
        name: "STM32F439, CRYP AES, Ethernet",
        hz: 168e6,
        aes: 3.0,
        ghash: 40.0,
        mac: 2.0,
        link: 11.5e6,
    },
];

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dealer_work PLAN_FILE (from `ditto plan ... --out`)");
        std::process::exit(2);
    };
    if ditto_core::count::work() == ditto_core::count::Work::default() && !cfg!(feature = "count") {
        eprintln!("build with --features std,count: without it nothing is counted");
        std::process::exit(2);
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let plan = ditto_core::plan::Plan::from_bytes(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    let seeds = DealerSeeds::new(Seed::from_bytes([1; 16]), Seed::from_bytes([2; 16]));
    let generation =
        Generation { session: SessionId([3; 16]), share_set: ShareSetId([4; 16]), salt: Salt([5; 16]) };
    let spec = SessionSpec::new(generation, &seeds);
    println!("plan {} ({} steps)", plan.header.name, plan.steps.len());
    println!("party  stream_bytes  prg_blocks  macs  seconds_here");
    let mut total = (0u64, 0u64, 0u64);
    for (p, key) in [(Party::P0, [6u8; 16]), (Party::P1, [7; 16])] {
        let before = ditto_core::count::work();
        let t = std::time::Instant::now();
        let mut out = CountingSink(0);
        let mut scratch = vec![0u8; scratch_len(DEFAULT_CHUNK)];
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        write_stream(p, &mut src, &spec, &PartyKey::from_bytes(key), &mut out, &mut scratch)
            .unwrap_or_else(|e| panic!("{e}"));
        let w = ditto_core::count::work();
        total.0 += out.0;
        total.1 += w.prg_blocks - before.prg_blocks;
        total.2 += w.macs - before.macs;
        println!(
            "{p:?}  {}  {}  {}  {:.2}",
            out.0,
            w.prg_blocks - before.prg_blocks,
            w.macs - before.macs,
            t.elapsed().as_secs_f64()
        );
    }
    // The model: a board generates and sends one request at a time, so compute and link add.
    let (stream, blocks, macs) = (total.0 as f64, total.1 as f64, total.2 as f64);
    println!("model (both streams): compute s, link s, session s, sessions per hour");
    for b in &PROFILES {
        let compute = (blocks * 16.0 * b.aes + stream * (b.aes + b.ghash) + macs * b.mac) / b.hz;
        let link = stream / b.link;
        let session = compute + link;
        println!("  {:<42} {compute:>9.1} {link:>9.1} {session:>9.1} {:>8.1}", b.name, 3600.0 / session);
    }
}
