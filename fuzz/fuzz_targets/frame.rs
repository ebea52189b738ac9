//! Correlation frames as a party reads them: the frame layer (header, length limit, checksum)
//! over arbitrary bytes, and a party opening an arbitrary "dealer stream".
#![no_main]

use ditto_core::Party;
use ditto_core::frame::FrameReader;
use ditto_core::prg::SessionId;
use ditto_dealer::host::Io;
use ditto_dealer::keys::PartyKey;
use ditto_dealer::party::PartyStream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let session = SessionId([7; 16]);
    let mut buf = vec![0u8; 4096 + 64];
    let mut r = FrameReader::new(Io(data), session, 4096);
    for _ in 0..64 {
        if r.read_frame(&mut buf).is_err() {
            break;
        }
    }
    let key = PartyKey::from_bytes([1; 16]);
    for party in [Party::P0, Party::P1] {
        if let Ok((mut s, _)) = PartyStream::open(Io(data), &key, session, party, &[3; 32], &mut buf) {
            let mut out = vec![0u8; 256];
            let _ = s.read_step(0, &mut out, &mut buf);
        }
    }
});
