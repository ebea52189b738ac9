//! The appliance's serial protocol, board and host over an in-memory byte pipe: the streams the
//! board sends (pulling the plan step by step) are byte-identical to the host dealer's for the
//! same seeds, session, sharing, salt and plan; each generation has its own salt; a session is
//! dealt once per master seed; a malformed request is answered with a failure, not a hang.
#![cfg(feature = "std")]

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId, ShareSetId};
use ditto_dealer::board::{self, BoardDealer, ServedSessions};
use ditto_dealer::host::Io;
use ditto_dealer::keys::{DealerSeeds, Generation, PartyKey, RelayKey, Salt};
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};

fn seeds() -> DealerSeeds {
    DealerSeeds::new(Seed::from_bytes([0x31; 16]), Seed::from_bytes([0x32; 16]))
}

fn keys() -> [PartyKey; 2] {
    [PartyKey::from_bytes([0x40; 16]), PartyKey::from_bytes([0x41; 16])]
}

fn relay() -> RelayKey {
    RelayKey::from_bytes([0x42; 16])
}

const SET: ShareSetId = ShareSetId([0x55; 16]);

type Results = Vec<Result<(), ditto_dealer::Error>>;

/// A board serving requests on `link` (one master seed, one served-session set) until `done`
/// says so of the results so far.
fn board_until(
    link: UnixStream,
    done: impl Fn(&Results) -> bool + Send + 'static,
) -> std::thread::JoinHandle<Results> {
    std::thread::spawn(move || {
        let link = RefCell::new(Io(link));
        let mut scratch = vec![0u8; scratch_len(1024)];
        let (seeds, keys, relay) = (seeds(), keys(), relay());
        let mut salts = seeds.salts();
        let mut served = ServedSessions::<4>::default();
        let mut d =
            BoardDealer { seeds: &seeds, keys: &keys, relay: &relay, salts: &mut salts, served: &mut served };
        let mut results = Vec::new();
        while !done(&results) {
            results.push(board::serve(&link, &mut d, &mut scratch));
        }
        results
    })
}

/// A board serving `requests` requests on `link`.
fn board_thread(link: UnixStream, requests: usize) -> std::thread::JoinHandle<Results> {
    board_until(link, move |r| r.len() == requests)
}

/// The salt at the head of a sealed stream (its first frame, in clear).
fn salt_of(stream: &[u8]) -> Salt {
    assert_eq!(stream[3], ditto_core::frame::FrameKind::Salt as u8);
    Salt(stream[36..52].try_into().unwrap())
}

#[test]
fn board_streams_equal_the_host_dealer_streams() {
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq4.plan"))
        .unwrap();
    let session = SessionId([0x77; 16]);
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let b = board_thread(dev, 1);
    let got = board::request(&mut host, &relay(), session, SET, &plan, 1024).unwrap();
    assert!(b.join().unwrap().into_iter().all(|r| r.is_ok()));
    // Both streams of a generation carry its salt, the first of the board's salt source.
    let salt = salt_of(&got[0]);
    assert_eq!(salt_of(&got[1]), salt);
    assert_eq!(salt, seeds().salts().next_salt());
    let mut spec = SessionSpec::new(Generation { session, share_set: SET, salt }, &seeds());
    spec.chunk = 1024;
    for (i, p) in [Party::P0, Party::P1].into_iter().enumerate() {
        let mut want = Vec::new();
        let mut scratch = vec![0u8; scratch_len(1024)];
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        write_stream(p, &mut src, &spec, &keys()[i], Io(&mut want), &mut scratch).unwrap();
        assert_eq!(got[i].len(), want.len(), "{p:?}");
        assert!(got[i] == want, "{p:?}: the board's stream differs from the host dealer's");
    }
    // Salt frame (36 + 16), then hello (with the share set), seeds and end (with the dealt hash).
    assert_eq!(got[0].len(), 52 + 228 + 16 + 32, "P0 gets its salt and sealed seeds only");
}

#[test]
fn a_board_deals_a_session_once_and_every_generation_under_a_new_salt() {
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq2.plan"))
        .unwrap();
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let b = board_thread(dev, 3);
    let a = board::request(&mut host, &relay(), SessionId([1; 16]), SET, &plan, 1024).unwrap();
    // The same session again (a replayed request) is refused, whatever the sharing asked for.
    let e = board::request(&mut host, &relay(), SessionId([1; 16]), ShareSetId([9; 16]), &plan, 1024)
        .unwrap_err();
    println!("replayed board request: {e}");
    assert!(e.to_string().contains("already served"), "{e}");
    let c = board::request(&mut host, &relay(), SessionId([2; 16]), SET, &plan, 1024).unwrap();
    let r = b.join().unwrap();
    assert!(r[0].is_ok() && r[2].is_ok());
    assert_eq!(r[1], Err(ditto_dealer::Error::SessionServed { session: u128::from_be_bytes([1; 16]) }));
    assert_ne!(salt_of(&a[0]), salt_of(&c[0]), "each generation draws a new salt");
}

#[test]
fn the_served_set_refuses_repeats_and_reports_when_full() {
    let mut s = ServedSessions::<2>::default();
    s.claim(&SessionId([1; 16])).unwrap();
    assert!(s.claim(&SessionId([1; 16])).is_err());
    s.claim(&SessionId([2; 16])).unwrap();
    assert!(s.is_full());
    // Full: nothing more is accepted (the board draws a new master seed and clears the set).
    assert!(s.claim(&SessionId([3; 16])).is_err());
    s.clear();
    s.claim(&SessionId([3; 16])).unwrap();
}

/// Reads a FAIL frame from the board: its reason.
fn fail_reason(host: &mut UnixStream) -> String {
    use std::io::Read;
    let mut h = [0u8; 5];
    host.read_exact(&mut h).unwrap();
    assert_eq!(h[0], board::FAIL);
    let mut reason = vec![0u8; u32::from_le_bytes(h[1..].try_into().unwrap()) as usize];
    host.read_exact(&mut reason).unwrap();
    String::from_utf8(reason).unwrap()
}

#[test]
fn a_request_not_tagged_under_the_relay_key_is_refused_before_anything_is_claimed() {
    use std::io::Write;
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq2.plan"))
        .unwrap();
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let b = board_thread(dev, 4);
    let session = SessionId([5; 16]);
    // Tagged under another relay's key.
    let e =
        board::request(&mut host, &RelayKey::from_bytes([0x43; 16]), session, SET, &plan, 1024).unwrap_err();
    assert!(e.to_string().contains("not authenticated"), "{e}");
    // Tagged under the right key, then a byte changed: the share set, then the plan header.
    let header = postcard::to_allocvec(&plan.header).unwrap();
    for at in [21, 44] {
        let mut req = board::encode_request(&relay(), session, SET, &header, 1024).unwrap();
        req[at] ^= 1;
        host.write_all(&req).unwrap();
        let reason = fail_reason(&mut host);
        assert!(reason.starts_with("request not authenticated"), "byte {at}: {reason}");
    }
    // The relay's own request for the same session is served: nothing was claimed, no salt drawn.
    let got = board::request(&mut host, &relay(), session, SET, &plan, 1024).unwrap();
    let r = b.join().unwrap();
    assert_eq!(
        r[..3],
        [
            Err(ditto_dealer::Error::NotAuthenticated),
            Err(ditto_dealer::Error::NotAuthenticated),
            Err(ditto_dealer::Error::NotAuthenticated)
        ]
    );
    assert!(r[3].is_ok());
    let salt = salt_of(&got[0]);
    assert_eq!(salt, seeds().salts().next_salt(), "the refused requests drew no salt");
    assert!(got == host_streams(&plan, Generation { session, share_set: SET, salt }));
}

/// The host dealer's two streams for `generation` (chunk 1024).
fn host_streams(plan: &ditto_core::plan::Plan, generation: Generation) -> [Vec<u8>; 2] {
    let mut spec = SessionSpec::new(generation, &seeds());
    spec.chunk = 1024;
    [Party::P0, Party::P1].map(|p| {
        let mut want = Vec::new();
        let mut scratch = vec![0u8; scratch_len(1024)];
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        write_stream(p, &mut src, &spec, &keys()[p.index()], Io(&mut want), &mut scratch).unwrap();
        want
    })
}

#[test]
fn noise_and_a_request_cut_short_are_skipped_and_the_next_request_served() {
    use std::io::Write;
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq2.plan"))
        .unwrap();
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The board's link times out between bytes (as a board's UART does), here after 300 ms.
    dev.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let b = board_until(dev, |r| r.len() == 40 || r.last().is_some_and(Result::is_ok));
    // Line noise, then a request cut short (magic, version, part of the session id), then silence.
    host.write_all(b"\x00\xffnoise DTF").unwrap();
    host.write_all(&[&board::MAGIC[..], &[board::VERSION], &[7; 9]].concat()).unwrap();
    // The cut request fails on the time-out and is answered with FAIL; the noise before it is not.
    fail_reason(&mut host);
    // The next request is served, and its streams are the host dealer's.
    std::thread::sleep(Duration::from_millis(500));
    let session = SessionId([0x33; 16]);
    let got = board::request(&mut host, &relay(), session, SET, &plan, 1024).unwrap();
    let r = b.join().unwrap();
    assert!(r.last().is_some_and(Result::is_ok), "{r:?}");
    assert!(
        r.iter().any(|e| matches!(e, Err(ditto_dealer::Error::Core(_)))),
        "the cut request failed: {r:?}"
    );
    assert!(
        r.iter().all(|e| !matches!(e, Err(ditto_dealer::Error::NoRequest { skipped }) if *skipped > 0)),
        "{r:?}"
    );
    let salt = salt_of(&got[0]);
    assert_eq!(salt, seeds().salts().next_salt(), "the cut request drew no salt");
    assert!(got == host_streams(&plan, Generation { session, share_set: SET, salt }));
}

#[test]
fn noise_alone_is_discarded_unanswered_and_a_lost_board_is_an_error() {
    use std::io::{Read, Write};
    let (mut host, dev) = UnixStream::pair().unwrap();
    dev.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let b = board_thread(dev, 1);
    host.write_all(b"NOPE-this-is-not-a-request-------------------").unwrap();
    let r = b.join().unwrap();
    assert_eq!(r[0], Err(ditto_dealer::Error::NoRequest { skipped: 45 }));
    // Nothing was written back before the board let go of the link.
    let mut back = Vec::new();
    host.read_to_end(&mut back).unwrap();
    assert!(back.is_empty(), "{back:?}");
    // A board that goes away mid-request is an error for the host, not a hang.
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq4.plan"))
        .unwrap();
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    drop(dev);
    assert!(board::request(&mut host, &relay(), SessionId([1; 16]), SET, &plan, 1024).is_err());
}
