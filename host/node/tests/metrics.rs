//! The serving party's metrics: the exposition's counters and cumulative histogram against
//! hand-counted values, and the exporter's answers to good, unknown and oversized requests.

use std::sync::Arc;
use std::time::Duration;

use ditto_core::prg::SessionId;
use ditto_node::metrics::{Metrics, serve_metrics};
use ditto_node::party::{Origin, Report};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn report(online: f64, sent: u64, rounds: u32) -> Report {
    Report {
        prepared: false,
        session: SessionId([1; 16]),
        origin: if rounds == 3 { Origin::OnDemand } else { Origin::Pool },
        online: Duration::from_secs_f64(online),
        total: Duration::from_secs_f64(online),
        sent,
        rounds,
        setup_sent: 0,
        setup_rounds: 0,
    }
}

#[test]
fn exposition_counts_and_cumulative_buckets() {
    let m = Metrics::default();
    for _ in 0..4 {
        m.started();
    }
    m.finished(Ok(&report(0.03, 10, 2)));
    m.finished(Ok(&report(0.2, 20, 3)));
    m.finished(Ok(&report(7.0, 30, 4)));
    m.finished(Err(()));
    m.started();
    m.refused();
    let text = m.render(1);
    for want in [
        "ditto_requests_served_total{party=\"1\"} 3",
        "ditto_requests_failed_total{party=\"1\"} 1",
        "ditto_requests_in_flight{party=\"1\"} 1",
        "ditto_connections_refused_total{party=\"1\"} 1",
        "ditto_peer_sent_bytes_total{party=\"1\"} 60",
        "ditto_peer_rounds_total{party=\"1\"} 9",
        "ditto_online_seconds_bucket{party=\"1\",le=\"0.05\"} 1",
        "ditto_online_seconds_bucket{party=\"1\",le=\"0.1\"} 1",
        "ditto_online_seconds_bucket{party=\"1\",le=\"0.25\"} 2",
        "ditto_online_seconds_bucket{party=\"1\",le=\"5\"} 2",
        "ditto_online_seconds_bucket{party=\"1\",le=\"10\"} 3",
        "ditto_online_seconds_bucket{party=\"1\",le=\"+Inf\"} 3",
        "ditto_online_seconds_count{party=\"1\"} 3",
        "ditto_sessions_on_demand_total{party=\"1\"} 1",
    ] {
        assert!(text.lines().any(|l| l == want), "{want} in\n{text}");
    }
    let sum = text.lines().find_map(|l| l.strip_prefix("ditto_online_seconds_sum{party=\"1\"} ")).unwrap();
    assert!((sum.parse::<f64>().unwrap() - 7.23).abs() < 1e-9, "{sum}");
    // Every sample line belongs to a declared metric.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        let base = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        assert!(text.contains(&format!("# TYPE {base} ")), "{l}");
    }
}

async fn ask(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(req).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn exporter_answers_get_metrics_only() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let m = Arc::new(Metrics::default());
    m.started();
    let task = tokio::spawn(serve_metrics(l, Arc::clone(&m), 0, Duration::from_secs(2)));
    let ok = ask(addr, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("\r\n\r\n# HELP ditto_requests_served_total") && ok.contains("in_flight{party=\"0\"} 1")
    );
    let len: usize = ok.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
    assert_eq!(len, ok.split_once("\r\n\r\n").unwrap().1.len());
    assert!(ask(addr, b"GET /other HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
    assert!(ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
    // A head over 8 KiB, or one never finished, gets no answer (and the exporter goes on).
    let big = [b"GET /metrics HTTP/1.1\r\nx: ".to_vec(), vec![b'a'; 9000], b"\r\n\r\n".to_vec()].concat();
    assert_eq!(ask(addr, &big).await, "");
    assert_eq!(ask(addr, b"GET /metrics HTTP/1.1\r\n").await, "");
    assert!(ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 200"));
    task.abort();
}
