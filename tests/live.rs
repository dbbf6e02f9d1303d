//! `bittap live` on real packets: each test makes its own network namespace with a veth pair,
//! replays lab captures onto one end with tcpreplay and captures on the other. Needs root
//! (skipped with a message otherwise, except in CI, where it must run).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::influxd::{self, Influxd};

#[path = "common/live.rs"]
mod live_support;
use live_support::*;

/// Live equals offline: every lab capture replayed at top speed gives the same flows (same
/// verdict, method, packets and bytes) and the same packet and byte totals as `analyze`.
fn live_equals_offline(threads: usize) {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    for file in lab_captures() {
        let live = Live::start(&ns, threads);
        let mut r = replay(&ns, &file, &["--topspeed"]);
        let out = r.wait().expect("tcpreplay");
        assert!(out.success(), "tcpreplay {}", file.display());
        // The last frames travel through the ring before SIGTERM drains it.
        std::thread::sleep(Duration::from_millis(200));
        let s = live.stop();

        let off = tempfile::tempdir().expect("tempdir");
        let st = Command::new(BIN)
            .arg("analyze")
            .arg("-q")
            .arg("--series")
            .arg(off.path().join("series.csv"))
            .arg("--flows")
            .arg(off.path().join("flows.csv"))
            .arg(&file)
            .status()
            .expect("analyze");
        assert!(st.success());
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let want = sums(&off.path().join("series.csv"), &["packets", "bytes"]);
        let got = sums(&s.dir.path().join("series.csv"), &["packets", "bytes"]);
        assert_eq!((s.kernel, s.queue), (0, 0), "{name}: drops");
        assert_eq!(got, want, "{name}: packet and byte totals");
        assert_eq!(
            (s.read, s.counted, s.in_series),
            (want[0], want[0], want[0])
        );
        let health = sums(&s.dir.path().join("health.csv"), &["packets", "bytes"]);
        assert_eq!(health, want, "{name}: health totals");
        let a = flows(&off.path().join("flows.csv"));
        let b = flows(&s.dir.path().join("flows.csv"));
        assert_eq!(a.len(), b.len(), "{name}: flow count");
        for (k, va) in &a {
            let vb = b
                .get(k)
                .unwrap_or_else(|| panic!("{name}: flow {k} missing live"));
            if threads == 1 {
                assert_eq!(va, vb, "{name}: flow {k}");
            } else {
                // Across workers a correlation may come from a peer another worker learned
                // ahead of stream order; packets and bytes must still agree.
                let pb = |v: &Vec<String>| -> Vec<String> {
                    v.iter()
                        .map(|s| s.rsplitn(3, ',').take(2).collect::<Vec<_>>().join(","))
                        .collect()
                };
                assert_eq!(pb(va), pb(vb), "{name}: flow {k}");
                if va != vb {
                    // Either way: the learning worker may also lag behind the other.
                    let corr = |v: &Vec<String>| v.iter().any(|s| s.contains("correlation"));
                    assert!(corr(va) || corr(vb), "{name}: {k}: {va:?} vs {vb:?}");
                }
            }
        }
    }
}

#[test]
fn live_equals_offline_one_worker() {
    live_equals_offline(1);
}

#[test]
fn live_equals_offline_two_workers() {
    live_equals_offline(2);
}

/// SIGTERM in the middle of a replay: bittap exits 0 and every packet it read is in the
/// series (and the health) written; nothing read is lost in the partial minute.
#[test]
fn sigterm_mid_replay_loses_nothing_counted() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let live = Live::start(&ns, 2);
    let file = repo().join("pcaps/lab/bt-mixed.pcap");
    // 200 loops of 594 packets at 100 Mbit/s: about 5 s of traffic.
    let mut r = replay(&ns, &file, &["--loop", "200", "--mbps", "100"]);
    std::thread::sleep(Duration::from_millis(1500));
    let s = live.stop();
    let _ = r.kill();
    let _ = r.wait();
    let sent_total = 594 * 200;
    assert!(s.read > 1000, "read {} packets before SIGTERM", s.read);
    assert!(s.read < sent_total, "SIGTERM came after the replay ended");
    assert_eq!(s.counted, s.read - s.queue);
    assert_eq!(s.in_series, s.counted);
    let series = sums(&s.dir.path().join("series.csv"), &["packets"]);
    let health = sums(
        &s.dir.path().join("health.csv"),
        &["packets", "queue_drops"],
    );
    assert_eq!(series[0], s.counted);
    assert_eq!(health, vec![s.counted, s.queue]);
    // The kernel saw at least what bittap read (pcap counts its drops in received too).
    assert!(
        s.received >= s.read,
        "received {} < read {}",
        s.received,
        s.read
    );
}

/// Port-view totals per rule id.
fn port_totals(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut m = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        *m.entry(f[1].to_string()).or_insert(0) += f[5].parse::<u64>().expect("packets");
    }
    m
}

/// SIGHUP reloads rules without losing counts: a reordered rule set with two rules removed;
/// the port view follows rule ids across the change and the series keeps every packet.
#[test]
fn sighup_reloads_rules_without_losing_counts() {
    if !privileged() {
        return;
    }
    let rules = tempfile::tempdir().expect("tempdir");
    for f in ["ports.toml", "signatures.toml"] {
        std::fs::copy(repo().join("rules").join(f), rules.path().join(f)).expect("copy rules");
    }
    let ns = Netns::new();
    let dir = rules.path().to_string_lossy().into_owned();
    let live = Live::start_with(&ns, 2, &["--rules", &dir]);
    let file = repo().join("pcaps/lab/bt-classic-ports.pcap");
    assert!(replay(&ns, &file, &["--topspeed"])
        .wait()
        .expect("replay")
        .success());
    std::thread::sleep(Duration::from_millis(200));

    // Reverse the rules and leave out Transmission's two.
    let text = std::fs::read_to_string(rules.path().join("ports.toml")).expect("read");
    let mut blocks: Vec<&str> = text.split("[[port]]").skip(1).collect();
    blocks.retain(|b| !b.contains("transmission-51413"));
    blocks.reverse();
    let new: String = blocks.iter().map(|b| format!("[[port]]{b}\n")).collect();
    std::fs::write(rules.path().join("ports.toml"), new).expect("write rules");
    // SAFETY: kill with a child's pid.
    unsafe {
        libc::kill(live.child.id() as i32, libc::SIGHUP);
    }
    let t0 = Instant::now();
    while !live.stderr().contains("rules reloaded") {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", live.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(live.stderr().contains("rules reloaded: 5 port rules"));
    assert!(replay(&ns, &file, &["--topspeed"])
        .wait()
        .expect("replay")
        .success());
    std::thread::sleep(Duration::from_millis(200));
    let s = live.stop();

    // What each replay gives offline under its rule set.
    let offline = |rules_dir: &Path| {
        let off = tempfile::tempdir().expect("tempdir");
        let st = Command::new(BIN)
            .arg("analyze")
            .arg("-q")
            .arg("--rules")
            .arg(rules_dir)
            .arg("--port-series")
            .arg(off.path().join("ports.csv"))
            .arg(&file)
            .status()
            .expect("analyze");
        assert!(st.success());
        port_totals(&off.path().join("ports.csv"))
    };
    let before = offline(&repo().join("rules"));
    let after = offline(rules.path());
    let got = port_totals(&s.dir.path().join("ports.csv"));
    assert_eq!(s.counted, 2 * 585, "both replays counted");
    assert_eq!(s.in_series, s.counted);
    assert_eq!(
        sums(&s.dir.path().join("series.csv"), &["packets"])[0],
        s.counted
    );
    assert!(before.keys().any(|k| k.contains("transmission")));
    for (id, n) in &before {
        let have = got.get(id).copied().unwrap_or(0);
        if id.contains("transmission") {
            // Counted under the old rules: kept only if its minute was flushed before the
            // reload, else it left the port view with its rule.
            assert!(have == 0 || have == *n, "{id}: {have} of {n}");
        } else {
            let n2 = after.get(id).copied().unwrap_or(0);
            assert_eq!(have, n + n2, "{id}: {n} before the reload, {n2} after");
        }
    }
}

/// Database outage in the middle of a live run: InfluxDB is killed while `bittap live` runs,
/// at least one minute is flushed while it is down (it goes to the on-disk spool), then the
/// database comes back and bittap is stopped. Every minute of the series file is in the
/// database with the same packets and bytes: none lost, none counted twice. Captures its own
/// UDP datagrams on `lo` (a BPF filter on one port), so it runs in this namespace, where the
/// test's InfluxDB listens; takes about a minute (a minute must end during the outage).
#[test]
fn database_outage_during_live_loses_no_minute() {
    if !privileged() {
        return;
    }
    let Some(mut db) = Influxd::start() else {
        return;
    };
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    let port = common::free_port();
    let work = tempfile::tempdir().expect("tempdir");
    let pw = work.path().join("pw");
    std::fs::write(&pw, influxd::PASSWORD).expect("password file");
    let spool = work.path().join("spool");
    let (filter, url) = (format!("udp and dst port {port}"), db.url());
    let (pw, spool_s) = (pw.to_string_lossy(), spool.to_string_lossy());
    let live = Live::launch(
        None,
        "lo",
        1,
        &[
            "--flush-delay",
            "1",
            "--filter",
            &filter,
            "--probe",
            "outage",
            "--influx-url",
            &url,
            "--influx-db",
            influxd::DB,
            "--influx-user",
            influxd::USER,
            "--influx-password-file",
            &pw,
            "--spool",
            &spool_s,
        ],
    );
    let send = |n: usize| {
        for i in 0..n {
            sock.send_to(&[i as u8; 100], ("127.0.0.1", port))
                .expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    send(20);
    db.stop();
    // Past the next minute's end and the flush delay: that minute goes to the spool.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let wait = 60_000 - now % 60_000 + 3_000;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(wait) {
        send(10);
    }
    let spooled = std::fs::read_dir(&spool)
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "lp"))
        .count();
    assert!(
        spooled >= 1,
        "no batch waits in the spool: {}",
        live.stderr()
    );
    db.resume();
    send(20);
    let s = live.stop();
    let err = std::fs::read_to_string(s.dir.path().join("stderr")).unwrap_or_default();
    assert!(err.contains("temporary failure"), "{err}");
    assert_eq!(s.in_series, s.counted);

    // The series file, per minute, against what the database holds for this probe.
    let text = std::fs::read_to_string(s.dir.path().join("series.csv")).expect("series");
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let e = want.entry(f[0].to_string()).or_default();
        e.0 += f[5].parse::<u64>().expect("packets");
        e.1 += f[6].parse::<u64>().expect("bytes");
    }
    assert!(want.len() >= 2, "the run spans two minutes: {want:?}");
    assert!(
        want.values().map(|v| v.0).sum::<u64>() >= 60,
        "datagrams captured: {want:?}"
    );
    let (code, body) = db.query(
        "SELECT sum(packets), sum(bytes) FROM bittap WHERE probe='outage' GROUP BY time(1m) fill(none)",
    );
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for v in json["results"][0]["series"][0]["values"]
        .as_array()
        .expect("values")
    {
        got.insert(
            v[0].as_str().expect("time").to_string(),
            (
                v[1].as_u64().expect("packets"),
                v[2].as_u64().expect("bytes"),
            ),
        );
    }
    assert_eq!(got, want, "database against the series file");
    // Every minute's health row too (quiet minutes included).
    let health = std::fs::read_to_string(s.dir.path().join("health.csv")).expect("health");
    let (code, body) = db.query("SELECT count(packets) FROM bittap_health WHERE probe='outage'");
    assert_eq!(code, 200, "{body}");
    let rows = health.lines().count() as u64 - 1;
    assert!(
        body.contains(&format!(",{rows}]")),
        "{rows} health minutes: {body}"
    );
}

/// An HTTP GET from inside `ns` (this thread alone enters it): status and body.
fn get_in(ns: &Netns, addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let (netns, addr, path) = (
        format!("/run/netns/{}", ns.name),
        addr.to_string(),
        path.to_string(),
    );
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns).expect("netns file");
        // SAFETY: a valid descriptor; CLONE_NEWNET moves only the calling thread.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        write!(s, "GET {path} HTTP/1.1\r\nHost: bittap\r\n\r\n").expect("request");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("response");
        let (head, body) = resp.split_once("\r\n\r\n").expect("head");
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        (code, body.to_string())
    })
    .join()
    .expect("scrape thread")
}

/// Samples of a scrape: name → labels (sorted `k=v` pairs) → value.
type Samples = BTreeMap<String, BTreeMap<Vec<(String, String)>, u64>>;

fn samples(text: &str) -> Samples {
    let mut out = Samples::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = l.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let mut v: Vec<(String, String)> = rest
                    .trim_end_matches('}')
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                v.sort();
                (n, v)
            }
            None => (series, Vec::new()),
        };
        out.entry(name.to_string())
            .or_default()
            .insert(labels, value.parse().expect("integer sample"));
    }
    out
}

fn labels(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// `--metrics-listen`: /healthz is 200 while capture works and the database has not failed;
/// a lab capture replayed and its minute flushed, /metrics passes `promtool check metrics` and
/// its counters equal the sums of the series and health files written; with the database
/// unreachable past `--health-db-grace`, /healthz is 503 and says why. Waits for a minute to
/// end (up to a minute).
#[test]
fn metrics_equal_the_minutes_written_and_health_follows_the_database() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let work = tempfile::tempdir().expect("tempdir");
    let spool = work.path().join("spool").to_string_lossy().into_owned();
    let addr = "127.0.0.1:9108";
    // Port 9 on the namespace's loopback: nothing listens, every write fails at once.
    let live = Live::start_with(
        &ns,
        2,
        &[
            "--flush-delay",
            "1",
            "--metrics-listen",
            addr,
            "--health-db-grace",
            "3",
            "--influx-url",
            "http://127.0.0.1:9",
            "--influx-db",
            "bt",
            "--spool",
            &spool,
        ],
    );
    let (code, body) = get_in(&ns, addr, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"), "{}", live.stderr());

    let file = repo().join("pcaps/lab/bt-mixed.pcap");
    let off = tempfile::tempdir().expect("tempdir");
    let st = Command::new(BIN)
        .args(["analyze", "-q", "--series"])
        .arg(off.path().join("series.csv"))
        .arg(&file)
        .status()
        .expect("analyze");
    assert!(st.success());
    let want = sums(&off.path().join("series.csv"), &["packets"])[0];
    // Paced: a debug build keeps up without drops.
    let mut r = replay(&ns, &file, &["--pps", "2000"]);
    assert!(r.wait().expect("tcpreplay").success());
    let series = live.dir.path().join("series.csv");
    let health = live.dir.path().join("health.csv");
    let t0 = Instant::now();
    let rows = |p: &Path| std::fs::read_to_string(p).map_or(0, |t| t.lines().count());
    // Packets of a flow still waiting for its verdict reach the series later; the health
    // row counts every packet of the minute.
    while rows(&health) < 2 || sums(&health, &["packets"])[0] < want {
        assert!(
            t0.elapsed() < Duration::from_secs(80),
            "the minute was not flushed ({want} packets replayed): {}\n{}\n{}",
            std::fs::read_to_string(&health).unwrap_or_default(),
            std::fs::read_to_string(&series).unwrap_or_default(),
            live.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // A scrape with no minute flushed while the files are read.
    let (text, m, csv, hcsv) = loop {
        let (code, a) = get_in(&ns, addr, "/metrics");
        assert_eq!(code, 200);
        let csv = std::fs::read_to_string(&series).expect("series");
        let hcsv = std::fs::read_to_string(&health).expect("health");
        let (_, b) = get_in(&ns, addr, "/metrics");
        let (ma, mb) = (samples(&a), samples(&b));
        let minutes = ma["bittap_flushes_total"][&vec![]];
        if minutes == mb["bittap_flushes_total"][&vec![]]
            && minutes == hcsv.lines().count() as u64 - 1
        {
            break (a, ma, csv, hcsv);
        }
    };
    let prom = work.path().join("metrics.prom");
    std::fs::write(&prom, &text).expect("write scrape");
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).expect("scrape file"))
        .output()
        .expect("promtool (Debian package prometheus; scripts/deps.sh installs it)");
    let verdict = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!("promtool check metrics: exit {}, {verdict:?}", check.status);
    assert!(
        check.status.success() && verdict.trim().is_empty(),
        "{verdict}\n{text}"
    );

    // Per (proto, method, direction), and BitTorrent bytes per (proto, method).
    let mut traffic: BTreeMap<Vec<(String, String)>, (u64, u64)> = BTreeMap::new();
    let mut bt: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
    for l in csv.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let (pk, b): (u64, u64) = (f[5].parse().expect("packets"), f[6].parse().expect("bytes"));
        let e = traffic
            .entry(labels(&[
                ("proto", f[2]),
                ("method", f[3]),
                ("direction", f[4]),
            ]))
            .or_default();
        e.0 += pk;
        e.1 += b;
        if f[1] == "bittorrent" {
            *bt.entry(labels(&[("proto", f[2]), ("method", f[3])]))
                .or_default() += b;
        }
    }
    let pick = |name: &str| -> BTreeMap<Vec<(String, String)>, u64> {
        m.get(name).cloned().unwrap_or_default()
    };
    let packets: BTreeMap<_, _> = traffic.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    let bytes: BTreeMap<_, _> = traffic.iter().map(|(k, v)| (k.clone(), v.1)).collect();
    assert_eq!(pick("bittap_packets_total"), packets);
    assert_eq!(pick("bittap_bytes_total"), bytes);
    assert!(!bt.is_empty(), "bt-mixed has BitTorrent: {csv}");
    assert_eq!(pick("bittap_bittorrent_bytes_total"), bt);
    let total: u64 = packets.values().sum();
    assert!(
        total > want / 2,
        "the capture is in the metrics: {total} of {want}"
    );
    let hsum = |c: &str| sums(&health, &[c])[0];
    for (metric, col) in [
        ("bittap_flows_created_total", "flows_created"),
        ("bittap_flows_evicted_total", "flows_evicted"),
        ("bittap_flows_unclassified_total", "flows_unclassified"),
        ("bittap_queue_drops_total", "queue_drops"),
        ("bittap_non_ip_packets_total", "non_ip"),
        ("bittap_capture_packets_total", "packets"),
    ] {
        assert_eq!(pick(metric)[&vec![]], hsum(col), "{metric} against {col}");
    }
    let drops = pick("bittap_capture_drops_total");
    for (kind, col) in [("kernel", "kernel_drops"), ("interface", "interface_drops")] {
        let got = drops[&labels(&[("interface", "cp"), ("kind", kind)])];
        assert_eq!(got, hsum(col), "{kind} drops");
    }
    let info = pick("bittap_build_info");
    let (info, one) = info.iter().next().expect("build info");
    assert_eq!(*one, 1);
    assert!(info
        .iter()
        .any(|(k, v)| k == "version" && v == env!("CARGO_PKG_VERSION")));
    eprintln!(
        "metrics against the minute files: {} packets, {} bytes, {} BitTorrent bytes in {} series; {} minutes",
        total,
        bytes.values().sum::<u64>(),
        bt.values().sum::<u64>(),
        traffic.len(),
        hcsv.lines().count() - 1
    );

    // The flushed minute went to the spool and its write fails: 503 once past the grace.
    let t0 = Instant::now();
    let body = loop {
        let (code, body) = get_in(&ns, addr, "/healthz");
        if code == 503 {
            break body;
        }
        assert_eq!(code, 200);
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "still healthy with the database down: {}",
            live.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(body.contains("database writes failing"), "{body}");
    let (_, after) = get_in(&ns, addr, "/metrics");
    let after = samples(&after);
    assert!(after["bittap_database_errors_total"][&labels(&[("kind", "transient")])] >= 1);
    assert!(after["bittap_spool_bytes"][&vec![]] > 0);
    assert_eq!(after["bittap_healthy"][&vec![]], 0);
    let s = live.stop();
    assert_eq!(s.in_series, s.counted);
}
