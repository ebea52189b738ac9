//! Serving parties in tests: starting them, clients, their logs, signals.

use std::io::{BufRead, BufReader, Lines};
use std::process::ChildStdout;
use std::time::Duration;

use super::{Kill, ditto, embedding_line, party, path, tls};

/// Runs `ditto client --model seeded INPUT --session sid` against the parties; its standard
/// output, or its error output.
fn run_client(
    d: &std::path::Path,
    (c0, c1): (&str, &str),
    input: [&str; 2],
    sid: &str,
) -> Result<String, String> {
    let o = ditto()
        .args(["client", "--model", "seeded", input[0], input[1], "--session", sid, "--p0", c0, "--p1", c1])
        .args(tls(d, "client", &[]))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        return Err(out + &String::from_utf8_lossy(&o.stderr));
    }
    Ok(out)
}

/// Runs a client for `text` (session `sid`); its embedding, or its error output.
pub fn client(d: &std::path::Path, cs: (&str, &str), text: &str, sid: &str) -> Result<Vec<f64>, String> {
    Ok(embedding_line(&run_client(d, cs, ["--text", text], sid)?))
}

/// Runs a client for a batch of `texts` (session `sid`, the batch file in `d`); each input's
/// embedding, or the error output.
pub fn client_batch(
    d: &std::path::Path,
    cs: (&str, &str),
    texts: &[&str],
    sid: &str,
) -> Result<Vec<Vec<f64>>, String> {
    let file = d.join(format!("batch-{sid}.txt"));
    std::fs::write(&file, texts.join("\n") + "\n").unwrap();
    let out = run_client(d, cs, ["--batch", &path(&file)], sid)?;
    let got: Vec<Vec<f64>> = (1..=texts.len())
        .map(|i| {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("input {i}: ")))
                .unwrap_or_else(|| panic!("{out}"));
            embedding_line(line)
        })
        .collect();
    Ok(got)
}

/// Starts serving party `id`; returns it and its standard output after its first line.
pub fn serving(
    d: &std::path::Path,
    id: u8,
    (peer, dealer, client): (&str, &str, &str),
    more: &[&str],
) -> (Kill, Lines<BufReader<ChildStdout>>) {
    let state = path(&d.join(format!("state{id}")));
    // A time-out of 20 s and 2 requests at once unless `more` sets them.
    let timeout: &[&str] = if more.contains(&"--timeout") { &[] } else { &["--timeout", "20"] };
    let conc: &[&str] = if more.contains(&"--concurrency") { &[] } else { &["--concurrency", "2"] };
    let extra = [&["--serve", "--state", &state][..], timeout, conc, more].concat();
    let mut p = party(d, id, peer, dealer, client, &extra);
    let mut lines = BufReader::new(p.0.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains("serving clients on"), "party {id} did not start: {first:?}");
    (p, lines)
}

/// A plain HTTP/1.1 GET of `path` on `addr`: the whole response.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub fn sigterm(p: &Kill) {
    let st = std::process::Command::new("kill").args(["-TERM", &p.0.id().to_string()]).status().unwrap();
    assert!(st.success());
}

/// Waits (bounded) for `p` to exit; its status code.
pub fn exit_code(p: &mut Kill) -> Option<i32> {
    for _ in 0..600 {
        if let Some(st) = p.0.try_wait().unwrap() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A served line's `key=value`.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ').find_map(|w| w.strip_prefix(key)?.strip_prefix('=')).unwrap_or("")
}

/// The sessions the parties ran, by request id, checked to be the same at both parties (P0's
/// relayed by P1, P1's from its pool or on demand), each request served once at each party
/// and every session distinct.
pub fn same_sessions(logs: &[Vec<String>]) -> std::collections::HashMap<String, (String, String)> {
    let of = |log: &Vec<String>| {
        let mut m = std::collections::HashMap::new();
        for l in log.iter().filter(|l| l.starts_with("served ")) {
            let v = (field(l, "session").to_string(), field(l, "source").to_string());
            assert!(m.insert(field(l, "request").to_string(), v).is_none(), "served twice: {l}");
        }
        m
    };
    let (m0, m1) = (of(&logs[0]), of(&logs[1]));
    assert_eq!(m0.len(), m1.len(), "{logs:?}");
    for (r, (s, src)) in &m0 {
        assert_eq!(src, "relayed", "{logs:?}");
        let (s1, src1) = &m1[r];
        assert_eq!((s, true), (s1, src1 == "pool" || src1 == "on-demand"), "request {r}: {logs:?}");
    }
    let distinct: std::collections::HashSet<&String> = m1.values().map(|(s, _)| s).collect();
    assert_eq!(distinct.len(), m1.len(), "a session ran twice: {logs:?}");
    m1
}

/// A process's standard output, collected line by line on a thread of its own.
pub struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Log {
    /// Collects `lines` from now on.
    pub fn new(lines: Lines<BufReader<ChildStdout>>) -> Self {
        let all = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let a = std::sync::Arc::clone(&all);
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                a.lock().unwrap().push(l);
            }
        });
        Log(all)
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to `secs` for a line `pred` accepts; whether one came.
    pub fn wait_for(&self, secs: u64, pred: impl Fn(&str) -> bool) -> bool {
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if self.lines().iter().any(|l| pred(l)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}
