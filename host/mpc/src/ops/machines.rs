//! The radix comparisons as round-by-round machines ([`crate::beside::Machine`]): the engine
//! drives them with exchanges of their own step, or lets them ride on the following steps'.
//! Round 1 of both opens y = x + r (and f = v - a beside it with a multiplicand, or in the
//! 3-round form's last round for a multiplicand supplied late); then the 4-round form runs its
//! levels and the B2A, the 3-round form its level 0 and arithmetic top.

use std::any::Any;

use ditto_core::radix::top::{self, TopMul, TopShape};
use ditto_core::radix::{self, RadixShape};
use ditto_core::ring::{decode_slice, encode_slice};
use ditto_core::{Party, Ring, bits, compare};

use crate::MpcError;
use crate::beside::Machine;

/// Round 1's state: this party's y (and f), then the opened ones.
struct Masked<C, O> {
    x: Vec<C>,
    r: Vec<C>,
    v: Option<Vec<O>>,
    a: Vec<O>,
    y: Vec<C>,
    f: Vec<O>,
}

impl<C: Ring, O: Ring> Masked<C, O> {
    fn new(x: Vec<C>, r: Vec<C>, v: Option<Vec<O>>, a: Vec<O>) -> Self {
        Masked { x, r, v, a, y: Vec::new(), f: Vec::new() }
    }

    /// This party's y = x + r and f = v - a, encoded (y then f).
    fn message(&mut self) -> Result<Vec<u8>, MpcError> {
        self.y = self.x.iter().zip(&self.r).map(|(x, r)| x.add(*r)).collect();
        self.f = match &self.v {
            Some(v) => v.iter().zip(&self.a).map(|(v, a)| v.sub(*a)).collect(),
            None => Vec::new(),
        };
        let n = self.y.len();
        let mut wire = vec![0u8; n * C::BYTES + self.f.len() * O::BYTES];
        let (wy, wf) = wire.split_at_mut(n * C::BYTES);
        encode_slice(&self.y, wy)?;
        encode_slice(&self.f, wf)?;
        Ok(wire)
    }

    /// Opens y and f from the peer's message.
    fn receive(&mut self, peer: &[u8]) -> Result<(), MpcError> {
        let n = self.y.len();
        let (mut ty, mut tf) = (vec![C::ZERO; n], vec![O::ZERO; self.f.len()]);
        let want = n * C::BYTES + tf.len() * O::BYTES;
        if peer.len() != want {
            let e = ditto_core::Error::Length {
                what: "masked comparison input",
                expected: want,
                got: peer.len(),
            };
            return Err(e.into());
        }
        let (py, pf) = peer.split_at(n * C::BYTES);
        decode_slice(py, &mut ty)?;
        decode_slice(pf, &mut tf)?;
        for (y, t) in self.y.iter_mut().zip(&ty) {
            *y = y.add(*t);
        }
        for (f, t) in self.f.iter_mut().zip(&tf) {
            *f = f.add(*t);
        }
        Ok(())
    }
}

fn words(w: &[u64]) -> Result<Vec<u8>, MpcError> {
    let mut b = vec![0u8; w.len() * 8];
    encode_slice(w, &mut b)?;
    Ok(b)
}

/// The XOR of this party's words and the peer's (bytes).
fn opened(mine: &[u64], peer: &[u8]) -> Result<Vec<u64>, MpcError> {
    let mut theirs = vec![0u64; mine.len()];
    decode_slice(peer, &mut theirs)?;
    let mut out = vec![0u64; mine.len()];
    bits::xor_into(mine, &theirs, &mut out)?;
    Ok(out)
}

/// Owned buffers of a comparison's circuit part (`radix::Circuit`), sized for its form.
pub(crate) struct CircuitBufs<C> {
    pub r: Vec<C>,
    pub msb: Vec<u64>,
    pub onehot: Vec<u64>,
    pub masks: Vec<u64>,
    pub prods: Vec<u64>,
}

impl<C: Ring> CircuitBufs<C> {
    /// Buffers for `n` values of `sh`, with `masks` and `prods` words per group.
    pub(crate) fn new(sh: &RadixShape, n: usize, (masks, prods): (usize, usize)) -> Self {
        let g = sh.groups();
        CircuitBufs {
            r: vec![C::ZERO; n],
            msb: vec![0; g],
            onehot: vec![0; g * sh.onehot_words()],
            masks: vec![0; g * masks],
            prods: vec![0; g * prods],
        }
    }

    /// The borrowed view that `ditto_core::radix` expands into.
    pub(crate) fn view(&mut self) -> radix::Circuit<'_, C> {
        radix::Circuit {
            r: &mut self.r,
            msb: &mut self.msb,
            onehot: &mut self.onehot,
            masks: &mut self.masks,
            prods: &mut self.prods,
        }
    }
}

/// A party's material for the 4-round comparison (as `radix::RadixMaterial` lays it out).
pub(crate) struct RadixParts<C, O> {
    pub c: CircuitBufs<C>,
    pub db: Vec<u64>,
    pub da: Vec<O>,
    pub ma: Vec<O>,
    pub mc: Vec<O>,
}

/// The 4-round radix comparison; result ([x < 0], [x < 0] v or empty).
pub(crate) struct RadixMachine<C, O> {
    party: Party,
    sh: RadixShape,
    m: RadixParts<C, O>,
    io: Masked<C, O>,
    stage: u32,
    state: Vec<u64>,
    mine: Vec<u64>,
    out: (Vec<O>, Vec<O>),
}

impl<C: Ring, O: Ring> RadixMachine<C, O> {
    pub(crate) fn new(party: Party, mut m: RadixParts<C, O>, x: Vec<C>, v: Option<Vec<O>>) -> Self {
        let sh = RadixShape::new(C::BITS, x.len());
        let (r, a) = (std::mem::take(&mut m.c.r), std::mem::take(&mut m.ma));
        RadixMachine {
            party,
            sh,
            m,
            io: Masked::new(x, r, v, a),
            stage: 0,
            state: Vec::new(),
            mine: Vec::new(),
            out: (Vec::new(), Vec::new()),
        }
    }
}

impl<C: Ring, O: Ring> Machine for RadixMachine<C, O> {
    fn message(&mut self) -> Result<Option<Vec<u8>>, MpcError> {
        let (levels, g) = (self.sh.levels(), self.sh.groups());
        if self.stage == 0 {
            return Ok(Some(self.io.message()?));
        }
        if self.stage <= levels {
            let level = self.stage - 1;
            self.mine = vec![0u64; g * self.sh.level_msg_words(level)];
            radix::radix_level_open(&self.sh, level, &self.state, &self.m.c.masks, &mut self.mine)?;
        } else if self.stage == levels + 1 {
            self.mine = vec![0u64; g];
            radix::radix_b2a_open(
                self.party,
                &self.io.y,
                &self.m.c.msb,
                &self.state,
                &self.m.db,
                &mut self.mine,
            )?;
        } else {
            return Ok(None);
        }
        Ok(Some(words(&self.mine)?))
    }

    fn receive(&mut self, peer: &[u8]) -> Result<(), MpcError> {
        let levels = self.sh.levels();
        if self.stage == 0 {
            self.io.receive(peer)?;
            self.state = vec![0u64; self.sh.groups() * self.sh.state_words()];
            radix::radix_leaves(&self.io.y, &self.m.c.onehot, &mut self.state)?;
        } else if self.stage <= levels {
            let o = opened(&self.mine, peer)?;
            let (sh, m) = (&self.sh, &self.m);
            radix::radix_level_finish(
                self.party,
                sh,
                self.stage - 1,
                &mut self.state,
                &o,
                &m.c.masks,
                &m.c.prods,
            )?;
        } else {
            let e = opened(&self.mine, peer)?;
            let n = self.io.y.len();
            let mut s = vec![O::ZERO; n];
            compare::sign_b2a_finish(self.party, &e, &self.m.da, &mut s)?;
            let mut sv = Vec::new();
            if let Some(v) = &self.io.v {
                sv = vec![O::ZERO; n];
                radix::radix_mul_finish(&e, &self.io.f, v, &self.m.da, &self.m.mc, &mut sv)?;
            }
            self.out = (s, sv);
        }
        self.stage += 1;
        Ok(())
    }

    fn result(self: Box<Self>) -> Result<Box<dyn Any + Send>, MpcError> {
        Ok(Box::new(self.out))
    }
}

/// A party's material for the 3-round comparison (as `radix::top::TopMaterial` lays it out).
pub(crate) struct TopParts<C, O> {
    pub c: CircuitBufs<C>,
    pub mono: Vec<O>,
    pub ma: Vec<O>,
    pub mc: Vec<O>,
}

/// The 3-round comparison; result ([x < 0], [x < 0] v or empty). A late multiplicand (`late`)
/// is supplied after round 1 ([`Machine::supply`]) and its f = v - a travels in round 3.
pub(crate) struct TopMachine<C, O> {
    party: Party,
    sh: TopShape,
    m: TopParts<C, O>,
    io: Masked<C, O>,
    late: bool,
    stage: u32,
    state: Vec<u64>,
    opened0: Vec<u64>,
    mine: Vec<u64>,
    out: (Vec<O>, Vec<O>),
}

impl<C: Ring, O: Ring> TopMachine<C, O> {
    pub(crate) fn new(party: Party, mut m: TopParts<C, O>, x: Vec<C>, v: Option<Vec<O>>, late: bool) -> Self {
        let sh = TopShape::new(C::BITS, x.len());
        let (r, a) = (std::mem::take(&mut m.c.r), std::mem::take(&mut m.ma));
        TopMachine {
            party,
            sh,
            m,
            io: Masked::new(x, r, v, a),
            late,
            stage: 0,
            state: Vec::new(),
            opened0: Vec::new(),
            mine: Vec::new(),
            out: (Vec::new(), Vec::new()),
        }
    }
}

impl<C: Ring, O: Ring> Machine for TopMachine<C, O> {
    fn message(&mut self) -> Result<Option<Vec<u8>>, MpcError> {
        let (sh, m, g) = (&self.sh, &self.m, self.sh.groups());
        match self.stage {
            0 => return Ok(Some(self.io.message()?)),
            1 => {
                self.mine = vec![0u64; g * sh.level_msg_words()];
                top::radix_top_level_open(sh, &self.state, &m.c.masks, &mut self.mine)?;
            }
            2 => {
                self.mine = vec![0u64; g * sh.top.wires()];
                top::radix_top_open(
                    sh,
                    &self.state,
                    &self.opened0,
                    &m.c.msb,
                    &m.c.masks,
                    &m.c.prods,
                    &mut self.mine,
                )?;
                if self.late {
                    let Some(v) = &self.io.v else {
                        return Err(MpcError::Mode {
                            what: "a late multiplicand",
                            mode: "it was not supplied",
                        });
                    };
                    self.io.f = v.iter().zip(&self.io.a).map(|(v, a)| v.sub(*a)).collect();
                    let mut msg = words(&self.mine)?;
                    let at = msg.len();
                    msg.resize(at + self.io.f.len() * O::BYTES, 0);
                    encode_slice(&self.io.f, &mut msg[at..])?;
                    return Ok(Some(msg));
                }
            }
            _ => return Ok(None),
        }
        Ok(Some(words(&self.mine)?))
    }

    fn supply(&mut self, v: Box<dyn Any + Send>) -> Result<(), MpcError> {
        let bad = |mode| Err(MpcError::Mode { what: "a late multiplicand", mode });
        if !self.late || self.stage > 2 {
            return bad("the comparison takes none now");
        }
        match v.downcast::<Vec<O>>() {
            Ok(v) if v.len() == self.io.a.len() => {
                self.io.v = Some(*v);
                Ok(())
            }
            _ => bad("of another type or length than its mask"),
        }
    }

    fn receive(&mut self, peer: &[u8]) -> Result<(), MpcError> {
        match self.stage {
            0 => {
                self.io.receive(peer)?;
                self.state = vec![0u64; self.sh.groups() * self.sh.radix.state_words()];
                radix::radix_leaves(&self.io.y, &self.m.c.onehot, &mut self.state)?;
            }
            1 => {
                self.opened0 = opened(&self.mine, peer)?;
                let m = &self.m;
                top::radix_top_level_finish(
                    self.party,
                    &self.sh,
                    &mut self.state,
                    &self.opened0,
                    &m.c.masks,
                    &m.c.prods,
                )?;
            }
            _ => {
                let mut peer = peer;
                if self.late {
                    let at = self.mine.len() * 8;
                    let nf = self.io.f.len();
                    if peer.len() != at + nf * O::BYTES {
                        let e = ditto_core::Error::Length {
                            what: "comparison wires and late multiplicand",
                            expected: at + nf * O::BYTES,
                            got: peer.len(),
                        };
                        return Err(e.into());
                    }
                    let mut theirs = vec![O::ZERO; nf];
                    decode_slice(&peer[at..], &mut theirs)?;
                    for (f, t) in self.io.f.iter_mut().zip(&theirs) {
                        *f = f.add(*t);
                    }
                    peer = &peer[..at];
                }
                let o = opened(&self.mine, peer)?;
                let n = self.io.y.len();
                let (mut s, mut sv) = (vec![O::ZERO; n], vec![O::ZERO; self.io.f.len()]);
                let mul = self.io.v.as_ref().map(|v| TopMul { f: &self.io.f, v, mul_c: &self.m.mc });
                top::radix_top_finish(
                    self.party,
                    &self.sh,
                    &self.io.y,
                    &o,
                    &self.m.mono,
                    mul,
                    &mut s,
                    &mut sv,
                )?;
                self.out = (s, sv);
            }
        }
        self.stage += 1;
        Ok(())
    }

    fn result(self: Box<Self>) -> Result<Box<dyn Any + Send>, MpcError> {
        Ok(Box::new(self.out))
    }
}

/// An opening of y - B beside other steps (`Op::OpenBesideA`), one round: the masked-input
/// round of the comparisons with r = -B; result (the opened y - B, this party's B).
pub(crate) struct OpenMachine {
    io: Masked<u32, u32>,
    b: Vec<u32>,
    stage: u32,
}

impl OpenMachine {
    pub(crate) fn new(y: Vec<u32>, b: Vec<u32>) -> Self {
        let neg = b.iter().map(|v| v.wrapping_neg()).collect();
        OpenMachine { io: Masked::new(y, neg, None, Vec::new()), b, stage: 0 }
    }
}

impl Machine for OpenMachine {
    fn message(&mut self) -> Result<Option<Vec<u8>>, MpcError> {
        Ok(if self.stage == 0 { Some(self.io.message()?) } else { None })
    }

    fn receive(&mut self, peer: &[u8]) -> Result<(), MpcError> {
        self.io.receive(peer)?;
        self.stage = 1;
        Ok(())
    }

    fn result(self: Box<Self>) -> Result<Box<dyn Any + Send>, MpcError> {
        if self.stage == 0 {
            return Err(MpcError::Mode { what: "an opening beside others", mode: "its round has not run" });
        }
        Ok(Box::new((self.io.y, self.b)))
    }
}
