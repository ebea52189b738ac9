//! A userspace link emulator for kernels without `sch_netem` (`ditto shape`, `bench/netem.sh`):
//! relays a TCP connection in both directions through a bottleneck of `bits_per_s` with
//! `delay` one-way latency: each chunk departs when the link is free (queued behind earlier
//! ones, serialised at the rate) and arrives `delay` after its departure, as a netem `rate ...
//! delay ...` qdisc on each end would deliver it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::NetError;

/// A link's shape: bandwidth per direction and one-way delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Bits per second per direction (positive).
    pub bits_per_s: f64,
    /// One-way delay.
    pub delay: Duration,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> NetError {
    move |source| NetError::Io { what, source }
}

/// One direction: read, stamp each chunk's arrival time, deliver it then.
async fn pipe(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    s: Shape,
) -> Result<(), NetError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut free = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = rd.read(&mut buf).await.map_err(io("reading the relayed connection"))?;
            if n == 0 {
                return Ok::<(), NetError>(());
            }
            #[allow(clippy::cast_precision_loss)]
            let wire = Duration::from_secs_f64(n as f64 * 8.0 / s.bits_per_s);
            free = free.max(Instant::now()) + wire;
            if tx.send((free + s.delay, buf[..n].to_vec())).is_err() {
                return Ok(());
            }
        }
    });
    while let Some((at, chunk)) = rx.recv().await {
        tokio::time::sleep_until(at).await;
        wr.write_all(&chunk).await.map_err(io("writing the relayed connection"))?;
    }
    wr.shutdown().await.map_err(io("closing the relayed connection"))?;
    reader.await.map_err(|e| NetError::Io { what: "the relay's reader", source: std::io::Error::other(e) })?
}

/// Relays `inbound` to `connect` (retried for up to 10 s: the far end may still be starting)
/// through `shape` in both directions, until both close.
pub async fn relay(inbound: TcpStream, connect: &str, shape: Shape) -> Result<(), NetError> {
    if shape.bits_per_s.is_nan() || shape.bits_per_s <= 0.0 {
        return Err(NetError::Request("the link rate must be positive".into()));
    }
    let mut tries = 0;
    let outbound = loop {
        match TcpStream::connect(connect).await {
            Ok(s) => break s,
            Err(e) if tries >= 100 => {
                return Err(NetError::Io { what: "connecting the relay onwards", source: e });
            }
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    inbound.set_nodelay(true).map_err(io("relay socket options"))?;
    outbound.set_nodelay(true).map_err(io("relay socket options"))?;
    let ((ir, iw), (or, ow)) = (inbound.into_split(), outbound.into_split());
    let (x, y) = tokio::join!(pipe(ir, ow, shape), pipe(or, iw, shape));
    x.and(y)
}

/// Relays every connection accepted on `listener` to `connect` as [`relay`] does, each through
/// a link of its own shape, until the future is dropped; `failed` hears of a relay that ended
/// with an error (the others go on).
pub async fn relay_each(
    listener: tokio::net::TcpListener,
    connect: String,
    shape: Shape,
    failed: impl Fn(NetError) + Send + Sync + 'static,
) -> Result<(), NetError> {
    let (connect, failed) = (std::sync::Arc::new(connect), std::sync::Arc::new(failed));
    loop {
        let (inbound, _) = listener.accept().await.map_err(io("accepting a connection to relay"))?;
        let (connect, failed) = (std::sync::Arc::clone(&connect), std::sync::Arc::clone(&failed));
        tokio::spawn(async move {
            if let Err(e) = relay(inbound, &connect, shape).await {
                failed(e);
            }
        });
    }
}
