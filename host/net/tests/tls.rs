//! TLS links with pinned identities: pinned peers talk and nothing readable crosses the wire; a
//! peer with any other identity is refused, naming the expected and presented fingerprints; the
//! identity and pin files round-trip and refuse malformed text; the blocking variant (the
//! dealer's links) behaves the same.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_net::NetError;
use ditto_net::link::{Config, Hello, Link};
use ditto_net::tls::{Fingerprint, Identity, Pins, Security};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const C: Config = Config { timeout: Duration::from_secs(5) };

/// A loopback relay between a listener and `to`, recording every byte it forwards; with `tamper`, it flips one bit in the first large chunk P1 sends (its 4 KiB
/// message; the handshake's flights are far smaller).
async fn relay_with(to: String, tamper: bool) -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = Arc::clone(&seen);
    tokio::spawn(async move {
        let (a, _) = l.accept().await.unwrap();
        let b = tokio::net::TcpStream::connect(to).await.unwrap();
        let (mut ar, mut aw) = a.into_split();
        let (mut br, mut bw) = b.into_split();
        let r2 = Arc::clone(&rec);
        let up = async move {
            let mut buf = vec![0u8; 1 << 16];
            let mut flipped = false;
            while let Ok(n @ 1..) = ar.read(&mut buf).await {
                if tamper && !flipped && n >= 1500 {
                    buf[n - 1] ^= 1;
                    flipped = true;
                }
                rec.lock().unwrap().extend_from_slice(&buf[..n]);
                if bw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n @ 1..) = br.read(&mut buf).await {
                r2.lock().unwrap().extend_from_slice(&buf[..n]);
                if aw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(up, down);
    });
    (addr, seen)
}

/// P0 and P1 over a recording relay; returns both results of a handshake and one exchange of
/// a recognisable message, and what crossed the wire.
async fn run(s0: Security, s1: Security) -> (Result<Vec<u8>, NetError>, Result<Vec<u8>, NetError>, Vec<u8>) {
    run_with(s0, s1, false).await
}

async fn run_with(
    s0: Security,
    s1: Security,
    tamper: bool,
) -> (Result<Vec<u8>, NetError>, Result<Vec<u8>, NetError>, Vec<u8>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (via, seen) = relay_with(l.local_addr().unwrap().to_string(), tamper).await;
    let msg: Vec<u8> = b"PLAINTEXT-MARKER-".iter().copied().cycle().take(4096).collect();
    let side = async |link: Result<Link, NetError>, p: Party| -> Result<Vec<u8>, NetError> {
        let mut link = link?;
        link.handshake(&Hello::new(p, [1; 32], SessionId([2; 16]), ShareSetId([4; 16]))).await?;
        link.exchange(0, &msg).await
    };
    let (a, b) =
        tokio::join!(async { side(Link::accept(&l, Party::P0, C, &s0).await, Party::P0).await }, async {
            side(Link::connect(&via, Party::P1, C, &s1).await, Party::P1).await
        });
    let wire = seen.lock().unwrap().clone();
    (a, b, wire)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn pinned_peers_talk_and_the_wire_carries_no_plaintext() {
    let s = Security::ephemeral(&["p0", "p1"]).unwrap();
    let (a, b, wire) = run(s[0].clone(), s[1].clone()).await;
    assert_eq!(a.unwrap().len(), 4096);
    assert_eq!(b.unwrap().len(), 4096);
    assert!(wire.len() > 2 * 4096, "{}", wire.len());
    assert!(!contains(&wire, b"PLAINTEXT-MARKER"), "plaintext on a TLS link");
    // The same over plain TCP does show it: the relay really records the traffic.
    let (a, b, wire) = run(Security::Plaintext, Security::Plaintext).await;
    assert!(a.is_ok() && b.is_ok());
    assert!(contains(&wire, b"PLAINTEXT-MARKER"));
}

#[tokio::test]
async fn a_changed_byte_on_the_wire_fails_authentication() {
    let s = Security::ephemeral(&["p0", "p1"]).unwrap();
    let (a, _, _) = run_with(s[0].clone(), s[1].clone(), true).await;
    let e = a.map(|m| m.len()).unwrap_err().to_string();
    assert!(e.contains("failed authentication"), "{e}");
}

#[tokio::test]
async fn a_peer_with_another_identity_is_refused_naming_both_fingerprints() {
    let good = Security::ephemeral(&["p0", "p1"]).unwrap();
    let fp = |s: &Security| s.fingerprint().unwrap();
    // An impostor P1: its own key, pinning the real P0.
    let fake = Identity::generate().unwrap();
    let fake_fp = fake.fingerprint();
    let mut pins = Pins::default();
    pins.pin("p0", fp(&good[0]));
    let (a, b, _) = run(good[0].clone(), Security::tls(fake, pins)).await;
    let e = a.unwrap_err().to_string();
    assert!(e.contains(&fake_fp.to_string()) && e.contains(&fp(&good[1]).to_string()), "{e}");
    assert!(e.contains("refused"), "{e}");
    assert!(b.is_err());
    // And the other way round: a P1 pinning another P0 refuses the real one.
    let other = Identity::generate().unwrap();
    let mut pins = Pins::default();
    pins.pin("p0", other.fingerprint());
    let (a, b, _) = run(good[0].clone(), Security::tls(Identity::generate().unwrap(), pins)).await;
    let e = b.unwrap_err().to_string();
    assert!(e.contains(&other.fingerprint().to_string()) && e.contains(&fp(&good[0]).to_string()), "{e}");
    assert!(a.is_err());
}

fn fp_of(p: &Pins, role: &str) -> Fingerprint {
    p.to_text().lines().find_map(|l| l.strip_prefix(&format!("{role} "))).unwrap().parse().unwrap()
}

#[test]
fn identity_and_pin_files_round_trip_and_refuse_malformed_text() {
    let id = Identity::generate().unwrap();
    let pem = id.to_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----") && pem.contains("PRIVATE KEY"));
    let back = Identity::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(back.fingerprint(), id.fingerprint());
    assert!(!format!("{id:?}").contains(&pem[40..80]));
    assert!(Identity::from_pem(b"garbage").is_err());
    let mut pins = Pins::default();
    pins.pin("p1", id.fingerprint());
    let text = pins.to_text();
    assert_eq!(fp_of(&Pins::parse(&text).unwrap(), "p1"), id.fingerprint());
    assert!(Pins::parse("# comment\n\n").unwrap().to_text().is_empty());
    for bad in ["p1", "p1 abc", "p1 00 extra", &format!("p1 {}", "zz".repeat(32))] {
        assert!(matches!(Pins::parse(bad), Err(NetError::Identity(_))), "{bad}");
    }
}

#[test]
fn blocking_links_pin_too() {
    let s = Security::ephemeral(&["dealer", "p0", "p1"]).unwrap();
    // A stranger that trusts the real dealer but is neither pinned party.
    let mut pins = Pins::default();
    pins.pin("dealer", s[0].fingerprint().unwrap());
    let stranger = Security::tls(Identity::generate().unwrap(), pins);
    for (client, want_ok) in [(s[1].clone(), true), (stranger, false)] {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = s[0].clone();
        let h = std::thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (mut st, role) = server.accept_blocking(sock, &["p0", "p1"])?;
            let mut b = [0u8; 5];
            st.read_exact(&mut b).map_err(|e| NetError::Io { what: "read", source: e })?;
            Ok::<_, NetError>((role, b))
        });
        let sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let c = client.connect_blocking(sock, "dealer");
        if want_ok {
            let mut st = c.unwrap();
            st.write_all(b"hello").unwrap();
            st.flush().unwrap();
            let (role, b) = h.join().unwrap().unwrap();
            assert_eq!((role.as_deref(), &b), (Some("p0"), b"hello"));
        } else {
            // The dealer refuses the stranger (its certificate is not pinned as p0 or p1).
            let e = h.join().unwrap().unwrap_err().to_string();
            assert!(e.contains("refused") && e.contains("p0 ") && e.contains("p1 "), "{e}");
        }
    }
}
