//! Bytes and rounds, per plan step and in total.

use std::collections::BTreeMap;

/// What one step (or the total) cost this party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Payload bytes sent to the peer (frame headers excluded).
    pub sent: u64,
    /// Payload bytes received from the peer.
    pub received: u64,
    /// Rounds: exchanges both parties waited on.
    pub rounds: u32,
}

impl Cost {
    fn add(&mut self, o: &Cost) {
        self.sent += o.sent;
        self.received += o.received;
        self.rounds += o.rounds;
    }
}

/// Per-step and total costs of one party.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    steps: BTreeMap<u32, Cost>,
    total: Cost,
    /// Bytes of frame headers sent (protocol overhead, not in `sent`).
    pub header_bytes: u64,
    /// Wall time per step (recorded by the engine: from a step's start to the next one's).
    times: BTreeMap<u32, std::time::Duration>,
}

impl Counters {
    /// Records one exchange of `step`.
    pub fn record(&mut self, step: u32, sent: usize, received: usize) {
        let c = Cost { sent: sent as u64, received: received as u64, rounds: 1 };
        self.steps.entry(step).or_default().add(&c);
        self.total.add(&c);
    }

    /// Records the bytes of `step` sent beside another step's round (no round of its own).
    pub fn record_beside(&mut self, step: u32, sent: usize, received: usize) {
        let c = Cost { sent: sent as u64, received: received as u64, rounds: 0 };
        self.steps.entry(step).or_default().add(&c);
        self.total.add(&c);
    }

    /// Adds wall time to `step`.
    pub fn record_time(&mut self, step: u32, d: std::time::Duration) {
        *self.times.entry(step).or_default() += d;
    }

    /// Wall time spent in `step` (zero if none was recorded).
    pub fn time(&self, step: u32) -> std::time::Duration {
        self.times.get(&step).copied().unwrap_or_default()
    }

    /// Wall time per step, in step order.
    pub fn times(&self) -> impl Iterator<Item = (u32, std::time::Duration)> + '_ {
        self.times.iter().map(|(k, v)| (*k, *v))
    }

    /// The cost of `step` (zero if it exchanged nothing).
    pub fn step(&self, step: u32) -> Cost {
        self.steps.get(&step).copied().unwrap_or_default()
    }

    /// The total.
    pub fn total(&self) -> Cost {
        self.total
    }

    /// Per-step costs in step order.
    pub fn steps(&self) -> impl Iterator<Item = (u32, Cost)> + '_ {
        self.steps.iter().map(|(k, v)| (*k, *v))
    }
}
