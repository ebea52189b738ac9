//! A registered block engine (a board's AES accelerator) gives the keystream the software AES
//! gives, at every offset and through every read path; the engine is really called. Its own
//! test binary: the engine is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use ditto_core::prg::{Prg, set_block_engine};

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// An engine written apart from the PRG: the `aes` crate, one block at a time.
fn engine(key: &[u8; 16], blocks: &mut [[u8; 16]]) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let c = Aes128::new(&Array::from(*key));
    for b in blocks {
        let mut a = Array::from(*b);
        c.encrypt_block(&mut a);
        *b = a.into();
    }
}

fn keystream(key: &[u8; 16], reads: &[(u128, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = Prg::with_counter(key, 0);
    for &(at, n) in reads {
        p.seek(at);
        let mut b = vec![0u8; n];
        p.fill(&mut b);
        out.extend_from_slice(&b);
        out.extend_from_slice(&p.next_elem::<u64>().to_le_bytes());
    }
    out
}

#[test]
fn an_engine_gives_the_software_keystream() {
    let key: [u8; 16] = core::array::from_fn(|i| u8::try_from(i * 17 % 256).unwrap());
    // Unaligned seeks, a read inside the buffer, one across it, whole blocks straight out.
    let reads = [(0, 5), (3, 300), (4095, 17), (1 << 40, 1000), (17, 256), (u128::from(u64::MAX), 33)];
    let soft = keystream(&key, &reads);
    set_block_engine(Some(engine));
    let hard = keystream(&key, &reads);
    set_block_engine(None);
    assert!(CALLS.load(Ordering::Relaxed) > 0, "the engine was not called");
    assert_eq!(soft, hard);
    // FIPS-197 C.1 through the engine: block 0x00112233.. under key 0x0001..0f.
    let mut b = [[0u8; 16]];
    b[0] = core::array::from_fn(|i| u8::try_from(i * 0x11).unwrap());
    engine(&core::array::from_fn(|i| u8::try_from(i).unwrap()), &mut b);
    assert_eq!(
        b[0],
        [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a]
    );
}
