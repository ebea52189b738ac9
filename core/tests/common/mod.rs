//! In-memory test harness: both parties and the reference dealer in one process.
//! Each runner shares the inputs, deals the step, expands P0 from its seed alone and P1 from
//! its seed plus the corrections, runs both parties' halves exchanging messages in memory and
//! returns both output shares with the bytes each party sent and the rounds used.
#![allow(
    dead_code,
    missing_docs,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use ditto_core::beaver::{self, Dims, NaiveGemm};
use ditto_core::compare::{self, SignMaterial, SignShape};
use ditto_core::convert;
use ditto_core::corr::{Corrections, DealerStreams, Streams};
use ditto_core::deal::deal_step;
use ditto_core::plan::{Op, Step};
use ditto_core::prg::{Prg, Seed, SessionId, ShareSetId, model_share_seed};
use ditto_core::ring::{RingId, add_into};
use ditto_core::{Party, Ring, bits, trunc};

pub const PARTIES: [Party; 2] = [Party::P0, Party::P1];

pub struct Harness {
    pub seeds: [Seed; 2],
    pub model_seed: Seed,
    /// The sharing the model share seeds are bound to.
    pub share_set: ShareSetId,
    pub model: [Seed; 2],
    pub session: SessionId,
    pub rng: Prg,
}

/// What one protocol run cost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Bytes each party sent (symmetric protocols: the same for both).
    pub bytes: u64,
    pub rounds: u32,
}

impl Cost {
    fn round(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        self.rounds += 1;
    }
}

pub fn ring_id<R: Ring>() -> RingId {
    R::ID.expect("plan ring")
}

impl Harness {
    /// Deterministic test seeds (test-only: real seeds come from the OS RNG or a TRNG).
    pub fn new(tag: u8) -> Self {
        let model_seed = Seed::from_bytes([tag ^ 0x33; 16]);
        let set = ShareSetId([tag ^ 0x3c; 16]);
        let model =
            [model_share_seed(&model_seed, &set, Party::P0), model_share_seed(&model_seed, &set, Party::P1)];
        Harness {
            seeds: [Seed::from_bytes([tag; 16]), Seed::from_bytes([tag ^ 0x5a; 16])],
            model_seed,
            share_set: set,
            model,
            session: SessionId([tag ^ 0xa5; 16]),
            rng: Prg::with_counter(&[tag ^ 0x77; 16], 0),
        }
    }

    pub fn streams(&self, p: Party) -> Streams<'_> {
        Streams::new(p, &self.seeds[p.index()], &self.model[p.index()], self.session)
    }

    pub fn dealer(&self) -> DealerStreams<'_> {
        DealerStreams::new(self.streams(Party::P0), self.streams(Party::P1))
    }

    /// P1's corrections for a step; checks their length against the step's stated size.
    pub fn deal(&self, index: u32, step: &Step) -> Vec<u8> {
        let mut out = Vec::new();
        deal_step(&self.dealer(), index, step, &mut out).expect("deal");
        assert_eq!(out.len() as u64, step.p1_correction_bytes(), "correction size of {step:?}");
        out
    }

    /// P1's corrections for units `units` of a step.
    #[allow(dead_code)]
    pub fn deal_part(&self, index: u32, step: &Step, units: core::ops::Range<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        ditto_core::deal::deal_step_part(&self.dealer(), index, step, units, &mut out).expect("deal part");
        out
    }

    pub fn rand<R: Ring>(&mut self, n: usize) -> Vec<R> {
        let mut v = vec![R::ZERO; n];
        self.rng.fill_ring(&mut v);
        v
    }

    /// Additive shares of `x`.
    pub fn share<R: Ring>(&mut self, x: &[R]) -> [Vec<R>; 2] {
        let x0 = self.rand::<R>(x.len());
        let x1 = x.iter().zip(&x0).map(|(a, b)| a.sub(*b)).collect();
        [x0, x1]
    }
}

pub fn reveal<R: Ring>(z: &[Vec<R>; 2]) -> Vec<R> {
    z[0].iter().zip(&z[1]).map(|(a, b)| a.add(*b)).collect()
}

pub fn open<R: Ring>(m: &[Vec<R>; 2]) -> Vec<R> {
    let mut o = vec![R::ZERO; m[0].len()];
    add_into(&m[0], &m[1], &mut o).unwrap();
    o
}

pub fn zeros<R: Ring>(n: usize) -> Vec<R> {
    vec![R::ZERO; n]
}

/// Runs `f` for each party with its streams and corrections (P0 gets none) and checks that
/// P1 consumed its corrections exactly.
pub fn per_party<T>(
    h: &Harness,
    corr: &[u8],
    mut f: impl FnMut(Party, &Streams<'_>, &mut Corrections<'_>) -> T,
) -> [T; 2] {
    let mut out = PARTIES.map(|p| {
        let s = h.streams(p);
        let mut c = if p.is_p0() { Corrections::none() } else { Corrections::new(corr) };
        let t = f(p, &s, &mut c);
        c.finish().expect("corrections consumed exactly");
        Some(t)
    });
    [out[0].take().unwrap(), out[1].take().unwrap()]
}

pub fn run_mul<R: Ring>(h: &mut Harness, x: &[R], y: &[R]) -> (Vec<R>, Cost) {
    let n = x.len();
    let step = Step::bare(Op::MulAA { ring: ring_id::<R>(), len: n as u32 });
    let corr = h.deal(3, &step);
    let (xs, ys) = (h.share(x), h.share(y));
    let t = per_party(h, &corr, |_, s, c| {
        let (mut a, mut b, mut cc) = (zeros::<R>(n), zeros::<R>(n), zeros::<R>(n));
        beaver::expand_mul(s, 3, c, &mut a, &mut b, &mut cc).unwrap();
        (a, b, cc)
    });
    let mut cost = Cost::default();
    let msgs: [(Vec<R>, Vec<R>); 2] = [0, 1].map(|i| {
        let (mut e, mut f) = (zeros(n), zeros(n));
        beaver::mul_aa_open(&xs[i], &ys[i], &t[i].0, &t[i].1, &mut e, &mut f).unwrap();
        (e, f)
    });
    cost.round(2 * n * R::BYTES);
    let e = open(&[msgs[0].0.clone(), msgs[1].0.clone()]);
    let f = open(&[msgs[0].1.clone(), msgs[1].1.clone()]);
    let z = [0, 1].map(|i| {
        let mut z = zeros(n);
        beaver::mul_aa_finish(PARTIES[i], &e, &f, &t[i].0, &t[i].1, &t[i].2, &mut z).unwrap();
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

pub fn run_square<R: Ring>(h: &mut Harness, x: &[R]) -> (Vec<R>, Cost) {
    let n = x.len();
    let step = Step::bare(Op::SquareA { ring: ring_id::<R>(), len: n as u32 });
    let corr = h.deal(4, &step);
    let xs = h.share(x);
    let t = per_party(h, &corr, |_, s, c| {
        let (mut a, mut cc) = (zeros::<R>(n), zeros::<R>(n));
        beaver::expand_square(s, 4, c, &mut a, &mut cc).unwrap();
        (a, cc)
    });
    let mut cost = Cost::default();
    let msgs = [0, 1].map(|i| {
        let mut e = zeros(n);
        beaver::square_a_open(&xs[i], &t[i].0, &mut e).unwrap();
        e
    });
    cost.round(n * R::BYTES);
    let e = open(&msgs);
    let z = [0, 1].map(|i| {
        let mut z = zeros(n);
        beaver::square_a_finish(PARTIES[i], &e, &t[i].0, &t[i].1, &mut z).unwrap();
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

/// X (n x k) times a model weight W (k x m) with the fixed mask B_W: F = W - B_W is opened
/// once at setup (not counted), then one opening of E per inference.
pub fn run_matmul_fixed<R: Ring>(h: &mut Harness, x: &[R], w: &[R], d: Dims, weight: u32) -> (Vec<R>, Cost) {
    let step = Step::bare(Op::MatMulFixed {
        ring: ring_id::<R>(),
        n: d.n as u32,
        k: d.k as u32,
        m: d.m as u32,
        weight,
    });
    let corr = h.deal(5, &step);
    let (xs, ws) = (h.share(x), h.share(w));
    let t = per_party(h, &corr, |_, s, c| {
        let (mut a, mut b, mut cc) = (zeros::<R>(d.n * d.k), zeros::<R>(d.k * d.m), zeros::<R>(d.n * d.m));
        beaver::expand_matmul_fixed(s, 5, weight, d, c, &mut a, &mut b, &mut cc).unwrap();
        (a, b, cc)
    });
    // Setup: open F = W - B_W.
    let fm = [0, 1].map(|i| ws[i].iter().zip(&t[i].1).map(|(p, q)| p.sub(*q)).collect::<Vec<R>>());
    let f = open(&fm);
    let mut cost = Cost::default();
    let msgs = [0, 1].map(|i| {
        let mut e = zeros(d.n * d.k);
        beaver::matmul_fixed_open(&xs[i], &t[i].0, &mut e).unwrap();
        e
    });
    cost.round(d.n * d.k * R::BYTES);
    let e = open(&msgs);
    let z = [0, 1].map(|i| {
        let (mut z, mut scratch) = (zeros(d.n * d.m), zeros(d.n * d.k));
        beaver::matmul_finish(
            PARTIES[i],
            &NaiveGemm,
            d,
            &e,
            &f,
            &t[i].0,
            &t[i].1,
            &t[i].2,
            &mut scratch,
            &mut z,
        )
        .unwrap();
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

/// `batch` products of fresh shared X_b (n x k) and Y_b (k x m).
pub fn run_matmul_aa<R: Ring>(h: &mut Harness, x: &[R], y: &[R], batch: usize, d: Dims) -> (Vec<R>, Cost) {
    let step = Step::bare(Op::MatMulAA {
        ring: ring_id::<R>(),
        batch: batch as u32,
        n: d.n as u32,
        k: d.k as u32,
        m: d.m as u32,
    });
    let corr = h.deal(6, &step);
    let (xs, ys) = (h.share(x), h.share(y));
    let (nk, km, nm) = (d.n * d.k, d.k * d.m, d.n * d.m);
    let t = per_party(h, &corr, |_, s, c| {
        let (mut a, mut b, mut cc) = (zeros::<R>(batch * nk), zeros::<R>(batch * km), zeros::<R>(batch * nm));
        beaver::expand_matmul_aa(s, 6, batch, d, c, &mut a, &mut b, &mut cc).unwrap();
        (a, b, cc)
    });
    let mut cost = Cost::default();
    let msgs = [0, 1].map(|i| {
        let (mut e, mut f) = (zeros(batch * nk), zeros(batch * km));
        beaver::matmul_aa_open(&xs[i], &ys[i], &t[i].0, &t[i].1, &mut e, &mut f).unwrap();
        (e, f)
    });
    cost.round(batch * (nk + km) * R::BYTES);
    let e = open(&[msgs[0].0.clone(), msgs[1].0.clone()]);
    let f = open(&[msgs[0].1.clone(), msgs[1].1.clone()]);
    let z = [0, 1].map(|i| {
        let mut z = zeros(batch * nm);
        let mut scratch = zeros(nk);
        for b in 0..batch {
            beaver::matmul_finish(
                PARTIES[i],
                &NaiveGemm,
                d,
                &e[b * nk..(b + 1) * nk],
                &f[b * km..(b + 1) * km],
                &t[i].0[b * nk..(b + 1) * nk],
                &t[i].1[b * km..(b + 1) * km],
                &t[i].2[b * nm..(b + 1) * nm],
                &mut scratch,
                &mut z[b * nm..(b + 1) * nm],
            )
            .unwrap();
        }
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

pub fn run_trunc<R: Ring>(h: &mut Harness, x: &[R], k: u32) -> (Vec<R>, Cost) {
    let n = x.len();
    let step = Step::bare(Op::TruncA { ring: ring_id::<R>(), len: n as u32, shift: k as u8 });
    let corr = h.deal(7, &step);
    let xs = h.share(x);
    let t = per_party(h, &corr, |_, s, c| {
        let (mut r, mut rh, mut m) = (zeros::<R>(n), zeros::<R>(n), zeros::<R>(n));
        trunc::expand_trunc(s, 7, k, c, &mut r, &mut rh, &mut m).unwrap();
        (r, rh, m)
    });
    let mut cost = Cost::default();
    let msgs = [0, 1].map(|i| {
        let mut y = zeros(n);
        trunc::trunc_a_open(PARTIES[i], &xs[i], &t[i].0, &mut y).unwrap();
        y
    });
    cost.round(n * R::BYTES);
    let y = open(&msgs);
    let z = [0, 1].map(|i| {
        let mut z = zeros(n);
        trunc::trunc_a_finish(PARTIES[i], k, &y, &t[i].1, &t[i].2, &mut z).unwrap();
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

pub fn run_upcast(h: &mut Harness, x: &[u32]) -> (Vec<u64>, Cost) {
    let n = x.len();
    let step = Step::bare(Op::UpcastA { len: n as u32 });
    let corr = h.deal(8, &step);
    let xs = h.share(x);
    let t = per_party(h, &corr, |_, s, c| {
        let (mut r, mut rb, mut m) = (zeros::<u32>(n), zeros::<u64>(n), zeros::<u64>(n));
        convert::expand_upcast(s, 8, c, &mut r, &mut rb, &mut m).unwrap();
        (r, rb, m)
    });
    let mut cost = Cost::default();
    let msgs = [0, 1].map(|i| {
        let mut y = zeros(n);
        convert::upcast_a_open(PARTIES[i], &xs[i], &t[i].0, &mut y).unwrap();
        y
    });
    cost.round(n * 4);
    let y = open(&msgs);
    let z = [0, 1].map(|i| {
        let mut z = zeros(n);
        convert::upcast_a_finish(PARTIES[i], &y, &t[i].1, &t[i].2, &mut z).unwrap();
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

pub fn run_downcast(h: &mut Harness, x: &[u64], k: u8) -> (Vec<u32>, Cost) {
    let n = x.len();
    let step = Step::bare(Op::DowncastA { len: n as u32, shift: k });
    let corr = h.deal(9, &step);
    let xs = h.share(x);
    let kk = u32::from(k);
    let t = per_party(h, &corr, |_, s, c| {
        let (mut r, mut rh) = (zeros::<u64>(n), zeros::<u32>(n));
        convert::expand_downcast(s, 9, kk, c, &mut r, &mut rh).unwrap();
        (r, rh)
    });
    let mut cost = Cost::default();
    // Each party packs its opening to ceil((32+k)/8) bytes; the peer unpacks it.
    let msgs = [0, 1].map(|i| {
        let mut y = zeros(n);
        convert::downcast_a_open(kk, &xs[i], &t[i].0, &mut y).unwrap();
        let mut wire = vec![0u8; n * convert::downcast_open_width(k)];
        convert::pack_open(k, &y, &mut wire).unwrap();
        let mut back = zeros(n);
        convert::unpack_open(k, &wire, &mut back).unwrap();
        assert_eq!(back, y);
        (back, wire.len())
    });
    cost.round(msgs[0].1);
    let y = open(&[msgs[0].0.clone(), msgs[1].0.clone()]);
    let z = [0, 1].map(|i| {
        let mut z = zeros(n);
        convert::downcast_a_finish(PARTIES[i], kk, &y, &t[i].1, &mut z).unwrap();
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}

pub fn run_sign<R: Ring>(h: &mut Harness, x: &[R]) -> (Vec<R>, Cost) {
    let n = x.len();
    let step = Step::bare(Op::SignA { ring: ring_id::<R>(), len: n as u32 });
    let corr = h.deal(10, &step);
    let xs = h.share(x);
    let sh = SignShape::of::<R>(n);
    struct Mat<R> {
        r: Vec<R>,
        rbits: Vec<u64>,
        a: Vec<u64>,
        b: Vec<u64>,
        c: Vec<u64>,
        db: Vec<u64>,
        da: Vec<R>,
    }
    let t = per_party(h, &corr, |_, s, c| {
        let mut m = Mat {
            r: zeros(n),
            rbits: vec![0; sh.rbits_words()],
            a: vec![0; sh.and_words()],
            b: vec![0; sh.and_words()],
            c: vec![0; sh.and_words()],
            db: vec![0; sh.groups()],
            da: zeros(n),
        };
        let mut view = SignMaterial {
            r: &mut m.r,
            rbits: &mut m.rbits,
            and_a: &mut m.a,
            and_b: &mut m.b,
            and_c: &mut m.c,
            dabit_b: &mut m.db,
            dabit_a: &mut m.da,
        };
        compare::expand_sign(s, 10, c, &mut view).unwrap();
        m
    });
    let mut cost = Cost::default();
    let msgs = [0, 1].map(|i| {
        let mut y = zeros(n);
        compare::sign_open(&xs[i], &t[i].r, &mut y).unwrap();
        y
    });
    cost.round(n * R::BYTES);
    let y = open(&msgs);
    let mut state = [0, 1].map(|i| {
        let mut st = vec![0u64; sh.state_words()];
        compare::sign_leaves(PARTIES[i], &y, &t[i].rbits, &mut st).unwrap();
        st
    });
    for level in 0..sh.levels() {
        let msgs = [0, 1].map(|i| {
            let mut m = vec![0u64; sh.level_msg_words(level)];
            compare::sign_level_open(&sh, level, &state[i], &t[i].a, &t[i].b, &mut m).unwrap();
            m
        });
        cost.round(msgs[0].len() * 8);
        let mut opened = vec![0u64; msgs[0].len()];
        bits::xor_into(&msgs[0], &msgs[1], &mut opened).unwrap();
        for i in 0..2 {
            compare::sign_level_finish(
                PARTIES[i],
                &sh,
                level,
                &mut state[i],
                &opened,
                (&t[i].a, &t[i].b, &t[i].c),
            )
            .unwrap();
        }
    }
    let msgs = [0, 1].map(|i| {
        let mut m = vec![0u64; sh.groups()];
        compare::sign_b2a_open(PARTIES[i], &y, &t[i].rbits, &state[i], &t[i].db, &mut m).unwrap();
        m
    });
    cost.round(msgs[0].len() * 8);
    let mut e = vec![0u64; sh.groups()];
    bits::xor_into(&msgs[0], &msgs[1], &mut e).unwrap();
    let z = [0, 1].map(|i| {
        let mut z = zeros(n);
        compare::sign_b2a_finish(PARTIES[i], &e, &t[i].da, &mut z).unwrap();
        z
    });
    assert_eq!(cost.bytes, step.online_bytes_per_party());
    assert_eq!(cost.rounds, step.rounds());
    (reveal(&z), cost)
}
