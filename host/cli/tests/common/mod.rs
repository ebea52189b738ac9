//! Process helpers shared by the command-line tests: the `ditto` binary, free ports, a child
//! killed on drop, and the provision / dealer / party steps of the walk-through.
#![allow(dead_code)]

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

pub fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// `ditto provision` and `ditto share-model` for `model` into `d` (keys/, shares/).
pub fn provision_and_share(d: &Path, model: &str) {
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
    let mut dealer = Kill(
        ditto()
            .args(["dealer", "--model", model, "--keys", &path(&d.join("keys")), "--listen", "127.0.0.1:0"])
            .args(["--state", &path(state)])
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
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}
