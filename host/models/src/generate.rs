//! Greedy generation with a client in the loop. With [`Reveal::Logits`] each party sends its
//! share of the last position's logits to the client, which reconstructs them, picks the most
//! likely token and sends back fresh shares of its one-hot encoding. With [`Reveal::Token`] the
//! parties pick the token inside MPC (a secure argmax over the vocabulary,
//! [`Engine::argmax_rows`]) and send only their shares of its id: the client learns the tokens
//! and nothing else of the model's output. Either way the parties never see a token.

use ditto_core::rand_core::Rng;
use ditto_mpc::tensor::share;
use ditto_mpc::{Engine, MpcError, Shared};
use tokio::sync::mpsc;

use crate::gpt2::secure::{SecCache, SecureGpt2};

/// A party's connection to the client (in-process channels for local runs).
#[derive(Debug)]
pub struct ClientEnd {
    /// Logit shares to the client.
    pub tx: mpsc::Sender<Vec<u32>>,
    /// One-hot shares from the client.
    pub rx: mpsc::Receiver<Vec<u32>>,
}

/// The client's end of both parties' connections.
#[derive(Debug)]
pub struct ClientHub {
    rx: [mpsc::Receiver<Vec<u32>>; 2],
    tx: [mpsc::Sender<Vec<u32>>; 2],
}

/// Channels between a client and the two parties.
pub fn client_channels() -> (ClientHub, [ClientEnd; 2]) {
    let (l0, r0) = mpsc::channel(2);
    let (l1, r1) = mpsc::channel(2);
    let (o0, i0) = mpsc::channel(2);
    let (o1, i1) = mpsc::channel(2);
    (ClientHub { rx: [r0, r1], tx: [o0, o1] }, [ClientEnd { tx: l0, rx: i0 }, ClientEnd { tx: l1, rx: i1 }])
}

/// What the client learns at each generation step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reveal {
    /// The last position's full logit vector (the client picks; needed for scoring).
    #[default]
    Logits,
    /// Only the greedy token's id (picked by the parties: the model owner's choice).
    Token,
}

impl Reveal {
    /// The mode a wire flag names (client and dealer requests carry `reveal_token`).
    pub fn of_flag(token: bool) -> Self {
        if token { Reveal::Token } else { Reveal::Logits }
    }

    /// The wire flag of this mode.
    pub fn is_token(self) -> bool {
        self == Reveal::Token
    }

    /// Elements each party sends the client per step.
    pub fn message_len(self, vocab: usize) -> usize {
        match self {
            Reveal::Logits => vocab,
            Reveal::Token => 1,
        }
    }
}

/// Who picks the next token.
#[derive(Debug)]
pub enum Client<'a> {
    /// Planning: no client, zero inputs.
    Planning,
    /// Plaintext reference: the engine's values are plaintext; pick locally.
    Plaintext,
    /// A real client over channels.
    Remote(&'a mut ClientEnd),
}

/// Index of the largest signed logit (ties: lowest index).
pub fn argmax_signed(logits: &[u32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if v.cast_signed() > logits[best].cast_signed() {
            best = i;
        }
    }
    u32::try_from(best).unwrap_or(u32::MAX)
}

fn closed() -> MpcError {
    MpcError::ClientGone
}

/// Feeds the prompt, then generates `steps` tokens (prompt pass + steps - 1 single-token
/// passes), revealing to the client what `reveal` says. Returns the tokens when the engine is
/// the plaintext reference (else empty: only the client learns them).
pub async fn generate(
    e: &mut Engine,
    model: &SecureGpt2,
    prompt: &Shared<u32>,
    (steps, vocab): (usize, usize),
    reveal: Reveal,
    mut client: Client<'_>,
) -> Result<Vec<u32>, MpcError> {
    let mut cache = SecCache::default();
    let mut logits = model.forward(e, prompt, &mut cache).await?;
    let mut tokens = Vec::new();
    for s in 0..steps {
        // What goes to the client: the logits, or the shared id of their first maximum.
        let out = match reveal {
            Reveal::Logits => logits.clone(),
            Reveal::Token => e.argmax_rows(&logits).await?.1,
        };
        let next = match &mut client {
            Client::Planning => Shared::zeros(&[1, vocab], 0),
            Client::Plaintext => {
                let t = match reveal {
                    Reveal::Logits => argmax_signed(&logits.data),
                    Reveal::Token => out.data[0],
                };
                tokens.push(t);
                let mut x = vec![0u32; vocab];
                x[t as usize] = 1;
                Shared::new(x, &[1, vocab], 0)?
            }
            Client::Remote(c) => {
                c.tx.send(out.data).await.map_err(|_| closed())?;
                Shared::new(c.rx.recv().await.ok_or_else(closed)?, &[1, vocab], 0)?
            }
        };
        if s + 1 < steps {
            logits = model.forward(e, &next, &mut cache).await?;
        }
    }
    Ok(tokens)
}

/// The client side of [`generate`]: reconstructs logits, picks greedily, reshares.
pub async fn greedy_client(
    hub: ClientHub,
    steps: usize,
    vocab: usize,
    rng: &mut impl Rng,
) -> Result<Vec<u32>, MpcError> {
    Ok(client_loop(hub, (steps, vocab), rng, None, Reveal::Logits).await?.0)
}

/// The client side of [`generate`]: reconstructs each step's logits (or, [`Reveal::Token`],
/// the token id) and feeds back fresh shares of the next token's one-hot encoding: the greedy
/// pick, or `forced[i]` at step i (scoring known text, e.g. for perplexity; logits only).
/// Returns the tokens fed and the logits seen.
pub async fn client_loop(
    mut hub: ClientHub,
    (steps, vocab): (usize, usize),
    rng: &mut impl Rng,
    forced: Option<&[u32]>,
    reveal: Reveal,
) -> Result<(Vec<u32>, Vec<Vec<u32>>), MpcError> {
    let (mut tokens, mut seen) = (Vec::new(), Vec::new());
    for s in 0..steps {
        let a = hub.rx[0].recv().await.ok_or_else(closed)?;
        let b = hub.rx[1].recv().await.ok_or_else(closed)?;
        let want = reveal.message_len(vocab);
        if a.len() != want || b.len() != want {
            return Err(MpcError::Client(format!(
                "{} and {} output elements, expected {want}",
                a.len(),
                b.len()
            )));
        }
        let opened: Vec<u32> = a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect();
        let t = match (forced, reveal) {
            (Some(f), Reveal::Logits) => *f
                .get(s)
                .ok_or_else(|| MpcError::Client(format!("{} forced tokens for {steps} steps", f.len())))?,
            (Some(_), Reveal::Token) => {
                return Err(MpcError::Client("scoring needs the logits".into()));
            }
            (None, Reveal::Logits) => argmax_signed(&opened),
            (None, Reveal::Token) => opened[0],
        };
        if t as usize >= vocab {
            return Err(MpcError::Client(format!("token {t} outside the vocabulary of {vocab}")));
        }
        tokens.push(t);
        if reveal == Reveal::Logits {
            seen.push(opened);
        }
        let mut x = vec![0u32; vocab];
        x[t as usize] = 1;
        let [s0, s1] = share(&x, rng);
        hub.tx[0].send(s0).await.map_err(|_| closed())?;
        hub.tx[1].send(s1).await.map_err(|_| closed())?;
    }
    Ok((tokens, seen))
}

/// What [`generate_local`] produced.
#[derive(Debug)]
pub struct LocalGeneration {
    /// The plan the parties ran.
    pub plan: ditto_core::plan::Plan,
    /// Counters, dealer figures and times of the run.
    pub outcome: ditto_mpc::local::Outcome<()>,
    /// The tokens the client picked.
    pub tokens: Vec<u32>,
    /// The logits the client reconstructed at each step (Z_2^32 at `act_frac + weight_frac`).
    pub logits: Vec<Vec<u32>>,
}

/// Secure greedy generation of `steps` tokens after `prompt` with the dealer, P0, P1 and the
/// client in one process (demo, bench and tests): the model owner's shares and the client's
/// one-hot shares from `rng`; `watch` is called on each party's engine before it starts.
pub async fn generate_local(
    m: &crate::gpt2::Gpt2,
    q: &crate::quant::QuantConfig,
    prompt: &[u32],
    (steps, reveal): (usize, Reveal),
    local: &ditto_mpc::local::Local,
    rng: &mut ditto_core::prg::Prg,
    watch: impl Fn(&mut Engine, ditto_core::Party) + Sync,
) -> Result<LocalGeneration, crate::ModelError> {
    run_local(m, q, prompt, (steps, reveal), local, rng, watch, None).await
}

/// Secure scoring of known text: the parties run the model over `tokens` one position at a
/// time (the first as the prompt, each next one fed by the client as in generation), and the
/// client reconstructs the logits of every position but the last (`logits`: `tokens.len() - 1`
/// vectors at `act_frac + weight_frac` fractional bits), e.g. for perplexity.
pub async fn score_local(
    m: &crate::gpt2::Gpt2,
    q: &crate::quant::QuantConfig,
    tokens: &[u32],
    local: &ditto_mpc::local::Local,
    rng: &mut ditto_core::prg::Prg,
) -> Result<LocalGeneration, crate::ModelError> {
    if tokens.len() < 2 {
        return Err(crate::ModelError::TooLong { max: 2, got: tokens.len() });
    }
    let steps = (tokens.len() - 1, Reveal::Logits);
    run_local(m, q, &tokens[..1], steps, local, rng, |_, _| {}, Some(&tokens[1..])).await
}

#[allow(clippy::too_many_arguments)]
async fn run_local(
    m: &crate::gpt2::Gpt2,
    q: &crate::quant::QuantConfig,
    prompt: &[u32],
    (steps, reveal): (usize, Reveal),
    local: &ditto_mpc::local::Local,
    rng: &mut ditto_core::prg::Prg,
    watch: impl Fn(&mut Engine, ditto_core::Party) + Sync,
    forced: Option<&[u32]>,
) -> Result<LocalGeneration, crate::ModelError> {
    let (n, v) = (prompt.len(), m.cfg.vocab_size);
    let shares = crate::gpt2::secure::share_gpt2(m, q, rng)?;
    let local = &ditto_mpc::local::Local { share_set: shares[0].share_set(), ..local.clone() };
    let xs = share(&crate::blocks::one_hot(prompt, v)?, rng);
    let (hub, ends) = client_channels();
    // The program owns the parties' client ends, so they close when the run returns (even on
    // an error) and the client loop stops instead of waiting for steps that never come.
    let program = {
        let (ends, shares, xs, watch) = (ends.map(tokio::sync::Mutex::new), &shares, &xs, &watch);
        async move |e: &mut Engine, p: ditto_core::Party| {
            watch(e, p);
            let model = SecureGpt2::setup(e, shares[p.index()].clone()).await?;
            let input = Shared::new(xs[p.index()].clone(), &[n, v], 0)?;
            if e.is_planning() {
                return generate(e, &model, &input, (steps, v), reveal, Client::Planning).await.map(|_| ());
            }
            let mut end = ends[p.index()].lock().await;
            generate(e, &model, &input, (steps, v), reveal, Client::Remote(&mut end)).await.map(|_| ())
        }
    };
    let plan = ditto_mpc::local::plan_of("generation", &program).await?;
    let mut crng = ditto_core::prg::Prg::with_counter(
        &{
            let mut s = [0u8; 16];
            rng.fill_bytes(&mut s);
            s
        },
        0,
    );
    // The parties run on threads of their own (`local::run` blocks), the client on a third.
    let (res, client) = std::thread::scope(|sc| {
        let client = sc.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| MpcError::Client(format!("could not start the client's runtime: {e}")))?
                .block_on(client_loop(hub, (steps, v), &mut crng, forced, reveal))
        });
        let res = ditto_mpc::local::run(&plan, local, program);
        let client =
            client.join().unwrap_or_else(|_| Err(MpcError::Client("the client's thread panicked".into())));
        (res, client)
    });
    // A party's error first: the client's "went away" is only its consequence.
    let outcome = res?;
    let (tokens, logits) = client?;
    Ok(LocalGeneration { plan, outcome, tokens, logits })
}

/// The plaintext fixed-point reference of [`generate_local`]: the tokens, the time taken
/// (weight setup excluded) and the operations whose input left its admitted range.
pub async fn generate_reference(
    m: &crate::gpt2::Gpt2,
    q: &crate::quant::QuantConfig,
    prompt: &[u32],
    steps: usize,
    reveal: Reveal,
) -> Result<(Vec<u32>, std::time::Duration, ditto_mpc::range::RangeReport), crate::ModelError> {
    let v = m.cfg.vocab_size;
    let mut pe = Engine::plaintext();
    let pm = SecureGpt2::setup(&mut pe, crate::gpt2::secure::Gpt2Share::plaintext(m, q)?).await?;
    let x = Shared::new(crate::blocks::one_hot(prompt, v)?, &[prompt.len(), v], 0)?;
    let t = std::time::Instant::now();
    let tokens = generate(&mut pe, &pm, &x, (steps, v), reveal, Client::Plaintext).await?;
    Ok((tokens, t.elapsed(), pe.range_report()))
}

/// The plaintext fixed-point reference's logits (decoded) along a given continuation: step 0
/// after `prompt`, step i after `prompt` and `tokens[..i]` (teacher forcing). A secure run
/// differs from the reference by up to one ulp per truncation, so where two logits nearly tie
/// the secure greedy pick may differ; this shows by how much.
pub async fn reference_logits_along(
    m: &crate::gpt2::Gpt2,
    q: &crate::quant::QuantConfig,
    prompt: &[u32],
    tokens: &[u32],
) -> Result<Vec<Vec<f64>>, crate::ModelError> {
    let v = m.cfg.vocab_size;
    let mut pe = Engine::plaintext();
    let pm = SecureGpt2::setup(&mut pe, crate::gpt2::secure::Gpt2Share::plaintext(m, q)?).await?;
    let mut cache = SecCache::default();
    let mut x = Shared::new(crate::blocks::one_hot(prompt, v)?, &[prompt.len(), v], 0)?;
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        let y = pm.forward(&mut pe, &x, &mut cache).await?;
        out.push(y.data.iter().map(|r| ditto_core::fixed::decode(*r, y.frac)).collect());
        x = Shared::new(crate::blocks::one_hot(&[*t], v)?, &[1, v], 0)?;
    }
    Ok(out)
}
