//! The safetensors loader, and shape-checked lookups in what it loaded.
#![no_main]

use std::path::Path;

use ditto_models::weights::Weights;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = Weights::from_bytes(data, Path::new("fuzz.safetensors")) {
        let names: Vec<String> = w.names().map(str::to_string).collect();
        for n in names.iter().take(8) {
            for shape in [&[4usize][..], &[2, 2], &[1, 3, 5]] {
                let _ = w.get(std::slice::from_ref(n), shape);
            }
        }
    }
});
