//! The plan decoder: a plan file or request as the dealer and parties decode it.
#![no_main]

use ditto_core::plan::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Plan::from_bytes(data) {
        for (i, s) in p.steps.iter().enumerate() {
            if s.validate(u32::try_from(i).unwrap_or(u32::MAX)).is_ok() {
                let _ = (s.p1_correction_bytes(), s.online_bytes_per_party(), s.rounds());
            }
        }
        let _ = p.hash();
    }
});
