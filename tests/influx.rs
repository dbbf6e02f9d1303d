//! Pushing to a real InfluxDB 1.x (Debian's `influxd`, started here on free loopback ports
//! with authentication on): the series read back equal the CSV series exactly; a wrong
//! password and an unreachable database give clear errors and a non-zero exit status, with
//! the output files written anyway.

mod common;

use common::influxd::Influxd;
use common::{bittap_with_password as bittap, free_port, http, path_str as s};

#[test]
fn series_read_back_equal_the_csv_and_errors_are_clear() {
    let Some(db) = Influxd::start() else { return };
    let url = format!("http://127.0.0.1:{}", db.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let series = dir.path().join("s.csv");
    let input = common::repo().join("pcaps/lab/bt-mixed.pcap");
    let args = |url: &str| {
        vec![
            "analyze".to_string(),
            "-q".into(),
            s(&input).into(),
            "--series".into(),
            s(&series).into(),
            "--influx-url".into(),
            url.into(),
            "--influx-db".into(),
            "bt".into(),
            "--influx-user".into(),
            "admin".into(),
            "--probe".into(),
            "ix-1".into(),
        ]
    };
    let ok = bittap(
        &args(&url).iter().map(String::as_str).collect::<Vec<_>>(),
        "adminpw",
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Read back per tag set and compare with the CSV rows.
    let (code, body) = http(
        "POST",
        &format!("{url}/query?db=bt&u=admin&p=adminpw"),
        &[
            ("q", "SELECT sum(packets), sum(bytes) FROM bittap WHERE probe='ix-1' GROUP BY time(1m), class, proto, method, direction"),
        ],
    );
    assert_eq!(code, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut got = Vec::new();
    for serie in json["results"][0]["series"].as_array().expect("series") {
        let t = &serie["tags"];
        for v in serie["values"].as_array().expect("values") {
            if v[1].is_null() {
                continue;
            }
            got.push(format!(
                "{},{},{},{},{},{},{}",
                v[0].as_str().unwrap_or_default(),
                t["class"].as_str().unwrap_or_default(),
                t["proto"].as_str().unwrap_or_default(),
                t["method"].as_str().unwrap_or_default(),
                t["direction"].as_str().unwrap_or_default(),
                v[1],
                v[2]
            ));
        }
    }
    let mut want: Vec<String> = std::fs::read_to_string(&series)
        .expect("csv")
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // A second push of the same capture overwrites the same points: nothing counted twice.
    let again = bittap(
        &args(&url).iter().map(String::as_str).collect::<Vec<_>>(),
        "adminpw",
    );
    assert_eq!(again.status.code(), Some(0));
    let (_, body2) = http(
        "POST",
        &format!("{url}/query?db=bt&u=admin&p=adminpw"),
        &[("q", "SELECT sum(bytes) FROM bittap")],
    );
    let total: u64 = want
        .iter()
        .map(|r| {
            r.rsplit(',')
                .next()
                .and_then(|b| b.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert!(body2.contains(&format!(",{total}]")), "{body2} vs {total}");

    // Wrong password: a clear error, exit status 1, the CSV still written.
    std::fs::remove_file(&series).expect("rm");
    let bad = bittap(
        &args(&url).iter().map(String::as_str).collect::<Vec<_>>(),
        "wrong",
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("bad credentials"),
        "{err}"
    );
    assert!(
        !err.contains("wrong"),
        "the password must not be printed: {err}"
    );
    assert!(series.exists());

    // Unreachable database: the same, as a temporary failure.
    let down = format!("http://127.0.0.1:{}", free_port());
    let out = bittap(
        &args(&down).iter().map(String::as_str).collect::<Vec<_>>(),
        "adminpw",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("temporary"), "{err}");
}
