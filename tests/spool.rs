//! The database spool against a real InfluxDB 1.x (Debian's `influxd`, on free loopback
//! ports, authentication on): the database killed in the middle of a run and brought back
//! loses no minute and counts none twice; a spool closed while the database is down is
//! replayed by the next process; a wrong password is a clear, once-only error with the
//! batches kept and exit status 1; a full spool drops its oldest batches and counts them;
//! https with a private CA, and a clear permanent error without it.
//!
//! The minutes are real: the line protocol of every lab capture, one batch per capture
//! minute, moved to consecutive minutes so that each batch is a distinct minute.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bittap::sink::influx::{Client, HttpOptions, Target, WriteError};
use bittap::sink::spool::{SpoolConfig, SpoolStats, Spooler};
use common::influxd::{self, Influxd};
use common::tls::TestCa;
use common::{bittap_with_password as bittap, path_str as s};

const NS_PER_MIN: i64 = 60_000_000_000;
/// 2027-01-01T00:00:00Z: the first minute the batches are moved to.
const BASE_NS: i64 = 1_798_761_600_000_000_000;

/// The lab captures' line protocol, one batch per (capture, minute), each moved to minute
/// `BASE + k` for the k-th batch.
fn minute_batches() -> Vec<String> {
    let rules = Arc::new(bittap::classify::Rules::builtin().expect("rules"));
    let out = tempfile::tempdir().expect("tempdir");
    let mut caps: Vec<PathBuf> = std::fs::read_dir(common::repo().join("pcaps/lab"))
        .expect("pcaps/lab")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    caps.sort();
    let mut batches = Vec::new();
    for cap in caps {
        let lp = out.path().join("lp.txt");
        let opts = bittap::analyze::Options {
            inputs: vec![cap.clone()],
            line_protocol: Some(lp.clone()),
            probe: "spool-test".into(),
            ..Default::default()
        };
        bittap::analyze::run(&opts, Default::default(), rules.clone()).expect("analyze");
        let text = std::fs::read_to_string(&lp).expect("read lp");
        let mut by_minute: BTreeMap<i64, String> = BTreeMap::new();
        for l in text.lines() {
            let (head, ts) = l.rsplit_once(' ').expect("timestamp");
            let ts: i64 = ts.parse().expect("ns");
            let b = by_minute.entry(ts).or_default();
            b.push_str(head);
            b.push('\n');
        }
        for (_, lines) in by_minute {
            let k = batches.len() as i64;
            let t = BASE_NS + k * NS_PER_MIN;
            let moved: String = lines.lines().map(|h| format!("{h} {t}\n")).collect();
            batches.push(moved);
        }
    }
    assert!(batches.len() >= 18, "{}", batches.len());
    batches
}

/// Per series (measurement and tags): minutes, sum of packets, sum of bytes.
type Totals = BTreeMap<String, (u64, u64, u64)>;

/// What the batches hold.
fn expected(batches: &[String]) -> Totals {
    let mut t = Totals::new();
    for l in batches.iter().flat_map(|b| b.lines()) {
        let (series, rest) = l.split_once(' ').expect("fields");
        let (fields, _) = rest.rsplit_once(' ').expect("ts");
        let mut parts = series.split(',');
        let measurement = parts.next().expect("measurement");
        if measurement == "bittap_hosts" {
            // A sketch's estimate, no packets or bytes: it travels in the same batches.
            continue;
        }
        let mut tags: Vec<&str> = parts.collect();
        tags.sort();
        let key = format!("{measurement},{}", tags.join(","));
        let field = |name: &str| -> u64 {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.strip_suffix('i')?.parse().ok())
                .expect("integer field")
        };
        let e = t.entry(key).or_default();
        e.0 += 1;
        e.1 += field("packets");
        e.2 += field("bytes");
    }
    t
}

/// What the database holds, in the same shape.
fn stored(db: &Influxd) -> Totals {
    let (code, body) =
        db.query("SELECT count(packets), sum(packets), sum(bytes) FROM bittap, bittap_port, bittap_health GROUP BY *");
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut t = Totals::new();
    let Some(series) = json["results"][0]["series"].as_array() else {
        return t;
    };
    for s in series {
        let tags: Vec<String> = s["tags"]
            .as_object()
            .expect("tags")
            .iter()
            .filter_map(|(k, v)| {
                let v = v.as_str().unwrap_or_default();
                (!v.is_empty()).then(|| format!("{k}={v}"))
            })
            .collect();
        let mut tags = tags;
        tags.sort();
        let key = format!("{},{}", s["name"].as_str().expect("name"), tags.join(","));
        let v = &s["values"][0];
        let n = |i: usize| v[i].as_u64().expect("number");
        t.insert(key, (n(1), n(2), n(3)));
    }
    t
}

fn target(db: &Influxd, password: &str) -> Target {
    Target::V1 {
        url: db.url(),
        db: influxd::DB.into(),
        rp: None,
        user: Some(influxd::USER.into()),
        password: Some(password.into()),
    }
}

/// Quick retries, so the test does not sit in a 60 s backoff.
fn quick() -> SpoolConfig {
    SpoolConfig {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        http: HttpOptions {
            timeout: Duration::from_secs(5),
            ..HttpOptions::default()
        },
        ..SpoolConfig::default()
    }
}

/// Waits (a bounded while) until the spool's statistics satisfy `done`.
fn wait_for(spool: &Spooler, what: &str, done: impl Fn(&SpoolStats) -> bool) -> SpoolStats {
    let started = Instant::now();
    loop {
        let st = spool.stats();
        if done(&st) {
            return st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spooled_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".lp"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn database_killed_mid_run_loses_no_minute_and_counts_none_twice() {
    let Some(mut db) = Influxd::start() else {
        return;
    };
    let batches = minute_batches();
    let n = batches.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let spool =
        Spooler::start(target(&db, influxd::PASSWORD), dir.path().into(), quick()).expect("start");
    let (a, b) = (n / 3, 2 * n / 3);
    for batch in &batches[..a] {
        spool.submit(batch.clone()).expect("submit");
    }
    wait_for(&spool, "first third sent", |s| s.sent_batches == a as u64);

    db.stop();
    for batch in &batches[a..b] {
        spool.submit(batch.clone()).expect("submit");
    }
    let st = wait_for(&spool, "outage noticed", |s| s.retries >= 2);
    assert_eq!(st.sent_batches, a as u64, "{st:?}");
    assert_eq!(st.pending_batches, (b - a) as u64, "{st:?}");
    assert!(
        st.last_error.is_some() && st.permanent_error.is_none(),
        "{st:?}"
    );
    assert_eq!(spooled_files(dir.path()), b - a);

    db.resume();
    for batch in &batches[b..] {
        spool.submit(batch.clone()).expect("submit");
    }
    let st = spool.close(Duration::from_secs(60));
    assert_eq!(
        (st.pending_batches, st.sent_batches, st.dropped_batches),
        (0, n as u64, 0),
        "{st:?}"
    );
    assert_eq!(st.last_error, None);
    assert_eq!(spooled_files(dir.path()), 0);

    // Zero minutes lost, zero counted twice: per series, the minutes and sums submitted.
    let want = expected(&batches);
    assert_eq!(stored(&db), want);
    let health = want
        .iter()
        .find(|(k, _)| k.starts_with("bittap_health,"))
        .expect("health series");
    assert_eq!(health.1 .0, n as u64, "one health point per minute");
}

#[test]
fn a_spool_closed_while_the_database_is_down_is_replayed_by_the_next_start() {
    let Some(mut db) = Influxd::start() else {
        return;
    };
    let batches = minute_batches();
    let dir = tempfile::tempdir().expect("tempdir");
    db.stop();
    let first =
        Spooler::start(target(&db, influxd::PASSWORD), dir.path().into(), quick()).expect("start");
    for batch in &batches[..5] {
        first.submit(batch.clone()).expect("submit");
    }
    let st = first.close(Duration::from_millis(300));
    assert_eq!((st.pending_batches, st.sent_batches), (5, 0), "{st:?}");
    assert_eq!(spooled_files(dir.path()), 5);

    db.resume();
    let next =
        Spooler::start(target(&db, influxd::PASSWORD), dir.path().into(), quick()).expect("start");
    assert_eq!(next.stats().pending_batches + next.stats().sent_batches, 5);
    next.submit(batches[5].clone()).expect("submit");
    let st = next.close(Duration::from_secs(60));
    assert_eq!((st.pending_batches, st.sent_batches), (0, 6), "{st:?}");
    assert_eq!(stored(&db), expected(&batches[..6]));
}

#[test]
fn wrong_password_is_one_clear_error_and_the_batches_stay() {
    let Some(db) = Influxd::start() else { return };
    let batches = minute_batches();
    let work = tempfile::tempdir().expect("tempdir");
    let (lp, dir) = (work.path().join("lp.txt"), work.path().join("spool"));
    std::fs::write(&lp, batches[..4].concat()).expect("write lp");
    let url = db.url();
    let args = |file: Option<&Path>| {
        let mut a = vec!["send"];
        a.extend(file.map(s));
        a.extend([
            "--spool",
            s(&dir),
            "--influx-url",
            &url,
            "--influx-db",
            influxd::DB,
            "--influx-user",
            influxd::USER,
            "--influx-timeout",
            "5",
        ]);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |file: Option<&Path>, pw: &str| {
        let a = args(file);
        bittap(&a.iter().map(String::as_str).collect::<Vec<_>>(), pw)
    };
    let secret = "Wr0ngPassw0rd";
    let bad = run(Some(&lp), secret);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("HTTP 401").count(), 1, "reported once: {err}");
    assert!(err.contains("bad credentials"), "{err}");
    assert!(err.contains("not retrying"), "{err}");
    assert!(
        !err.contains(secret),
        "the password must not be printed: {err}"
    );
    assert!(!String::from_utf8_lossy(&bad.stdout).contains(secret));
    // The file's lines are one batch (fewer than 5000 lines), kept for later.
    assert_eq!(spooled_files(&dir), 1);

    // The operator fixes the password; `send --spool` without a file replays the spool.
    let ok = run(None, influxd::PASSWORD);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let lines: usize = batches[..4].iter().map(|b| b.lines().count()).sum();
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        format!(
            "sent 1 batches ({lines} lines) to InfluxDB 1.x {url} database {}",
            influxd::DB
        )
    );
    assert_eq!(spooled_files(&dir), 0);
    assert_eq!(stored(&db), expected(&batches[..4]));

    // The library says the same in its statistics, and keeps every batch.
    let spool_dir = work.path().join("lib-spool");
    let spool = Spooler::start(target(&db, secret), spool_dir.clone(), quick()).expect("start");
    for batch in &batches[4..7] {
        spool.submit(batch.clone()).expect("submit");
    }
    let st = wait_for(&spool, "permanent error", |s| s.permanent_error.is_some());
    let e = st.permanent_error.clone().unwrap_or_default();
    assert!(e.contains("HTTP 401") && !e.contains(secret), "{e}");
    let st = spool.close(Duration::from_millis(200));
    assert_eq!((st.pending_batches, st.sent_batches, st.retries), (3, 0, 0));
    assert_eq!(spooled_files(&spool_dir), 3);
}

#[test]
fn analyze_with_a_spool_keeps_the_lines_through_an_outage() {
    let Some(mut db) = Influxd::start() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let (dir, lp) = (work.path().join("spool"), work.path().join("lp.txt"));
    let input = common::repo().join("pcaps/lab/bt-mixed.pcap");
    let url = db.url();
    let analyze = |extra: &[&str]| {
        let mut a = vec![
            "analyze",
            "-q",
            s(&input),
            "--probe",
            "spool-test",
            "--line-protocol",
            s(&lp),
        ];
        a.extend(extra);
        bittap(&a, influxd::PASSWORD)
    };
    db.stop();
    let spool_args = [
        "--influx-url",
        url.as_str(),
        "--influx-db",
        influxd::DB,
        "--influx-user",
        influxd::USER,
        "--influx-timeout",
        "1",
        "--spool",
        s(&dir),
    ];
    let out = analyze(&spool_args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("temporary") && err.contains("kept in the spool"),
        "{err}"
    );
    assert_eq!(spooled_files(&dir), 1);

    // The next run (database back) replays the spool first, then writes its own lines: the
    // same points again, which overwrite rather than add.
    db.resume();
    let out = analyze(&spool_args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spooled_files(&dir), 0);
    let text = std::fs::read_to_string(&lp).expect("lp");
    assert_eq!(stored(&db), expected(&[text]));
}

#[test]
fn a_full_spool_drops_the_oldest_batches_and_counts_them() {
    let Some(mut db) = Influxd::start() else {
        return;
    };
    let batches = minute_batches();
    let dir = tempfile::tempdir().expect("tempdir");
    db.stop();
    // Room for the last four batches, not for five.
    let sizes: Vec<u64> = batches[..10].iter().map(|b| b.len() as u64).collect();
    let last4: u64 = sizes[6..].iter().sum();
    let cfg = SpoolConfig {
        max_bytes: last4 + sizes[5] - 1,
        // One attempt, then no retry while the batches are submitted: no batch is in
        // flight (never dropped), so only the queue's order decides.
        backoff_min: Duration::from_secs(600),
        ..quick()
    };
    let spool = Spooler::start(
        target(&db, influxd::PASSWORD),
        dir.path().into(),
        cfg.clone(),
    )
    .expect("start");
    spool.submit(batches[0].clone()).expect("submit");
    wait_for(&spool, "first failure", |s| s.retries >= 1);
    for batch in &batches[1..10] {
        spool.submit(batch.clone()).expect("submit");
    }
    let st = spool.close(Duration::ZERO);
    assert_eq!((st.pending_batches, st.dropped_batches), (4, 6), "{st:?}");
    assert_eq!(st.pending_bytes, last4, "{st:?}");
    assert_eq!(st.dropped_bytes, sizes[..6].iter().sum::<u64>(), "{st:?}");
    assert_eq!(spooled_files(dir.path()), 4);

    // What is left is the newest batches, delivered in full once the database is back.
    db.resume();
    let spool =
        Spooler::start(target(&db, influxd::PASSWORD), dir.path().into(), cfg).expect("restart");
    let st = spool.close(Duration::from_secs(60));
    assert_eq!((st.pending_batches, st.sent_batches), (0, 4));
    assert_eq!(stored(&db), expected(&batches[6..10]));
}

#[test]
fn https_with_a_private_ca_and_a_clear_error_without_it() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl missing in CI: scripts/deps.sh installs it"
        );
        return;
    }
    let ca = TestCa::new();
    let Some(db) = Influxd::start_with(influxd::Options { tls: Some(&ca) }) else {
        return;
    };
    assert!(db.url().starts_with("https://"));
    let batches = minute_batches();
    let work = tempfile::tempdir().expect("tempdir");
    let lp = work.path().join("lp.txt");
    std::fs::write(&lp, batches[..3].concat()).expect("write lp");
    let url = db.url();
    let send = |extra: &[&str]| {
        let mut a = vec![
            "send",
            s(&lp),
            "--influx-url",
            url.as_str(),
            "--influx-db",
            influxd::DB,
            "--influx-user",
            influxd::USER,
        ];
        a.extend(extra);
        bittap(&a, influxd::PASSWORD)
    };

    // Without the CA: the certificate is not trusted, a permanent error, exit 1.
    let out = send(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(!err.contains("temporary"), "{err}");
    assert_eq!(stored(&db), Totals::new());
    let client =
        Client::new(&target(&db, influxd::PASSWORD), &HttpOptions::default()).expect("client");
    match client.write(&batches[0]) {
        Err(WriteError::Permanent(m)) => assert!(m.contains("UnknownIssuer"), "{m}"),
        other => panic!("{other:?}"),
    }

    // With it, through the spool.
    let dir = work.path().join("spool");
    let out = send(&["--influx-ca", s(&ca.ca_cert), "--spool", s(&dir)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&db), expected(&batches[..3]));

    // And without gzip, straight.
    std::fs::write(&lp, &batches[3]).expect("write lp");
    let out = send(&["--influx-ca", s(&ca.ca_cert), "--influx-no-gzip"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&db), expected(&batches[..4]));

    // A CA file that is not one: an argument error naming the file.
    let out = send(&["--influx-ca", s(&lp)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(s(&lp)), "{err}");
}

#[test]
fn rejected_data_is_moved_aside_and_the_rest_goes_on() {
    let Some(db) = Influxd::start() else { return };
    let batches = minute_batches();
    let dir = tempfile::tempdir().expect("tempdir");
    let spool =
        Spooler::start(target(&db, influxd::PASSWORD), dir.path().into(), quick()).expect("start");
    spool.submit(batches[0].clone()).expect("submit");
    spool
        .submit("bittap,probe=spool-test packets= 60000000000\n".into())
        .expect("submit");
    spool.submit(batches[1].clone()).expect("submit");
    let st = spool.close(Duration::from_secs(60));
    assert_eq!(
        (st.pending_batches, st.sent_batches, st.rejected_batches),
        (0, 2, 1),
        "{st:?}"
    );
    assert_eq!(st.permanent_error, None);
    assert_eq!(spooled_files(&dir.path().join("rejected")), 1);
    assert_eq!(stored(&db), expected(&batches[..2]));
}

/// A loopback HTTP server of the test's own answering the given status lines and headers in
/// turn (the last one from then on); returns its URL and the time each request arrived.
fn scripted_server(answers: Vec<String>) -> (String, Arc<std::sync::Mutex<Vec<Instant>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(stream) = conn else { continue };
            let mut r = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            seen.lock().expect("times").push(Instant::now());
            let a = &answers[i.min(answers.len() - 1)];
            let _ = write!(
                r.get_mut(),
                "HTTP/1.1 {a}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, times)
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// 503 and 429 with `Retry-After` (seconds, then an HTTP date) are retried after what the
/// server asked for, not after the (much shorter) backoff; then the batch goes through.
#[test]
fn retry_after_is_honoured_on_429_and_503() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(4));
    let (url, times) = scripted_server(vec![
        "503 Service Unavailable\r\nRetry-After: 2".into(),
        format!("429 Too Many Requests\r\nRetry-After: {date}"),
        "204 No Content".into(),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SpoolConfig {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(100),
        ..SpoolConfig::default()
    };
    let target = Target::V2 {
        url,
        org: "o".into(),
        bucket: "b".into(),
        token: None,
    };
    let spool = Spooler::start(target, dir.path().join("spool"), cfg).expect("spool");
    spool.submit("m f=1i 0\n".into()).expect("submit");
    let st = wait_for(&spool, "sent after the waits", |s| s.sent_batches == 1);
    assert_eq!(st.retries, 2);
    let t = times.lock().expect("times").clone();
    assert_eq!(t.len(), 3, "requests");
    let g = gaps(&t);
    eprintln!("Retry-After gaps: {g:?}");
    assert!(
        g[0] >= Duration::from_millis(1950),
        "Retry-After: 2 → {:?}",
        g[0]
    );
    assert!(g[0] < Duration::from_millis(3000), "{:?}", g[0]);
    // The date has a one-second resolution and was made before the first request.
    assert!(
        g[1] >= Duration::from_millis(900),
        "Retry-After: date → {:?}",
        g[1]
    );
    assert!(g[1] < Duration::from_millis(3500), "{:?}", g[1]);
}

/// Without `Retry-After`, a 500 is retried after an exponential backoff with jitter: each
/// wait between half and all of 100, 200, 400, 400 ms (bounded by backoff_max).
#[test]
fn backoff_doubles_with_jitter_up_to_its_bound() {
    let (url, times) = scripted_server(vec![
        "500 Internal Server Error".into(),
        "500 Internal Server Error".into(),
        "500 Internal Server Error".into(),
        "500 Internal Server Error".into(),
        "204 No Content".into(),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SpoolConfig {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        ..SpoolConfig::default()
    };
    let target = Target::V2 {
        url,
        org: "o".into(),
        bucket: "b".into(),
        token: None,
    };
    let spool = Spooler::start(target, dir.path().join("spool"), cfg).expect("spool");
    spool.submit("m f=1i 0\n".into()).expect("submit");
    let st = wait_for(&spool, "sent after the retries", |s| s.sent_batches == 1);
    assert_eq!(st.retries, 4);
    let t = times.lock().expect("times").clone();
    assert_eq!(t.len(), 5, "requests");
    let g = gaps(&t);
    eprintln!("backoff gaps: {g:?}");
    for (gap, b) in g.iter().zip([100u64, 200, 400, 400]) {
        assert!(*gap >= Duration::from_millis(b / 2), "{gap:?} for {b} ms");
        assert!(*gap <= Duration::from_millis(b + 250), "{gap:?} for {b} ms");
    }
}
