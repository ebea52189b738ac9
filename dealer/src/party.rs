//! The party side of a dealer stream: reads the salt, checks the hello against the party's own
//! plan and sharing, yields its seeds, then (P1) each step's corrections in order (each frame
//! bound to the party's own step), then checks the end frame (counts and the hash of the plan
//! as dealt).

use embedded_io::Read;

use ditto_core::Party;
use ditto_core::frame::FrameKind;
use ditto_core::plan::{PLAN_VERSION, Step};
use ditto_core::prg::{SessionId, ShareSetId};

use crate::keys::{PartyKey, PartySeeds, Salt};
use crate::seal::{MAX_BIND, SealedReader};
use crate::stream::{End, Hello, step_binding};
use crate::{Error, HashHex};

/// An open dealer stream.
#[derive(Debug)]
pub struct PartyStream<R> {
    reader: SealedReader<R>,
    hello: Hello,
    next_step: u32,
    received: u64,
    frames: u32,
}

fn unexpected(expected: &'static str, expected_step: u32, h: &ditto_core::frame::FrameHeader) -> Error {
    Error::Unexpected { expected, expected_step, got: h.kind, got_step: h.step }
}

impl<R: Read> PartyStream<R> {
    /// Opens `party`'s stream of `session`: reads the salt, then reads and checks the hello
    /// (version, party, plan hash, share set) and the seeds. `buf` must hold a frame (chunk +
    /// 16 bytes).
    pub fn open(
        r: R,
        key: &PartyKey,
        session: SessionId,
        party: Party,
        plan_hash: &[u8; 32],
        share_set: &ShareSetId,
        buf: &mut [u8],
    ) -> Result<(Self, PartySeeds), Error> {
        let mut reader = SealedReader::open(r, key, session, party, buf.len(), buf)?;
        let (h, n) = reader.read(buf)?;
        if h.kind != FrameKind::Control || h.step != 0 {
            return Err(unexpected("hello", 0, &h));
        }
        let hello: Hello =
            postcard::from_bytes(&buf[..n]).map_err(|_| ditto_core::Error::Encoding("hello"))?;
        if hello.version != PLAN_VERSION {
            return Err(ditto_core::Error::Version { expected: PLAN_VERSION, got: hello.version }.into());
        }
        if hello.party != party {
            return Err(Error::WrongParty { expected: party, got: hello.party });
        }
        if &hello.plan_hash != plan_hash {
            return Err(Error::PlanHash {
                expected: HashHex::of(plan_hash),
                got: HashHex::of(&hello.plan_hash),
            });
        }
        if &hello.share_set != share_set {
            return Err(Error::ShareSet { expected: *share_set, got: hello.share_set });
        }
        let (h, n) = reader.read(buf)?;
        if h.kind != FrameKind::Seed || h.step != 0 || n != PartySeeds::LEN {
            return Err(unexpected("seeds", 0, &h));
        }
        let mut b = [0u8; PartySeeds::LEN];
        b.copy_from_slice(&buf[..n]);
        let seeds = PartySeeds::from_bytes(&b);
        zeroize::Zeroize::zeroize(&mut b);
        zeroize::Zeroize::zeroize(&mut buf[..n]);
        Ok((PartyStream { reader, hello, next_step: 0, received: 0, frames: 2 }, seeds))
    }

    /// The stream's hello.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The stream's salt (its generation).
    pub fn salt(&self) -> Salt {
        self.reader.salt()
    }

    /// Reads the corrections of step `index`, which in this party's plan is `step` (P1; steps
    /// in order), into `out`, whose length is the step's `p1_correction_bytes`. Frames dealt
    /// for any other step fail authentication.
    pub fn read_step(
        &mut self,
        index: u32,
        step: &Step,
        out: &mut [u8],
        buf: &mut [u8],
    ) -> Result<(), Error> {
        if index != self.next_step || index >= self.hello.n_steps {
            return Err(Error::Plan { index, reason: "steps must be read once each, in plan order" });
        }
        let mut enc = [0u8; MAX_BIND];
        let bind = step_binding(step, &mut enc)?;
        let mut filled = 0;
        while filled < out.len() {
            let (h, n) = self.reader.read_bound(buf, bind)?;
            if h.kind != FrameKind::Corrections || h.step != index {
                return Err(unexpected("corrections", index, &h));
            }
            let want = (out.len() - filled).min(self.hello.chunk as usize);
            if n != want {
                return Err(
                    ditto_core::Error::Length { what: "correction frame", expected: want, got: n }.into()
                );
            }
            out[filled..filled + n].copy_from_slice(&buf[..n]);
            filled += n;
            self.frames += 1;
        }
        self.received += out.len() as u64;
        self.next_step += 1;
        Ok(())
    }

    /// Reads the end frame and checks it against what was received (all steps must have been
    /// read for P1).
    pub fn finish(mut self, buf: &mut [u8]) -> Result<End, Error> {
        let n_steps = self.hello.n_steps;
        let (h, n) = self.reader.read(buf)?;
        if h.kind != FrameKind::End || h.step != n_steps {
            return Err(unexpected("end", n_steps, &h));
        }
        let end: End = postcard::from_bytes(&buf[..n]).map_err(|_| ditto_core::Error::Encoding("end"))?;
        if end.correction_bytes != self.received || end.frames != self.frames {
            return Err(Error::Summary { declared: end.correction_bytes, received: self.received });
        }
        if end.plan_hash != self.hello.plan_hash {
            return Err(Error::DealtPlan {
                announced: HashHex::of(&self.hello.plan_hash),
                dealt: HashHex::of(&end.plan_hash),
            });
        }
        Ok(end)
    }
}
