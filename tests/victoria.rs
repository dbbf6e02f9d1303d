//! The v2 write API against a real VictoriaMetrics (Debian's `victoria-metrics`, started here
//! on a free loopback port), through `bittap send` of a line-protocol file written by
//! `analyze`: what VictoriaMetrics stores equals the CSV series exactly.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bittap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bittap"))
        .args(args)
        .output()
        .expect("run bittap")
}

#[test]
fn v2_write_api_stores_exactly_the_series() {
    if Command::new("victoria-metrics")
        .arg("-version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "victoria-metrics missing in CI: scripts/deps.sh installs it"
        );
        eprintln!("victoria-metrics not installed: skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new("victoria-metrics")
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!(
            "-storageDataPath={}",
            dir.path().join("data").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start victoria-metrics");
    let _server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while http("GET", &format!("{url}/health"), &[]).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "victoria-metrics did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (series, lp) = (dir.path().join("s.csv"), dir.path().join("lp.txt"));
    let input = common::repo().join("pcaps/lab/bt-mixed.pcap");
    let p = |x: &std::path::Path| x.to_str().expect("utf-8").to_string();
    let out = bittap(&[
        "analyze",
        "-q",
        &p(&input),
        "--series",
        &p(&series),
        "--line-protocol",
        &p(&lp),
        "--probe",
        "vm-1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = bittap(&[
        "send",
        &p(&lp),
        "--influx-url",
        &url,
        "--influx-bucket",
        "b",
        "--influx-org",
        "o",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        http("GET", &format!("{url}/internal/force_flush"), &[]).0,
        200
    );

    // The CSV, keyed by tags, minute in ms.
    let mut want = BTreeMap::new();
    for row in std::fs::read_to_string(&series)
        .expect("csv")
        .lines()
        .skip(1)
    {
        let c: Vec<&str> = row.split(',').collect();
        want.insert(
            format!("{}|{}|{}|{}|{}", c[0], c[1], c[2], c[3], c[4]),
            (c[5].to_string(), c[6].to_string()),
        );
    }
    // This capture lies in one minute: every row has the same time.
    let minute_text = want
        .keys()
        .next()
        .and_then(|k| k.split('|').next())
        .unwrap_or_default()
        .to_string();
    assert!(want.keys().all(|k| k.starts_with(&minute_text)));
    let mut got: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (field, slot) in [("bittap_packets", 0), ("bittap_bytes", 1)] {
        let (code, body) = http(
            "POST",
            &format!("{url}/api/v1/export"),
            &[(
                "match[]",
                &format!("{{__name__=\"{field}\",probe=\"vm-1\"}}"),
            )],
        );
        assert_eq!(code, 200, "{body}");
        for line in body.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            let m = &v["metric"];
            let key = format!(
                "{}|{}|{}|{}|{}",
                minute_text,
                m["class"].as_str().unwrap_or_default(),
                m["proto"].as_str().unwrap_or_default(),
                m["method"].as_str().unwrap_or_default(),
                m["direction"].as_str().unwrap_or_default()
            );
            let values = v["values"].as_array().expect("values");
            assert_eq!(values.len(), 1, "one point per minute and tag set: {line}");
            assert_eq!(
                v["timestamps"][0].as_i64().map(|t| t % 60_000),
                Some(0),
                "minute start: {line}"
            );
            let e = got.entry(key).or_default();
            let val = values[0].to_string();
            if slot == 0 {
                e.0 = val;
            } else {
                e.1 = val;
            }
        }
    }
    assert_eq!(got, want);
}
