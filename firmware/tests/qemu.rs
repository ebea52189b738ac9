//! End to end on an emulated board: the firmware image (built with `qemu-test-seed`) runs in
//! QEMU's mps2-an386 with its UART bridged to a TCP socket; the host asks it for a session's
//! streams of a small BERT plan and checks them byte for byte against the host dealer's for the
//! same seeds, keys, session and plan. `scripts/firmware-e2e` builds the image, unpacks QEMU and
//! runs this with DITTO_FIRMWARE_ELF and DITTO_QEMU set (CI does).
#![allow(clippy::cast_precision_loss)]

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ditto_core::Party;
use ditto_core::prg::SessionId;
use ditto_dealer::host::Io;
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};
use ditto_dealer::{DEFAULT_CHUNK, board, plans};
use ditto_firmware::test_provisioning;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[ignore = "needs the firmware image and QEMU: scripts/firmware-e2e runs it"]
fn board_in_qemu_streams_what_the_host_dealer_streams() {
    let (Some(elf), Some(qemu)) = (std::env::var_os("DITTO_FIRMWARE_ELF"), std::env::var_os("DITTO_QEMU"))
    else {
        eprintln!("skipped: run scripts/firmware-e2e (sets DITTO_FIRMWARE_ELF and DITTO_QEMU)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut q = Kill(
        Command::new(&qemu)
            .args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .args(["-serial", &format!("tcp:127.0.0.1:{port},server=on,wait=on"), "-kernel"])
            .arg(&elf)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The image's semihosting output, line by line.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = q.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut link = None;
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            link = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut link = link.expect("QEMU's UART socket");
    link.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    link.set_nodelay(true).unwrap();
    let plan = plans::plan("bert-tiny", &plans::BERT_TINY, 2, 0).unwrap();
    let session = SessionId([0x5a; 16]);
    let t = Instant::now();
    let got = board::request(&mut link, session, &plan, DEFAULT_CHUNK).unwrap();
    let took = t.elapsed();
    let spec = SessionSpec::new(session, &test_provisioning::seeds());
    for (i, p) in [Party::P0, Party::P1].into_iter().enumerate() {
        let mut want = Vec::new();
        let mut scratch = vec![0u8; scratch_len(DEFAULT_CHUNK)];
        let mut src = SlicePlan { header: &plan.header, steps: &plan.steps };
        write_stream(p, &mut src, &spec, &test_provisioning::keys()[i], Io(&mut want), &mut scratch).unwrap();
        assert!(
            got[i] == want,
            "{p:?}: the board's stream ({} B) differs from the host dealer's ({} B)",
            got[i].len(),
            want.len()
        );
    }
    let bytes = got[0].len() + got[1].len();
    println!(
        "board in QEMU: {} plan steps, {bytes} stream bytes in {:.2} s ({:.0} KB/s over the emulated UART)",
        plan.steps.len(),
        took.as_secs_f64(),
        bytes as f64 / took.as_secs_f64() / 1e3
    );
    // The board logs once it has sent both streams.
    let mut out = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        out.push_str(&line);
        out.push('\n');
        if line.contains("request served") {
            break;
        }
    }
    drop(link);
    let _ = q.0.kill();
    assert!(out.contains("TEST SEEDS"), "the image announces its test seeds: {out}");
    // The whole generation runs in the stack (no heap, 12 bytes of static data): its high-water
    // mark, chunk buffer included, stays well under 64 KiB.
    let hw: usize = out
        .lines()
        .find_map(|l| l.split("stack high-water ").nth(1))
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stack figure in {out}"));
    println!("board stack high-water: {hw} bytes");
    assert!(hw > 4096 && hw < 64 * 1024, "{hw}");
}
