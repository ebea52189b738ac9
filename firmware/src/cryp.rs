//! The STM32F4 CRYP processor (STM32F415/417/437/439) as the PRG's AES-128 block engine
//! ([`ditto_core::prg::set_block_engine`]).
//!
//! Mode: AES-ECB on the counter blocks the PRG builds. (The CRYP's own CTR mode counts
//! differently: it increments the block's last 32 bits as a big-endian number; the PRG's
//! counter is a 128-bit little-endian integer.) ECB of the same blocks gives the same keystream
//! as the software AES, byte for byte.
//!
//! Data path (RM0090, 23.3): the key goes into K2LR, K2RR, K3LR, K3RR as big-endian words of
//! its bytes (K2LR holds key bits 127:96, i.e. bytes 0..4: [`key_words`]); with DATATYPE = 8-bit
//! the processor swaps the bytes of every word written to DIN and read from DOUT, so a block
//! goes in as the little-endian words of its bytes and comes out the same way
//! ([`block_words`], [`block_bytes`]). The host checks these against a model of that data path
//! and the software AES (`tests` below: FIPS-197 C.1 and random keys and blocks); the board
//! checks the engine against the software AES before it registers it ([`self_test`]).
//!
//! Cost: 14 AHB cycles per block in the processor, plus four writes and four reads: about
//! 3 cycles per keystream byte against roughly 170 for the software AES (firmware/README.md).

/// CRYP key registers K2LR..K3RR (AES-128) from the key bytes.
pub fn key_words(key: &[u8; 16]) -> [u32; 4] {
    core::array::from_fn(|i| u32::from_be_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]))
}

/// The words written to DIN (DATATYPE 8-bit) for `block`.
pub fn block_words(block: &[u8; 16]) -> [u32; 4] {
    core::array::from_fn(|i| {
        u32::from_le_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]])
    })
}

/// The block read back from DOUT (DATATYPE 8-bit) as `words`.
pub fn block_bytes(words: &[u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (c, w) in b.chunks_exact_mut(4).zip(words) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// FIPS-197 appendix C.1: key 00 01 .. 0f, plaintext 00 11 .. ff.
pub const FIPS197_KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// FIPS-197 C.1's plaintext.
pub const FIPS197_PLAIN: [u8; 16] =
    [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
/// FIPS-197 C.1's ciphertext.
pub const FIPS197_CIPHER: [u8; 16] =
    [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a];

/// Whether `engine` computes AES-128: FIPS-197 C.1, then a PRG's keystream through the engine
/// against the same PRG's in software (the engine is registered for the comparison and
/// unregistered again). A board registers its engine only if this holds. The engine is
/// process-wide while this runs: call it at start-up, before anything else uses the PRG.
pub fn self_test(engine: ditto_core::prg::BlockEngine) -> bool {
    use ditto_core::prg::{Prg, set_block_engine};
    let mut b = [FIPS197_PLAIN];
    engine(&FIPS197_KEY, &mut b);
    if b[0] != FIPS197_CIPHER {
        return false;
    }
    let key = [0x5a; 16];
    let mut soft = [0u8; 100];
    let mut hard = [0u8; 100];
    Prg::with_counter(&key, 0xffff_fffe).fill(&mut soft);
    set_block_engine(Some(engine));
    Prg::with_counter(&key, 0xffff_fffe).fill(&mut hard);
    set_block_engine(None);
    soft == hard
}

#[cfg(target_os = "none")]
pub use hw::{cryp_engine, start};

#[cfg(target_os = "none")]
#[allow(unsafe_code)] // memory-mapped registers
mod hw {
    use super::{block_bytes, block_words, key_words};

    const RCC_AHB2ENR: usize = 0x4002_3800 + 0x34;
    const CRYP: usize = 0x5006_0000;
    const CR: usize = CRYP;
    const SR: usize = CRYP + 0x04;
    const DIN: usize = CRYP + 0x08;
    const DOUT: usize = CRYP + 0x0C;
    /// K2LR; K2RR, K3LR, K3RR follow.
    const K2LR: usize = CRYP + 0x30;
    /// CR: CRYPEN (15), FFLUSH (14), KEYSIZE 128 (9:8 = 0), DATATYPE 8-bit (7:6 = 10),
    /// ALGOMODE AES-ECB (5:3 = 100), ALGODIR encrypt (2 = 0).
    const CR_ECB8: u32 = (0b10 << 6) | (0b100 << 3);
    const CRYPEN: u32 = 1 << 15;
    const FFLUSH: u32 = 1 << 14;
    /// SR: input FIFO not full, output FIFO not empty, busy.
    const IFNF: u32 = 1 << 1;
    const OFNE: u32 = 1 << 2;
    const BUSY: u32 = 1 << 4;

    fn rd(a: usize) -> u32 {
        // SAFETY: a CRYP or RCC register (RM0090 addresses above); the engine is their only user.
        unsafe { core::ptr::read_volatile(a as *const u32) }
    }

    fn wr(a: usize, v: u32) {
        // SAFETY: as in `rd`.
        unsafe { core::ptr::write_volatile(a as *mut u32, v) }
    }

    /// Clocks the processor (call once before [`cryp_engine`] is used).
    pub fn start() {
        wr(RCC_AHB2ENR, rd(RCC_AHB2ENR) | (1 << 4));
    }

    /// The block engine: AES-128-ECB of each block under `key`, one block in flight.
    pub fn cryp_engine(key: &[u8; 16], blocks: &mut [[u8; 16]]) {
        wr(CR, 0);
        while rd(SR) & BUSY != 0 {}
        for (i, w) in key_words(key).into_iter().enumerate() {
            wr(K2LR + 4 * i, w);
        }
        wr(CR, CR_ECB8 | FFLUSH);
        wr(CR, CR_ECB8 | CRYPEN);
        for b in blocks.iter_mut() {
            for w in block_words(b) {
                while rd(SR) & IFNF == 0 {}
                wr(DIN, w);
            }
            let mut out = [0u32; 4];
            for o in &mut out {
                while rd(SR) & OFNE == 0 {}
                *o = rd(DOUT);
            }
            *b = block_bytes(&out);
        }
        wr(CR, 0);
        // The key stays in the key registers until the next call; clear them.
        for i in 0..4 {
            wr(K2LR + 4 * i, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::Aes128;
    use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};

    /// A model of the processor's data path, from RM0090's description: the key registers as
    /// big-endian words of the key, DIN and DOUT byte-swapped (DATATYPE 8-bit) around the AES
    /// core, which sees the block's words big-endian.
    fn model(key_regs: [u32; 4], din: [u32; 4]) -> [u32; 4] {
        let mut key = [0u8; 16];
        for (c, w) in key.chunks_exact_mut(4).zip(key_regs) {
            c.copy_from_slice(&w.to_be_bytes());
        }
        let mut block = Array::from([0u8; 16]);
        for (c, w) in block.chunks_exact_mut(4).zip(din) {
            c.copy_from_slice(&w.swap_bytes().to_be_bytes());
        }
        Aes128::new(&Array::from(key)).encrypt_block(&mut block);
        core::array::from_fn(|i| {
            u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]])
                .swap_bytes()
        })
    }

    /// The engine as the board runs it, with the model in place of the registers.
    fn modelled_engine(key: &[u8; 16], blocks: &mut [[u8; 16]]) {
        for b in blocks {
            *b = block_bytes(&model(key_words(key), block_words(b)));
        }
    }

    #[test]
    fn the_cryp_data_path_computes_fips197_and_the_prg_keystream() {
        let mut b = [FIPS197_PLAIN];
        modelled_engine(&FIPS197_KEY, &mut b);
        assert_eq!(b[0], FIPS197_CIPHER);
        // Random keys and blocks against the software AES.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            };
            let key: [u8; 16] = [next(), next()].concat().try_into().unwrap();
            let block: [u8; 16] = [next(), next()].concat().try_into().unwrap();
            let mut want = Array::from(block);
            Aes128::new(&Array::from(key)).encrypt_block(&mut want);
            let mut got = [block];
            modelled_engine(&key, &mut got);
            assert_eq!(got[0], <[u8; 16]>::from(want));
        }
        // And the board's self-test passes with it (the PRG's keystream through the engine).
        assert!(self_test(modelled_engine));
        // A wrong data path does not: the key words little-endian instead.
        fn wrong(key: &[u8; 16], blocks: &mut [[u8; 16]]) {
            let k = key_words(key).map(u32::swap_bytes);
            for b in blocks {
                *b = block_bytes(&model(k, block_words(b)));
            }
        }
        assert!(!self_test(wrong));
    }
}
