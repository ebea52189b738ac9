//! The P0 <-> P1 message decoder: P0's end of a link whose peer sends arbitrary bytes, through
//! the handshake and a few exchanges.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use ditto_core::Party;
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_net::link::{Config, Hello, Link};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());

fuzz_target!(|data: &[u8]| {
    RT.block_on(async {
        let (mine, mut peer) = tokio::io::duplex(1 << 16);
        let feed = data.to_vec();
        let writer = tokio::spawn(async move {
            let _ = peer.write_all(&feed).await;
            // Keep the peer's end open briefly, then close it: reads end in data or EOF.
            drop(peer);
        });
        let mut link = Link::new(mine, Party::P0, Config { timeout: Duration::from_millis(50) });
        if link.handshake(&Hello::new(Party::P0, [1; 32], SessionId([2; 16]), ShareSetId([4; 16]))).await.is_ok() {
            for (step, len) in [(0u32, 4usize), (0, 4), (1, 0), (2, 64)] {
                if link.exchange(step, &vec![0u8; len]).await.is_err() {
                    break;
                }
            }
        }
        let _ = writer.await;
    });
});
