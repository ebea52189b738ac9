//! `ditto shape`: a userspace link emulator for kernels without `sch_netem` (see
//! `ditto_net::shape`): accepts one TCP connection (or, with `--serve`, each until stopped) and
//! relays it onwards through the shaped link.

use std::time::Duration;

use ditto_net::shape::{Shape, relay, relay_each};

use crate::files::CliError;
use crate::util::net;

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
    /// Relay every connection until stopped (serving parties open one per request), each
    /// through a link of its own with this shape.
    #[arg(long)]
    pub serve: bool,
}

/// Runs `ditto shape` until both directions close.
pub fn run(a: &ShapeArgs) -> Result<(), CliError> {
    if !(a.rate_mbit > 0.0 && a.delay_ms >= 0.0) {
        return Err(CliError::Usage("--rate-mbit must be positive and --delay-ms not negative".into()));
    }
    let shape = Shape { bits_per_s: a.rate_mbit * 1e6, delay: Duration::from_secs_f64(a.delay_ms / 1e3) };
    crate::util::runtime()?.block_on(async {
        let l = tokio::net::TcpListener::bind(&a.listen).await.map_err(net)?;
        say!(
            "shaping {} -> {} at {} Mbit/s, {} ms",
            l.local_addr().map_err(net)?,
            a.connect,
            a.rate_mbit,
            a.delay_ms
        );
        if a.serve {
            let failed = |e: ditto_net::NetError| say!("relay failed: {e}");
            return Ok(relay_each(l, a.connect.clone(), shape, failed).await?);
        }
        let (inbound, _) = l.accept().await.map_err(net)?;
        Ok(relay(inbound, &a.connect, shape).await?)
    })
}
