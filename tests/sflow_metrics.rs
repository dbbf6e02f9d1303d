//! `bittap sflow --metrics-listen`: the collector serves the same /metrics and /healthz as
//! `live` (issues 16, 19). Crafted datagrams are sent over loopback; the scrape after the
//! first flushed minute passes `promtool check metrics` and its packet counter equals the
//! health rows written.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bittap::sflow::decode::build;

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: bittap\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The sum of a metric's samples in a scrape.
fn total(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// An Ethernet + IPv4 + UDP frame of `payload` bytes.
fn frame(sport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload) as u16;
    f.extend_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&53u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(0u8, payload));
    f
}

#[test]
fn sflow_serves_metrics_and_healthz() {
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("no promtool (Debian package prometheus): skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (udp, http) = (free_udp_port(), free_tcp_port());
    let health = dir.path().join("health.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bittap"))
        .args(["sflow", "--listen", &format!("127.0.0.1:{udp}"), "--quiet"])
        .args(["--metrics-listen", &format!("127.0.0.1:{http}")])
        .args(["--flush-delay", "1", "--probe", "t"])
        .arg("--health")
        .arg(&health)
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bittap sflow");
    let started = Instant::now();
    let up = loop {
        if let Some(r) = get(http, "/healthz") {
            break Some(r);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // One datagram a second, each with one 1-in-10 sample of a 100-byte UDP frame, until
    // a minute has been flushed (at most a minute and a bit).
    let mut seq = 0u32;
    let scrape = loop {
        seq += 1;
        let sample = build::flow_sample(
            false,
            seq,
            1,
            10,
            10 * seq,
            0,
            &[build::raw_header(1, 142, 4, &frame(4000, 100))],
        );
        let dg = build::datagram(&[192, 0, 2, 1], 0, seq, seq * 1000, &[sample]);
        tx.send_to(&dg, ("127.0.0.1", udp)).expect("send");
        std::thread::sleep(Duration::from_secs(1));
        let m = get(http, "/metrics").map(|(_, b)| b).unwrap_or_default();
        if total(&m, "bittap_flushes_total") >= 1 || started.elapsed() > Duration::from_secs(80) {
            break m;
        }
    };
    // SAFETY: a plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "{err}");
    let (code, body) = up.expect("/healthz answered");
    assert_eq!(code, 200, "{body}");
    assert!(
        total(&scrape, "bittap_flushes_total") >= 1,
        "{scrape}\n{err}"
    );
    assert!(scrape.contains("bittap_build_info{"), "{scrape}");

    let prom = dir.path().join("metrics.prom");
    std::fs::write(&prom, &scrape).expect("write scrape");
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).expect("scrape file"))
        .output()
        .expect("promtool");
    let verdict = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!("promtool check metrics: exit {}, {verdict:?}", check.status);
    assert!(
        check.status.success() && verdict.trim().is_empty(),
        "{verdict}\n{scrape}"
    );

    // The minutes in the scrape are in the health file, with the same packets (each sample
    // stands for 10).
    let csv = std::fs::read_to_string(&health).expect("health");
    let mut lines = csv.lines();
    let cols: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = cols
        .iter()
        .position(|c| *c == "packets")
        .expect("packets column");
    let rows: Vec<u64> = lines
        .map(|l| {
            l.split(',')
                .nth(at)
                .and_then(|v| v.parse().ok())
                .expect("packets")
        })
        .collect();
    let flushed = total(&scrape, "bittap_flushes_total") as usize;
    let scraped = total(&scrape, "bittap_packets_total");
    assert!(scraped > 0 && scraped.is_multiple_of(10), "{scraped}");
    assert_eq!(
        scraped,
        rows[..flushed].iter().sum::<u64>(),
        "{csv}\n{scrape}"
    );
    assert_eq!(rows.iter().sum::<u64>(), 10 * u64::from(seq), "{csv}");
}
