//! The messages of a link before its first step: the handshake ([`Hello`]: version, role,
//! plan hash, session, sharing), the generation check of the two dealer streams, and the
//! routing frames of serving parties. Each is a hello-kind exchange (rounds 0, 1, and 2 and 3).

use ditto_core::Party;
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_dealer::HashHex;
use ditto_dealer::host::PlanParams;

use super::{KIND_HELLO, Link};
use crate::{NET_VERSION, NetError};

const HELLO_LEN: usize = 2 + 1 + 32 + 16 + 16;
/// The routing frame's magic ([`Link::route_send`]) and its hello-kind round (the handshake is
/// round 0, the generation check round 1).
const ROUTE_MAGIC: [u8; 4] = *b"DRT1";
const ROUTE_ROUND: u32 = 2;

/// What each party states in the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// The sender's role.
    pub party: Party,
    /// Hash of the sender's plan.
    pub plan_hash: [u8; 32],
    /// The session the sender runs.
    pub session: SessionId,
    /// The sharing of the model the sender's share belongs to.
    pub share_set: ShareSetId,
}

impl Hello {
    /// This build's hello for `party`.
    pub fn new(party: Party, plan_hash: [u8; 32], session: SessionId, share_set: ShareSetId) -> Self {
        Hello { version: NET_VERSION, party, plan_hash, session, share_set }
    }

    fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..2].copy_from_slice(&self.version.to_le_bytes());
        b[2] = u8::from(!self.party.is_p0());
        b[3..35].copy_from_slice(&self.plan_hash);
        b[35..51].copy_from_slice(&self.session.0);
        b[51..67].copy_from_slice(&self.share_set.0);
        b
    }

    fn decode(b: &[u8]) -> Result<Self, NetError> {
        if b.len() != HELLO_LEN || b[2] > 1 {
            return Err(NetError::Malformed("hello"));
        }
        let mut plan_hash = [0u8; 32];
        plan_hash.copy_from_slice(&b[3..35]);
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&b[35..51]);
        let mut set = [0u8; 16];
        set.copy_from_slice(&b[51..67]);
        Ok(Hello {
            version: u16::from_le_bytes([b[0], b[1]]),
            party: if b[2] == 0 { Party::P0 } else { Party::P1 },
            plan_hash,
            session: SessionId(sid),
            share_set: ShareSetId(set),
        })
    }
}

/// Largest P0 stream P1 may relay in a routing frame (a P0 stream is a few hundred bytes:
/// salt, hello, seeds, end).
pub const MAX_RELAYED: usize = 64 * 1024;
const ROUTE_LEN: usize = 4 + 1 + 16 + 16 + 4;

/// What P1 of a serving pair tells P0 before a request's handshake ([`Link::route_send`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Route {
    /// The client's request id (the same at both parties; pairs the link with the request).
    pub request: SessionId,
    /// The session P1 took (pooled or created on demand): the correlations the request uses.
    pub session: SessionId,
    /// P0's sealed dealer stream of that session, relayed (sealed to P0's key: P1 cannot read
    /// or alter it; P0 opens it for `session` only); or, for a refusal, why P1 gave the request
    /// up (UTF-8), and the link ends there.
    pub p0_stream: Vec<u8>,
    /// What the link is for.
    pub kind: RouteKind,
}

/// What a routed link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A request runs `session` on this link.
    Session,
    /// P1 gave the request up before it began (no session): P0 fails it at once.
    Refusal,
    /// No request: P1 pooled `session` for a request of these plan parameters and hands P0 its
    /// stream ahead, so that P0 prepares what it can before the input arrives (its products
    /// A_0 F). The link ends there; the request that takes the session relays the stream again.
    Ahead(PlanParams),
}

impl RouteKind {
    fn byte(self) -> u8 {
        match self {
            RouteKind::Session => 0,
            RouteKind::Refusal => 1,
            RouteKind::Ahead(_) => 2,
        }
    }
}

/// Plan parameters in a routing frame's request field (ahead routes, which serve no request).
fn params_bytes(p: &PlanParams) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&p.seq.to_le_bytes());
    b[4..8].copy_from_slice(&p.generate.to_le_bytes());
    b[8..12].copy_from_slice(&p.batch.to_le_bytes());
    b[12] = u8::from(p.reveal_token);
    b
}

fn params_of(b: &[u8]) -> Result<PlanParams, NetError> {
    let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if b[12] > 1 || b[13..16] != [0; 3] {
        return Err(NetError::Malformed("an ahead routing frame with malformed plan parameters"));
    }
    Ok(PlanParams { seq: u(0), generate: u(4), batch: u(8), reveal_token: b[12] == 1 })
}

impl Route {
    /// P1 gives `request` up, saying why (cut to 4 KiB).
    pub fn refusal(request: SessionId, why: &str) -> Self {
        let mut w = why.as_bytes().to_vec();
        w.truncate(4096);
        if w.is_empty() {
            w.push(b'?');
        }
        Route { request, session: SessionId([0; 16]), p0_stream: w, kind: RouteKind::Refusal }
    }

    /// P1 hands P0 the stream of pooled `session` ahead of its request ([`RouteKind::Ahead`]).
    pub fn ahead(session: SessionId, params: PlanParams, p0_stream: Vec<u8>) -> Self {
        Route { request: SessionId([0; 16]), session, p0_stream, kind: RouteKind::Ahead(params) }
    }

    /// The reason of a refusal.
    pub fn reason(&self) -> String {
        String::from_utf8_lossy(&self.p0_stream).into_owned()
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Route {{ request: {:032x}, session: {:032x}, p0_stream: {} bytes }}",
            self.request.as_u128(),
            self.session.as_u128(),
            self.p0_stream.len()
        )
    }
}

impl Link {
    /// P1 of a serving pair (`ditto party --serve`), before the handshake: names the request
    /// this connection is for, the session it runs and relays P0's sealed stream of it. Two
    /// hello-kind exchanges (rounds 2 and 3), sealed like every frame once the link is secured;
    /// the handshake then checks the session again.
    pub async fn route_send(&mut self, route: &Route) -> Result<(), NetError> {
        let len = route.p0_stream.len();
        if len == 0 || len > MAX_RELAYED {
            return Err(NetError::Malformed("a relayed P0 stream must hold 1 to 65536 bytes"));
        }
        let mut head = [0u8; ROUTE_LEN];
        head[..4].copy_from_slice(&ROUTE_MAGIC);
        head[4] = route.kind.byte();
        match &route.kind {
            RouteKind::Ahead(p) => head[5..21].copy_from_slice(&params_bytes(p)),
            RouteKind::Session | RouteKind::Refusal => head[5..21].copy_from_slice(&route.request.0),
        }
        head[21..37].copy_from_slice(&route.session.0);
        head[37..].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        self.route_head(&mut head).await?;
        self.swap(KIND_HELLO, 0, ROUTE_ROUND + 1, &mut route.p0_stream.clone(), "routing").await?;
        Ok(())
    }

    /// P0 of a serving pair: learns what P1 names and relays ([`Link::route_send`]).
    pub async fn route_recv(&mut self) -> Result<Route, NetError> {
        let mut head = [0u8; ROUTE_LEN];
        head[..4].copy_from_slice(&ROUTE_MAGIC);
        let theirs = self.route_head(&mut head).await?;
        let id = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&theirs[r]);
            SessionId(b)
        };
        let (mut request, session) = (id(5..21), id(21..37));
        let kind = match theirs[4] {
            0 => RouteKind::Session,
            1 => RouteKind::Refusal,
            2 => {
                let p = params_of(&theirs[5..21])?;
                request = SessionId([0; 16]);
                RouteKind::Ahead(p)
            }
            _ => return Err(NetError::Malformed("a routing frame of an unknown kind")),
        };
        let len = u32::from_le_bytes([theirs[37], theirs[38], theirs[39], theirs[40]]) as usize;
        if len == 0 || len > MAX_RELAYED {
            return Err(NetError::Malformed("a relayed P0 stream must hold 1 to 65536 bytes"));
        }
        let (_, p0_stream) =
            self.swap(KIND_HELLO, 0, ROUTE_ROUND + 1, &mut vec![0u8; len], "routing").await?;
        Ok(Route { request, session, p0_stream, kind })
    }

    /// The routing frame's exchange; the peer's frame.
    async fn route_head(&mut self, mine: &mut [u8; ROUTE_LEN]) -> Result<Vec<u8>, NetError> {
        let not_routed = || {
            NetError::Malformed(
                "expected the peer's routing frame: run both parties with --serve, or neither",
            )
        };
        let theirs = match self.swap(KIND_HELLO, 0, ROUTE_ROUND, mine, "routing").await {
            Ok((_, t)) => t,
            // A peer that does not route sends its handshake (another length) instead.
            Err(NetError::Length { .. }) => return Err(not_routed()),
            Err(e) => return Err(e),
        };
        if theirs.len() != ROUTE_LEN || theirs[..4] != ROUTE_MAGIC {
            return Err(not_routed());
        }
        Ok(theirs)
    }

    /// The handshake: both ends state version, role, plan hash and session; any mismatch is
    /// an error naming both values.
    pub async fn handshake(&mut self, mine: &Hello) -> Result<Hello, NetError> {
        let (_, body) = self.swap(KIND_HELLO, 0, 0, &mut mine.encode(), "handshake").await?;
        let theirs = Hello::decode(&body)?;
        if theirs.version != mine.version {
            return Err(NetError::Version { ours: mine.version, theirs: theirs.version });
        }
        if theirs.party == mine.party {
            return Err(NetError::Role { ours: mine.party });
        }
        if theirs.plan_hash != mine.plan_hash {
            return Err(NetError::PlanHash {
                ours: HashHex::of(&mine.plan_hash),
                theirs: HashHex::of(&theirs.plan_hash),
            });
        }
        if theirs.session != mine.session {
            return Err(NetError::Session { ours: mine.session.as_u128(), theirs: theirs.session.as_u128() });
        }
        if theirs.share_set != mine.share_set {
            return Err(NetError::ShareSet {
                ours: mine.share_set.as_u128(),
                theirs: theirs.share_set.as_u128(),
            });
        }
        Ok(theirs)
    }

    /// After both parties opened their dealer streams: compares the commitments to the streams'
    /// generation ([`ditto_dealer::keys::Salt::commitment`]); different ones mean the two
    /// streams were dealt separately (two dealer instances, or a session dealt twice) and do
    /// not fit together.
    pub async fn agree_generation(&mut self, mine: &[u8; 32]) -> Result<(), NetError> {
        let (_, theirs) = self.swap(KIND_HELLO, 0, 1, &mut mine.to_vec(), "generation check").await?;
        if theirs[..] != mine[..] {
            let mut t = [0u8; 32];
            t.copy_from_slice(&theirs);
            return Err(NetError::Generation { ours: HashHex::of(mine), theirs: HashHex::of(&t) });
        }
        Ok(())
    }
}
