//! The appliance's serial protocol, board and host over an in-memory byte pipe: the streams the
//! board sends (pulling the plan step by step) are byte-identical to the host dealer's for the
//! same seeds, session and plan; a malformed request is answered with a failure, not a hang.
#![cfg(feature = "std")]

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{Seed, SessionId};
use ditto_dealer::board;
use ditto_dealer::host::Io;
use ditto_dealer::keys::{DealerSeeds, PartyKey};
use ditto_dealer::plans;
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};

fn seeds() -> DealerSeeds {
    DealerSeeds::new(Seed::from_bytes([0x31; 16]), Seed::from_bytes([0x32; 16]))
}

fn keys() -> [PartyKey; 2] {
    [PartyKey::from_bytes([0x40; 16]), PartyKey::from_bytes([0x41; 16])]
}

fn board_thread(link: UnixStream) -> std::thread::JoinHandle<Result<(), ditto_dealer::Error>> {
    std::thread::spawn(move || {
        let link = RefCell::new(Io(link));
        let mut scratch = vec![0u8; scratch_len(1024)];
        board::serve(&link, &seeds(), &keys(), &mut scratch)
    })
}

#[test]
fn board_streams_equal_the_host_dealer_streams() {
    let plan = plans::plan("bert-tiny", &plans::BERT_TINY, 4, 0).unwrap();
    let session = SessionId([0x77; 16]);
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let b = board_thread(dev);
    let got = board::request(&mut host, session, &plan, 1024).unwrap();
    b.join().unwrap().unwrap();
    let mut spec = SessionSpec::new(session, &seeds());
    spec.chunk = 1024;
    for (i, p) in [Party::P0, Party::P1].into_iter().enumerate() {
        let mut want = Vec::new();
        let mut scratch = vec![0u8; scratch_len(1024)];
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        write_stream(p, &mut src, &spec, &keys()[i], Io(&mut want), &mut scratch).unwrap();
        assert_eq!(got[i].len(), want.len(), "{p:?}");
        assert!(got[i] == want, "{p:?}: the board's stream differs from the host dealer's");
    }
    assert_eq!(got[0].len(), 228, "P0 gets its sealed seeds only");
}

#[test]
fn a_malformed_request_is_refused_not_hung() {
    use std::io::{Read, Write};
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let b = board_thread(dev);
    host.write_all(b"NOPE-this-is-not-a-request-----").unwrap();
    let mut h = [0u8; 5];
    host.read_exact(&mut h).unwrap();
    assert_eq!(h[0], board::FAIL);
    assert!(b.join().unwrap().is_err());
    // A board that goes away mid-request is an error for the host, not a hang.
    let plan = plans::plan("bert-tiny", &plans::BERT_TINY, 4, 0).unwrap();
    let (mut host, dev) = UnixStream::pair().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    drop(dev);
    assert!(board::request(&mut host, SessionId([1; 16]), &plan, 1024).is_err());
}
