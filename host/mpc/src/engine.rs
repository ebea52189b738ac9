//! One party's engine: plan cursor, link, dealer feed, and the planning mode.

use std::time::Duration;

use ditto_core::corr::{Corrections, Streams};
use ditto_core::plan::{Op, Plan, Scale, Step, Tag};
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_core::{Party, Ring};
use ditto_dealer::keys::PartyKey;
use ditto_net::counters::Counters;
use ditto_net::dealer::{DealerFeed, Source};
use ditto_net::link::{Hello, Link};

use crate::range::{Bound, RangeIssue, RangeReport};
use crate::{MpcError, Shared};

/// Step index of the one-time weight setup exchanges (outside the plan).
pub const SETUP_STEP: u32 = u32::MAX;

struct Run {
    link: Link,
    feed: DealerFeed,
    plan: Plan,
    next: u32,
    session: SessionId,
    /// The sharing whose weight masks this session's dealer stream carries.
    share_set: ShareSetId,
    /// The step under way and when it began (the setup before the first step counts under
    /// [`SETUP_STEP`]).
    clock: (u32, std::time::Instant),
}

impl Run {
    /// Charges the time since the last mark to the step under way, then marks `step`.
    fn mark(&mut self, step: u32) {
        let now = std::time::Instant::now();
        self.link.record_time(self.clock.0, now - self.clock.1);
        self.clock = (step, now);
    }
}

enum Mode {
    Plan(Vec<Step>),
    Plain(Vec<Step>),
    Run(Box<Run>),
}

/// How a begun step is to be computed.
pub(crate) enum Started {
    /// Planning: record only, return zeros.
    Planned,
    /// Plaintext reference: compute on the plaintext values.
    Plain,
    /// Secure: run the protocol.
    Run(Begun),
}

/// One party's side of the online phase (or, in planning mode, the recorder of a plan).
pub struct Engine {
    party: Party,
    mode: Mode,
    tag: Tag,
    layer: u16,
    /// The GEMM the matmuls run on.
    pub(crate) gemm: crate::gemm::FastGemm,
    /// The weight setup: where F is kept between sessions, and weights prepared before.
    pub(crate) setup: crate::setup::Setup,
    /// Called with (steps begun, steps in the plan) as a secure run advances.
    progress: Option<Progress>,
    /// Plaintext mode: the operations whose input left its admitted range.
    range: Vec<RangeIssue>,
    /// Steps riding on the following exchanges ([`crate::beside`]).
    pub(crate) riders: Vec<crate::beside::Rider>,
    /// The last truncate-then-downcast, for a matmul of its output right after it.
    pub(crate) down_mark: Option<crate::ops::chain::DownMark>,
    /// This session's products A_i F, computed before the input arrived.
    pub(crate) products: Option<std::sync::Arc<crate::precompute::Products>>,
}

type Progress = Box<dyn FnMut(u32, u32) + Send>;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Mode::Plan(s) => write!(f, "Engine {{ planning, {} steps }}", s.len()),
            Mode::Plain(s) => write!(f, "Engine {{ plaintext reference, {} steps }}", s.len()),
            Mode::Run(r) => {
                write!(f, "Engine {{ {:?}, step {} of {} }}", self.party, r.next, r.plan.steps.len())
            }
        }
    }
}

/// A step the engine has begun: its index and (P1) its corrections.
pub(crate) struct Begun {
    pub index: u32,
    corr: Vec<u8>,
}

impl Engine {
    /// An engine that records the plan of the program run on it (no communication; every
    /// operation returns zeros of the right shape and scale).
    pub fn planner() -> Self {
        Self::with_mode(Party::P0, Mode::Plan(Vec::new()))
    }

    fn with_mode(party: Party, mode: Mode) -> Self {
        Engine {
            party,
            mode,
            tag: Tag::Other,
            layer: 0,
            gemm: crate::gemm::FastGemm::default(),
            setup: crate::setup::Setup::default(),
            progress: None,
            range: Vec::new(),
            riders: Vec::new(),
            down_mark: None,
            products: None,
        }
    }

    /// The plaintext fixed-point reference: tensors hold plaintext values (as P0's share with
    /// P1's share zero), every operation computes its plaintext result with the same integer
    /// arithmetic; truncations round to nearest (the secure ones round stochastically, floor or
    /// one more). Records the plan too.
    pub fn plaintext() -> Self {
        Self::with_mode(Party::P0, Mode::Plain(Vec::new()))
    }

    /// The recorded plan (planning or plaintext mode).
    pub fn into_plan(self, name: &str) -> Result<Plan, MpcError> {
        match self.mode {
            Mode::Plan(steps) | Mode::Plain(steps) => Ok(Plan::new(name, steps)?),
            Mode::Run(_) => {
                Err(MpcError::Mode { what: "into_plan", mode: "a running engine records no plan" })
            }
        }
    }

    /// Starts a party: handshake with the peer (version, roles, plan hash, session, share
    /// set), then opens this party's dealer stream for the same plan, session and sharing, then
    /// checks with the peer that both streams come from one dealer generation. P0's stream ends
    /// after its seeds and is checked to the end here; P1's is checked to the end when its last
    /// step begins, so either party has verified its whole stream before anything of the run
    /// can reach a client. `share_set` is the id of the model share the program will set up
    /// (any value for a program without model weights).
    pub async fn start(
        party: Party,
        mut link: Link,
        dealer: Source,
        key: PartyKey,
        plan: Plan,
        (session, share_set): (SessionId, ShareSetId),
        timeout: Duration,
    ) -> Result<Self, MpcError> {
        let hash = plan.hash()?;
        link.handshake(&Hello::new(party, hash, session, share_set)).await?;
        let mut feed = DealerFeed::open(dealer, key, party, (session, share_set), &plan, timeout).await?;
        link.agree_generation(feed.generation()).await?;
        if party == Party::P0 || plan.steps.is_empty() {
            feed.finish().await?;
        }
        let clock = (SETUP_STEP, std::time::Instant::now());
        let run = Run { link, feed, plan, next: 0, session, share_set, clock };
        Ok(Self::with_mode(party, Mode::Run(Box::new(run))))
    }

    /// Copies every step payload this party receives into `tap` (its view of the run; used by
    /// the statistical test that the views do not depend on the inputs). Secure runs only.
    pub fn tap_received(&mut self, tap: ditto_net::link::Tap) {
        if let Mode::Run(r) = &mut self.mode {
            r.link.set_tap(tap);
        }
    }

    /// Reports progress: `f(steps begun, steps in the plan)` after each step of a secure run
    /// (for progress bars; never called in planning or plaintext mode).
    pub fn set_progress(&mut self, f: impl FnMut(u32, u32) + Send + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// Threads for the linear layers' GEMM (default 1).
    pub fn set_threads(&mut self, threads: usize) {
        self.gemm = crate::gemm::FastGemm::new(threads);
    }

    /// This party.
    pub fn party(&self) -> Party {
        self.party
    }

    /// True in planning mode.
    pub fn is_planning(&self) -> bool {
        matches!(self.mode, Mode::Plan(_))
    }

    /// True in plaintext-reference mode.
    pub fn is_plaintext(&self) -> bool {
        matches!(self.mode, Mode::Plain(_))
    }

    /// Sets the tag recorded with the following steps (the layer stays).
    pub fn set_tag(&mut self, tag: Tag) {
        self.tag = tag;
    }

    /// Sets the layer recorded with the following steps (the tag stays).
    pub fn set_layer(&mut self, layer: u16) {
        self.layer = layer;
    }

    /// Sets the tag and layer recorded with the following steps.
    pub fn context(&mut self, tag: Tag, layer: u16) {
        self.tag = tag;
        self.layer = layer;
    }

    /// Plaintext mode: every operation so far whose input left its admitted range (empty in
    /// the other modes; see [`crate::range`]).
    pub fn range_report(&self) -> RangeReport {
        RangeReport { issues: self.range.clone() }
    }

    /// Plaintext mode: records the last begun step's input `x` if it leaves `bound`.
    pub(crate) fn check_range<R: Ring>(&mut self, op: &'static str, x: &Shared<R>, bound: Bound) {
        if let Mode::Plain(steps) = &self.mode
            && let Some(issue) = crate::range::issue(op, x, bound, steps)
        {
            self.range.push(issue);
        }
    }

    /// Bytes and rounds so far (none while planning).
    pub fn counters(&self) -> Option<&Counters> {
        match &self.mode {
            Mode::Run(r) => Some(r.link.counters()),
            Mode::Plan(_) | Mode::Plain(_) => None,
        }
    }

    /// Ends the run: every plan step must have been run and the dealer stream must end cleanly.
    pub async fn finish(self) -> Result<Counters, MpcError> {
        match self.mode {
            Mode::Plan(_) | Mode::Plain(_) => Ok(Counters::default()),
            Mode::Run(mut r) => {
                if (r.next as usize) != r.plan.steps.len() {
                    return Err(MpcError::PlanIncomplete { done: r.next, steps: r.plan.steps.len() });
                }
                if !self.riders.is_empty() {
                    return Err(MpcError::Mode {
                        what: "finishing a run",
                        mode: "a step beside others was never landed",
                    });
                }
                r.mark(SETUP_STEP);
                if !r.feed.is_finished() {
                    r.feed.finish().await?;
                }
                Ok(r.link.counters().clone())
            }
        }
    }

    /// Tells the peer this party stops.
    pub async fn abort(&mut self, reason: &str) {
        if let Mode::Run(r) = &mut self.mode {
            r.link.abort(reason).await;
        }
    }

    /// Consumes the next plan step, which must be `op` (with this scale and the current
    /// context). Planning and plaintext modes record it.
    pub(crate) async fn begin(&mut self, op: Op, scale: Scale) -> Result<Started, MpcError> {
        let step = Step { op, scale, tag: self.tag, layer: self.layer };
        match &mut self.mode {
            Mode::Plan(steps) | Mode::Plain(steps) => {
                step.validate(u32::try_from(steps.len()).unwrap_or(u32::MAX))?;
                steps.push(step);
                Ok(if matches!(self.mode, Mode::Plan(_)) { Started::Planned } else { Started::Plain })
            }
            Mode::Run(r) => {
                let index = r.next;
                let Some(planned) = r.plan.steps.get(index as usize) else {
                    return Err(MpcError::PlanExhausted {
                        steps: r.plan.steps.len(),
                        called: format!("{step:?}"),
                    });
                };
                if *planned != step {
                    return Err(MpcError::PlanMismatch {
                        step: index,
                        planned: format!("{planned:?}"),
                        called: format!("{step:?}"),
                    });
                }
                r.mark(index);
                let corr = if self.party == Party::P1 { r.feed.step(index).await? } else { Vec::new() };
                r.next += 1;
                // The whole stream is checked (end frame: counts, the plan as dealt) before the
                // last step computes anything.
                if r.next as usize == r.plan.steps.len() && !r.feed.is_finished() {
                    r.feed.finish().await?;
                }
                if let Some(f) = self.progress.as_mut() {
                    f(r.next, u32::try_from(r.plan.steps.len()).unwrap_or(u32::MAX));
                }
                Ok(Started::Run(Begun { index, corr }))
            }
        }
    }

    /// Steps begun so far (in every mode).
    pub(crate) fn steps_begun(&self) -> usize {
        match &self.mode {
            Mode::Plan(steps) | Mode::Plain(steps) => steps.len(),
            Mode::Run(r) => r.next as usize,
        }
    }

    /// The session and its plan (secure runs only).
    pub(crate) fn session_plan(&self) -> Option<(SessionId, &Plan)> {
        match &self.mode {
            Mode::Run(r) => Some((r.session, &r.plan)),
            Mode::Plan(_) | Mode::Plain(_) => None,
        }
    }

    /// The session's sharing and this party's model-mask seed (secure runs only).
    pub(crate) fn sharing(&self) -> Option<(ShareSetId, &ditto_core::prg::Seed)> {
        match &self.mode {
            Mode::Run(r) => Some((r.share_set, &r.feed.seeds().model)),
            Mode::Plan(_) | Mode::Plain(_) => None,
        }
    }

    /// This party's correlation streams (secure runs only).
    pub(crate) fn streams(&self) -> Result<Streams<'_>, MpcError> {
        match &self.mode {
            Mode::Run(r) => {
                let s = r.feed.seeds();
                Ok(Streams::new(self.party, &s.session, &s.model, r.session))
            }
            Mode::Plan(_) | Mode::Plain(_) => Err(MpcError::Mode {
                what: "correlations",
                mode: "a planner or the plaintext reference has none",
            }),
        }
    }

    /// Runs `f` with this party's streams and the step's corrections, then checks that P1
    /// consumed its corrections exactly.
    pub(crate) fn expand<T>(
        &self,
        b: &Begun,
        f: impl FnOnce(&Streams<'_>, &mut Corrections<'_>) -> Result<T, ditto_core::Error>,
    ) -> Result<T, MpcError> {
        let s = self.streams()?;
        let mut c = if self.party.is_p0() { Corrections::none() } else { Corrections::new(&b.corr) };
        let t = f(&s, &mut c)?;
        c.finish()?;
        Ok(t)
    }

    /// One symmetric exchange of ring elements for step `index`; returns the opened values
    /// (this party's message plus the peer's).
    pub(crate) async fn open<R: Ring>(&mut self, index: u32, mine: &[R]) -> Result<Vec<R>, MpcError> {
        let peer = self.exchange_ring(index, mine).await?;
        Ok(mine.iter().zip(&peer).map(|(a, b)| a.add(*b)).collect())
    }

    /// One symmetric exchange of ring elements; returns the peer's message.
    pub(crate) async fn exchange_ring<R: Ring>(
        &mut self,
        index: u32,
        mine: &[R],
    ) -> Result<Vec<R>, MpcError> {
        match &mut self.mode {
            Mode::Run(r) if self.riders.is_empty() => Ok(r.link.exchange_ring(index, mine).await?),
            Mode::Run(_) => {
                let mut bytes = vec![0u8; mine.len() * R::BYTES];
                ditto_core::ring::encode_slice(mine, &mut bytes)?;
                let peer = self.exchange_bytes(index, &bytes).await?;
                let mut out = vec![R::ZERO; mine.len()];
                ditto_core::ring::decode_slice(&peer, &mut out)?;
                Ok(out)
            }
            Mode::Plan(_) | Mode::Plain(_) => Ok(vec![R::ZERO; mine.len()]),
        }
    }

    /// One symmetric exchange of raw bytes; returns the peer's message. Steps riding on the
    /// following exchanges send their next round in the same flight.
    pub(crate) async fn exchange_bytes(&mut self, index: u32, mine: &[u8]) -> Result<Vec<u8>, MpcError> {
        if !matches!(self.mode, Mode::Run(_)) {
            return Ok(vec![0; mine.len()]);
        }
        let riding = self.rider_messages()?;
        let Mode::Run(r) = &mut self.mode else { return Ok(vec![0; mine.len()]) };
        if riding.is_empty() {
            return Ok(r.link.exchange(index, mine).await?);
        }
        let mut who = Vec::with_capacity(riding.len());
        let mut frames = vec![(index, mine.to_vec())];
        for (k, i, m) in riding {
            who.push(k);
            frames.push((i, m));
        }
        let mut replies = r.link.exchange_flight(&mut frames).await?;
        self.rider_replies(&who, &replies[1..])?;
        Ok(replies.swap_remove(0))
    }
}
