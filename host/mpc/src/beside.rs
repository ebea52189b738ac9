//! Steps that run beside others: a protocol written as a round-by-round [`Machine`] can be
//! started and left to ride on the exchanges of the steps that follow it, each of its rounds
//! travelling in the same flight as a round of the step under way (`Link::exchange_flight`).
//! Its bytes are its own; its rounds cost no latency, so a plan op that always rides counts
//! no rounds of its own (e.g. `Op::SignRadixBesideA`, the exp's clamp beside the exp chain).
//!
//! A rider is landed ([`Engine::land`]) where its result is needed; if the following steps
//! have not carried all its rounds by then, the engine finishes it with exchanges of its own,
//! which its step's counters then show as rounds the plan did not state (the tests that
//! compare measured costs with the plan's catch such a program).

use std::any::Any;

use crate::MpcError;
use crate::engine::Engine;

/// A protocol run round by round: `message` gives this party's message of the next round
/// (`None` once finished), `receive` takes the peer's message of that round.
pub(crate) trait Machine: Send {
    /// This party's message of the next round, or `None` when the protocol is done.
    fn message(&mut self) -> Result<Option<Vec<u8>>, MpcError>;
    /// The peer's message of the round whose message was last taken.
    fn receive(&mut self, peer: &[u8]) -> Result<(), MpcError>;
    /// The result (after the last round).
    fn result(self: Box<Self>) -> Result<Box<dyn Any + Send>, MpcError>;
    /// An input that arrives after the machine started (a comparison's late multiplicand).
    fn supply(&mut self, _input: Box<dyn Any + Send>) -> Result<(), MpcError> {
        Err(MpcError::Mode { what: "supplying an input", mode: "this protocol takes none late" })
    }
}

/// A protocol riding on the following steps' exchanges.
pub(crate) struct Rider {
    /// Its plan step.
    pub index: u32,
    pub machine: Box<dyn Machine>,
}

/// The result of a step started beside the following ones: ready (planning, plaintext) or
/// riding until landed.
#[must_use = "a step started beside others must be landed"]
pub(crate) enum Pending<T> {
    /// Computed at once.
    Ready(T),
    /// Riding; the step index.
    Riding(u32),
}

impl Engine {
    /// Runs `m` to its end with exchanges of step `index` (other riders ride on them).
    pub(crate) async fn drive(&mut self, index: u32, m: &mut dyn Machine) -> Result<(), MpcError> {
        while let Some(msg) = m.message()? {
            let peer = self.exchange_bytes(index, &msg).await?;
            m.receive(&peer)?;
        }
        Ok(())
    }

    /// Leaves `machine` (step `index`) to ride on the following exchanges.
    pub(crate) fn ride(&mut self, index: u32, machine: Box<dyn Machine>) {
        self.riders.push(Rider { index, machine });
    }

    /// The result of a pending step: finishes its rounds if the exchanges since it started
    /// did not carry them all (see the module docs).
    pub(crate) async fn land<T: 'static>(&mut self, p: Pending<T>) -> Result<T, MpcError> {
        let index = match p {
            Pending::Ready(t) => return Ok(t),
            Pending::Riding(i) => i,
        };
        let Some(pos) = self.riders.iter().position(|r| r.index == index) else {
            return Err(MpcError::Mode { what: "landing a step", mode: "it is not riding" });
        };
        let mut rider = self.riders.remove(pos);
        self.drive(index, rider.machine.as_mut()).await?;
        rider
            .machine
            .result()?
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| MpcError::Mode { what: "landing a step", mode: "its result has another type" })
    }

    /// Gives riding step `index` an input it takes late ([`Machine::supply`]).
    pub(crate) fn supply(&mut self, index: u32, input: Box<dyn Any + Send>) -> Result<(), MpcError> {
        let Some(r) = self.riders.iter_mut().find(|r| r.index == index) else {
            return Err(MpcError::Mode { what: "supplying an input", mode: "its step is not riding" });
        };
        r.machine.supply(input)
    }

    /// The messages of the riders that have a round to send, with their positions.
    pub(crate) fn rider_messages(&mut self) -> Result<Vec<(usize, u32, Vec<u8>)>, MpcError> {
        let mut out = Vec::new();
        for (k, r) in self.riders.iter_mut().enumerate() {
            if let Some(m) = r.machine.message()? {
                out.push((k, r.index, m));
            }
        }
        Ok(out)
    }

    /// Gives the riders at `who` their peer messages.
    pub(crate) fn rider_replies(&mut self, who: &[usize], replies: &[Vec<u8>]) -> Result<(), MpcError> {
        for (&k, reply) in who.iter().zip(replies) {
            self.riders[k].machine.receive(reply)?;
        }
        Ok(())
    }
}
