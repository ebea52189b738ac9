//! The userspace link emulator (`ditto shape`, `bench/netem.sh`, `bench/serve.sh`): every
//! connection it relays arrives intact, a round trip takes at least twice the one-way delay, a
//! large message at least its size over the rate, and connections relayed at once do not wait
//! for one another.

use std::time::{Duration, Instant};

use ditto_net::shape::{Shape, relay_each};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server: each connection gets back what it sends.
async fn echo() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
        }
    });
    addr
}

/// Sends `msg` through the relay at `via` and reads it back; the time it took.
async fn round_trip(via: &str, msg: &[u8]) -> Duration {
    let mut s = TcpStream::connect(via).await.unwrap();
    let t = Instant::now();
    let (mut rd, mut wr) = s.split();
    let mut back = vec![0u8; msg.len()];
    let (w, r) = tokio::join!(wr.write_all(msg), rd.read_exact(&mut back));
    w.unwrap();
    r.unwrap();
    assert!(back == msg, "the relay changed the bytes");
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_relayed_connection_is_delayed_and_rate_limited_apart() {
    let to = echo().await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let via = l.local_addr().unwrap().to_string();
    // 80 Mbit/s and 150 ms one way.
    let shape = Shape { bits_per_s: 80e6, delay: Duration::from_millis(150) };
    let relay = tokio::spawn(relay_each(l, to, shape, |e| panic!("relay failed: {e}")));
    // A small message: one round trip, 300 ms at least, under two.
    let small = round_trip(&via, b"ping").await;
    assert!(small >= Duration::from_millis(300) && small < Duration::from_millis(600), "{small:?}");
    // 2 MB: its last byte leaves 200 ms after the first (the rate), arrives 150 ms later, and
    // its echo takes as long back: 500 ms at least.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 + i / 251).to_le_bytes()[0]).collect();
    let t = round_trip(&via, &big).await;
    assert!(t >= Duration::from_millis(500), "{t:?}");
    // Three connections at once each pay one round trip, not three.
    let t = Instant::now();
    let (a, b, c) = tokio::join!(round_trip(&via, b"a"), round_trip(&via, b"b"), round_trip(&via, b"c"));
    assert!([a, b, c].iter().all(|d| *d >= Duration::from_millis(300)), "{a:?} {b:?} {c:?}");
    assert!(t.elapsed() < Duration::from_millis(600), "{:?}", t.elapsed());
    relay.abort();
}
