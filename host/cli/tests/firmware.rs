//! A secure inference fed by the dealer appliance: the firmware image runs in QEMU, `ditto
//! dealer --serial` relays the sealed streams of a session the board deals into P1's pool
//! (serving parties, separate processes), the request is served from the pool, and the
//! client's embedding equals the one-process demo's for the same model and text. Keys come from
//! `ditto provision`: the board reads them from its key page. Needs
//! DITTO_FIRMWARE_ELF and DITTO_QEMU (scripts/firmware-e2e sets them; CI runs it).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::serving::{Log, serving};
use common::{Kill, dealer, ditto, keygen, path, port, tls};

fn first6(line: &str) -> Vec<f64> {
    let inner = &line[line.rfind('[').unwrap() + 1..line.rfind(']').unwrap()];
    inner.split(", ").take(6).map(|v| v.parse().unwrap()).collect()
}

#[test]
#[ignore = "needs the firmware image and QEMU: scripts/firmware-e2e runs it"]
fn secure_inference_fed_by_the_board_in_qemu_over_its_uart() {
    fed_by_the_board(false);
}

#[test]
#[ignore = "needs the firmware image and QEMU: scripts/firmware-e2e runs it"]
fn secure_inference_fed_by_the_board_in_qemu_over_ethernet() {
    fed_by_the_board(true);
}

/// Waits until the board accepts on `addr` (QEMU's forwarded port accepts at once and drops
/// the connection while the board has no address yet; a board that listens keeps it open).
fn wait_for_board(addr: &str) {
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let mut b = [0u8; 1];
            if let Err(e) = std::io::Read::read(&mut s, &mut b)
                && matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the board never listened on {addr}");
}

fn fed_by_the_board(ethernet: bool) {
    let (Some(elf), Some(qemu)) = (std::env::var_os("DITTO_FIRMWARE_ELF"), std::env::var_os("DITTO_QEMU"))
    else {
        eprintln!("skipped: run scripts/firmware-e2e (sets DITTO_FIRMWARE_ELF and DITTO_QEMU)");
        return;
    };
    let d = std::env::temp_dir().join(format!("ditto-board-{}-{ethernet}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    // One provisioning for the board (its key page, loaded where the image reads it) and the
    // parties (their key files), as a deployment does it.
    let o = ditto().args(["provision", "--out", &path(&d.join("keys"))]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    keygen(&d);
    let o = ditto()
        .args(["share-model", "--model", "seeded", "--out", &path(&d.join("shares"))])
        .output()
        .unwrap();
    assert!(o.status.success());
    // The board's link: QEMU's UART bridged to TCP, or the board's own TCP port on its
    // Ethernet, forwarded from a host port by QEMU's user network.
    let link = port();
    let mut cmd = Command::new(&qemu);
    cmd.args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"]);
    if ethernet {
        let fwd = format!("user,model=lan9118,hostfwd=tcp:{link}-:{}", ditto_dealer::board::TCP_PORT);
        cmd.args(["-serial", "null", "-nic", &fwd]);
    } else {
        cmd.args(["-serial", &format!("tcp:{link},server=on,wait=on")]);
    }
    let _qemu = Kill(
        cmd.arg("-kernel")
            .arg(&elf)
            .arg("-device")
            .arg(format!("loader,file={},addr=0x3ff000,force-raw=on", path(&d.join("keys/board-keys.bin"))))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    if ethernet {
        wait_for_board(&link);
    } else {
        std::thread::sleep(Duration::from_millis(500));
    }
    // The relay: `ditto dealer --board` holds no seed or party key, only the link to the board
    // and the relay key its requests are tagged with.
    let relay_key = path(&d.join("keys/relay.key"));
    let board = ["--board", &format!("tcp:{link}"), "--relay-key", &relay_key, "--sessions", "1"];
    let (_dealer, dealer_addr) = dealer(&d, "seeded", &d.join("dealer"), &board);
    let (peer, c0, c1) = (port(), port(), port());
    // P1's pool has room for one 16-token session (4.7 MB): the board deals it ahead.
    let (_p0, _) = serving(&d, 0, (&peer, &dealer_addr, &c0), &["--timeout", "600"]);
    let pool = ["--pool", "6M", "--pool-buckets", "16", "--timeout", "600"];
    let (_p1, out1) = serving(&d, 1, (&peer, &dealer_addr, &c1), &pool);
    let log1 = Log::new(out1);
    assert!(log1.wait_for(900, |l| l.starts_with("pooled ")), "the board filled no pool: {:?}", log1.lines());
    let text = "hi board";
    let o = ditto()
        .args(["client", "--model", "seeded", "--text", text, "--p0", &c0, "--p1", &c1])
        .args(tls(&d, "client", &[]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        log1.wait_for(10, |l| l.starts_with("served ") && l.contains("source=pool")),
        "{:?}",
        log1.lines()
    );
    let got = first6(out.lines().find(|l| l.contains("starts [")).unwrap());
    let demo = ditto().args(["demo", "--model", "seeded", "--text", text]).output().unwrap();
    let demo = String::from_utf8_lossy(&demo.stdout).into_owned();
    let want = first6(demo.lines().find(|l| l.starts_with("embedding[..6] secure")).unwrap());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 2e-3, "board-fed {got:?} vs demo {want:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
