//! The client: tokenizes its text, shares the one-hot input between the two parties, and
//! reconstructs what they answer (a BERT's embedding or label; a GPT-2's tokens, choosing each
//! one greedily from the logits, or receiving the parties' choice). Messages:
//! [`ditto_net::client`]. The input is checked against the model before anything is sent.

use std::time::Duration;

use ditto_core::prg::{Prg, SessionId};
use ditto_models::blocks::one_hot;
use ditto_models::generate::{Reveal, argmax_signed};
use ditto_models::spec::{ModelConfig, ModelSpec};
use ditto_mpc::tensor::{reveal, share};
use ditto_net::client::{ONE_HOT, RequestHead, read_answer, read_u32_frame, u32_frame};
use ditto_net::tls::{Security, Stream};

use crate::party::{CLIENT_TURN, output_tag};
use crate::{NodeError, io, write_t};

/// A client request.
pub struct ClientRequest<'a> {
    /// The model the parties run (its tokenizer and config; no weights are read).
    pub model: &'a ModelSpec,
    /// The private texts: one, or a batch of several (BERT: one session, one answer each).
    pub texts: &'a [&'a str],
    /// Tokens to generate (GPT-2; 0 for BERT).
    pub generate: usize,
    /// What each generated token reveals.
    pub reveal: Reveal,
    /// The session (fresh from the OS RNG unless a test or replay names one).
    pub session: SessionId,
    /// P0's and P1's client addresses.
    pub parties: [&'a str; 2],
    /// Link security (pins: p0, p1).
    pub security: &'a Security,
    /// Longest single wait.
    pub timeout: Duration,
}

/// What the client learns.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A BERT encoder's sentence embedding (mean pooled, L2-normalised).
    Embedding(Vec<f64>),
    /// A BERT classifier's logits and the winning label's name.
    Label {
        /// The logits.
        logits: Vec<f64>,
        /// The label.
        label: String,
    },
    /// A GPT-2's generated tokens and their text.
    Tokens {
        /// Token ids.
        ids: Vec<u32>,
        /// Their text.
        text: String,
    },
}

/// Checks the input against the model, connects to both parties (so that a party never
/// starts a session its peer will not join), sends the shares and reconstructs the answers (one
/// per text). `rng` draws the input shares.
pub async fn run(r: &ClientRequest<'_>, rng: &mut Prg) -> Result<Vec<Outcome>, NodeError> {
    let cfg = r.model.config()?;
    let tok = r.model.tokens()?;
    let (vocab, positions) = (cfg.vocab(), cfg.positions());
    let gpt2 = matches!(cfg, ModelConfig::Gpt2(_));
    if !gpt2 && (r.generate > 0 || r.reveal.is_token()) {
        return Err(NodeError::Config("a BERT model does not generate (no --gen, no --reveal token)".into()));
    }
    if gpt2 && r.generate == 0 {
        return Err(NodeError::Config("a GPT-2 request generates at least one token (--gen N)".into()));
    }
    let max_batch = if gpt2 { 1 } else { ditto_net::client::MAX_BATCH as usize };
    if r.texts.is_empty() || r.texts.len() > max_batch {
        return Err(NodeError::Config(format!(
            "{} inputs: a request carries 1{} (batches are for BERT)",
            r.texts.len(),
            if gpt2 { String::new() } else { format!(" to {max_batch}") }
        )));
    }
    let mut ids = Vec::with_capacity(r.texts.len());
    for (i, t) in r.texts.iter().enumerate() {
        let v = tok.encode(t, positions).map_err(|e| batch_err(r.texts.len(), i, e.into()))?;
        ditto_models::spec::check_input(v.len(), r.generate, positions)
            .map_err(|e| batch_err(r.texts.len(), i, e.into()))?;
        ids.push(v);
    }
    let ns: Vec<usize> = ids.iter().map(Vec::len).collect();
    // A BERT input is padded to its length bucket with all-zero one-hot rows, which the
    // parties' secret key mask ignores: they learn the bucket, not the length (a batch: the
    // bucket of its longest input).
    let longest = ns.iter().copied().max().unwrap_or(0);
    let rows = if gpt2 { longest } else { ditto_models::spec::bucket(longest, positions) };
    if (rows * ids.len()) as u64 > ditto_net::client::MAX_ROWS {
        return Err(NodeError::Config(format!(
            "{} inputs of {rows} tokens: at most {} tokens in one request",
            ids.len(),
            ditto_net::client::MAX_ROWS
        )));
    }
    let mut x = Vec::with_capacity(ids.len() * rows * vocab);
    for v in &ids {
        let mut one = one_hot(v, vocab)?;
        one.resize(rows * vocab, 0);
        x.extend_from_slice(&one);
    }
    let shares = share(&x, rng);
    let connect = async |addr: &str, role: &str| -> Result<Box<dyn Stream>, NodeError> {
        let tcp = tokio::time::timeout(r.timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| ditto_net::NetError::Timeout {
                what: "connecting to a party",
                secs: r.timeout.as_secs_f64(),
            })?
            .map_err(io("connecting to a party"))?;
        Ok(r.security.connect(tcp, role, r.timeout).await?)
    };
    let (c0, c1) = tokio::join!(connect(r.parties[0], "p0"), connect(r.parties[1], "p1"));
    let mut cs = [c0?, c1?];
    let mut reqs = [Vec::new(), Vec::new()];
    for (req, s) in reqs.iter_mut().zip(&shares) {
        let head = RequestHead {
            session: r.session,
            seq: u32::try_from(rows).map_err(|_| NodeError::Config("input too long".into()))?,
            generate: u32::try_from(r.generate).map_err(|_| NodeError::Config("--gen too large".into()))?,
            count: s.len(),
            reveal_token: r.reveal.is_token(),
            batch: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        };
        req.reserve_exact(ditto_net::client::HEAD + s.len() * 4);
        req.extend_from_slice(&head.encode());
        s.iter().for_each(|v| req.extend_from_slice(&v.to_le_bytes()));
    }
    // Both at once: a party slow to read (busy, or stalled) delays neither the other's input nor
    // its refusal.
    {
        let [c0, c1] = &mut cs;
        tokio::try_join!(
            write_t(c0, &reqs[0], r.timeout, "the request"),
            write_t(c1, &reqs[1], r.timeout, "the request")
        )?;
    }
    drop(reqs);
    if !gpt2 {
        return bert_answers(&mut cs, &ns, &cfg.labels()).await;
    }
    let mut tokens = Vec::new();
    for _ in 0..r.generate {
        let [s0, s1] = &mut cs;
        let (tag, max) = (output_tag(r.reveal), r.reveal.message_len(vocab));
        // The first error ends the wait (a party that refuses need not wait for the other's
        // time-out).
        let (l0, l1) = tokio::try_join!(
            read_u32_frame(s0, tag, max, CLIENT_TURN, "an output"),
            read_u32_frame(s1, tag, max, CLIENT_TURN, "an output")
        )?;
        if l0.len() != max || l1.len() != max {
            return Err(NodeError::Answer(format!(
                "{} and {} output elements, expected {max}",
                l0.len(),
                l1.len()
            )));
        }
        let opened: Vec<u32> = l0.iter().zip(&l1).map(|(p, q)| p.wrapping_add(*q)).collect();
        let t = match r.reveal {
            Reveal::Logits => argmax_signed(&opened),
            Reveal::Token => opened[0],
        };
        if t as usize >= vocab {
            return Err(NodeError::Answer(format!("token {t}, outside the vocabulary of {vocab}")));
        }
        tokens.push(t);
        let mut one = vec![0u32; vocab];
        one[t as usize] = 1;
        let [o0, o1] = share(&one, rng);
        let (f0, f1) = (u32_frame(&ONE_HOT, &o0), u32_frame(&ONE_HOT, &o1));
        let (w0, w1) =
            tokio::join!(write_t(s0, &f0, r.timeout, "a token"), write_t(s1, &f1, r.timeout, "a token"));
        w0?;
        w1?;
    }

    Ok(vec![Outcome::Tokens { text: tok.decode(&tokens), ids: tokens }])
}

/// Input `i` of a batch of `b` named in an error (a single input's error as it is).
fn batch_err(b: usize, i: usize, e: NodeError) -> NodeError {
    if b == 1 { e } else { NodeError::Config(format!("input {} of {b}: {e}", i + 1)) }
}

/// Reads both parties' answers to a BERT request of inputs of `ns` tokens: each input's
/// embedding, or its logits and label.
async fn bert_answers(
    cs: &mut [Box<dyn Stream>; 2],
    ns: &[usize],
    labels: &[String],
) -> Result<Vec<Outcome>, NodeError> {
    let [c0, c1] = cs;
    let (a0, a1) = tokio::try_join!(read_answer(c0, CLIENT_TURN), read_answer(c1, CLIENT_TURN))?;
    if (a0.ring, a0.frac, a0.data.len()) != (a1.ring, a1.frac, a1.data.len()) {
        return Err(NodeError::Answer("the two answers differ in ring, scale or length".into()));
    }
    fn open<R: ditto_core::Ring>(a: &[u8], b: &[u8], frac: u32) -> Vec<f64> {
        let (a, b): (Vec<R>, Vec<R>) = (
            a.chunks_exact(R::BYTES).map(R::from_le).collect(),
            b.chunks_exact(R::BYTES).map(R::from_le).collect(),
        );
        reveal(&a, &b).iter().map(|x| ditto_core::fixed::decode(*x, frac)).collect()
    }
    let values = if a0.ring == 32 {
        open::<u32>(&a0.data, &a1.data, a0.frac)
    } else {
        open::<u64>(&a0.data, &a1.data, a0.frac)
    };
    let per = values.len() / ns.len();
    if values.is_empty() || per * ns.len() != values.len() || (a0.ring == 32 && per != labels.len()) {
        return Err(NodeError::Answer(format!(
            "{} values for {} inputs{}",
            values.len(),
            ns.len(),
            if a0.ring == 32 { format!(" of {} labels", labels.len()) } else { String::new() }
        )));
    }
    let outcome = |(v, &n): (&[f64], &usize)| {
        if a0.ring == 32 {
            let best = (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
            return Outcome::Label { label: labels[best].clone(), logits: v.to_vec() };
        }
        #[allow(clippy::cast_precision_loss)]
        let v: Vec<f64> = v.iter().map(|x| x / n as f64).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        Outcome::Embedding(v.iter().map(|x| x / norm).collect())
    };
    Ok(values.chunks(per).zip(ns).map(outcome).collect())
}
