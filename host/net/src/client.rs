//! Client <-> party messages (TLS with pinned identities unless `--insecure-plaintext`, every
//! wait under a time-out).
//!
//! * request, client -> party: `DTCL`, version 4, request id (16 bytes), prompt length, element
//!   count and tokens to generate (u32 LE each), what the client learns of each generated token
//!   (1 byte: 0 its logits, 1 its id only), inputs in the batch (u32 LE, BERT: 1 to
//!   [`MAX_BATCH`], all of one length), then the one-hot shares (element count x u32 LE: batch x
//!   length rows). The head is checked against the party's model before any share is read.
//! * BERT answer, party -> client: `DTOU` | ring bits u32 | fractional bits u32 | element count
//!   u32 | the elements (ring / 8 bytes each, LE; the inputs' outputs one after the other).
//! * GPT-2, per generated token: party -> client `DTLG` | count u32 | u32 LE logit shares (or,
//!   revealing the token only, `DTTK` | 1 | the u32 share of its id); client -> party `DTOH` |
//!   count u32 | u32 LE shares of the chosen token's one-hot row.
//! * refusal, party -> client, in place of any answer: `DTER` | length u32 | UTF-8 reason.

use std::time::Duration;

use ditto_core::Ring;
use ditto_core::prg::SessionId;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::NetError;

/// Request magic.
pub const MAGIC: [u8; 4] = *b"DTCL";
/// Request version.
pub const VERSION: u8 = 4;
/// Bytes of the request head.
pub const HEAD: usize = 4 + 1 + 16 + 4 + 4 + 4 + 1 + 4;
/// Most inputs in one request.
pub const MAX_BATCH: u32 = 64;
/// Most one-hot rows (inputs x length) in one request.
pub const MAX_ROWS: u64 = 4096;
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
    /// One-hot share elements that follow (batch x seq x vocabulary).
    pub count: usize,
    /// Generation: the parties pick each token and reveal only its id (else its logits).
    pub reveal_token: bool,
    /// Inputs of `seq` tokens each (one session for all).
    pub batch: u32,
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
        h[34..38].copy_from_slice(&self.batch.to_le_bytes());
        h
    }

    /// Parses a head and checks it against a model with `vocab` tokens and `max_positions`
    /// positions: at least one prompt token, prompt and generated tokens within the positions,
    /// 1 to [`MAX_BATCH`] inputs of at most [`MAX_ROWS`] rows in all (and a batch generates
    /// nothing), and exactly one one-hot row per prompt token of each input.
    pub fn parse(h: &[u8; HEAD], vocab: usize, max_positions: usize) -> Result<Self, NetError> {
        if h[..4] != MAGIC || h[4] != VERSION {
            return Err(NetError::Malformed("not a client request"));
        }
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&h[5..21]);
        let u = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (seq, count, generate, batch) = (u(21), u(25) as usize, u(29), u(34));
        let positions = u64::from(seq) + u64::from(generate);
        if h[33] > 1 {
            return Err(NetError::Request(format!(
                "reveal mode {}: expected 0 (logits) or 1 (token)",
                h[33]
            )));
        }
        if !(1..=MAX_BATCH).contains(&batch) || u64::from(batch) * u64::from(seq) > MAX_ROWS {
            return Err(NetError::Request(format!(
                "a batch of {batch} inputs of {seq} tokens: expected 1 to {MAX_BATCH} inputs, {MAX_ROWS} tokens in all"
            )));
        }
        if batch > 1 && generate > 0 {
            return Err(NetError::Request(format!(
                "a batch of {batch} inputs generating tokens: batches do not generate"
            )));
        }
        if seq == 0
            || positions > max_positions as u64
            || generate > MAX_GENERATE
            || Some(count) != (seq as usize).checked_mul(vocab).and_then(|c| c.checked_mul(batch as usize))
        {
            return Err(NetError::Request(format!(
                "{batch} x {seq} tokens + {generate} generated, {count} elements, for a model of vocabulary \
                 {vocab} and {max_positions} positions"
            )));
        }
        Ok(RequestHead { session: SessionId(sid), seq, generate, count, reveal_token: h[33] == 1, batch })
    }
}

/// Tag of a BERT answer.
pub const ANSWER: [u8; 4] = *b"DTOU";
/// Tag of a generated token's logit shares.
pub const LOGITS: [u8; 4] = *b"DTLG";
/// Tag of a generated token's id share.
pub const TOKEN: [u8; 4] = *b"DTTK";
/// Tag of the client's next one-hot row.
pub const ONE_HOT: [u8; 4] = *b"DTOH";
/// Tag of a party's refusal.
pub const REFUSAL: [u8; 4] = *b"DTER";
/// Longest refusal text.
const MAX_REFUSAL: usize = 4096;
/// Most elements of a BERT answer.
pub const MAX_ANSWER: usize = 1 << 20;

/// A frame of u32 elements: `tag` | count u32 | elements.
pub fn u32_frame(tag: &[u8; 4], v: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v.len() * 4);
    out.extend_from_slice(tag);
    out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes());
    v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    out
}

/// A BERT answer: this party's share of the output at `frac` fractional bits.
pub fn answer_frame<R: Ring>(data: &[R], frac: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + data.len() * R::BYTES);
    out.extend_from_slice(&ANSWER);
    out.extend_from_slice(&(8 * u32::try_from(R::BYTES).unwrap_or(0)).to_le_bytes());
    out.extend_from_slice(&frac.to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    let mut b = vec![0u8; R::BYTES];
    for v in data {
        v.write_le(&mut b);
        out.extend_from_slice(&b);
    }
    out
}

/// A refusal: why the party will not answer (its length bounded).
pub fn refusal_frame(reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REFUSAL);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(8 + end);
    out.extend_from_slice(&REFUSAL);
    out.extend_from_slice(&u32::try_from(end).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

/// A BERT answer as received: ring bits (32 or 64), fractional bits, the element bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// 32 or 64.
    pub ring: u32,
    /// Fractional bits.
    pub frac: u32,
    /// The elements, little-endian.
    pub data: Vec<u8>,
}

async fn read_t<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut [u8],
    wait: Duration,
    what: &'static str,
) -> Result<(), NetError> {
    match tokio::time::timeout(wait, s.read_exact(buf)).await {
        Err(_) => Err(NetError::Timeout { what, secs: wait.as_secs_f64() }),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(NetError::Closed { what }),
        Ok(Err(source)) => Err(NetError::Io { what, source }),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Reads a frame head: its tag and count; a refusal becomes [`NetError::Refused`].
async fn read_head<S: AsyncRead + Unpin>(
    s: &mut S,
    wait: Duration,
    what: &'static str,
) -> Result<([u8; 4], u32), NetError> {
    let mut head = [0u8; 8];
    read_t(s, &mut head, wait, what).await?;
    let tag = [head[0], head[1], head[2], head[3]];
    let n = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if tag == REFUSAL {
        if n as usize > MAX_REFUSAL {
            return Err(NetError::Malformed("refusal too long"));
        }
        let mut text = vec![0u8; n as usize];
        read_t(s, &mut text, wait, what).await?;
        return Err(NetError::Refused(String::from_utf8_lossy(&text).into_owned()));
    }
    Ok((tag, n))
}

/// Reads a frame of u32 elements tagged `tag` with at most `max` of them (waiting up to
/// `wait` for it to begin and again for its body).
pub async fn read_u32_frame<S: AsyncRead + Unpin>(
    s: &mut S,
    tag: &[u8; 4],
    max: usize,
    wait: Duration,
    what: &'static str,
) -> Result<Vec<u32>, NetError> {
    let (t, n) = read_head(s, wait, what).await?;
    if &t != tag || n as usize > max {
        return Err(NetError::Malformed(what));
    }
    let mut d = vec![0u8; n as usize * 4];
    read_t(s, &mut d, wait, what).await?;
    Ok(d.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Reads a BERT answer (or the party's refusal).
pub async fn read_answer<S: AsyncRead + Unpin>(s: &mut S, wait: Duration) -> Result<Answer, NetError> {
    let what = "the party's answer";
    let (tag, ring) = read_head(s, wait, what).await?;
    let mut rest = [0u8; 8];
    read_t(s, &mut rest, wait, what).await?;
    let frac = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let m = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
    if tag != ANSWER || !matches!(ring, 32 | 64) || m > MAX_ANSWER {
        return Err(NetError::Malformed("not an answer"));
    }
    let mut data = vec![0u8; m * ring as usize / 8];
    read_t(s, &mut data, wait, what).await?;
    Ok(Answer { ring, frac, data })
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
            batch: 1,
        };
        assert_eq!(RequestHead::parse(&h.encode(), 258, 8).unwrap(), h);
        // A batch: its inputs' rows counted; bounded; generating nothing.
        let b = RequestHead { generate: 0, reveal_token: false, batch: 5, count: 5 * 3 * 258, ..h };
        assert_eq!(RequestHead::parse(&b.encode(), 258, 8).unwrap(), b);
        for (batch, count, generate, why) in [
            (0, 0, 0, "expected 1 to 64 inputs"),
            (MAX_BATCH + 1, (MAX_BATCH as usize + 1) * 3 * 258, 0, "expected 1 to 64 inputs"),
            (5, 4 * 3 * 258, 0, "5 x 3 tokens"),
            (2, 2 * 3 * 258, 1, "batches do not generate"),
        ] {
            let e = RequestHead::parse(&RequestHead { batch, count, generate, ..b }.encode(), 258, 8)
                .unwrap_err();
            assert!(e.to_string().contains(why), "{batch}: {e}");
        }
        let rows = RequestHead { seq: 128, batch: 33, count: 33 * 128 * 2, ..b };
        assert!(
            RequestHead::parse(&rows.encode(), 2, 512)
                .unwrap_err()
                .to_string()
                .contains("4096 tokens in all")
        );
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
            batch: 1,
        };
        assert!(RequestHead::parse(&big.encode(), 258, usize::MAX).is_err());
    }

    #[tokio::test]
    async fn frames_round_trip_and_a_refusal_carries_its_reason() {
        let w = Duration::from_secs(1);
        let f = u32_frame(&LOGITS, &[1, 2, u32::MAX]);
        assert_eq!(read_u32_frame(&mut &f[..], &LOGITS, 3, w, "t").await.unwrap(), vec![1, 2, u32::MAX]);
        // Another tag, or more elements than allowed: malformed.
        assert!(matches!(read_u32_frame(&mut &f[..], &TOKEN, 3, w, "t").await, Err(NetError::Malformed(_))));
        assert!(matches!(read_u32_frame(&mut &f[..], &LOGITS, 2, w, "t").await, Err(NetError::Malformed(_))));
        let a = answer_frame::<u64>(&[5, 1 << 40], 18);
        let got = read_answer(&mut &a[..], w).await.unwrap();
        assert_eq!((got.ring, got.frac, got.data.len()), (64, 18, 16));
        assert_eq!(<u64 as Ring>::from_le(&got.data[8..]), 1 << 40);
        let r = refusal_frame("input has 959 tokens, more than the 512 allowed");
        match read_answer(&mut &r[..], w).await {
            Err(NetError::Refused(m)) => assert!(m.contains("959 tokens")),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A truncated frame is a closed connection, not a hang or a panic.
        assert!(matches!(read_answer(&mut &a[..10], w).await, Err(NetError::Closed { .. })));
    }
}
