//! A serving party's counters and its Prometheus text exposition (`ditto party --serve
//! --metrics ADDR`, `GET /metrics`): requests served, failed and under way, connections
//! refused, bytes and rounds sent to the peer, a histogram of online latency, and P1's pools
//! (sessions and bytes pooled per bucket, sessions pooled, failed fills, requests served from
//! the pool and on demand). Only counts and times: nothing of any input, output or share.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::party::{Origin, Report};
use crate::pool::Pool;

/// Upper bounds (seconds) of the online-latency histogram's buckets (and +Inf).
pub const LATENCY_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 300.0];

/// A serving party's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    served: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    refused: AtomicU64,
    sent: AtomicU64,
    rounds: AtomicU64,
    on_demand: AtomicU64,
    prepared: AtomicU64,
    /// Per-bucket counts (not cumulative), the last one +Inf, and the sum of seconds.
    latency: Mutex<([u64; LATENCY_BUCKETS.len() + 1], f64)>,
    /// P1's pool, when it keeps one.
    pool: std::sync::OnceLock<std::sync::Arc<Pool>>,
}

impl Metrics {
    /// A well-formed request began (it is under way until [`Metrics::finished`]).
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a request is under way.
    pub fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Reports `pool`'s depths and counts too.
    pub fn set_pool(&self, pool: std::sync::Arc<Pool>) {
        let _ = self.pool.set(pool);
    }

    /// A request that [`Metrics::started`] ended: answered with `Ok` costs, or failed.
    pub fn finished(&self, result: Result<&Report, ()>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Ok(r) = result else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if r.origin == Origin::OnDemand {
            self.on_demand.fetch_add(1, Ordering::Relaxed);
        }
        if r.prepared {
            self.prepared.fetch_add(1, Ordering::Relaxed);
        }
        self.served.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(r.sent, Ordering::Relaxed);
        self.rounds.fetch_add(u64::from(r.rounds), Ordering::Relaxed);
        self.observe(r.online);
    }

    /// A connection that never became a request (a stranger, a probe, a malformed request).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| s <= *b).unwrap_or(LATENCY_BUCKETS.len());
        let mut h = self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        h.0[i] += 1;
        h.1 += s;
    }

    /// The text exposition (format 0.0.4) of party `party`'s counters.
    pub fn render(&self, party: usize) -> String {
        let l = format!("{{party=\"{party}\"}}");
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{l} {v}\n"));
        };
        metric("ditto_requests_served_total", "counter", "Requests answered.", get(&self.served));
        metric(
            "ditto_requests_failed_total",
            "counter",
            "Requests that failed after they arrived.",
            get(&self.failed),
        );
        metric("ditto_requests_in_flight", "gauge", "Requests under way.", get(&self.in_flight));
        metric(
            "ditto_connections_refused_total",
            "counter",
            "Client connections refused before a request.",
            get(&self.refused),
        );
        metric(
            "ditto_peer_sent_bytes_total",
            "counter",
            "Bytes sent to the peer by answered requests.",
            get(&self.sent),
        );
        metric("ditto_peer_rounds_total", "counter", "Rounds of answered requests.", get(&self.rounds));
        metric(
            "ditto_sessions_on_demand_total",
            "counter",
            "Answered requests whose session the dealer created while they waited (pool empty).",
            get(&self.on_demand),
        );
        metric(
            "ditto_requests_prepared_total",
            "counter",
            "Answered requests that used this party's products A_i F prepared before them.",
            get(&self.prepared),
        );
        if let Some(p) = self.pool.get() {
            render_pool(&mut out, p, party);
        }
        let (counts, sum) = *self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = "ditto_online_seconds";
        out.push_str(&format!("# HELP {name} Online time of answered requests.\n# TYPE {name} histogram\n"));
        let mut acc = 0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            let le = LATENCY_BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), |b| format!("{b}"));
            out.push_str(&format!("{name}_bucket{{party=\"{party}\",le=\"{le}\"}} {acc}\n"));
        }
        out.push_str(&format!("{name}_sum{l} {sum}\n{name}_count{l} {acc}\n"));
        out
    }
}

/// P1's pool: sessions and bytes per bucket, and its counters.
fn render_pool(out: &mut String, p: &Pool, party: usize) {
    let (depths, bytes) = p.depths();
    let name = "ditto_pool_sessions";
    out.push_str(&format!(
        "# HELP {name} Sessions dealt ahead and not yet used, per bucket.\n# TYPE {name} gauge\n"
    ));
    for (k, d) in p.keys().iter().zip(depths) {
        out.push_str(&format!("{name}{{party=\"{party}\",bucket=\"{}\"}} {d}\n", k.label));
    }
    let name = "ditto_pool_prepared";
    out.push_str(&format!(
        "# HELP {name} Pooled sessions whose products A_1 F are ready, per bucket.\n# TYPE {name} gauge\n"
    ));
    for (k, d) in p.keys().iter().zip(p.prepared_depths()) {
        out.push_str(&format!("{name}{{party=\"{party}\",bucket=\"{}\"}} {d}\n", k.label));
    }
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, kind, help, v) in [
        ("ditto_pool_bytes", "gauge", "Bytes of the pool on disk.", bytes),
        ("ditto_pool_filled_total", "counter", "Sessions pooled.", get(&p.filled)),
        (
            "ditto_pool_fill_errors_total",
            "counter",
            "Failed attempts to pool a session.",
            get(&p.fill_errors),
        ),
        ("ditto_pool_taken_total", "counter", "Sessions taken from the pool.", get(&p.taken)),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{party=\"{party}\"}} {v}\n"
        ));
    }
}

/// Largest HTTP request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1, one response per connection; other
/// paths 404, other methods 405, a head over 8 KiB or slower than `wait` dropped) until the
/// task is dropped.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    party: usize,
    wait: Duration,
) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else { continue };
        let m = std::sync::Arc::clone(&metrics);
        tokio::spawn(async move {
            let Ok(Some(line)) = tokio::time::timeout(wait, read_head(&mut s)).await else { return };
            let mut parts = line.split(' ');
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, body) = match (method, path) {
                ("GET", "/metrics") => ("200 OK", m.render(party)),
                ("GET", _) => ("404 Not Found", "only /metrics is served\n".to_string()),
                _ => ("405 Method Not Allowed", "only GET /metrics is served\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(wait, s.write_all(resp.as_bytes())).await;
        });
    }
}

/// The request line of an HTTP head (read up to its blank line), or `None` if it is too long,
/// not UTF-8 or cut short.
async fn read_head(s: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_HEAD {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = std::str::from_utf8(&buf).ok()?;
    head.lines().next().map(str::to_string)
}
