//! A client's request head as a party checks it against its model.
#![no_main]

use ditto_net::client::{HEAD, RequestHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(h) = data.get(..HEAD) else { return };
    let mut head = [0u8; HEAD];
    head.copy_from_slice(h);
    let vocab = data.get(HEAD).map_or(258, |&b| usize::from(b) * 997 + 1);
    if let Ok(r) = RequestHead::parse(&head, vocab, 512) {
        assert_eq!(RequestHead::parse(&r.encode(), vocab, 512).ok(), Some(r));
    }
});
