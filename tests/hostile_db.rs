//! A database that misbehaves on purpose: a small TCP server of the test's own on loopback
//! that answers slowly, with a huge body, or with garbage. Writes (the line-protocol client
//! and the spool) and report's queries give one clear error within their timeout, read a
//! bounded amount of the reply, and the spool keeps every batch (issue 18).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bittap::report::input::Influx;
use bittap::report::Builder;
use bittap::sink::influx::{Client, HttpOptions, Target, WriteError};
use bittap::sink::spool::{SpoolConfig, Spooler};

#[derive(Clone, Copy)]
enum Misbehave {
    /// Reads the request, then says nothing until the client gives up.
    Silent,
    /// HTTP 500 with a body of 200 MB (or until the client hangs up).
    HugeBody,
    /// HTTP 200 with a 200 MB body (a query reply the client must not hold).
    HugeOk,
    /// Bytes that are not HTTP.
    Garbage,
    /// A status line, then one header byte per 200 ms.
    Trickle,
    /// HTTP 200 with a body that is not JSON.
    NotJson,
    /// A well-behaved database: 204 to every write.
    Accept,
}

/// A loopback server answering every connection the same wrong way; counts the bytes it
/// managed to send. Stops when dropped (bounded: each connection ends within 30 s).
struct Server {
    addr: String,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn read_request(s: &mut TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 65536];
    let mut got = Vec::new();
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..i]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= i + 4 + len {
                break;
            }
        }
    }
}

fn serve(how: Misbehave) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = l.local_addr().expect("addr").to_string();
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (sent2, stop2) = (sent.clone(), stop.clone());
    thread::spawn(move || {
        for conn in l.incoming() {
            if stop2.load(Ordering::SeqCst) {
                return;
            }
            let Ok(mut s) = conn else { continue };
            let (sent, stop) = (sent2.clone(), stop2.clone());
            thread::spawn(move || {
                read_request(&mut s);
                let started = Instant::now();
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                let mut put = |b: &[u8]| -> bool {
                    if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(30) {
                        return false;
                    }
                    match s.write_all(b) {
                        Ok(()) => {
                            sent.fetch_add(b.len() as u64, Ordering::SeqCst);
                            true
                        }
                        Err(_) => false,
                    }
                };
                match how {
                    Misbehave::Silent => {
                        while put(b"") {
                            thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Misbehave::HugeBody | Misbehave::HugeOk => {
                        let status = if matches!(how, Misbehave::HugeBody) {
                            "500 Internal Server Error"
                        } else {
                            "200 OK"
                        };
                        let head = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n{{\"error\":\""
                        );
                        if put(head.as_bytes()) {
                            let chunk = [b'x'; 65536];
                            for _ in 0..(200_000_000 / chunk.len()) {
                                if !put(&chunk) {
                                    break;
                                }
                            }
                        }
                    }
                    Misbehave::Garbage => {
                        put(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n\x00\xff");
                    }
                    Misbehave::Trickle => {
                        if put(b"HTTP/1.1 200 OK\r\n") {
                            for _ in 0..150 {
                                if !put(b"X") {
                                    break;
                                }
                                thread::sleep(Duration::from_millis(200));
                            }
                        }
                    }
                    Misbehave::Accept => {
                        put(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
                    }
                    Misbehave::NotJson => {
                        let body = "<html>this is a proxy's error page</html>";
                        put(format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes());
                    }
                }
            });
        }
    });
    Server { addr, sent, stop }
}

fn target(srv: &Server) -> Target {
    Target::V1 {
        url: format!("http://{}", srv.addr),
        db: "bt".into(),
        rp: None,
        user: Some("probe".into()),
        password: Some("s3cret-pw".into()),
    }
}

fn http(timeout_s: u64) -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(timeout_s),
        gzip: true,
        ca_file: None,
    }
}

const LINES: &str = "bittap,probe=p,class=other,proto=other,method=none,direction=unknown packets=1i,bytes=60i 1717149600000000000\n";

/// Writes once; returns the error and how long it took.
fn write_once(srv: &Server, timeout_s: u64) -> (WriteError, Duration) {
    let c = Client::new(&target(srv), &http(timeout_s)).expect("client");
    let t = Instant::now();
    let e = c
        .write(LINES)
        .expect_err("a misbehaving server is an error");
    (e, t.elapsed())
}

fn clear(msg: &str) {
    assert!(msg.contains("127.0.0.1"), "names the server: {msg}");
    assert!(!msg.contains("s3cret-pw"), "shows no secret: {msg}");
    assert!(msg.len() < 1000, "a bounded message ({} bytes)", msg.len());
}

#[test]
fn silent_database_is_a_timeout_that_can_pass() {
    let srv = serve(Misbehave::Silent);
    let (e, took) = write_once(&srv, 2);
    assert!(e.is_transient(), "{e}");
    clear(&e.to_string());
    assert!(took < Duration::from_secs(8), "gave up after {took:?}");
}

#[test]
fn trickling_database_is_cut_off_at_the_timeout() {
    let srv = serve(Misbehave::Trickle);
    let (e, took) = write_once(&srv, 2);
    assert!(e.is_transient(), "{e}");
    clear(&e.to_string());
    assert!(took < Duration::from_secs(8), "gave up after {took:?}");
}

#[test]
fn huge_error_body_is_read_only_as_far_as_needed() {
    let srv = serve(Misbehave::HugeBody);
    let (e, took) = write_once(&srv, 10);
    assert!(e.is_transient(), "{e}");
    let msg = e.to_string();
    clear(&msg);
    assert!(msg.contains("HTTP 500"), "{msg}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(srv);
}

#[test]
fn garbage_reply_is_one_clear_error() {
    let srv = serve(Misbehave::Garbage);
    let (e, _) = write_once(&srv, 5);
    let msg = e.to_string();
    clear(&msg);
    // Not a status the server gave: retried like an outage, never a crash or a hang.
    assert!(e.is_transient(), "{msg}");
}

#[test]
fn spool_keeps_every_batch_while_the_database_misbehaves() {
    for how in [Misbehave::Garbage, Misbehave::HugeBody, Misbehave::Silent] {
        let srv = serve(how);
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SpoolConfig {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(200),
            http: http(1),
            ..SpoolConfig::default()
        };
        let spool = Spooler::start(target(&srv), dir.path().to_path_buf(), cfg).expect("spool");
        for i in 0..3 {
            spool
                .submit(LINES.replace("1717149600", &format!("171714960{i}")))
                .expect("durable");
        }
        thread::sleep(Duration::from_millis(1500));
        let st = spool.close(Duration::from_secs(1));
        assert_eq!(st.sent_batches, 0);
        assert_eq!(pending(dir.path()), 3, "every batch kept");
    }
}

fn pending(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("spool dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lp"))
        .count()
}

fn influx(srv: &Server, timeout_s: u64) -> Influx {
    Influx {
        url: format!("http://{}", srv.addr),
        db: "bt".into(),
        user: Some("probe".into()),
        password: Some("s3cret-pw".into()),
        probe: "p".into(),
        from: "2024-05-31T10:00:00Z".into(),
        to: "2024-05-31T11:00:00Z".into(),
        timeout: Duration::from_secs(timeout_s),
    }
}

#[test]
fn report_query_of_a_misbehaving_database_fails_clearly_and_in_time() {
    for (how, timeout, want) in [
        (Misbehave::Silent, 2, "timed out"),
        (Misbehave::Trickle, 2, ""),
        (Misbehave::Garbage, 5, ""),
        (Misbehave::NotJson, 5, "not JSON"),
        (Misbehave::HugeOk, 20, "reading the reply"),
    ] {
        let srv = serve(how);
        let t = Instant::now();
        let mut b = Builder::default();
        let e = influx(&srv, timeout)
            .read(&mut b)
            .expect_err("a misbehaving database is an error");
        let took = t.elapsed();
        let msg = e.to_string();
        clear(&msg);
        assert!(msg.contains(want), "{msg}");
        assert!(
            took < Duration::from_secs(timeout + 5),
            "gave up after {took:?}: {msg}"
        );
        if matches!(how, Misbehave::HugeOk) {
            // The reply was refused part-way (ureq reads at most 10 MB as text), not held.
            let sent = srv.sent.load(Ordering::SeqCst);
            assert!(sent < 200_000_000, "read all {sent} bytes");
        }
    }
}

#[test]
fn corrupt_and_oversized_batches_are_set_aside_and_the_rest_is_sent() {
    let srv = serve(Misbehave::Accept);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // As a crash, a disk error or a stray copy could leave them: a good batch, one that is
    // not UTF-8, one far larger than any batch (sparse: no disk used), a directory under a
    // batch's name, another good one.
    std::fs::write(d.join("00000000000000000001-1717149600000.lp"), LINES).expect("write");
    std::fs::write(
        d.join("00000000000000000002-1717149600000.lp"),
        b"bittap packets=1i \xff\xfe\n",
    )
    .expect("write");
    let huge =
        std::fs::File::create(d.join("00000000000000000003-1717149600000.lp")).expect("create");
    huge.set_len(bittap::sink::spool::MAX_BATCH_BYTES + 1)
        .expect("sparse file");
    drop(huge);
    std::fs::create_dir(d.join("00000000000000000004-1717149600000.lp")).expect("mkdir");
    std::fs::write(d.join("00000000000000000005-1717149600000.lp"), LINES).expect("write");
    let cfg = SpoolConfig {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(200),
        http: http(5),
        ..SpoolConfig::default()
    };
    let spool = Spooler::start(target(&srv), d.to_path_buf(), cfg).expect("spool");
    let t = Instant::now();
    while spool.stats().pending_batches > 0 && t.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(50));
    }
    let st = spool.close(Duration::from_secs(2));
    assert_eq!((st.sent_batches, st.rejected_batches), (2, 3), "{st:?}");
    assert_eq!(pending(d), 0);
    assert_eq!(pending(&d.join("rejected")), 3);
}

#[test]
fn a_spool_path_that_is_not_a_directory_is_a_clear_error() {
    let srv = serve(Misbehave::Accept);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let e = Spooler::start(target(&srv), file.clone(), SpoolConfig::default())
        .expect_err("a file is no spool");
    assert!(e.to_string().contains("not-a-dir"), "{e}");
}

/// A tmpfs of 64 kB mounted for one test (root only), unmounted when dropped.
struct TinyDisk(tempfile::TempDir);

impl TinyDisk {
    fn mount() -> Option<TinyDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyDisk(dir))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_spool_disk_is_a_clear_error_and_keeps_the_earlier_batches() {
    let Some(disk) = TinyDisk::mount() else {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    };
    let srv = serve(Misbehave::Silent);
    let dir = disk.0.path().join("spool");
    let cfg = SpoolConfig {
        http: http(1),
        ..SpoolConfig::default()
    };
    let spool = Spooler::start(target(&srv), dir.clone(), cfg).expect("spool");
    spool.submit(LINES.to_string()).expect("a small batch fits");
    let big = LINES.repeat(1000);
    let e = spool
        .submit(big)
        .expect_err("a batch larger than the disk cannot be made durable");
    let msg = e.to_string();
    assert!(msg.contains("No space left"), "{msg}");
    assert!(msg.contains(".lp.tmp"), "names the file: {msg}");
    // The half-written file is gone, the earlier batch is kept, and a small one still fits.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("spool dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    assert_eq!(pending(&dir), 1);
    spool.submit(LINES.to_string()).expect("room again");
    assert_eq!(pending(&dir), 2);
    drop(spool.close(Duration::from_millis(200)));
}
