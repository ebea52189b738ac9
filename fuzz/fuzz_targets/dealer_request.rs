//! A party's request as the dealer server reads it (session from the frame, then the request).
#![no_main]

use ditto_dealer::host::{Io, read_request_any};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_request_any(Io(data));
});
