//! The client's request to a party: `DTCL`, version 3, session id (16 bytes), prompt length,
//! element count and tokens to generate (u32 LE each), what the client learns of each generated
//! token (1 byte: 0 its logits, 1 its id only), then the one-hot shares (element count x u32
//! LE). The head is checked against the party's model before any share is read.

use ditto_core::prg::SessionId;

use crate::NetError;

/// Request magic.
pub const MAGIC: [u8; 4] = *b"DTCL";
/// Request version.
pub const VERSION: u8 = 3;
/// Bytes of the request head.
pub const HEAD: usize = 4 + 1 + 16 + 4 + 4 + 4 + 1;
/// Most tokens a client may ask a party to generate.
pub const MAX_GENERATE: u32 = 4096;

/// A checked request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The session.
    pub session: SessionId,
    /// Prompt tokens.
    pub seq: u32,
    /// Tokens to generate.
    pub generate: u32,
    /// One-hot share elements that follow (seq x vocabulary).
    pub count: usize,
    /// Generation: the parties pick each token and reveal only its id (else its logits).
    pub reveal_token: bool,
}

impl RequestHead {
    /// The head's bytes.
    pub fn encode(&self) -> [u8; HEAD] {
        let mut h = [0u8; HEAD];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5..21].copy_from_slice(&self.session.0);
        h[21..25].copy_from_slice(&self.seq.to_le_bytes());
        h[25..29].copy_from_slice(&u32::try_from(self.count).unwrap_or(u32::MAX).to_le_bytes());
        h[29..33].copy_from_slice(&self.generate.to_le_bytes());
        h[33] = u8::from(self.reveal_token);
        h
    }

    /// Parses a head and checks it against a model with `vocab` tokens and `max_positions`
    /// positions: at least one prompt token, prompt and generated tokens within the positions,
    /// and exactly one one-hot row per prompt token.
    pub fn parse(h: &[u8; HEAD], vocab: usize, max_positions: usize) -> Result<Self, NetError> {
        if h[..4] != MAGIC || h[4] != VERSION {
            return Err(NetError::Malformed("not a client request"));
        }
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&h[5..21]);
        let u = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (seq, count, generate) = (u(21), u(25) as usize, u(29));
        let positions = u64::from(seq) + u64::from(generate);
        if h[33] > 1 {
            return Err(NetError::Request(format!(
                "reveal mode {}: expected 0 (logits) or 1 (token)",
                h[33]
            )));
        }
        if seq == 0
            || positions > max_positions as u64
            || generate > MAX_GENERATE
            || Some(count) != (seq as usize).checked_mul(vocab)
        {
            return Err(NetError::Request(format!(
                "{seq} tokens + {generate} generated, {count} elements, for a model of vocabulary {vocab} \
                 and {max_positions} positions"
            )));
        }
        Ok(RequestHead { session: SessionId(sid), seq, generate, count, reveal_token: h[33] == 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_bad_ones_are_refused() {
        let h = RequestHead {
            session: SessionId([7; 16]),
            seq: 3,
            generate: 2,
            count: 3 * 258,
            reveal_token: true,
        };
        assert_eq!(RequestHead::parse(&h.encode(), 258, 8).unwrap(), h);
        let mut r = h.encode();
        r[33] = 2;
        assert!(RequestHead::parse(&r, 258, 8).unwrap_err().to_string().contains("reveal mode 2"));
        // Too long for the positions, wrong element count, no token, bad magic: all refused.
        assert!(RequestHead::parse(&h.encode(), 258, 4).is_err());
        assert!(RequestHead::parse(&h.encode(), 257, 8).is_err());
        let mut z = h;
        z.seq = 0;
        z.count = 0;
        assert!(RequestHead::parse(&z.encode(), 258, 8).is_err());
        let mut b = h.encode();
        b[0] = b'X';
        assert!(matches!(RequestHead::parse(&b, 258, 8), Err(NetError::Malformed(_))));
        // Overflowing fields do not wrap into acceptance.
        let big = RequestHead {
            session: SessionId([0; 16]),
            seq: u32::MAX,
            generate: 1,
            count: 0,
            reveal_token: false,
        };
        assert!(RequestHead::parse(&big.encode(), 258, usize::MAX).is_err());
    }
}
