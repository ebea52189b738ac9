//! Rings, fixed point and the PRG against independent references (i128 / f64 arithmetic,
//! the FIPS-197 AES known answer, sequential reads).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]

use ditto_core::fixed::{decode, encode, encode_bounded, encode_f32};
use ditto_core::prg::{Prg, Purpose, Seed, SessionId, ShareSetId, model_share_seed};
use ditto_core::ring::{decode_slice, encode_slice, lift, lift_signed, reduce};
use ditto_core::{Error, Party, Ring};
use proptest::prelude::*;

proptest! {
    #[test]
    fn ring_ops_match_i128(x: u64, y: u64, k in 0u32..63) {
        let m64 = |v: i128| (v & 0xffff_ffff_ffff_ffff) as u64;
        prop_assert_eq!(x.add(y), m64(i128::from(x) + i128::from(y)));
        prop_assert_eq!(x.sub(y), m64(i128::from(x) - i128::from(y)));
        prop_assert_eq!(x.mul(y), (u128::from(x) * u128::from(y)) as u64);
        prop_assert_eq!(x.neg(), m64(-i128::from(x)));
        prop_assert_eq!(x.shr(k), x / (1u64 << k));
        prop_assert_eq!(x.msb(), u32::from(x >= 1 << 63));
        let (a, b) = (x as u32, y as u32);
        let m32 = |v: i128| (v & 0xffff_ffff) as u32;
        prop_assert_eq!(a.mul(b), m32(i128::from(a) * i128::from(b)));
        prop_assert_eq!(a.sub(b), m32(i128::from(a) - i128::from(b)));
        prop_assert_eq!(a.to_i64(), if a >= 1 << 31 { i64::from(a) - (1 << 32) } else { i64::from(a) });
        prop_assert_eq!(lift_signed::<u32, u64>(a).to_i64(), a.to_i64());
        prop_assert_eq!(lift::<u32, u64>(a), u64::from(a));
        prop_assert_eq!(reduce::<u64, u32>(x), (x & 0xffff_ffff) as u32);
        let s = x as u16;
        prop_assert_eq!(s.mul(y as u16), ((x as u128 * y as u128) & 0xffff) as u16);
    }

    #[test]
    fn fixed_round_trip(x in -1.0e6f64..1.0e6, f in 0u32..=12) {
        let v: u32 = match encode(x, f) { Ok(v) => v, Err(_) => return Ok(()) };
        // Round to nearest: the error is at most half an ulp.
        let back = decode(v, f);
        prop_assert!((back - x).abs() <= 0.5 / f64::from(1u32 << f) + 1e-12);
        let w: u64 = encode(x, f + 18).unwrap();
        prop_assert!((decode(w, f + 18) - x).abs() <= 0.5 / (1u64 << (f + 18)) as f64 + 1e-9);
    }

    #[test]
    fn encode_slice_round_trip(xs in proptest::collection::vec(any::<u64>(), 0..40)) {
        let mut bytes = vec![0u8; xs.len() * 8];
        encode_slice(&xs, &mut bytes).unwrap();
        let mut back = vec![0u64; xs.len()];
        decode_slice(&bytes, &mut back).unwrap();
        prop_assert_eq!(back, xs);
    }
}

#[test]
fn fixed_point_edges() {
    // Exactly representable extremes of Z_2^32 with f = 8: [-2^23, 2^23 - 2^-8].
    assert_eq!(encode::<u32>(-8388608.0, 8).unwrap(), 0x8000_0000);
    assert_eq!(encode::<u32>(8388608.0 - 1.0 / 256.0, 8).unwrap(), 0x7fff_ffff);
    let oor = Error::FixedOutOfRange { bits: 32, frac: 8 };
    assert_eq!(encode::<u32>(8388608.0, 8), Err(oor.clone()));
    // Rounds to 2^31 after rounding half away from zero.
    assert_eq!(encode::<u32>(8388608.0 - 1.0 / 512.0, 8), Err(oor.clone()));
    assert_eq!(encode::<u32>(-8388608.0 - 1.0 / 256.0, 8), Err(oor));
    assert_eq!(encode::<u32>(f64::NAN, 8), Err(Error::FixedNotFinite));
    assert_eq!(encode::<u32>(f64::INFINITY, 8), Err(Error::FixedNotFinite));
    assert_eq!(encode::<u32>(1.0, 31), Err(Error::BadScale { bits: 32, frac: 31 }));
    // Ties round away from zero; -0.5 ulp -> -1.
    assert_eq!(encode::<u32>(1.5 / 256.0, 8).unwrap(), 2);
    assert_eq!(encode::<u32>(-0.5 / 256.0, 8).unwrap(), u32::MAX);
    assert_eq!(encode::<u32>(0.49 / 256.0, 8).unwrap(), 0);
    assert_eq!(encode_f32::<u64>(-2.75f32, 18).unwrap().to_i64(), -2 * 262144 - 196608);
    assert_eq!(decode::<u64>(u64::MAX, 18), -1.0 / 262144.0);
    assert_eq!(encode::<u64>(-4.0, 60).unwrap(), 0xc000_0000_0000_0000);
    assert!(encode::<u64>(2.0, 62).is_err());
    // Bounded encoding: the truncation range |v| < 2^30 in Z_2^32.
    assert!(encode_bounded::<u32>(4194303.99, 8, 30).is_ok());
    assert!(encode_bounded::<u32>(4194304.0, 8, 30).is_err());
}

#[test]
fn aes_known_answer() {
    // FIPS-197 C.1: key 000102..0f, plaintext 00112233..ff -> 69c4e0d8...; our counter block j
    // is j as 16 little-endian bytes, so plaintext 00112233..ff is counter j below.
    let key: [u8; 16] = core::array::from_fn(|i| i as u8);
    let pt: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
    let mut prg = Prg::with_counter(&key, u128::from_le_bytes(pt));
    let mut out = [0u8; 16];
    prg.fill(&mut out);
    assert_eq!(
        out,
        [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a]
    );
    // Key 0, block 0 -> 66e94bd4ef8a2c3b884cfa59ca342b2e (the classic all-zero AES-128 vector).
    let mut prg = Prg::with_counter(&[0; 16], 0);
    prg.fill(&mut out);
    assert_eq!(
        out,
        [0x66, 0xe9, 0x4b, 0xd4, 0xef, 0x8a, 0x2c, 0x3b, 0x88, 0x4c, 0xfa, 0x59, 0xca, 0x34, 0x2b, 0x2e]
    );
}

fn stream() -> Prg {
    Prg::for_stream(&Seed::from_bytes([1; 16]), &SessionId([2; 16]), 5, Purpose::A)
}

#[test]
fn prg_seek_and_chunking_agree_with_one_sequential_read() {
    let mut all = vec![0u8; 5000];
    stream().fill(&mut all);
    // Arbitrary chunk sizes.
    let mut p = stream();
    let mut got = Vec::new();
    for n in [1usize, 3, 16, 17, 255, 256, 257, 1000, 3].iter().cycle().take(40) {
        if got.len() >= all.len() {
            break;
        }
        let mut b = vec![0u8; (*n).min(all.len() - got.len())];
        p.fill(&mut b);
        got.extend_from_slice(&b);
    }
    assert_eq!(got, all);
    // Seeking anywhere.
    for off in [0usize, 1, 15, 16, 17, 255, 256, 257, 4095, 4999] {
        let mut p = stream();
        p.seek(off as u128);
        assert_eq!(p.position(), off as u128);
        let mut b = vec![0u8; all.len() - off];
        p.fill(&mut b);
        assert_eq!(b, all[off..]);
    }
    // Ring elements are little-endian words of the keystream; seek_elem counts elements.
    let mut p = stream();
    p.seek_elem::<u32>(100);
    assert_eq!(p.next_elem::<u32>(), u32::from_le_bytes(all[400..404].try_into().unwrap()));
    let mut v = vec![0u64; 300];
    stream().fill_ring(&mut v);
    assert_eq!(v[299], u64::from_le_bytes(all[2392..2400].try_into().unwrap()));
}

#[test]
fn prg_streams_are_domain_separated() {
    let first = |p: &mut Prg| {
        let mut b = [0u8; 32];
        p.fill(&mut b);
        b
    };
    let (s1, s2) = (Seed::from_bytes([1; 16]), Seed::from_bytes([3; 16]));
    let (id1, id2) = (SessionId([2; 16]), SessionId([4; 16]));
    let base = first(&mut Prg::for_stream(&s1, &id1, 5, Purpose::A));
    for other in [
        Prg::for_stream(&s2, &id1, 5, Purpose::A),
        Prg::for_stream(&s1, &id2, 5, Purpose::A),
        Prg::for_stream(&s1, &id1, 6, Purpose::A),
        Prg::for_stream(&s1, &id1, 5, Purpose::B),
        Prg::for_model(&s1, 5),
    ] {
        let mut o = other;
        assert_ne!(first(&mut o), base);
    }
    // Within one step every component has its own stream: no two purposes share a keystream
    // (the radix comparison and the fused truncation draw up to nine of them in one step).
    use Purpose::*;
    let all = [
        A, B, C, R, RHigh, Msb, RBits, AndA, AndB, AndC, DaBitB, DaBitA, OneHot, WireMask, MaskProd, FuseSq,
        FuseMul, FusePair, CrossMask,
    ];
    let streams: Vec<[u8; 32]> = all.iter().map(|&q| first(&mut Prg::for_stream(&s1, &id1, 5, q))).collect();
    for i in 0..streams.len() {
        for j in i + 1..streams.len() {
            assert_ne!(streams[i], streams[j], "{:?} and {:?} share a stream", all[i], all[j]);
        }
    }
    // A model share seed binds the model-mask seed, the sharing and the party: changing any one
    // of them changes the seed (and so every weight mask expanded from it).
    let m = Seed::from_bytes([7; 16]);
    let (a, b) = (ShareSetId([8; 16]), ShareSetId([9; 16]));
    let base = model_share_seed(&m, &a, Party::P0);
    for other in [
        model_share_seed(&m, &a, Party::P1),
        model_share_seed(&m, &b, Party::P0),
        model_share_seed(&Seed::from_bytes([6; 16]), &a, Party::P0),
    ] {
        assert_ne!(other, base);
    }
    // derive_salted binds the salt: two generations of one session never share a seed.
    let (sid, label) = (SessionId([2; 16]), 0x4145);
    let salted = |salt: u8| m.derive_salted(&sid, &[salt; 16], label);
    assert_ne!(salted(1), salted(2));
    assert_ne!(salted(1), m.derive(&sid, label));
}

#[test]
fn prg_implements_rand_core() {
    use rand_core::Rng;
    let mut p = stream();
    let mut all = [0u8; 12];
    stream().fill(&mut all);
    assert_eq!(p.next_u32(), u32::from_le_bytes(all[..4].try_into().unwrap()));
    assert_eq!(p.next_u64(), u64::from_le_bytes(all[4..12].try_into().unwrap()));
    let s = Seed::random(&mut p);
    assert_ne!(s.expose(), &[0u8; 16]);
}

#[test]
fn secrets_never_print() {
    let s = Seed::from_bytes([0xab; 16]);
    let d = format!("{s:?}");
    assert!(!d.contains("ab") && !d.contains("171"), "{d}");
    let p = stream();
    let d = format!("{p:?}");
    assert!(d.starts_with("Prg") && !d.contains("key"), "{d}");
}
