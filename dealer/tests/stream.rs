//! Dealer streams end to end in memory: the committed core test vector is reproduced through
//! sealed frames; the correlations P0 and P1 expand from the delivered seeds and corrections
//! satisfy their relations; tampering, replay, reordering, truncation, wrong keys, wrong plans,
//! a plan changed between the dealer's passes and unservable plans are each their specific
//! error.
#![allow(clippy::cast_possible_truncation)]

use ditto_core::Party;
use ditto_core::beaver::{self, Dims};
use ditto_core::corr::{Corrections, DealerStreams, Streams, Tile};
use ditto_core::deal::deal_step;
use ditto_core::frame::HEADER_LEN;
use ditto_core::plan::{Op, PLAN_VERSION, PlanHeader, Step, plan_hash};
use ditto_core::prg::{Seed, SessionId, ShareSetId, model_share_seed};
use ditto_core::ring::RingId;
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, PartySeeds, Salt};
use ditto_dealer::party::PartyStream;
use ditto_dealer::stream::{PlanSource, SessionSpec, SlicePlan, scratch_len, write_stream};
use ditto_dealer::{DEFAULT_CHUNK, Error};
use sha2::{Digest, Sha256};

const VECTORS: &str = include_str!("../../core/tests/vectors/dealer-v2.json");

fn unhex16(s: &str) -> [u8; 16] {
    let v: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
    v.try_into().unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Fixture {
    header: PlanHeader,
    steps: Vec<Step>,
    spec: SessionSpec,
    keys: [PartyKey; 2],
}

fn header(name: &str, n: usize) -> PlanHeader {
    PlanHeader { version: PLAN_VERSION, name: name.try_into().unwrap(), n_steps: n as u32 }
}

/// The core test vector's plan, seeds and session, with explicit party seeds.
fn vector_fixture(chunk: usize) -> (Fixture, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let steps: Vec<Step> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_value(s["step"].clone()).unwrap())
        .collect();
    let model = Seed::from_bytes(unhex16(v["model_seed"].as_str().unwrap()));
    let share_set = ShareSetId(unhex16(v["share_set"].as_str().unwrap()));
    let seeds = [("seed_p0", Party::P0), ("seed_p1", Party::P1)].map(|(k, p)| PartySeeds {
        session: Seed::from_bytes(unhex16(v[k].as_str().unwrap())),
        model: model_share_seed(&model, &share_set, p),
    });
    let session = SessionId(unhex16(v["session"].as_str().unwrap()));
    let generation = Generation { session, share_set, salt: Salt([0x5a; 16]) };
    let f = Fixture {
        header: header(v["plan_name"].as_str().unwrap(), steps.len()),
        steps,
        spec: SessionSpec { generation, seeds, chunk, tile: Tile::default() },
        keys: [PartyKey::from_bytes([0xA0; 16]), PartyKey::from_bytes([0xA1; 16])],
    };
    (f, v)
}

fn write(f: &Fixture, p: Party) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut scratch = vec![0u8; scratch_len(f.spec.chunk)];
    let mut plan = SlicePlan { header: &f.header, steps: &f.steps };
    write_stream(p, &mut plan, &f.spec, &f.keys[p.index()], &mut out, &mut scratch)?;
    Ok(out)
}

/// Reads a whole stream as the party; returns seeds and each step's corrections.
fn read(f: &Fixture, p: Party, bytes: &[u8]) -> Result<(PartySeeds, Vec<Vec<u8>>), Error> {
    read_as(f, p, bytes, &f.steps)
}

/// [`read`] by a party whose plan is `steps` (its own, or what a relay made the dealer deal).
fn read_as(f: &Fixture, p: Party, bytes: &[u8], mine: &[Step]) -> Result<(PartySeeds, Vec<Vec<u8>>), Error> {
    let hash = plan_hash(&f.header, &f.steps).unwrap();
    let mut buf = vec![0u8; scratch_len(f.spec.chunk)];
    let g = &f.spec.generation;
    let (mut s, seeds) =
        PartyStream::open(bytes, &f.keys[p.index()], g.session, p, &hash, &g.share_set, &mut buf)?;
    let mut steps = Vec::new();
    if p == Party::P1 {
        for (i, st) in mine.iter().enumerate() {
            let mut out = vec![0u8; st.p1_correction_bytes() as usize];
            s.read_step(i as u32, st, &mut out, &mut buf)?;
            steps.push(out);
        }
    }
    s.finish(&mut buf)?;
    Ok((seeds, steps))
}

#[test]
fn reproduces_the_core_test_vector_through_sealed_frames() {
    for chunk in [DEFAULT_CHUNK, 100, 1] {
        let (f, v) = vector_fixture(chunk);
        let bytes = write(&f, Party::P1).unwrap();
        let (seeds, steps) = read(&f, Party::P1, &bytes).unwrap();
        assert_eq!(seeds.session.expose(), f.spec.seeds[1].session.expose());
        assert_eq!(hex(&plan_hash(&f.header, &f.steps).unwrap()), v["plan_hash"].as_str().unwrap());
        for (i, c) in steps.iter().enumerate() {
            let want = &v["steps"][i];
            assert_eq!(c.len() as u64, want["p1_correction_bytes"].as_u64().unwrap());
            assert_eq!(hex(&Sha256::digest(c)), want["sha256"].as_str().unwrap(), "step {i}, chunk {chunk}");
        }
        // Same input, same bytes, whatever the matmul tile.
        let mut f = f;
        for tile in [Tile::K16, Tile::K32, Tile::K128] {
            f.spec.tile = tile;
            assert!(write(&f, Party::P1).unwrap() == bytes, "tile {tile:?}");
        }
    }
}

#[test]
fn p0_gets_only_seeds_and_relations_hold() {
    let seeds = DealerSeeds::new(Seed::from_bytes([1; 16]), Seed::from_bytes([2; 16]));
    let session = SessionId([3; 16]);
    let d = Dims { n: 7, k: 40, m: 19 };
    let steps = vec![
        Step::bare(Op::MulAA { ring: RingId::Z64, len: 333 }),
        Step::bare(Op::MatMulFixed { ring: RingId::Z32, n: 7, k: 40, m: 19, weight: 5 }),
    ];
    let f = Fixture {
        header: header("relations", steps.len()),
        steps,
        spec: SessionSpec::new(
            Generation { session, share_set: ShareSetId([6; 16]), salt: Salt([7; 16]) },
            &seeds,
        ),
        keys: [PartyKey::from_bytes([4; 16]), PartyKey::from_bytes([5; 16])],
    };
    let p0 = write(&f, Party::P0).unwrap();
    // salt + hello + seeds + end: a few hundred bytes whatever the plan.
    assert!(p0.len() < 4 * HEADER_LEN + 4 * 16 + 64 + 32 + 48, "P0 stream is {} bytes", p0.len());
    let (s0, none) = read(&f, Party::P0, &p0).unwrap();
    assert!(none.is_empty());
    let p1 = write(&f, Party::P1).unwrap();
    let (s1, corr) = read(&f, Party::P1, &p1).unwrap();
    let st = [
        Streams::new(Party::P0, &s0.session, &s0.model, session),
        Streams::new(Party::P1, &s1.session, &s1.model, session),
    ];
    // Beaver triple in Z_2^64.
    let parts: Vec<_> = [0, 1]
        .map(|i| {
            let (mut a, mut b, mut c) = (vec![0u64; 333], vec![0u64; 333], vec![0u64; 333]);
            let mut cr = if i == 0 { Corrections::none() } else { Corrections::new(&corr[0]) };
            beaver::expand_mul(&st[i], 0, &mut cr, &mut a, &mut b, &mut c).unwrap();
            cr.finish().unwrap();
            (a, b, c)
        })
        .into();
    for j in 0..333 {
        let a = parts[0].0[j].wrapping_add(parts[1].0[j]);
        let b = parts[0].1[j].wrapping_add(parts[1].1[j]);
        assert_eq!(parts[0].2[j].wrapping_add(parts[1].2[j]), a.wrapping_mul(b));
    }
    // Matrix triple with the model-fixed mask in Z_2^32.
    let parts: Vec<_> = [0, 1]
        .map(|i| {
            let (mut a, mut b, mut c) = (vec![0u32; d.n * d.k], vec![0u32; d.k * d.m], vec![0u32; d.n * d.m]);
            let mut cr = if i == 0 { Corrections::none() } else { Corrections::new(&corr[1]) };
            beaver::expand_matmul_fixed(&st[i], 1, 5, d, &mut cr, &mut a, &mut b, &mut c).unwrap();
            (a, b, c)
        })
        .into();
    for i in 0..d.n {
        for j in 0..d.m {
            let mut acc = 0u32;
            for k in 0..d.k {
                let a = parts[0].0[i * d.k + k].wrapping_add(parts[1].0[i * d.k + k]);
                let b = parts[0].1[k * d.m + j].wrapping_add(parts[1].1[k * d.m + j]);
                acc = acc.wrapping_add(a.wrapping_mul(b));
            }
            assert_eq!(parts[0].2[i * d.m + j].wrapping_add(parts[1].2[i * d.m + j]), acc);
        }
    }
    // The stream's corrections are exactly the reference dealer's.
    let ds = DealerStreams::new(
        Streams::new(Party::P0, &s0.session, &s0.model, session),
        Streams::new(Party::P1, &s1.session, &s1.model, session),
    );
    for (i, step) in f.steps.iter().enumerate() {
        let mut want = Vec::new();
        deal_step(&ds, i as u32, step, &mut want).unwrap();
        assert_eq!(corr[i], want);
    }
}

/// Splits a stream into its frames.
fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 28..at + 32].try_into().unwrap()) as usize;
        out.push(bytes[at..at + HEADER_LEN + len].to_vec());
        at += HEADER_LEN + len;
    }
    out
}

/// Recomputes a frame's CRC (what an active relay would do after tampering).
fn fix_crc(frame: &mut [u8]) {
    let h = crc32fast_like(frame);
    frame[32..36].copy_from_slice(&h.to_le_bytes());
}

fn crc32fast_like(frame: &[u8]) -> u32 {
    // CRC-32 (IEEE), bitwise: an independent implementation of the frame checksum.
    let mut crc = 0xffff_ffffu32;
    for &b in frame[..32].iter().chain(&frame[HEADER_LEN..]) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn small_fixture() -> Fixture {
    let (mut f, _) = vector_fixture(64);
    f.steps.truncate(3);
    f.header = header("small", 3);
    f
}

#[test]
fn tampering_replay_reordering_and_truncation_are_caught() {
    let f = small_fixture();
    let bytes = write(&f, Party::P1).unwrap();
    let fr = frames(&bytes);
    assert!(fr.len() > 6);
    assert!(read(&f, Party::P1, &fr.concat()).is_ok());
    // Our bitwise CRC agrees with the frame format's.
    assert_eq!(crc32fast_like(&fr[3]), u32::from_le_bytes(fr[3][32..36].try_into().unwrap()));
    // The salt frame leads, in clear; a relay changing it (CRC fixed) changes the key: the hello
    // fails its tag.
    assert_eq!(fr[0][3], ditto_core::frame::FrameKind::Salt as u8);
    assert_eq!(fr[0][HEADER_LEN..], f.spec.generation.salt.0);
    let mut t = fr.clone();
    t[0][HEADER_LEN] ^= 1;
    fix_crc(&mut t[0]);
    assert_eq!(read(&f, Party::P1, &t.concat()).unwrap_err(), Error::Auth { seq: 1, step: 0 });

    // A flipped ciphertext bit: the CRC catches accidents...
    let mut t = fr.clone();
    t[4][HEADER_LEN + 3] ^= 0x10;
    assert!(matches!(read(&f, Party::P1, &t.concat()), Err(Error::Core(ditto_core::Error::FrameCrc { .. }))));
    // ...and the tag catches a relay that fixes the CRC.
    fix_crc(&mut t[4]);
    assert_eq!(read(&f, Party::P1, &t.concat()).unwrap_err(), Error::Auth { seq: 4, step: 0 });
    // Tampered header field (step index) with the CRC fixed: the tag binds the header.
    let mut t = fr.clone();
    t[5][24..28].copy_from_slice(&1u32.to_le_bytes());
    fix_crc(&mut t[5]);
    let step_of_5 = u32::from_le_bytes(fr[5][24..28].try_into().unwrap());
    assert_ne!(step_of_5, 1);
    assert!(matches!(read(&f, Party::P1, &t.concat()).unwrap_err(), Error::Auth { seq: 5, .. }));
    // Replayed, dropped and reordered frames.
    let seq_err = |e: Error| match e {
        Error::Core(ditto_core::Error::FrameSequence { expected, got }) => (expected, got),
        other => panic!("{other:?}"),
    };
    let mut t = fr.clone();
    t.insert(4, fr[3].clone());
    assert_eq!(seq_err(read(&f, Party::P1, &t.concat()).unwrap_err()), (4, 3));
    let mut t = fr.clone();
    t.remove(4);
    assert_eq!(seq_err(read(&f, Party::P1, &t.concat()).unwrap_err()), (4, 5));
    let mut t = fr.clone();
    t.swap(4, 5);
    assert_eq!(seq_err(read(&f, Party::P1, &t.concat()).unwrap_err()), (4, 5));
    // Cut anywhere: a truncation error, never a result.
    for cut in [0, 10, HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
        let e = read(&f, Party::P1, &bytes[..cut]).unwrap_err();
        assert!(matches!(e, Error::Core(ditto_core::Error::FrameTruncated { .. })), "cut {cut}: {e:?}");
    }
}

#[test]
fn wrong_key_party_session_or_plan_are_refused() {
    let f = small_fixture();
    let bytes = write(&f, Party::P1).unwrap();
    let hash = plan_hash(&f.header, &f.steps).unwrap();
    let mut buf = vec![0u8; 4096];
    let (sid, set) = (f.spec.generation.session, f.spec.generation.share_set);
    let open = |key: &PartyKey, sid: SessionId, p: Party, h: &[u8; 32], buf: &mut [u8]| {
        PartyStream::open(&bytes[..], key, sid, p, h, &set, buf).map(|_| ()).unwrap_err()
    };
    assert_eq!(open(&f.keys[0], sid, Party::P1, &hash, &mut buf), Error::Auth { seq: 1, step: 0 });
    assert_eq!(open(&f.keys[1], sid, Party::P0, &hash, &mut buf), Error::Auth { seq: 1, step: 0 });
    let other = SessionId([0xEE; 16]);
    assert!(matches!(
        open(&f.keys[1], other, Party::P1, &hash, &mut buf),
        Error::Core(ditto_core::Error::FrameSession { .. })
    ));
    // A relay rewriting the session id (and CRC) to replay into another session: the tag fails.
    let mut fr = frames(&bytes);
    for fm in &mut fr {
        fm[4..20].copy_from_slice(&other.0);
        fix_crc(fm);
    }
    let replayed = fr.concat();
    let e = PartyStream::open(&replayed[..], &f.keys[1], other, Party::P1, &hash, &set, &mut buf)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e, Error::Auth { seq: 1, step: 0 });
    // The party's plan differs from the dealer's.
    let mut h2 = hash;
    h2[0] ^= 1;
    assert!(matches!(open(&f.keys[1], sid, Party::P1, &h2, &mut buf), Error::PlanHash { .. }));
    let msg = open(&f.keys[1], sid, Party::P1, &h2, &mut buf).to_string();
    assert!(msg.contains("plan hash mismatch"), "{msg}");
    // The party holds another sharing than the one whose masks the stream carries.
    let mine = ShareSetId([0x77; 16]);
    let e = PartyStream::open(&bytes[..], &f.keys[1], sid, Party::P1, &hash, &mine, &mut buf)
        .map(|_| ())
        .unwrap_err();
    println!("stream of another sharing: {e}");
    assert_eq!(e, Error::ShareSet { expected: mine, got: set });
    // Steps must be read in order.
    let (mut s, _) =
        PartyStream::open(&bytes[..], &f.keys[1], sid, Party::P1, &hash, &set, &mut buf).unwrap();
    let mut out = vec![0u8; f.steps[1].p1_correction_bytes() as usize];
    assert!(matches!(s.read_step(1, &f.steps[1], &mut out, &mut buf), Err(Error::Plan { index: 1, .. })));
}

/// A plan source that answers its second pass with another step at `index` (a relay serving a
/// board the plan, changing a step between the board's hashing and dealing passes).
struct Relay<'a> {
    plan: SlicePlan<'a>,
    index: u32,
    swapped: Step,
    seen: u32,
}

impl PlanSource for Relay<'_> {
    fn header(&self) -> &PlanHeader {
        self.plan.header
    }
    fn step(&mut self, index: u32) -> Result<Step, Error> {
        self.seen += u32::from(index == self.index);
        if index == self.index && self.seen == 2 { Ok(self.swapped) } else { self.plan.step(index) }
    }
}

#[test]
fn a_step_changed_between_the_dealers_passes_is_caught() {
    let f = small_fixture();
    // The same op with another layer: the same number of correction bytes, other correlations
    // would be expected of them.
    let swapped = Step { layer: 9, ..f.steps[1] };
    assert_eq!(swapped.p1_correction_bytes(), f.steps[1].p1_correction_bytes());
    let mut src =
        Relay { plan: SlicePlan { header: &f.header, steps: &f.steps }, index: 1, swapped, seen: 0 };
    let mut bytes = Vec::new();
    let mut scratch = vec![0u8; scratch_len(f.spec.chunk)];
    write_stream(Party::P1, &mut src, &f.spec, &f.keys[1], &mut bytes, &mut scratch).unwrap();
    assert_eq!(src.seen, 2, "hashed once, dealt once");
    // The party opens its step 1 with its own step: the frames were dealt for another one.
    let e = read(&f, Party::P1, &bytes).unwrap_err();
    println!("step changed between the passes: {e}");
    assert!(matches!(e, Error::Auth { step: 1, .. }), "{e:?}");
    // A reader that took the dealt steps on trust still stops at the end frame, which carries
    // the hash of the plan as dealt.
    let mut dealt = f.steps.clone();
    dealt[1] = swapped;
    let e = read_as(&f, Party::P1, &bytes, &dealt).unwrap_err();
    assert!(matches!(e, Error::DealtPlan { .. }), "{e:?}");
    assert!(e.to_string().contains("changed between the dealer's two passes"), "{e}");
}

#[test]
fn unservable_plans_fail_before_any_byte() {
    let (mut f, _) = vector_fixture(DEFAULT_CHUNK);
    f.steps[4] = Step::bare(Op::TruncA { ring: RingId::Z32, len: 10, shift: 0 });
    let mut out = Vec::new();
    let mut scratch = vec![0u8; scratch_len(f.spec.chunk)];
    let mut plan = SlicePlan { header: &f.header, steps: &f.steps };
    let e = write_stream(Party::P1, &mut plan, &f.spec, &f.keys[1], &mut out, &mut scratch).unwrap_err();
    assert!(matches!(e, Error::Core(ditto_core::Error::BadStep { step: 4, .. })), "{e:?}");
    assert!(out.is_empty());
    f.steps[4] = Step::bare(Op::TruncA { ring: RingId::Z32, len: 10, shift: 8 });
    // Header claiming more steps than the plan holds.
    let h = header("short", f.steps.len() + 1);
    let mut plan = SlicePlan { header: &h, steps: &f.steps };
    let e = write_stream(Party::P0, &mut plan, &f.spec, &f.keys[0], &mut out, &mut scratch).unwrap_err();
    assert!(matches!(e, Error::Plan { .. }), "{e:?}");
    assert!(out.is_empty());
    // Wrong version.
    let mut h = header("v", f.steps.len());
    h.version = 99;
    let mut plan = SlicePlan { header: &h, steps: &f.steps };
    let e = write_stream(Party::P0, &mut plan, &f.spec, &f.keys[0], &mut out, &mut scratch).unwrap_err();
    assert_eq!(e, Error::Core(ditto_core::Error::Version { expected: PLAN_VERSION, got: 99 }));
    // A chunk the frame format cannot carry, or a scratch buffer too small.
    f.spec.chunk = 0;
    let mut plan = SlicePlan { header: &f.header, steps: &f.steps };
    assert!(matches!(
        write_stream(Party::P0, &mut plan, &f.spec, &f.keys[0], &mut out, &mut scratch),
        Err(Error::Chunk { .. })
    ));
    f.spec.chunk = (1 << 16) + 1;
    assert!(matches!(
        write_stream(Party::P0, &mut plan, &f.spec, &f.keys[0], &mut out, &mut scratch),
        Err(Error::Chunk { .. })
    ));
    assert!(out.is_empty());
}
