//! Bounded memory: generating P1's whole stream for the BERT-base plan (sequence 128, about
//! 0.85 GB of corrections) allocates nothing on the heap and fits in a 64 KiB thread stack plus
//! the caller's frame buffer (`scratch_len(DEFAULT_CHUNK)` bytes). A stack overflow aborts the
//! test binary, so passing proves the bound.
#![cfg(feature = "std")]
#![allow(unsafe_code)] // the counting allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::DEFAULT_CHUNK;
use ditto_dealer::host::CountingSink;
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, Salt};
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};

/// Counts heap bytes allocated by threads that armed it.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.try_with(Cell::get).unwrap_or(false) {
            ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The bound the dealer documents for its working state (the stack of the generating thread).
const STACK_BOUND: usize = 64 * 1024;

#[test]
fn bert_base_generation_needs_no_heap_and_a_64k_stack() {
    let plan =
        ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-base-seq128.plan"))
            .unwrap();
    let expected: u64 = plan.steps.iter().map(|s| s.p1_correction_bytes()).sum();
    let seeds = DealerSeeds::new(Seed::from_bytes([1; 16]), Seed::from_bytes([2; 16]));
    let spec = SessionSpec::new(
        Generation { session: SessionId([3; 16]), share_set: ShareSetId([0x5e; 16]), salt: Salt([0x5a; 16]) },
        &seeds,
    );
    let key = PartyKey::from_bytes([4; 16]);
    let mut scratch = vec![0u8; scratch_len(DEFAULT_CHUNK)];
    let (summary, wire) = std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(STACK_BOUND)
            .spawn_scoped(s, || {
                ARMED.with(|a| a.set(true));
                let mut sink = CountingSink(0);
                let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
                let r = write_stream(Party::P1, &mut src, &spec, &key, &mut sink, &mut scratch);
                ARMED.with(|a| a.set(false));
                (r.unwrap(), sink.0)
            })
            .unwrap()
            .join()
            .unwrap()
    });
    assert_eq!(summary.correction_bytes, expected);
    assert!(expected > 500_000_000, "the BERT-base plan is most of a GB of corrections: {expected}");
    assert!(wire > expected);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "{} heap bytes", ALLOCATED.load(Ordering::Relaxed));
    println!(
        "BERT-base/128: {} steps, {expected} correction bytes, {wire} bytes on the wire, 0 heap bytes, stack <= {STACK_BOUND}",
        plan.steps.len()
    );
}
