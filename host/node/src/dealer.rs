//! The host dealer of one session: its two sealed streams for one plan, written to any sink
//! (files for offline pre-generation) or served to P0 and P1 over TCP, each party once and only
//! its own stream. The model-serving dealer (the `model_dealer` module) shares the party
//! link checks here.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ditto_core::Party;
use ditto_core::plan::{PLAN_VERSION, Plan};
use ditto_dealer::HashHex;
use ditto_dealer::host::{
    Deal, Io, Request, Response, read_request, reason, write_party_stream, write_response,
};
use ditto_dealer::keys::PartyKey;
use ditto_dealer::stream::{SessionSpec, Summary};
use ditto_net::tls::{BlockingStream, Security};

use crate::NodeError;

/// One session of one plan, ready to deal.
pub struct SessionDealer {
    /// The plan.
    pub plan: Plan,
    /// Its hash (checked against each request).
    pub hash: [u8; 32],
    /// P0's and P1's keys.
    pub keys: [PartyKey; 2],
    /// The session's generation, seeds and stream layout.
    pub spec: SessionSpec,
    /// Generation threads for P1's stream.
    pub threads: usize,
}

impl SessionDealer {
    /// A dealer for `plan` (hashed here).
    pub fn new(
        plan: Plan,
        keys: [PartyKey; 2],
        spec: SessionSpec,
        threads: usize,
    ) -> Result<Self, NodeError> {
        let hash = plan.hash()?;
        Ok(SessionDealer { plan, hash, keys, spec, threads: threads.max(1) })
    }

    /// Bytes of P1's stream on the wire, near enough for progress (corrections plus a header
    /// and a tag per frame; the hello, seed and end frames are a few hundred bytes more).
    pub fn p1_wire_bytes(&self) -> u64 {
        p1_wire_bytes(&self.plan, self.spec.chunk)
    }

    /// Writes `party`'s stream to `w`; P1's corrections come from the worker threads.
    pub fn generate<W: Write>(&self, party: Party, mut w: W) -> Result<Summary, NodeError> {
        let key = &self.keys[party.index()];
        Ok(write_party_stream(party, &self.plan, &self.spec, key, &mut w, self.threads)?)
    }

    /// Reads and checks a request; on acceptance marks the party served and answers `Accepted`.
    fn accept(&self, served: &Mutex<[bool; 2]>, link: &mut PartyLink) -> Result<Party, NodeError> {
        let (role, sock) = (link.0.as_deref(), &mut link.1);
        let session = self.spec.generation.session;
        let req: Request = read_request(Io(&mut *sock), session)?;
        let mut refuse = |why: String| -> Result<Party, NodeError> {
            write_response(Io(&mut *sock), session, &Response::Refused(reason(&why)))?;
            Err(NodeError::Request(format!("refused {:?}: {why}", req.party)))
        };
        if req.deal != Deal::Stream {
            return refuse(
                "this dealer deals one fixed session; serving parties need `ditto dealer --model`".into(),
            );
        }
        if let Err(why) = check_role(role, req.party) {
            return refuse(why);
        }
        if req.version != PLAN_VERSION {
            return refuse(format!("plan format version {} (dealer speaks {PLAN_VERSION})", req.version));
        }
        if req.plan_hash != self.hash {
            return refuse(format!(
                "plan hash mismatch: dealer has {}, request has {}",
                HashHex::of(&self.hash),
                HashHex::of(&req.plan_hash)
            ));
        }
        if req.share_set != self.spec.generation.share_set {
            return refuse(format!(
                "share set mismatch: dealer serves {} (--share-set), request asks {}",
                HashHex::of_id(&self.spec.generation.share_set.0),
                HashHex::of_id(&req.share_set.0)
            ));
        }
        {
            let mut g = served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if g[req.party.index()] {
                drop(g);
                return refuse(format!("{:?}'s stream of this session was already served", req.party));
            }
            g[req.party.index()] = true;
        }
        write_response(Io(&mut *sock), session, &Response::Accepted)?;
        Ok(req.party)
    }

    /// Serves one party's request on `sock` (blocking; every read and write has a time-out).
    fn serve_one(&self, served: &Mutex<[bool; 2]>, sock: TcpStream, sec: &Security) -> Outcome {
        let mut link = match open_party_link(sock, sec) {
            Ok(l) => l,
            Err(e) => return Outcome::Refused(e),
        };
        match self.accept(served, &mut link) {
            Err(e) => Outcome::Refused(e),
            Ok(party) => {
                match self.generate(party, std::io::BufWriter::with_capacity(1 << 16, &mut link.1)) {
                    Ok(sum) => Outcome::Served(party, sum.correction_bytes),
                    Err(e) => Outcome::Failed(party, e),
                }
            }
        }
    }

    /// Serves both parties on `listener` until each has its stream, or `wait` passes. A refused
    /// request (wrong plan, wrong sharing, a party's second request, a stranger) is reported to
    /// `log` and the dealer keeps serving; a failure while sending an accepted stream ends the
    /// session (it cannot be dealt again).
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        wait: Duration,
        sec: Security,
        mut log: impl FnMut(&Event),
    ) -> Result<(), NodeError> {
        let served = Arc::new(Mutex::new([false; 2]));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let deadline = tokio::time::Instant::now() + wait;
        let mut done = [false; 2];
        let mut failures = Vec::new();
        while !(done[0] && done[1]) {
            tokio::select! {
                acc = listener.accept() => {
                    let (sock, peer) = acc.map_err(crate::io("accepting a party"))?;
                    let std_sock = sock.into_std().map_err(crate::io("accepting a party"))?;
                    let (s, served, tx, sec) = (Arc::clone(&self), Arc::clone(&served), tx.clone(), sec.clone());
                    tokio::task::spawn_blocking(move || {
                        let t = Instant::now();
                        let r = s.serve_one(&served, std_sock, &sec);
                        let _ = tx.send((peer, r, t.elapsed()));
                    });
                }
                Some((peer, r, took)) = rx.recv() => match r {
                    Outcome::Served(party, bytes) => {
                        log(&Event::Served { peer, party, bytes, took });
                        done[party.index()] = true;
                    }
                    Outcome::Refused(e) => {
                        log(&Event::Refused { peer, why: e.to_string() });
                        failures.push(e.to_string());
                    }
                    Outcome::Failed(p, e) => {
                        return Err(NodeError::Request(format!("sending {p:?}'s stream to {peer} failed: {e}")));
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(NodeError::Request(format!(
                        "timed out after {} s waiting for the parties (P0 served: {}, P1 served: {}){}",
                        wait.as_secs(), done[0], done[1],
                        if failures.is_empty() { String::new() } else { format!("; errors: {}", failures.join("; ")) }
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Bytes of P1's stream of `plan` in frames of `chunk` correction bytes, near enough for
/// progress and sizing (corrections plus a header and a tag per frame; the salt, hello, seed
/// and end frames are a few hundred bytes more).
pub fn p1_wire_bytes(plan: &Plan, chunk: usize) -> u64 {
    let frame = (ditto_core::frame::HEADER_LEN + ditto_dealer::seal::TAG_LEN) as u64;
    plan.steps
        .iter()
        .map(|st| {
            let b = st.p1_correction_bytes();
            b + b.div_ceil(chunk as u64) * frame
        })
        .sum()
}

/// What happened to one connection of a dealer.
#[derive(Debug)]
pub enum Event {
    /// A party's whole stream was sent.
    Served {
        /// The connection.
        peer: std::net::SocketAddr,
        /// The party.
        party: Party,
        /// Correction bytes sent.
        bytes: u64,
        /// How long it took.
        took: Duration,
    },
    /// A request was refused or unreadable.
    Refused {
        /// The connection.
        peer: std::net::SocketAddr,
        /// Why.
        why: String,
    },
}

/// How one connection ended.
enum Outcome {
    /// The party's whole stream was sent.
    Served(Party, u64),
    /// The request was refused or unreadable; the dealer keeps serving.
    Refused(NodeError),
    /// Sending an accepted party's stream failed; the session cannot be served again.
    Failed(Party, NodeError),
}

/// A party's connection to a dealer and the role its identity proves (None in plaintext).
pub type PartyLink = (Option<String>, Box<dyn BlockingStream>);

/// A party's connection with time-outs on every read and write, secured as `sec` says.
pub fn open_party_link(sock: TcpStream, sec: &Security) -> Result<PartyLink, NodeError> {
    let what = "a party's dealer connection";
    sock.set_nonblocking(false).map_err(crate::io(what))?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(crate::io(what))?;
    sock.set_write_timeout(Some(Duration::from_secs(60))).map_err(crate::io(what))?;
    let _ = sock.set_nodelay(true);
    let (stream, role) = sec.accept_blocking(sock, &["p0", "p1"])?;
    Ok((role, stream))
}

/// Refuses a party whose identity is the other party's.
pub fn check_role(role: Option<&str>, party: Party) -> Result<(), String> {
    match role {
        Some(r) if r != ditto_net::tls::role(party) => {
            Err(format!("identity {r} asked for {party:?}'s stream; each party gets only its own"))
        }
        _ => Ok(()),
    }
}
