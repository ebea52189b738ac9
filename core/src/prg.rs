//! Seeds, session ids and the seekable counter-mode PRG.
//!
//! The PRG is AES-128 in counter mode: keystream block j is AES_K(j), with j a 128-bit
//! little-endian counter, so any byte offset can be reached in O(1) ([`Prg::seek`]). AES was
//! chosen over ChaCha because the `aes` crate uses AES-NI/VAES on x86 (about 13 GB/s on this
//! machine against about 2.3 GB/s for ChaCha12; see `cargo bench -p ditto-core --bench prg`)
//! and has a constant-time software backend for Cortex-M.
//!
//! Domain separation: a stream key is derived from (seed, session id, step index, purpose)
//! by two AES evaluations used as a PRF:
//! `K_session = AES_seed(session id)`, `K_stream = AES_{K_session}(step || purpose || domain)`.
//! Every step's randomness can therefore be regenerated alone, from any offset.

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use core::convert::Infallible;
use core::sync::atomic::{AtomicUsize, Ordering};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Party, Ring};

/// A 128-bit secret seed. Zeroized on drop; its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Seed([u8; 16]);

impl Seed {
    /// Wraps seed bytes (received from the dealer, or drawn from an OS or hardware RNG).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Seed(bytes)
    }

    /// Draws a seed from a cryptographic RNG.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Seed(b)
    }

    /// A child seed bound to `session` and `label`: AES_{AES_self(session)}(label || domain).
    /// The dealer derives each session's party seeds from its master seed this way, and the
    /// sealing key of a session from a party's provisioned key.
    pub fn derive(&self, session: &SessionId, label: u16) -> Seed {
        let mut k1 = aes_prf(&self.0, session.0);
        let mut k2 = aes_prf(&k1, tag(0, label, DOMAIN_DERIVE));
        let s = Seed(k2);
        k1.zeroize();
        k2.zeroize();
        s
    }

    /// A child seed bound to `session`, a per-generation `salt` and `label`:
    /// AES_{AES_{AES_self(session)}(salt)}(label || domain). The dealer derives each
    /// generation's party seeds and sealing keys this way, so two generations of one session
    /// (a dealer restart, a board reboot, a retry) never share a seed, key or nonce.
    pub fn derive_salted(&self, session: &SessionId, salt: &[u8; 16], label: u16) -> Seed {
        let mut k1 = aes_prf(&self.0, session.0);
        let mut k2 = aes_prf(&k1, *salt);
        let mut k3 = aes_prf(&k2, tag(0, label, DOMAIN_DERIVE_SALTED));
        let s = Seed(k3);
        k1.zeroize();
        k2.zeroize();
        k3.zeroize();
        s
    }

    /// The secret bytes, for sealing into a dealer frame. Handle with care.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }
}

impl core::fmt::Debug for Seed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

/// A public 128-bit id: bytes, shown as 32 hex digits.
macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// The id as a big-endian integer (for display and error messages).
            pub fn as_u128(&self) -> u128 {
                u128::from_be_bytes(self.0)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "({:032x})"), self.as_u128())
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{:032x}", self.as_u128())
            }
        }
    };
}

public_id!(
    /// A public 128-bit session id: fresh for every plan execution and bound into every stream.
    SessionId
);

public_id!(
    /// A public 128-bit share-set id: drawn fresh by every `share-model` run and written into
    /// both parties' share files. Each weight mask B_W derives from (model-mask seed, share-set
    /// id), so two sharings never share a mask (see [`model_share_seed`]). The default, all
    /// zero, names no sharing: programs without model weights.
    #[derive(Default)]
    ShareSetId
);

/// What a PRG stream is for. Each component of a correlation has its own purpose, so it can be
/// regenerated independently of the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Purpose {
    /// First mask / triple operand (A).
    A = 1,
    /// Second triple operand (B).
    B = 2,
    /// Triple product share (C).
    C = 3,
    /// Conversion mask r (in the source ring).
    R = 4,
    /// r >> k (truncation, downcast) or r lifted to the target ring (upcast).
    RHigh = 5,
    /// msb(r) as an arithmetic share.
    Msb = 6,
    /// Boolean shares of the bits of r (comparison).
    RBits = 7,
    /// AND-triple operand a (boolean).
    AndA = 8,
    /// AND-triple operand b (boolean).
    AndB = 9,
    /// AND-triple product c (boolean).
    AndC = 10,
    /// daBit, boolean part.
    DaBitB = 11,
    /// daBit, arithmetic part.
    DaBitA = 12,
    /// One-hot vectors of the mask's chunks (radix comparison).
    OneHot = 13,
    /// Masks of the wires a radix comparison opens (boolean).
    WireMask = 14,
    /// Products of wire masks (boolean).
    MaskProd = 15,
    /// Squares of a fused truncation's masks.
    FuseSq = 16,
    /// Products of a fused truncation's masks with an operand's mask.
    FuseMul = 17,
    /// Products of the masks of two lanes of a fused truncation.
    FusePair = 18,
    /// Products of a truncation's mask with an earlier step's (a row product of a centred
    /// operand).
    CrossMask = 19,
}

const DOMAIN_SESSION: u8 = 1;
const DOMAIN_MODEL: u8 = 2;
const DOMAIN_MODEL_SHARE: u8 = 3;
const DOMAIN_DERIVE: u8 = 4;
const DOMAIN_DERIVE_SALTED: u8 = 5;
const KDF_VERSION: u8 = 1;
const KDF_LABEL: &[u8; 8] = b"ditto-v1";

fn aes_prf(key: &[u8; 16], input: [u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(&Array::from(*key));
    let mut block = Array::from(input);
    cipher.encrypt_block(&mut block);
    block.into()
}

fn tag(index: u32, purpose: u16, domain: u8) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0..4].copy_from_slice(&index.to_le_bytes());
    t[4..6].copy_from_slice(&purpose.to_le_bytes());
    t[6] = domain;
    t[7] = KDF_VERSION;
    t[8..16].copy_from_slice(KDF_LABEL);
    t
}

/// The seed from which party `party`'s share of every weight mask B_W of one sharing is
/// expanded: AES_{AES_model(share set)}(party || domain). The dealer derives both parties' from
/// its model-mask seed; B_W = B_0 + B_1 never exists anywhere but in the dealer's arithmetic.
///
/// The share-set id is bound in because masks must be independent across sharings: with one
/// B_W for two sharings of different weights W, W' (another model of the same shape, or one
/// model at two scales), the opened F - F' = W - W' would leak the weights.
pub fn model_share_seed(model_seed: &Seed, share_set: &ShareSetId, party: Party) -> Seed {
    let p = u16::from(party.is_p0()) + 1;
    let mut k1 = aes_prf(model_seed.expose(), share_set.0);
    let mut k2 = aes_prf(&k1, tag(0, p, DOMAIN_MODEL_SHARE));
    let s = Seed::from_bytes(k2);
    k1.zeroize();
    k2.zeroize();
    s
}

/// An AES-128 engine outside this crate (a microcontroller's crypto accelerator): encrypts
/// each block in place under `key`, exactly as FIPS-197 AES-128 does.
pub type BlockEngine = fn(key: &[u8; 16], blocks: &mut [[u8; 16]]);

/// The registered [`BlockEngine`], as an address (0: none, the software AES).
static ENGINE: AtomicUsize = AtomicUsize::new(0);

/// Makes every [`Prg`] compute its keystream with `engine` (`None`: the software AES again).
/// Key derivations stay in software. Nothing else changes: the keystream is AES-128-CTR either
/// way, so an engine that computes anything but AES-128 breaks every stream (a board checks its
/// engine against the software AES before it registers it).
pub fn set_block_engine(engine: Option<BlockEngine>) {
    ENGINE.store(engine.map_or(0, |e| e as usize), Ordering::Release);
}

/// The registered engine.
#[allow(unsafe_code)]
fn block_engine() -> Option<BlockEngine> {
    match ENGINE.load(Ordering::Acquire) {
        0 => None,
        // SAFETY: a non-zero value was stored by `set_block_engine` from a `BlockEngine`.
        a => Some(unsafe { core::mem::transmute::<usize, BlockEngine>(a) }),
    }
}

const BUF_BLOCKS: usize = 16;
const BUF_BYTES: usize = BUF_BLOCKS * 16;

/// Seekable AES-128-CTR pseudo-random generator. Implements `rand_core`'s `TryRng` (and so
/// `Rng`) and `TryCryptoRng`. Its key schedule and buffered keystream are zeroized on drop.
pub struct Prg {
    cipher: Aes128,
    /// The key, for a [`BlockEngine`].
    key: [u8; 16],
    /// Counter of the block after the buffered ones.
    next_block: u128,
    buf: [u8; BUF_BYTES],
    /// Bytes of `buf` already consumed.
    pos: usize,
    /// Valid bytes in `buf`.
    len: usize,
}

impl core::fmt::Debug for Prg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Prg {{ position: {} }}", self.position())
    }
}

impl Drop for Prg {
    fn drop(&mut self) {
        self.buf.zeroize();
        self.key.zeroize();
    }
}

impl Prg {
    /// A PRG keyed directly with `key`, starting at counter `counter` (known-answer tests).
    pub fn with_counter(key: &[u8; 16], counter: u128) -> Self {
        Prg {
            cipher: Aes128::new(&Array::from(*key)),
            key: *key,
            next_block: counter,
            buf: [0; BUF_BYTES],
            pos: 0,
            len: 0,
        }
    }

    /// The stream for `purpose` of plan step `step` in session `session`, under `seed`.
    pub fn for_stream(seed: &Seed, session: &SessionId, step: u32, purpose: Purpose) -> Self {
        let mut k1 = aes_prf(seed.expose(), session.0);
        let mut k2 = aes_prf(&k1, tag(step, purpose as u16, DOMAIN_SESSION));
        let prg = Prg::with_counter(&k2, 0);
        k1.zeroize();
        k2.zeroize();
        prg
    }

    /// The stream of a party's share of the mask B_W of weight matrix `weight`, under that
    /// party's [`model_share_seed`] (which binds the sharing). Independent of any session.
    pub fn for_model(share_seed: &Seed, weight: u32) -> Self {
        let mut k1 = aes_prf(share_seed.expose(), tag(0, 0, DOMAIN_MODEL));
        let mut k2 = aes_prf(&k1, tag(weight, Purpose::B as u16, DOMAIN_MODEL));
        let prg = Prg::with_counter(&k2, 0);
        k1.zeroize();
        k2.zeroize();
        prg
    }

    /// Byte offset of the next output byte.
    pub fn position(&self) -> u128 {
        // `pos <= BUF_BYTES`, so the conversion is lossless.
        self.next_block * 16 - (self.len - self.pos) as u128
    }

    /// Moves to byte offset `offset` of the stream. Costs at most one block encryption.
    pub fn seek(&mut self, offset: u128) {
        self.next_block = offset / 16;
        self.pos = 0;
        self.len = 0;
        let skip = usize::from(u8::try_from(offset % 16).unwrap_or(0));
        if skip > 0 {
            let block = &mut self.buf[..16];
            Self::fill_counters(block, self.next_block);
            Self::encrypt(&self.cipher, &self.key, block);
            self.next_block += 1;
            self.len = 16;
            self.pos = skip;
        }
    }

    /// Moves to element `index` of a stream read as elements of ring `R`.
    pub fn seek_elem<R: Ring>(&mut self, index: u64) {
        self.seek(u128::from(index) * R::BYTES as u128);
    }

    /// Counter blocks `start, start + 1, ...` (little-endian) over `bytes` (whole blocks).
    fn fill_counters(bytes: &mut [u8], start: u128) {
        for (i, b) in bytes.chunks_exact_mut(16).enumerate() {
            b.copy_from_slice(&start.wrapping_add(i as u128).to_le_bytes());
        }
    }

    /// Encrypts the whole blocks of `bytes` in place: the registered engine, or the software AES.
    fn encrypt(cipher: &Aes128, key: &[u8; 16], bytes: &mut [u8]) {
        crate::count::prg_blocks((bytes.len() / 16) as u64);
        match block_engine() {
            Some(engine) => engine(key, bytes.as_chunks_mut::<16>().0),
            None => cipher.encrypt_blocks(Array::slice_as_chunks_mut(bytes).0),
        }
    }

    fn refill(&mut self) {
        Self::fill_counters(&mut self.buf, self.next_block);
        Self::encrypt(&self.cipher, &self.key, &mut self.buf);
        self.next_block = self.next_block.wrapping_add(BUF_BLOCKS as u128);
        self.pos = 0;
        self.len = BUF_BYTES;
    }

    /// Fills `dst` with the next keystream bytes.
    pub fn fill(&mut self, mut dst: &mut [u8]) {
        // Drain the buffer first.
        let take = dst.len().min(self.len - self.pos);
        dst[..take].copy_from_slice(&self.buf[self.pos..self.pos + take]);
        self.pos += take;
        dst = &mut dst[take..];
        if dst.is_empty() {
            return;
        }
        // Whole blocks straight into the destination.
        let whole = dst.len() / 16 * 16;
        if whole > 0 {
            let blocks = &mut dst[..whole];
            Self::fill_counters(blocks, self.next_block);
            Self::encrypt(&self.cipher, &self.key, blocks);
            self.next_block = self.next_block.wrapping_add((whole / 16) as u128);
            dst = &mut dst[whole..];
        }
        if !dst.is_empty() {
            self.refill();
            let n = dst.len();
            dst.copy_from_slice(&self.buf[..n]);
            self.pos = n;
        }
    }

    /// Next element of ring `R` (uniform over the whole ring).
    pub fn next_elem<R: Ring>(&mut self) -> R {
        let mut b = [0u8; 8];
        self.fill(&mut b[..R::BYTES]);
        R::from_le(&b)
    }

    /// Fills `out` with uniform ring elements (little-endian words of the keystream).
    pub fn fill_ring<R: Ring>(&mut self, out: &mut [R]) {
        self.fill(bytemuck::cast_slice_mut(out));
        if cfg!(target_endian = "big") {
            for v in out.iter_mut() {
                *v = R::from_le(bytemuck::bytes_of(v));
            }
        }
    }
}

impl rand_core::TryRng for Prg {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.next_elem::<u32>())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next_elem::<u64>())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Prg {}
