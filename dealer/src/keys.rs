//! Keys and seeds of the dealer.
//!
//! * The **master seed** (OS RNG on a host, TRNG on a board) yields each session's party seeds:
//!   `seed_p = master.derive(session, label_p)`.
//! * The **model-mask seed** yields each party's model share seed, from which its share of every
//!   weight mask B_W is expanded ([`ditto_core::prg::model_share_seed`]).
//! * A **party key** is provisioned once to a party and the dealer; each session's sealing key is
//!   `party_key.derive(session, SEAL_LABEL)`.

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId, model_share_seed};

const SEED_LABEL: [u16; 2] = [0x5301, 0x5302];
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

    /// The sealing key of one session.
    pub fn session_key(&self, session: &SessionId) -> Seed {
        self.0.derive(session, SEAL_LABEL)
    }
}

impl core::fmt::Debug for PartyKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PartyKey(<redacted>)")
    }
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

    /// Party `p`'s seeds for `session`.
    pub fn party(&self, session: &SessionId, p: Party) -> PartySeeds {
        PartySeeds {
            session: self.master.derive(session, SEED_LABEL[p.index()]),
            model: model_share_seed(&self.model, p),
        }
    }
}
