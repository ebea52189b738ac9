//! Process helpers shared by the command-line tests: the `ditto` binary, free ports, a child
//! killed on drop, and the provision / dealer / party steps of the walk-through.
#![allow(dead_code)]

pub mod serving;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn ditto() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ditto"))
}

pub fn port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

pub struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `ditto ARGS`, asserts it succeeded and returns its stdout followed by its stderr.
pub fn run(args: &[&str]) -> String {
    let o = ditto().args(args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{args:?}: {out}{err}");
    out + &err
}

pub fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `ditto keygen` for the four roles into `d/tls` (NAME.identity and the `trust` file).
pub fn keygen(d: &Path) {
    let o = ditto()
        .args(["keygen", "--out", &path(&d.join("tls"))])
        .args(["--name", "p0", "--name", "p1", "--name", "dealer", "--name", "client"])
        .output()
        .unwrap();
    assert!(o.status.success(), "keygen: {}", String::from_utf8_lossy(&o.stderr));
}

/// The link options of `role` with the identities of [`keygen`] (none when `extra` says
/// `--insecure-plaintext` or gives its own `--identity`).
pub fn tls(d: &Path, role: &str, extra: &[&str]) -> Vec<String> {
    if extra.contains(&"--insecure-plaintext") || extra.contains(&"--identity") {
        return Vec::new();
    }
    let id = path(&d.join(format!("tls/{role}.identity")));
    vec!["--identity".into(), id, "--trust".into(), path(&d.join("tls/trust"))]
}

/// `ditto provision`, `ditto keygen` and `ditto share-model` for `model` into `d` (keys/, tls/,
/// shares/).
pub fn provision_and_share(d: &Path, model: &str) {
    keygen(d);
    for args in [
        vec!["provision", "--out", &path(&d.join("keys"))],
        vec!["share-model", "--model", model, "--out", &path(&d.join("shares"))],
    ] {
        let o = ditto().args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A dealer serving `model` with the keys in `d`, its record in `state`; returns it and its address.
pub fn dealer(d: &Path, model: &str, state: &Path, extra: &[&str]) -> (Kill, String) {
    dealer_on(d, model, state, "127.0.0.1:0", extra)
}

/// [`dealer`] listening on `listen`.
pub fn dealer_on(d: &Path, model: &str, state: &Path, listen: &str, extra: &[&str]) -> (Kill, String) {
    let mut dealer = Kill(
        ditto()
            .args(["dealer", "--model", model, "--keys", &path(&d.join("keys")), "--listen", listen])
            .args(["--state", &path(state)])
            .args(tls(d, "dealer", extra))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(dealer.0.stdout.take().unwrap()).lines();
    let addr = lines.next().unwrap().unwrap().strip_prefix("listening ").unwrap().to_string();
    (dealer, addr)
}

/// Party `id` with its share and key from `d`: P0 listens on `peer`, P1 connects to it; the
/// client is served on `client`. Standard output and error are piped.
pub fn party(d: &Path, id: u8, peer: &str, dealer: &str, client: &str, extra: &[&str]) -> Kill {
    let link = if id == 0 { "--listen" } else { "--connect" };
    Kill(
        ditto()
            .args([
                "party",
                "--id",
                &id.to_string(),
                "--share",
                &path(&d.join(format!("shares/p{id}.share"))),
            ])
            .args([link, peer, "--dealer", dealer, "--key", &path(&d.join(format!("keys/p{id}.key")))])
            .args(["--client", client])
            .args(tls(d, &format!("p{id}"), extra))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// The embedding's first values in a client's output (its "starts [..]" line).
pub fn embedding_line(out: &str) -> Vec<f64> {
    let line = out.lines().find(|l| l.contains("starts [")).unwrap_or_else(|| panic!("{out}"));
    let inner = &line[line.find('[').unwrap() + 1..line.find(']').unwrap()];
    inner.split(", ").map(|v| v.parse().unwrap()).collect()
}

/// The first six values of the secure embedding the one-process demo prints for `text`.
pub fn demo_embedding(model: &str, text: &str) -> Vec<f64> {
    let o = ditto().args(["demo", "--model", model, "--text", text]).output().unwrap();
    let demo = String::from_utf8_lossy(&o.stdout).into_owned();
    let line =
        demo.lines().find(|l| l.starts_with("embedding[..6] secure")).unwrap_or_else(|| panic!("{demo}"));
    let inner = &line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()];
    let inner = &inner[inner.find('[').map_or(0, |i| i + 1)..];
    inner.split(", ").map(|v| v.parse().unwrap()).collect()
}
