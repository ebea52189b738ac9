//! End to end on an emulated board: the `mps2-an386` image (built with `qemu-test-seed`) runs in
//! QEMU with its UART bridged to a TCP socket and a key page loaded next to it; the host asks it
//! for a session's streams of a small BERT plan and checks them byte for byte against the host
//! dealer's for the same seeds, keys, session and plan. The image's defmt log (semihosting) is
//! decoded here. `scripts/firmware-e2e` builds the image, unpacks QEMU and runs these with
//! DITTO_FIRMWARE_ELF and DITTO_QEMU set (CI does).
#![allow(clippy::cast_precision_loss)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ditto_core::Party;
use ditto_core::prg::{SessionId, ShareSetId};
use ditto_dealer::host::Io;
use ditto_dealer::keys::{Generation, RelayKey};
use ditto_dealer::stream::{SessionSpec, SlicePlan, scratch_len, write_stream};
use ditto_dealer::{DEFAULT_CHUNK, board};
use ditto_firmware::test_provisioning;

/// Where the image reads its key page (ditto_firmware::mps2::KEY_PAGE, a target-only module).
const KEY_PAGE: &str = "0x3ff000";

/// How the host reaches the board.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    /// UART0, bridged by QEMU to a TCP socket (QEMU waits for its client before it runs).
    Uart,
    /// The LAN9118 under QEMU's user network, a host port forwarded to the board's TCP port
    /// (the UART unconnected).
    Ethernet,
}

struct Qemu {
    child: Child,
    port: u16,
    via: Via,
    /// Decoded log lines: "LEVEL message".
    log: Receiver<String>,
    /// Every line received so far.
    seen: std::cell::RefCell<String>,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image and QEMU (these tests are ignored unless asked for, and then they need both).
fn env() -> (PathBuf, PathBuf) {
    let (Some(elf), Some(qemu)) = (std::env::var_os("DITTO_FIRMWARE_ELF"), std::env::var_os("DITTO_QEMU"))
    else {
        panic!("run scripts/firmware-e2e: it sets DITTO_FIRMWARE_ELF and DITTO_QEMU");
    };
    (elf.into(), qemu.into())
}

/// Boots the image with `page` (if any) loaded as its key page; its defmt log decoded line by line.
fn boot(elf: &Path, qemu: &Path, page: Option<&Path>, via: Via) -> Qemu {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new(qemu);
    cmd.args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none"])
        // The log through a stdio chardev: QEMU's own stdout would hold it in a buffer.
        .args(["-chardev", "stdio,id=log", "-semihosting-config", "enable=on,target=native,chardev=log"]);
    match via {
        Via::Uart => cmd.args(["-serial", &format!("tcp:127.0.0.1:{port},server=on,wait=on")]),
        Via::Ethernet => cmd.args(["-serial", "null", "-nic"]).arg(format!(
            "user,model=lan9118,hostfwd=tcp:127.0.0.1:{port}-:{}",
            ditto_dealer::board::TCP_PORT
        )),
    };
    cmd.arg("-kernel").arg(elf);
    if let Some(p) = page {
        cmd.args(["-device", &format!("loader,file={},addr={KEY_PAGE},force-raw=on", p.display())]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let elf_bytes = std::fs::read(elf).unwrap();
    let (tx, log) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let table = defmt_decoder::Table::parse(&elf_bytes).unwrap().expect("the image has a defmt table");
        let mut dec = table.new_stream_decoder();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            dec.received(&buf[..n]);
            loop {
                match dec.decode() {
                    Ok(f) => {
                        let level = f.level().map_or("", |l| l.as_str());
                        if tx.send(format!("{} {}", level.to_uppercase(), f.display_message())).is_err() {
                            return;
                        }
                    }
                    Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                    Err(defmt_decoder::DecodeError::Malformed) => panic!("malformed defmt frame"),
                }
            }
        }
    });
    Qemu { child, port, via, log, seen: Default::default() }
}

impl Qemu {
    /// The link to the board; over Ethernet once the board has its address (QEMU's forwarded
    /// port accepts before the board listens, then drops the connection).
    fn connect(&self) -> TcpStream {
        if self.via == Via::Ethernet {
            let log = self.log_until("(DHCP)");
            assert!(log.contains("ethernet: 10.0.2.15/24 (DHCP)"), "{log}");
        }
        for _ in 0..200 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
                s.set_nodelay(true).unwrap();
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("QEMU's UART socket never opened");
    }

    /// The log since boot, read until a line contains `until` (or 20 s pass without one).
    fn log_until(&self, until: &str) -> String {
        self.log_until_n(until, 1)
    }

    /// The log since boot, read until `n` lines in all contain `until` (or 20 s pass without
    /// a line).
    fn log_until_n(&self, until: &str, n: usize) -> String {
        let mut out = self.seen.borrow_mut();
        while out.lines().filter(|l| l.contains(until)).count() < n {
            let Ok(line) = self.log.recv_timeout(Duration::from_secs(20)) else { break };
            out.push_str(&line);
            out.push('\n');
        }
        out.clone()
    }
}

fn number_after(log: &str, key: &str) -> u64 {
    log.lines()
        .find_map(|l| l.split(key).nth(1))
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{key}` figure in the log:\n{log}"))
}

#[test]
#[ignore = "needs the firmware image and QEMU: scripts/firmware-e2e runs it"]
fn board_in_qemu_streams_what_the_host_dealer_streams_over_the_uart() {
    streams_match(Via::Uart);
}

#[test]
#[ignore = "needs the firmware image and QEMU: scripts/firmware-e2e runs it"]
fn board_in_qemu_streams_what_the_host_dealer_streams_over_ethernet() {
    streams_match(Via::Ethernet);
}

/// The board's streams equal the host dealer's for the same seeds, keys, plan and generation.
fn assert_same_streams(got: &[Vec<u8>; 2], plan: &ditto_core::plan::Plan, generation: Generation) {
    let spec = SessionSpec::new(generation, &test_provisioning::seeds());
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
}

fn streams_match(via: Via) {
    let (elf, qemu) = env();
    let page = std::env::temp_dir().join(format!("ditto-key-page-{}-{via:?}", std::process::id()));
    std::fs::write(&page, test_provisioning::page()).unwrap();
    let q = boot(&elf, &qemu, Some(&page), via);
    // Over Ethernet, connections that send nothing (someone on the board's network holding its
    // sockets) do not lock the relay out: the board drops the oldest to keep one listening.
    let mut idle = Vec::new();
    if via == Via::Ethernet {
        idle = (0..3).map(|_| q.connect()).collect();
        q.log_until("dropped a connection that carried no request");
    }
    let mut link = q.connect();
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq2.plan"))
        .unwrap();
    let (session, share_set) = (SessionId([0x5a; 16]), ShareSetId([0x5b; 16]));
    let t = Instant::now();
    let got =
        board::request(&mut link, &test_provisioning::relay(), session, share_set, &plan, DEFAULT_CHUNK)
            .unwrap();
    let took = t.elapsed();
    // The first generation since boot: the first salt of the board's salt source.
    let mut salts = test_provisioning::seeds().salts();
    assert_same_streams(&got, &plan, Generation { session, share_set, salt: salts.next_salt() });
    let bytes = got[0].len() + got[1].len();
    println!(
        "board in QEMU over {via:?}: {} plan steps, {bytes} stream bytes in {:.2} s ({:.0} KB/s seen by the host)",
        plan.steps.len(),
        took.as_secs_f64(),
        bytes as f64 / took.as_secs_f64() / 1e3
    );
    let log = q.log_until("request served");
    if via == Via::Ethernet {
        // The two oldest idle connections were dropped (one to make room for the last of them,
        // one for the relay's); the newest is still open.
        let closed: Vec<bool> = idle.iter_mut().map(closed_by_the_board).collect();
        assert_eq!(closed, [true, true, false], "{log}");
    }
    // Someone without the relay key (on the board's network, or at its UART) is refused, and
    // nothing is claimed or dealt (over TCP the board drops the connection after a failed
    // request: the host connects again).
    let stranger = RelayKey::from_bytes(*b"not-the-relay-ky");
    let e = board::request(&mut link, &stranger, SessionId([0x5d; 16]), share_set, &plan, DEFAULT_CHUNK)
        .unwrap_err();
    assert!(e.to_string().contains("not authenticated"), "{e}");
    let mut link = if via == Via::Ethernet { q.connect() } else { link };
    // The board deals a session once: the same request again is refused.
    let e = board::request(&mut link, &test_provisioning::relay(), session, share_set, &plan, DEFAULT_CHUNK)
        .unwrap_err();
    assert!(e.to_string().contains("already served"), "{e}");
    // And the next request is served as if nothing happened (over TCP the board drops the
    // connection after a failed request: the host connects again). A refusal draws no salt.
    let mut link = if via == Via::Ethernet { q.connect() } else { link };
    let second = SessionId([0x5c; 16]);
    let got = board::request(&mut link, &test_provisioning::relay(), second, share_set, &plan, DEFAULT_CHUNK)
        .unwrap();
    assert_same_streams(&got, &plan, Generation { session: second, share_set, salt: salts.next_salt() });
    let _ = std::fs::remove_file(&page);
    println!("board log:\n{log}");
    assert!(log.contains("WARN TEST SEED"), "the image announces its test seed:\n{log}");
    assert!(log.contains("on mps2-an386"), "{log}");
    // Everything the board sent is accounted for: the streams plus the frame headers and
    // the step requests of the serial protocol.
    let over = if via == Via::Uart { "request served over UART" } else { "request served over TCP" };
    assert!(log.contains(over), "{log}");
    let sent = number_after(&log, &format!("{over}: "));
    assert!(sent > bytes as u64 && sent < bytes as u64 + bytes as u64 / 20, "{sent} vs {bytes}");
    let (link, generation) = (number_after(&log, "(link "), number_after(&log, "generation "));
    println!(
        "inside QEMU: link {link} ms, generation {generation} ms ({:.0} KB/s of streams generated)",
        bytes as f64 / generation.max(1) as f64
    );
    // The whole generation runs in the stack (no heap, a few bytes of static data): its
    // high-water mark, chunk buffer included, stays well under 64 KiB.
    let hw = number_after(&log, "stack high-water ");
    println!("board stack high-water: {hw} bytes");
    assert!(hw > 4096 && hw < 64 * 1024, "{hw}");
}

#[test]
#[ignore = "needs the firmware image and QEMU: scripts/firmware-e2e runs it"]
fn board_without_a_valid_key_page_refuses_to_deal_and_exits_with_failure() {
    let (elf, qemu) = env();
    let damaged = std::env::temp_dir().join(format!("ditto-bad-page-{}", std::process::id()));
    let mut bad = test_provisioning::page();
    bad[20] ^= 1;
    std::fs::write(&damaged, bad).unwrap();
    let cases = [(None, "blank"), (Some(damaged.as_path()), "checksum")];
    for ((page, problem), via) in cases.into_iter().flat_map(|c| [(c, Via::Uart), (c, Via::Ethernet)]) {
        let mut q = boot(&elf, &qemu, page, via);
        // QEMU waits for the UART's client before it runs the image.
        let _link = (via == Via::Uart).then(|| q.connect());
        let log = q.log_until("cannot deal");
        assert!(log.contains("ERROR cannot deal: key page: ") && log.contains(problem), "{log}");
        // Refused before any link is served: the Ethernet controller is not even brought up.
        assert!(!log.contains("ethernet"), "{log}");
        let t = Instant::now();
        let status = loop {
            if let Some(s) = q.child.try_wait().unwrap() {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "QEMU still runs after the error");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "{status}");
    }
    let _ = std::fs::remove_file(&damaged);
}

/// Whether the board has closed this connection (else it is open and silent).
fn closed_by_the_board(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    match s.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => panic!("the board sent bytes on a connection that sent it nothing"),
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// Reads the board's frames until its FAIL frame; returns the reason.
fn until_fail(link: &mut TcpStream) -> String {
    loop {
        let mut h = [0u8; 5];
        link.read_exact(&mut h).unwrap();
        let mut body = vec![0u8; u32::from_le_bytes(h[1..].try_into().unwrap()) as usize];
        link.read_exact(&mut body).unwrap();
        if h[0] == board::FAIL {
            return String::from_utf8_lossy(&body).into_owned();
        }
    }
}

#[test]
#[ignore = "needs the firmware image and QEMU: scripts/firmware-e2e runs it"]
fn board_resynchronises_after_noise_a_request_cut_short_and_a_host_gone_mid_request() {
    use std::io::Write;
    let (elf, qemu) = env();
    let page = std::env::temp_dir().join(format!("ditto-key-page-{}-resync", std::process::id()));
    std::fs::write(&page, test_provisioning::page()).unwrap();
    let q = boot(&elf, &qemu, Some(&page), Via::Uart);
    let mut link = q.connect();
    let plan = ditto_core::plan::Plan::from_bytes(include_bytes!("../../testdata/plans/bert-tiny-seq2.plan"))
        .unwrap();
    // Line noise, then a request cut short after its magic, version and part of the session id.
    link.write_all(b"\x00\xff\x55 noise DTF\x00").unwrap();
    link.write_all(&[&board::MAGIC[..], &[board::VERSION], &[7; 9]].concat()).unwrap();
    // The board times out between bytes, answers FAIL, drains the line.
    let reason = until_fail(&mut link);
    let log = q.log_until("request over UART failed");
    assert!(log.contains("bytes drained until the line was idle"), "{reason}\n{log}");
    // A host that stops answering mid-request: a valid request, then silence at the board's
    // first step request.
    let header = postcard::to_allocvec(&plan.header).unwrap();
    let req = board::encode_request(
        &test_provisioning::relay(),
        SessionId([0x61; 16]),
        ShareSetId([0x5b; 16]),
        &header,
        DEFAULT_CHUNK,
    )
    .unwrap();
    link.write_all(&req).unwrap();
    let mut h = [0u8; 5 + 6];
    link.read_exact(&mut h).unwrap();
    assert_eq!((h[0], h[1]), (board::NEED_STEP, 6));
    let reason2 = until_fail(&mut link);
    let log = q.log_until_n("request over UART failed", 2);
    assert_eq!(log.matches("bytes drained").count(), 2, "{log}");
    println!("cut request: {reason}\nhost gone mid-request: {reason2}\nboard log:\n{log}");
    // The next request is served, its streams the host dealer's. Two sessions were claimed
    // before: the one cut short drew no salt, the abandoned one drew the first.
    std::thread::sleep(Duration::from_millis(200));
    let (session, share_set) = (SessionId([0x62; 16]), ShareSetId([0x5b; 16]));
    let got =
        board::request(&mut link, &test_provisioning::relay(), session, share_set, &plan, DEFAULT_CHUNK)
            .unwrap();
    let mut salts = test_provisioning::seeds().salts();
    let _abandoned = salts.next_salt();
    assert_same_streams(&got, &plan, Generation { session, share_set, salt: salts.next_salt() });
    let _ = std::fs::remove_file(&page);
}
