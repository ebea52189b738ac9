//! Keys and seeds of the dealer.
//!
//! * The **master seed** (OS RNG on a host, TRNG on a board) yields each generation's party
//!   seeds: `seed_p = master.derive_salted(session, salt, label_p)`.
//! * The **model-mask seed** yields each party's model share seed of one sharing (share-set
//!   id), from which its share of every weight mask B_W is expanded
//!   ([`ditto_core::prg::model_share_seed`]).
//! * A **party key** is provisioned once to a party and the dealer; each generation's sealing
//!   key is `party_key.derive_salted(session, salt, SEAL_LABEL)`.
//! * A **salt** ([`Salt`]) is drawn fresh for every generation of a session's two streams and
//!   sent in clear at the head of both. Two generations of one session (a dealer restart, a
//!   board reboot answering the same request, `--session S` with another state directory)
//!   therefore never share a seed, an AEAD key or a nonce; P0 and P1 compare
//!   [`Salt::commitment`] in their link handshake, so parties fed by two generations stop with
//!   a clear error instead of computing garbage.
//!
//! * The **relay key** ([`RelayKey`]) is shared by a dealer board and the relay that asks it
//!   for streams: every request carries a tag under it, so the board deals only for its relay.
//!
//! A board keeps what must survive a reboot (both party keys, the model-mask seed and the relay
//! key) in a **key page** ([`Provisioning`]) written to its flash once; its master seed comes
//! from the TRNG at every boot.

use ditto_core::Party;
use ditto_core::prg::{Prg, Seed, SessionId, ShareSetId, model_share_seed};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::Error;

const SEED_LABEL: [u16; 2] = [0x5301, 0x5302];
const SALT_LABEL: u16 = 0x5341;
/// Label of the sealing-key derivation.
pub const SEAL_LABEL: u16 = 0x4145;

/// A party's provisioned AEAD key. Zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PartyKey(Seed);

impl PartyKey {
    /// Wraps provisioned key bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        PartyKey(Seed::from_bytes(bytes))
    }

    /// Draws a fresh key.
    pub fn random<R: ditto_core::rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        PartyKey(Seed::random(rng))
    }

    /// The key bytes (for writing the provisioned key file).
    pub fn expose(&self) -> &[u8; 16] {
        self.0.expose()
    }

    /// The sealing key of one generation of a session's stream.
    pub fn stream_key(&self, session: &SessionId, salt: &Salt) -> Seed {
        self.0.derive_salted(session, &salt.0, SEAL_LABEL)
    }
}

impl core::fmt::Debug for PartyKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PartyKey(<redacted>)")
    }
}

/// The key a dealer board and its relay share: the relay tags every request with it
/// ([`crate::board`]), the board refuses a request whose tag does not verify. Zeroized on drop,
/// never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayKey(Seed);

/// Label of a request tag (HMAC-SHA256 of label || request, under the relay key).
const REQUEST_TAG_LABEL: &[u8] = b"ditto board request v3";

impl RelayKey {
    /// Wraps provisioned key bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        RelayKey(Seed::from_bytes(bytes))
    }

    /// The key bytes (for writing the provisioned key file).
    pub fn expose(&self) -> &[u8; 16] {
        self.0.expose()
    }

    fn mac(&self, request: &[u8]) -> hmac::Hmac<Sha256> {
        use hmac::KeyInit;
        use hmac::Mac;
        // HMAC pads a short key with zeros to the hash's block: the same key, given whole.
        let mut block = [0u8; 64];
        block[..16].copy_from_slice(self.expose());
        let mut m = <hmac::Hmac<Sha256> as KeyInit>::new(&block.into());
        block.zeroize();
        m.update(REQUEST_TAG_LABEL);
        m.update(request);
        m
    }

    /// The tag of a request's bytes: the first 16 bytes of HMAC-SHA256(key, label || request).
    pub fn tag(&self, request: &[u8]) -> [u8; 16] {
        use hmac::Mac;
        let full = self.mac(request).finalize().into_bytes();
        let mut t = [0u8; 16];
        t.copy_from_slice(&full[..16]);
        t
    }

    /// Whether `tag` is the tag of `request` (compared in constant time).
    pub fn verify(&self, request: &[u8], tag: &[u8; 16]) -> bool {
        use hmac::Mac;
        self.mac(request).verify_truncated_left(tag).is_ok()
    }
}

impl core::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RelayKey(<redacted>)")
    }
}

/// The public per-generation salt (see the module docs). Not secret: it travels in clear.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Salt(pub [u8; 16]);

impl Salt {
    /// What P0 and P1 compare in their handshake: SHA-256 of a label, the session and the salt.
    /// Equal commitments mean both streams come from one generation.
    pub fn commitment(&self, session: &SessionId) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ditto dealer generation v1");
        h.update(session.0);
        h.update(self.0);
        h.finalize().into()
    }
}

/// Salts for a dealer without an OS RNG at hand for each request (a board): AES-CTR under a key
/// derived from the master seed, which is fresh from the TRNG at every boot. Salts never repeat
/// within one master seed; across boots the master seed differs.
pub struct SaltSource(Prg);

impl core::fmt::Debug for SaltSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SaltSource(<redacted>)")
    }
}

impl SaltSource {
    /// The salt stream of `master`.
    pub fn new(master: &Seed) -> Self {
        let key = master.derive(&SessionId([0; 16]), SALT_LABEL);
        SaltSource(Prg::with_counter(key.expose(), 0))
    }

    /// The next salt.
    pub fn next_salt(&mut self) -> Salt {
        let mut b = [0u8; 16];
        self.0.fill(&mut b);
        Salt(b)
    }
}

/// What one generation of a session's streams is bound to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Generation {
    /// The session (fresh per plan execution).
    pub session: SessionId,
    /// The sharing whose weight masks the streams carry.
    pub share_set: ShareSetId,
    /// This generation's salt.
    pub salt: Salt,
}

/// The seeds the dealer holds.
pub struct DealerSeeds {
    master: Seed,
    model: Seed,
}

impl core::fmt::Debug for DealerSeeds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DealerSeeds(<redacted>)")
    }
}

/// What one party receives in its seed frame.
pub struct PartySeeds {
    /// Its session seed.
    pub session: Seed,
    /// Its model share seed.
    pub model: Seed,
}

impl core::fmt::Debug for PartySeeds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PartySeeds(<redacted>)")
    }
}

impl PartySeeds {
    /// Bytes on the wire: session seed then model share seed.
    pub const LEN: usize = 32;

    /// Encodes into 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(self.session.expose());
        b[16..].copy_from_slice(self.model.expose());
        b
    }

    /// Decodes 32 bytes.
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        let mut s = [0u8; 16];
        let mut m = [0u8; 16];
        s.copy_from_slice(&b[..16]);
        m.copy_from_slice(&b[16..]);
        PartySeeds { session: Seed::from_bytes(s), model: Seed::from_bytes(m) }
    }
}

impl DealerSeeds {
    /// From a master seed and a model-mask seed.
    pub fn new(master: Seed, model: Seed) -> Self {
        DealerSeeds { master, model }
    }

    /// Party `p`'s seeds for generation `g`: its session seed (bound to the session and the
    /// salt) and its model share seed (bound to the sharing).
    pub fn party(&self, g: &Generation, p: Party) -> PartySeeds {
        PartySeeds {
            session: self.master.derive_salted(&g.session, &g.salt.0, SEED_LABEL[p.index()]),
            model: model_share_seed(&self.model, &g.share_set, p),
        }
    }

    /// Replaces the master seed (a board whose served-session set is full draws a new one, as a
    /// reboot would); the model-mask seed stays.
    pub fn rekey(&mut self, master: Seed) {
        self.master = master;
    }

    /// TEST ONLY (boards without entropy, built with a fixed test seed): the next master seed,
    /// SHA-256 of the current one.
    pub fn successor_test_master(&self) -> Seed {
        let mut h: [u8; 32] = Sha256::digest(self.master.expose()).into();
        let mut s = [0u8; 16];
        s.copy_from_slice(&h[..16]);
        h.zeroize();
        let seed = Seed::from_bytes(s);
        s.zeroize();
        seed
    }

    /// A salt source under this dealer's master seed (boards; hosts draw salts from the OS).
    pub fn salts(&self) -> SaltSource {
        SaltSource::new(&self.master)
    }
}

/// A board's provisioned secrets: both party keys, the model-mask seed and the relay key. `ditto
/// provision` writes them as a key page (`board-keys.bin`) to flash next to the firmware; the
/// firmware reads them at boot. Page: magic [`Provisioning::MAGIC`], P0's key, P1's key, the
/// model-mask seed, the relay key (16 bytes each), then the first 4 bytes of the SHA-256 of
/// everything before them.
pub struct Provisioning {
    /// P0's and P1's keys.
    pub keys: [PartyKey; 2],
    /// The model-mask seed.
    pub model: Seed,
    /// The key of the relay the board deals for.
    pub relay: RelayKey,
}

impl core::fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Provisioning(<redacted>)")
    }
}

impl Provisioning {
    /// Key page magic (format version 2: with the relay key).
    pub const MAGIC: [u8; 8] = *b"DITTOKP2";
    /// The first format's magic (no relay key): refused, with the fix.
    const MAGIC_V1: [u8; 8] = *b"DITTOKP1";
    /// Key page length in bytes.
    pub const PAGE_LEN: usize = 8 + 4 * 16 + 4;
    /// Bytes the checksum covers.
    const BODY: usize = 8 + 4 * 16;

    fn check(body: &[u8]) -> [u8; 4] {
        let h = Sha256::digest(body);
        [h[0], h[1], h[2], h[3]]
    }

    /// The key page. Secret: write it only to the board and to owner-only files.
    pub fn to_page(&self) -> [u8; Self::PAGE_LEN] {
        let mut p = [0u8; Self::PAGE_LEN];
        p[..8].copy_from_slice(&Self::MAGIC);
        p[8..24].copy_from_slice(self.keys[0].expose());
        p[24..40].copy_from_slice(self.keys[1].expose());
        p[40..56].copy_from_slice(self.model.expose());
        p[56..72].copy_from_slice(self.relay.expose());
        let c = Self::check(&p[..Self::BODY]);
        p[Self::BODY..].copy_from_slice(&c);
        p
    }

    /// Reads a key page (`page` may be longer: a flash sector); refuses a blank, foreign or
    /// damaged one.
    pub fn from_page(page: &[u8]) -> Result<Self, Error> {
        let Some(p) = page.get(..Self::PAGE_LEN) else {
            return Err(Error::KeyPage { problem: "shorter than a key page" });
        };
        if p.iter().all(|&b| b == 0xff) || p.iter().all(|&b| b == 0) {
            return Err(Error::KeyPage { problem: "blank (not provisioned)" });
        }
        if p[..8] == Self::MAGIC_V1 {
            return Err(Error::KeyPage {
                problem: "format 1, without a relay key: write a new one from `ditto provision`",
            });
        }
        if p[..8] != Self::MAGIC {
            return Err(Error::KeyPage { problem: "bad magic (not a ditto key page)" });
        }
        if p[Self::BODY..] != Self::check(&p[..Self::BODY]) {
            return Err(Error::KeyPage { problem: "checksum mismatch (damaged)" });
        }
        let mut k = [[0u8; 16]; 4];
        for (i, k) in k.iter_mut().enumerate() {
            k[..].copy_from_slice(&p[8 + 16 * i..24 + 16 * i]);
        }
        let out = Provisioning {
            keys: [PartyKey::from_bytes(k[0]), PartyKey::from_bytes(k[1])],
            model: Seed::from_bytes(k[2]),
            relay: RelayKey::from_bytes(k[3]),
        };
        k.zeroize();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Provisioning {
        Provisioning {
            keys: [PartyKey::from_bytes([1; 16]), PartyKey::from_bytes([2; 16])],
            model: Seed::from_bytes([3; 16]),
            relay: RelayKey::from_bytes([4; 16]),
        }
    }

    /// HMAC-SHA256 as RFC 2104 defines it, written apart from the `hmac` crate.
    fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let pad = |b: u8| k.map(|x| x ^ b);
        let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
        Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
    }

    #[test]
    fn request_tags_are_truncated_hmac_sha256_under_the_relay_key_and_its_label() {
        // The reference itself against RFC 4231, test case 1.
        let want = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
        let got: std::string::String =
            hmac_sha256(&[0x0b; 20], b"Hi There").iter().map(|b| std::format!("{b:02x}")).collect();
        assert_eq!(got, want);
        let key = RelayKey::from_bytes(*b"relay-key-16byte");
        let request = b"DTFW\x03 a request's bytes";
        let full = hmac_sha256(key.expose(), &[REQUEST_TAG_LABEL, request].concat());
        let tag = key.tag(request);
        assert_eq!(tag[..], full[..16]);
        assert!(key.verify(request, &tag));
        // Any other request, tag or key fails.
        for i in 0..request.len() {
            let mut r = *request;
            r[i] ^= 1;
            assert!(!key.verify(&r, &tag), "request byte {i}");
        }
        for i in 0..16 {
            let mut t = tag;
            t[i] ^= 0x80;
            assert!(!key.verify(request, &t), "tag byte {i}");
        }
        assert!(!RelayKey::from_bytes(*b"relay-key-16bytf").verify(request, &tag));
        assert!(!key.verify(&request[..request.len() - 1], &tag), "a truncated request");
        assert_eq!(std::format!("{key:?}"), "RelayKey(<redacted>)");
    }

    #[test]
    fn key_page_round_trips_and_refuses_bad_pages() {
        let page = sample().to_page();
        let back = Provisioning::from_page(&page).unwrap();
        assert_eq!(back.keys, sample().keys);
        assert_eq!(back.model.expose(), &[3; 16]);
        assert_eq!(back.relay.expose(), &[4; 16]);
        // A longer region (a flash sector) holding the page at its start reads the same.
        let mut sector = [0xffu8; 256];
        sector[..page.len()].copy_from_slice(&page);
        assert!(Provisioning::from_page(&sector).is_ok());
        let problem = |p: &[u8]| match Provisioning::from_page(p) {
            Err(Error::KeyPage { problem }) => problem,
            other => panic!("{other:?}"),
        };
        assert!(problem(&[0xff; 80]).contains("blank"));
        assert!(problem(&[0; 80]).contains("blank"));
        let mut v1 = page;
        v1[..8].copy_from_slice(b"DITTOKP1");
        assert!(problem(&v1).contains("format 1"), "a first-format page is refused with the fix");
        assert!(problem(&page[..40]).contains("shorter"));
        for i in 0..page.len() {
            let mut bad = page;
            bad[i] ^= 0x10;
            let p = problem(&bad);
            assert!(p.contains(if i < 8 { "magic" } else { "checksum" }), "byte {i}: {p}");
        }
        assert!(!std::format!("{:?}", sample()).contains('1'));
    }
}
