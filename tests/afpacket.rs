//! `bittap live --capture afpacket` on real packets: lab captures replayed at top speed onto
//! a veth pair in a private namespace, two workers each reading their own ring of a
//! PACKET_FANOUT group. No frame may be lost, and what live counts must equal `analyze` on
//! the same capture. Needs root (skipped with a message otherwise, except in CI).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[path = "common/live.rs"]
mod live_support;
use live_support::{flows, lab_captures, privileged, replay, repo, sums, Live, Netns, BIN};

/// Series rows summed over minutes (live's minutes are the replay's, not the capture's):
/// (class, proto, method, direction) to (packets, bytes).
fn series_by_key(path: &Path) -> BTreeMap<String, (u64, u64)> {
    let text = std::fs::read_to_string(path).expect("read series");
    let mut m = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let e = m.entry(f[1..5].join(",")).or_insert((0, 0));
        e.0 += f[5].parse::<u64>().expect("packets");
        e.1 += f[6].parse::<u64>().expect("bytes");
    }
    m
}

fn analyze(file: &Path, extra: &[&str]) -> tempfile::TempDir {
    let off = tempfile::tempdir().expect("tempdir");
    let st = Command::new(BIN)
        .arg("analyze")
        .arg("-q")
        .arg("--series")
        .arg(off.path().join("series.csv"))
        .arg("--flows")
        .arg(off.path().join("flows.csv"))
        .args(extra)
        .arg(file)
        .status()
        .expect("analyze");
    assert!(st.success());
    off
}

/// Frames each ring read, from the `rings:` line live prints at exit.
fn ring_reads(stderr: &str) -> Vec<u64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("rings: "))
        .unwrap_or_else(|| panic!("no rings line: {stderr}"));
    line.split("; ")
        .map(|r| {
            let i = r.find(" read ").expect("read") + 6;
            r[i..]
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("count")
        })
        .collect()
}

const AFPACKET: &[&str] = &["--capture", "afpacket"];

/// Every lab capture replayed at top speed into two AF_PACKET workers: no kernel drop, and
/// the series (summed over minutes), the totals and the flows equal `analyze`'s.
#[test]
fn two_workers_equal_analyze_on_every_lab_capture() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let mut spread = [0u64; 2];
    for file in lab_captures() {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let live = Live::start_with(&ns, 2, AFPACKET);
        assert!(
            live.stderr().contains("AF_PACKET fanout"),
            "{}",
            live.stderr()
        );
        let out = replay(&ns, &file, &["--topspeed"])
            .wait()
            .expect("tcpreplay");
        assert!(out.success(), "tcpreplay {name}");
        std::thread::sleep(Duration::from_millis(200));
        let s = live.stop();
        let off = analyze(&file, &[]);
        let want = sums(&off.path().join("series.csv"), &["packets", "bytes"]);
        assert_eq!((s.kernel, s.queue), (0, 0), "{name}: drops");
        assert_eq!(
            (s.read, s.counted, s.in_series),
            (want[0], want[0], want[0]),
            "{name}"
        );
        let rings = ring_reads(&s.stderr);
        assert_eq!(rings.len(), 2, "{name}: {}", s.stderr);
        assert_eq!(rings.iter().sum::<u64>(), s.read, "{name}: rings");
        spread[0] += rings[0];
        spread[1] += rings[1];
        let health = sums(
            &s.dir.path().join("health.csv"),
            &["packets", "bytes", "kernel_drops"],
        );
        assert_eq!(health, vec![want[0], want[1], 0], "{name}: health");

        let a = series_by_key(&off.path().join("series.csv"));
        let b = series_by_key(&s.dir.path().join("series.csv"));
        let fa = flows(&off.path().join("flows.csv"));
        let fb = flows(&s.dir.path().join("flows.csv"));
        assert_eq!(fa.len(), fb.len(), "{name}: flow count");
        let mut correlation_moved = false;
        for (k, va) in &fa {
            let vb = fb
                .get(k)
                .unwrap_or_else(|| panic!("{name}: flow {k} missing live"));
            // Packets and bytes of every flow agree; its verdict too, except that across
            // workers a correlation may come from a peer the other worker learned sooner or
            // later than one thread would (as for the libpcap workers in tests/live.rs).
            let pb = |v: &Vec<String>| -> Vec<String> {
                v.iter()
                    .map(|s| s.rsplitn(3, ',').take(2).collect::<Vec<_>>().join(","))
                    .collect()
            };
            assert_eq!(pb(va), pb(vb), "{name}: flow {k}");
            if va != vb {
                let corr = |v: &Vec<String>| v.iter().any(|s| s.contains("correlation"));
                assert!(corr(va) || corr(vb), "{name}: {k}: {va:?} vs {vb:?}");
                correlation_moved = true;
            }
        }
        if correlation_moved {
            eprintln!("{name}: a correlation came from the other worker; series by totals");
        } else {
            assert_eq!(a, b, "{name}: series");
        }
    }
    // The kernel spread the lab's address pairs over both rings.
    assert!(spread.iter().all(|&n| n > 500), "rings read {spread:?}");
}

/// One capture looped 100 times at top speed (59 400 frames in well under a second): still no
/// frame lost, every one counted, and 100 times `analyze`'s totals.
#[test]
fn top_speed_loop_loses_no_frame() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let file = repo().join("pcaps/lab/bt-mixed.pcap");
    let live = Live::start_with(&ns, 2, AFPACKET);
    let out = replay(
        &ns,
        &file,
        &["--topspeed", "--loop", "100", "--preload-pcap"],
    )
    .wait()
    .expect("tcpreplay");
    assert!(out.success());
    std::thread::sleep(Duration::from_millis(300));
    let s = live.stop();
    let off = analyze(&file, &[]);
    let want = sums(&off.path().join("series.csv"), &["packets", "bytes"]);
    assert_eq!((s.kernel, s.queue), (0, 0), "drops: {}", s.stderr);
    assert_eq!(s.received, 100 * want[0]);
    assert_eq!(
        (s.read, s.counted, s.in_series),
        (100 * want[0], 100 * want[0], 100 * want[0])
    );
    let got = sums(&s.dir.path().join("series.csv"), &["packets", "bytes"]);
    assert_eq!(got, vec![100 * want[0], 100 * want[1]]);
}

/// `--filter` is compiled by libpcap and attached to every ring: only the matching frames
/// are read, as many as tcpdump matches in the capture.
#[test]
fn filter_is_attached_to_every_ring() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let file = repo().join("pcaps/lab/bt-mixed.pcap");
    let expr = "udp";
    let live = Live::start_with(&ns, 2, &["--capture", "afpacket", "--filter", expr]);
    assert!(replay(&ns, &file, &["--topspeed"])
        .wait()
        .expect("tcpreplay")
        .success());
    std::thread::sleep(Duration::from_millis(200));
    let s = live.stop();
    let out = Command::new("tcpdump")
        .args(["-nr"])
        .arg(&file)
        .arg(expr)
        .output()
        .expect("tcpdump");
    let want = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    assert!(want > 0 && want < 594, "tcpdump matched {want}");
    assert_eq!((s.read, s.counted, s.kernel), (want, want, 0));
    assert!(ring_reads(&s.stderr).iter().all(|&n| n > 0), "{}", s.stderr);
}

/// `--capture pcap` keeps libpcap (one capture thread dispatching to the workers).
#[test]
fn capture_pcap_keeps_libpcap() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let live = Live::start_with(&ns, 2, &["--capture", "pcap"]);
    assert!(!live.stderr().contains("AF_PACKET"), "{}", live.stderr());
    let file = repo().join("pcaps/lab/bt-utp.pcap");
    assert!(replay(&ns, &file, &["--topspeed"])
        .wait()
        .expect("tcpreplay")
        .success());
    std::thread::sleep(Duration::from_millis(200));
    let s = live.stop();
    let want = sums(&analyze(&file, &[]).path().join("series.csv"), &["packets"]);
    assert_eq!(s.counted, want[0]);
    assert!(!s.stderr.contains("rings: "));
}
