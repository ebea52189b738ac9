//! `ditto shape`: a userspace link emulator for kernels without `sch_netem`. It accepts one TCP
//! connection, connects onwards, and relays both directions through a bottleneck of `rate` bits
//! per second with `delay` one-way latency: each chunk departs when the link is free (queued
//! behind earlier ones, serialised at the rate) and arrives `delay` after its departure, as a
//! netem `rate ... delay ...` qdisc on each end would deliver it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::files::CliError;

/// Arguments of `ditto shape`.
#[derive(clap::Args, Debug)]
pub struct ShapeArgs {
    /// Address to accept the (one) connection on.
    #[arg(long)]
    pub listen: String,
    /// Address to relay it to.
    #[arg(long)]
    pub connect: String,
    /// Bandwidth per direction, Mbit/s.
    #[arg(long)]
    pub rate_mbit: f64,
    /// One-way delay, milliseconds.
    #[arg(long)]
    pub delay_ms: f64,
}

fn err(e: impl std::fmt::Display) -> CliError {
    CliError::Net(e.to_string())
}

/// One direction: read, stamp each chunk's arrival time, deliver it then.
async fn pipe(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    bits_per_s: f64,
    delay: Duration,
) -> Result<(), CliError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut free = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = rd.read(&mut buf).await.map_err(err)?;
            if n == 0 {
                return Ok::<(), CliError>(());
            }
            #[allow(clippy::cast_precision_loss)]
            let wire = Duration::from_secs_f64(n as f64 * 8.0 / bits_per_s);
            free = free.max(Instant::now()) + wire;
            if tx.send((free + delay, buf[..n].to_vec())).is_err() {
                return Ok(());
            }
        }
    });
    while let Some((at, chunk)) = rx.recv().await {
        tokio::time::sleep_until(at).await;
        wr.write_all(&chunk).await.map_err(err)?;
    }
    wr.shutdown().await.map_err(err)?;
    reader.await.map_err(err)?
}

/// Runs `ditto shape` until both directions close.
pub fn run(a: &ShapeArgs) -> Result<(), CliError> {
    if !(a.rate_mbit > 0.0 && a.delay_ms >= 0.0) {
        return Err(CliError::Usage("--rate-mbit must be positive and --delay-ms not negative".into()));
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(err)?;
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind(&a.listen).await.map_err(err)?;
        say!(
            "shaping {} -> {} at {} Mbit/s, {} ms",
            l.local_addr().map_err(err)?,
            a.connect,
            a.rate_mbit,
            a.delay_ms
        );
        let (inbound, _) = l.accept().await.map_err(err)?;
        // The far end may still be starting: retry for up to 10 s.
        let mut tries = 0;
        let outbound = loop {
            match tokio::net::TcpStream::connect(&a.connect).await {
                Ok(s) => break s,
                Err(e) if tries >= 100 => return Err(err(format!("{}: {e}", a.connect))),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        inbound.set_nodelay(true).map_err(err)?;
        outbound.set_nodelay(true).map_err(err)?;
        let (bits, delay) = (a.rate_mbit * 1e6, Duration::from_secs_f64(a.delay_ms / 1e3));
        let ((ir, iw), (or, ow)) = (inbound.into_split(), outbound.into_split());
        let (x, y) = tokio::join!(pipe(ir, ow, bits, delay), pipe(or, iw, bits, delay));
        x.and(y)
    })
}
