//! Frames: round trip, every header field corrupted in turn gives its own error, truncation,
//! replay and reordering are caught, and random bytes never panic.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]

use ditto_core::Error;
use ditto_core::frame::{FrameKind, FrameReader, FrameWriter, HEADER_LEN, MAGIC, MAX_PAYLOAD};
use ditto_core::plan::{Op, Step};
use ditto_core::prg::SessionId;
use ditto_core::ring::RingId;
use proptest::prelude::*;

const SID: SessionId = SessionId([0x42; 16]);

/// Three frames: a control message (step 0), corrections for step 0 and for step 2.
fn stream() -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new(), SID);
    let mut scratch = [0u8; 64];
    let step = Step::bare(Op::MulAA { ring: RingId::Z32, len: 9 });
    w.write_message(FrameKind::Control, 0, &step, &mut scratch).unwrap();
    w.write_frame(FrameKind::Corrections, 0, &[1, 2, 3, 4, 5]).unwrap();
    w.write_frame(FrameKind::Corrections, 2, &[9; 40]).unwrap();
    w.into_inner()
}

/// Length of the first (control) frame.
fn control_len() -> usize {
    let step = Step::bare(Op::MulAA { ring: RingId::Z32, len: 9 });
    HEADER_LEN + postcard::to_allocvec(&step).unwrap().len()
}

/// Reads all frames; returns the first error.
fn read_all(bytes: &[u8]) -> Result<Vec<(FrameKind, u32, Vec<u8>)>, Error> {
    let mut r = FrameReader::new(bytes, SID, 1024);
    let mut buf = [0u8; 1024];
    let mut out = Vec::new();
    while out.len() < 3 {
        let h = r.read_frame(&mut buf)?;
        out.push((h.kind, h.step, buf[..h.len as usize].to_vec()));
    }
    Ok(out)
}

#[test]
fn round_trip() {
    let bytes = stream();
    let frames = read_all(&bytes).unwrap();
    assert_eq!(frames[1], (FrameKind::Corrections, 0, vec![1, 2, 3, 4, 5]));
    assert_eq!(frames[2], (FrameKind::Corrections, 2, vec![9; 40]));
    let mut r = FrameReader::new(&bytes[..], SID, 1024);
    let mut buf = [0u8; 256];
    let (h, step): (_, Step) = r.read_message(FrameKind::Control, &mut buf).unwrap();
    assert_eq!((h.seq, h.step), (0, 0));
    assert_eq!(step, Step::bare(Op::MulAA { ring: RingId::Z32, len: 9 }));
    // The next frame is not a control message.
    let e = r.read_message::<Step>(FrameKind::Control, &mut buf).unwrap_err();
    assert_eq!(e, Error::FrameKindUnexpected { expected: FrameKind::Control, got: FrameKind::Corrections });
}

/// Corrupts the first frame's header field at `at` (little-endian u32 fields get `v`).
fn with(bytes: &[u8], at: usize, v: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + v.len()].copy_from_slice(v);
    b
}

#[test]
fn each_header_field_has_its_own_error() {
    let bytes = stream();
    let c = control_len();
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (with(&bytes, 0, &[0xAB, 0xCD]), Error::FrameMagic { expected: MAGIC, got: 0xABCD }),
        (
            with(&bytes, 2, &[7]),
            Error::Version { expected: u16::from(ditto_core::frame::FRAME_VERSION), got: 7 },
        ),
        (with(&bytes, 3, &[99]), Error::FrameKindUnknown(99)),
        (
            with(&bytes, 4, &[0x43]),
            Error::FrameSession { expected: SID.as_u128(), got: SID.as_u128() + (1u128 << 120) },
        ),
        (with(&bytes, 20, &5u32.to_le_bytes()), Error::FrameSequence { expected: 0, got: 5 }),
        (with(&bytes, 28, &5000u32.to_le_bytes()), Error::FrameOversized { limit: 1024, declared: 5000 }),
        (with(&bytes, 32, &[0, 0, 0, 0]), Error::FrameCrc { expected: 0, computed: crc_of_first(&bytes) }),
    ];
    for (i, (b, want)) in cases.into_iter().enumerate() {
        assert_eq!(read_all(&b).unwrap_err(), want, "case {i}");
    }
    // A step index that goes backwards: write it that way (valid CRC) and read.
    let mut w = FrameWriter::new(Vec::new(), SID);
    w.write_frame(FrameKind::Corrections, 4, &[1]).unwrap();
    w.write_frame(FrameKind::Corrections, 3, &[1]).unwrap();
    let b = w.into_inner();
    let mut r = FrameReader::new(&b[..], SID, 16);
    let mut buf = [0u8; 16];
    r.read_frame(&mut buf).unwrap();
    assert_eq!(r.read_frame(&mut buf).unwrap_err(), Error::FrameStep { previous: 4, got: 3 });
    // A payload byte flipped.
    let mut p = bytes.clone();
    p[c + HEADER_LEN + 2] ^= 1;
    assert!(matches!(read_all(&p).unwrap_err(), Error::FrameCrc { .. }));
    // A frame larger than the caller's buffer is refused before reading it.
    let mut small = [0u8; 4];
    let mut r2 = FrameReader::new(&bytes[..], SID, 1024);
    r2.read_frame(&mut [0u8; 64]).unwrap();
    assert_eq!(r2.read_frame(&mut small).unwrap_err(), Error::FrameOversized { limit: 4, declared: 5 });
}

fn crc_of_first(bytes: &[u8]) -> u32 {
    let len = u32::from_le_bytes(bytes[28..32].try_into().unwrap()) as usize;
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..32]);
    h.update(&bytes[HEADER_LEN..HEADER_LEN + len]);
    h.finalize()
}

#[test]
fn truncated_anywhere_is_a_truncation_error() {
    let bytes = stream();
    for cut in 0..bytes.len() {
        let e = read_all(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, Error::FrameTruncated { .. }), "cut at {cut}: {e:?}");
    }
}

#[test]
fn replayed_and_reordered_frames_are_caught() {
    let bytes = stream();
    let c = control_len();
    let f1 = &bytes[c..c + HEADER_LEN + 5];
    let f2 = &bytes[c + HEADER_LEN + 5..];
    // Replay of frame 1 in place of frame 2.
    let replay = [&bytes[..c], f1, f1].concat();
    assert_eq!(read_all(&replay).unwrap_err(), Error::FrameSequence { expected: 2, got: 1 });
    // Frames 1 and 2 swapped.
    let swapped = [&bytes[..c], f2, f1].concat();
    assert_eq!(read_all(&swapped).unwrap_err(), Error::FrameSequence { expected: 1, got: 2 });
    // Wrong session altogether.
    let mut r = FrameReader::new(&bytes[..], SessionId([0; 16]), 1024);
    assert!(matches!(r.read_frame(&mut [0u8; 64]).unwrap_err(), Error::FrameSession { .. }));
}

#[test]
fn writer_refuses_oversized_payload() {
    let mut w = FrameWriter::new(Vec::new(), SID);
    let big = vec![0u8; MAX_PAYLOAD + 1];
    assert_eq!(
        w.write_frame(FrameKind::Corrections, 0, &big).unwrap_err(),
        Error::FrameOversized { limit: MAX_PAYLOAD, declared: MAX_PAYLOAD + 1 }
    );
    assert!(w.into_inner().is_empty(), "nothing written");
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), keep_magic: bool) {
        let mut b = bytes;
        if keep_magic && b.len() >= 4 {
            b[0..2].copy_from_slice(&MAGIC.to_be_bytes());
            b[2] = 1;
            b[3] = 3;
        }
        let mut r = FrameReader::new(&b[..], SID, 256);
        let mut buf = [0u8; 256];
        for _ in 0..4 {
            if r.read_frame(&mut buf).is_err() {
                break;
            }
        }
        let _ = r.read_message::<Step>(FrameKind::Control, &mut buf);
    }

    #[test]
    fn random_payloads_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6)) {
        let mut w = FrameWriter::new(Vec::new(), SID);
        for (i, p) in payloads.iter().enumerate() {
            w.write_frame(FrameKind::Corrections, i as u32, p).unwrap();
        }
        let b = w.into_inner();
        let mut r = FrameReader::new(&b[..], SID, 300);
        let mut buf = [0u8; 300];
        for (i, p) in payloads.iter().enumerate() {
            let h = r.read_frame(&mut buf).unwrap();
            prop_assert_eq!(h.step, i as u32);
            prop_assert_eq!(&buf[..h.len as usize], &p[..]);
        }
        let end = r.read_frame(&mut buf);
        prop_assert_eq!(end, Err(Error::FrameTruncated { part: "header" }));
    }
}
