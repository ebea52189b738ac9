//! P0 of a serving pair opens a session P1 relays to it once: the relayed session is claimed in
//! P0's record before its stream is opened, so a second routing frame naming it (a replay by a
//! faulty or hostile P1, or a retry after a failure) is refused, whatever became of the first.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::SessionId;
use ditto_models::bert::secure::BertShare;
use ditto_models::quant::QuantConfig;
use ditto_models::share_file::ModelShare;
use ditto_net::client::RequestHead;
use ditto_net::link::{Config, Link, Route, RouteKind};
use ditto_net::tls::Security;
use ditto_node::metrics::Metrics;
use ditto_node::serve::{Options, serve_until};
use tokio::io::AsyncWriteExt;

/// A free loopback port (bound, then released for P0 to bind).
fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Sends a well-formed 16-token request `id` to P0 (zero shares: P0 fails it before computing).
async fn request(p0: std::net::SocketAddr, id: SessionId, vocab: usize) -> tokio::net::TcpStream {
    let mut c = tokio::net::TcpStream::connect(p0).await.unwrap();
    let head =
        RequestHead { session: id, seq: 16, generate: 0, count: 16 * vocab, reveal_token: false, batch: 1 };
    c.write_all(&head.encode()).await.unwrap();
    c.write_all(&vec![0u8; 16 * vocab * 4]).await.unwrap();
    c
}

/// Plays P1: opens a link to P0 naming `request` and relaying `stream` as `session`'s.
async fn relay(peer: &str, request: SessionId, session: SessionId, stream: Vec<u8>) -> Link {
    let c = Config { timeout: Duration::from_secs(5) };
    let mut link = Link::connect(peer, Party::P1, c, &Security::Plaintext).await.unwrap();
    link.route_send(&Route { request, session, p0_stream: stream, kind: RouteKind::Session }).await.unwrap();
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p0_never_opens_a_relayed_session_twice() {
    let cfg = ditto_models::seeded::config();
    let vocab = cfg.vocab_size;
    let share = ModelShare::Bert(Box::new(BertShare::zeros(&cfg, &QuantConfig::accurate())));
    let state = std::env::temp_dir().join(format!("ditto-node-relay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let peer = free_port();
    let party = Arc::new(common::p0_config(&peer, state.clone(), Duration::from_secs(3)));
    let clients = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p0 = clients.local_addr().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = {
        let lines = Arc::clone(&lines);
        Arc::new(move |l: String| lines.lock().unwrap().push(l))
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = Options { concurrency: 2, metrics: Arc::new(Metrics::default()), pool: None, ahead: None };
    let server = tokio::spawn(serve_until(
        party,
        Arc::new(share),
        clients,
        opts,
        async move {
            let _ = stop_rx.await;
        },
        log,
    ));
    let failed = |id: SessionId| {
        let lines = Arc::clone(&lines);
        async move {
            let tag = format!("request={:032x}", id.as_u128());
            for _ in 0..200 {
                if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(&tag)) {
                    return l.clone();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no log line for {tag}: {:?}", lines.lock().unwrap());
        }
    };
    let session = SessionId([0x5e; 16]);
    // First relay of `session`: P0 claims it, then fails the request (this P1 never goes on
    // to the session's handshake, and its relayed stream is garbage).
    let (r1, r2, r3) = (SessionId([1; 16]), SessionId([2; 16]), SessionId([3; 16]));
    let _c1 = request(p0, r1, vocab).await;
    let _l1 = relay(&peer, r1, session, vec![0xa5; 328]).await;
    let first = failed(r1).await;
    println!("{first}");
    assert!(first.starts_with("failed party=0") && !first.contains("already used"), "{first}");
    // The same session relayed again, for another request: refused by the claim.
    let _c2 = request(p0, r2, vocab).await;
    let _l2 = relay(&peer, r2, session, vec![0xa5; 328]).await;
    let second = failed(r2).await;
    println!("{second}");
    let marker = format!("session {:032x} was already used", session.as_u128());
    assert!(second.starts_with("failed party=0") && second.contains(&marker), "{second}");
    // Another session is not refused by it (the refusal is the claim, not the link).
    let _c3 = request(p0, r3, vocab).await;
    let _l3 = relay(&peer, r3, SessionId([0x5f; 16]), vec![0xa5; 328]).await;
    let third = failed(r3).await;
    assert!(!third.contains("already used"), "{third}");
    stop_tx.send(()).unwrap();
    let totals = tokio::time::timeout(Duration::from_secs(20), server).await.unwrap().unwrap().unwrap();
    assert_eq!((totals.served, totals.failed), (0, 3));
    let _ = std::fs::remove_dir_all(&state);
}
