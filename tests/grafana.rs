//! The Grafana dashboards of `grafana/`, checked without Grafana: their structure (keys,
//! unique ids, the provisioned data source uid, every variable defined) and every query in
//! them — panel targets, in rows and collapsed rows, and template variable queries — run
//! against a real InfluxDB 1.x holding two probes' data from `pcaps/lab/`, with Grafana's
//! macros and variables substituted as Grafana substitutes them, under several time ranges,
//! `$__interval` values and variable selections. Each result must equal numbers computed
//! here independently from the CSV files (`--series`, `--port-series`, `--health`) that the
//! same runs wrote. A query with no expectation in `SPECS`, or an expectation with no query,
//! fails the test, so a new panel cannot go in untested. The VictoriaMetrics variant
//! (`grafana/dashboards-victoria/`, PromQL/MetricsQL) is checked the same way against a real
//! `victoria-metrics` through `/api/v1/query_range`, as Grafana's Prometheus data source asks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::influxd::{Influxd, DB, PASSWORD, USER};
use serde_json::Value;

/// The data sources the dashboards of a folder must use: (folder, type, provisioned uid).
const INFLUX: (&str, &str, &str) = ("grafana/dashboards", "influxdb", "bittap-influxdb");
const VICTORIA: (&str, &str, &str) = (
    "grafana/dashboards-victoria",
    "prometheus",
    "bittap-victoria",
);
const MIN: i64 = 60_000;

/// One row of the CSV outputs, as a point of the database: measurement, minute (ms), tags
/// (probe included), integer fields.
#[derive(Clone, Debug)]
struct Row {
    m: &'static str,
    t: i64,
    tags: BTreeMap<String, String>,
    fields: BTreeMap<String, f64>,
}

fn csv_rows(path: &Path, m: &'static str, probe: &str, tag_cols: &[&str]) -> Vec<Row> {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    lines
        .map(|l| {
            let mut row = Row {
                m,
                t: 0,
                tags: BTreeMap::from([("probe".to_string(), probe.to_string())]),
                fields: BTreeMap::new(),
            };
            for (k, v) in header.iter().zip(l.split(',')) {
                if *k == "time" {
                    row.t = rfc3339_minute_ms(v);
                } else if tag_cols.contains(k) {
                    row.tags.insert(k.to_string(), v.to_string());
                } else {
                    row.fields
                        .insert(k.to_string(), v.parse().expect("integer field"));
                }
            }
            row
        })
        .collect()
}

/// `2026-11-24T16:17:00Z` as epoch milliseconds (days from civil, Howard Hinnant's method).
fn rfc3339_minute_ms(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().expect("digits");
    let (y, m, d, hh, mm) = (n(0, 4), n(5, 7), n(8, 10), n(11, 13), n(14, 16));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + hh) * 60 + mm) * MIN
}

fn bittap(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_bittap"))
        .args(args)
        .env("BITTAP_INFLUX_PASSWORD", PASSWORD)
        .output()
        .expect("run bittap");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Analyses `captures` as probe `probe` with `extra` arguments (a push to a database, a home
/// network), writing the three CSV files and line protocol; returns the CSV rows and the
/// line protocol.
fn probe_run(
    dir: &Path,
    probe: &str,
    captures: &[PathBuf],
    extra: &[String],
) -> (Vec<Row>, String) {
    let (series, ports, health, hosts, lp) = (
        dir.join(format!("{probe}-series.csv")),
        dir.join(format!("{probe}-ports.csv")),
        dir.join(format!("{probe}-health.csv")),
        dir.join(format!("{probe}-hosts.csv")),
        dir.join(format!("{probe}.lp")),
    );
    let mut args: Vec<String> = vec!["analyze".into(), "-q".into()];
    args.extend(captures.iter().map(|c| s(c)));
    for (flag, path) in [
        ("--series", &series),
        ("--port-series", &ports),
        ("--health", &health),
        ("--hosts", &hosts),
        ("--line-protocol", &lp),
    ] {
        args.push(flag.into());
        args.push(s(path));
    }
    args.extend(["--probe".to_string(), probe.to_string()]);
    args.extend(extra.iter().cloned());
    bittap(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut rows = csv_rows(
        &series,
        "bittap",
        probe,
        &["class", "proto", "method", "direction"],
    );
    rows.extend(csv_rows(
        &ports,
        "bittap_port",
        probe,
        &["rule", "l4", "proto", "direction"],
    ));
    // With sFlow input the health CSV also has sFlow's fields: measurement bittap_sflow.
    for mut r in csv_rows(&health, "bittap_health", probe, &[]) {
        if r.fields.contains_key("datagrams") {
            let mut sf = r.clone();
            sf.m = "bittap_sflow";
            sf.fields.retain(|k, _| SFLOW_FIELDS.contains(&k.as_str()));
            r.fields.retain(|k, _| !SFLOW_FIELDS.contains(&k.as_str()));
            rows.push(sf);
        }
        rows.push(r);
    }
    // The CSV's `bittorrent_hosts` is the `bittorrent` field of `bittap_hosts`.
    rows.extend(
        csv_rows(&hosts, "bittap_hosts", probe, &[])
            .into_iter()
            .map(|mut r| {
                let n = r.fields.remove("bittorrent_hosts").expect("hosts column");
                r.fields.insert("bittorrent".to_string(), n);
                r
            }),
    );
    (rows, std::fs::read_to_string(&lp).expect("line protocol"))
}

/// The fields of `bittap_sflow` (sFlow's own health per minute), as the health CSV of an sFlow
/// run has them after capture health's.
const SFLOW_FIELDS: [&str; 15] = bittap::aggregate::SflowHealth::FIELDS;

/// The data of both tests: probe ix-1 is nine lab captures over 16:17–16:21 (every minute),
/// with a home network so up/down/local/transit occur; probe ix-2 is eight others, with no
/// minute 16:17 nor 16:19 (idle buckets), direction unknown; probe ix-3 is an exchange
/// point: five lab captures as an sFlow agent samples them at 1 in 5 (a lost datagram and
/// dropped samples included), read by `analyze --sflow`. `push` is passed to every
/// `analyze` run.
///
/// Drops and the spool are filled only by live capture, so files give zeros. To see that
/// the drop and spool panels pick the right fields, a few health points get non-zero values
/// (in the expected rows and in the database), and a peak of the flow table in an early
/// minute (in these captures it only grows, so max and last of a bucket would agree).
/// Returns the rows, the line protocol of both runs with those points replaced, and the
/// replaced points alone (whole points: written over the pushed ones, they replace them).
fn lab_data(dir: &Path, push: &[String]) -> (Vec<Row>, String, String) {
    let mut ix1 = vec![
        "--home-net".to_string(),
        "10.77.0.10/32,10.77.0.11/32".into(),
    ];
    ix1.extend(push.iter().cloned());
    let lab = |names: &[&str]| -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| common::repo().join("pcaps/lab").join(n))
            .collect()
    };
    let (mut rows, mut lp) = probe_run(
        dir,
        "ix-1",
        &lab(&[
            "bt-plain-http.pcap",
            "bt-udp-tracker.pcap",
            "bt-mse-required.pcap",
            "bt-utp.pcap",
            "bt-dht-magnet.pcap",
            "bt-pex.pcap",
            "bt-mixed.pcap",
            "bt-classic-ports.pcap",
            "neg-ssh.pcap",
        ]),
        &ix1,
    );
    let (rows2, lp2) = probe_run(
        dir,
        "ix-2",
        &lab(&[
            "bt-mse-preferred.pcap",
            "bt-utp-mse.pcap",
            "bt-ipv6.pcap",
            "bt-webseed.pcap",
            "neg-http-tls.pcap",
            "neg-dns.pcap",
            "neg-random.pcap",
            "neg-btports.pcap",
        ]),
        push,
    );
    rows.extend(rows2);
    lp.push_str(&lp2);
    let sampled = lab(&[
        "bt-mixed.pcap",
        "bt-dht-magnet.pcap",
        "bt-utp.pcap",
        "neg-http-tls.pcap",
        "neg-random.pcap",
    ]);
    let mut datagrams = common::sflow::agent_datagrams(&sampled, 5, 0x5eed, [192, 0, 2, 9]);
    // One datagram lost on the way.
    datagrams.remove(datagrams.len() / 2);
    let cap = dir.join("ix-3-sflow.pcap");
    common::sflow::write_pcap(&cap, &datagrams, 6343);
    let mut ix3 = vec!["--sflow".to_string()];
    ix3.extend(push.iter().cloned());
    let (rows3, lp3) = probe_run(dir, "ix-3", &[cap], &ix3);
    assert!(
        rows3
            .iter()
            .any(|r| r.m == "bittap_sflow" && r.fields["datagrams_lost"] > 0.0)
            && rows3
                .iter()
                .any(|r| r.m == "bittap_sflow" && r.fields["sample_drops"] > 0.0)
            && rows3.iter().any(|r| r.m == "bittap"
                && r.tags["class"] == "bittorrent"
                && r.fields["bytes_high"] > r.fields["bytes_low"]),
        "the sFlow probe's data has losses, drops and intervals"
    );
    rows.extend(rows3);
    lp.push_str(&lp3);

    let overlay: [(&str, &str, [u64; 6]); 3] = [
        ("ix-1", "2026-11-24T16:18:00Z", [7, 2, 1, 65_536, 90, 900]),
        ("ix-1", "2026-11-24T16:20:00Z", [11, 0, 3, 4_096, 30, 70]),
        (
            "ix-2",
            "2026-11-24T16:20:00Z",
            [5, 13, 17, 1_000_000, 600, 400],
        ),
    ];
    let live = [
        "kernel_drops",
        "interface_drops",
        "queue_drops",
        "spool_bytes",
        "spool_age_seconds",
        "flows_tracked",
    ];
    let mut points = String::new();
    for (probe, time, values) in overlay {
        let t = rfc3339_minute_ms(time);
        let row = rows
            .iter_mut()
            .find(|r| r.m == "bittap_health" && r.tags["probe"] == probe && r.t == t)
            .expect("health row to overlay");
        for (f, v) in live.iter().zip(values) {
            row.fields.insert(f.to_string(), v as f64);
        }
        let fields: Vec<String> = row
            .fields
            .iter()
            .map(|(f, v)| format!("{f}={v}i"))
            .collect();
        let key = format!("bittap_health,probe={probe} ");
        let ts = format!(" {}", t * 1_000_000);
        let line = format!("{key}{}{ts}", fields.join(","));
        let before = lp.lines().count();
        lp = lp
            .lines()
            .filter(|l| !(l.starts_with(&key) && l.ends_with(&ts)))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(lp.lines().count() + 1, before, "one point replaced");
        lp.push_str(&line);
        lp.push('\n');
        points.push_str(&line);
        points.push('\n');
    }
    (rows, lp, points)
}

/// The measurement whose tag values a variable query lists: InfluxQL `FROM "m"`, PromQL
/// `label_values(m_field, tag)` (bittap_sflow_… or else bittap).
fn variable_measurement(q: &str) -> &'static str {
    if q.contains("\"bittap_sflow\"") || q.contains("(bittap_sflow_") {
        "bittap_sflow"
    } else {
        "bittap"
    }
}

fn distinct(rows: &[Row], m: &str, tag: &str) -> Vec<String> {
    let set: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.m == m)
        .map(|r| r.tags[tag].clone())
        .collect();
    set.into_iter().collect()
}

/// What the dashboards are looked at with: a time range, the interval Grafana chose, and
/// the values selected for each variable (`None`: "All").
struct Scenario {
    name: &'static str,
    from: i64,
    to: i64,
    interval_ms: i64,
    probe: Option<&'static [&'static str]>,
    direction: Option<&'static [&'static str]>,
}

/// Grafana's text form of `$__interval` (its `secondsToHms`-style rounding gives whole
/// units; bittap's panels never go below a minute).
fn interval_text(ms: i64) -> String {
    if ms % 86_400_000 == 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % MIN == 0 {
        format!("{}m", ms / MIN)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Grafana's regex escaping of a variable value for InfluxQL regex contexts.
fn regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if "\\^$*+?.()|[]{}/-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Grafana's escaping for PromQL regex matchers inside a double-quoted string: the regex
/// backslash is itself escaped for the string.
fn prom_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if c == '\\' {
            out.push_str("\\\\\\\\");
            continue;
        }
        if "$^*{}[]'+?.()|".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// Substitutes a query as Grafana's InfluxDB data source does before sending it:
/// - `$timeFilter` → `time >= FROMms and time <= TOms` (epoch milliseconds, both ends in);
/// - `$__interval_ms` → the interval in ms (`60000`), `$__interval` → its text (`1m`, `5m`);
/// - `$__from`, `$__to` → epoch milliseconds;
/// - a multi-value/"All" variable (`$probe` or `${probe}`) → its values regex-escaped,
///   joined by `|` in parentheses when more than one (`(ix\-1|ix\-2)`), the value alone
///   when one; "All" without a custom all value means every value of the variable's query.
///
/// The Prometheus data source does the same for `$__interval`, `$__interval_ms` and the
/// variables (with `prom_escape`); `$timeFilter` does not occur there.
fn interpolate(
    q: &str,
    sc: &Scenario,
    vars: &BTreeMap<String, Vec<String>>,
    escape: fn(&str) -> String,
) -> String {
    let mut out = q
        .replace(
            "$timeFilter",
            &format!("time >= {}ms and time <= {}ms", sc.from, sc.to),
        )
        .replace("$__interval_ms", &sc.interval_ms.to_string())
        .replace("$__interval", &interval_text(sc.interval_ms))
        .replace("$__from", &sc.from.to_string())
        .replace("$__to", &sc.to.to_string());
    // Longest names first, so `$probe` never eats the start of `$probe_x`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let values = &vars[name];
        let text = match values.as_slice() {
            [one] => escape(one),
            many => format!(
                "({})",
                many.iter().map(|v| escape(v)).collect::<Vec<_>>().join("|")
            ),
        };
        out = out
            .replace(&format!("${{{name}}}"), &text)
            .replace(&format!("${name}"), &text);
    }
    out
}

/// Names of the `$variables` a query uses (macros included), `$` anchors of regexes aside.
fn used_variables(q: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let braced = b.get(i + 1) == Some(&b'{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start {
                out.insert(q[start..j].to_string());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

const MACROS: [&str; 5] = [
    "timeFilter",
    "__interval",
    "__interval_ms",
    "__from",
    "__to",
];

/// One query of a dashboard: where it is, and its text.
struct Query {
    dash: String,
    panel: String,
    ref_id: String,
    text: String,
}

/// A query's result: series keyed by their tags (`k=v,…`), each a list of (time ms, value).
type Answer = BTreeMap<String, Vec<(i64, Option<f64>)>>;

fn run_query(db: &Influxd, q: &str) -> Answer {
    let (code, body) = common::http(
        "POST",
        &format!("{}/query?db={DB}&u={USER}&p={PASSWORD}&epoch=ms", db.url()),
        &[("q", q)],
    );
    assert_eq!(code, 200, "{q}: {body}");
    let json: Value = serde_json::from_str(&body).expect("json");
    let res = &json["results"][0];
    assert!(res["error"].is_null(), "{q}: {}", res["error"]);
    let mut out = Answer::new();
    for serie in res["series"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let key = serie["tags"]
            .as_object()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let cols = serie["columns"].as_array().expect("columns");
        assert_eq!(cols.len(), 2, "one value column: {q}");
        let points = serie["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| (v[0].as_i64().expect("epoch ms"), v[1].as_f64()))
            .collect();
        out.insert(key, points);
    }
    out
}

/// How a query's one value column is computed from the rows of a bucket (and the bucket's
/// length in seconds).
#[derive(Clone, Copy)]
enum Col {
    /// `sum(field) * k / ($__interval_ms / 1000)`: a rate per second.
    Rate(&'static str, f64),
    Sum(&'static str),
    /// `sum(a) + sum(b) + …`
    SumOf(&'static [&'static str]),
    Max(&'static str),
    Count(&'static str),
    /// `sum(a) * 100 / sum(b)`
    Percent(&'static str, &'static str),
    /// BitTorrent bytes over all bytes, in percent (`bittap` rows of both classes).
    BtShare,
}

impl Col {
    /// The one field the column reads, if it reads one.
    fn field(self) -> Option<&'static str> {
        match self {
            Col::Rate(f, _) | Col::Sum(f) | Col::Max(f) | Col::Count(f) => Some(f),
            Col::SumOf(_) | Col::Percent(..) | Col::BtShare => None,
        }
    }
}

/// The expected result of one dashboard query, as a small description of what it selects.
struct Spec {
    dash: &'static str,
    panel: &'static str,
    ref_id: &'static str,
    m: &'static str,
    /// Only class `bittorrent` rows.
    bt: bool,
    /// Filtered by the `direction` variable.
    dir: bool,
    /// Tags grouped by, besides time.
    by: &'static [&'static str],
    /// Grouped by `time($__interval)`; otherwise one point at the range start.
    time: bool,
    /// `fill(0)`: every bucket of the range for every series with data; otherwise empty
    /// buckets are left out (`fill(none)`).
    fill0: bool,
    col: Col,
}

const O: &str = "bittap-overview";
const S: &str = "bittap-sflow";
const H: &str = "bittap-health";
const BYTES8: Col = Col::Rate("bytes", 8.0);

#[allow(clippy::too_many_arguments)]
const fn spec(
    dash: &'static str,
    panel: &'static str,
    ref_id: &'static str,
    m: &'static str,
    bt: bool,
    by: &'static [&'static str],
    time: bool,
    fill0: bool,
    col: Col,
) -> Spec {
    Spec {
        dash,
        panel,
        ref_id,
        m,
        bt,
        dir: !matches!(
            m.as_bytes(),
            b"bittap_health" | b"bittap_hosts" | b"bittap_sflow"
        ),
        by,
        time,
        fill0,
        col,
    }
}

/// Every panel query of every dashboard, with what it must return.
#[rustfmt::skip]
const SPECS: &[Spec] = &[
    spec(O, "Link load and BitTorrent (bits/s)", "A", "bittap", false, &[], true, true, BYTES8),
    spec(O, "Link load and BitTorrent (bits/s)", "B", "bittap", true, &[], true, true, BYTES8),
    spec(O, "BitTorrent share of bytes (whole range)", "A", "bittap", false, &[], false, false, Col::BtShare),
    spec(O, "BitTorrent share of bytes (%)", "A", "bittap", false, &[], true, false, Col::BtShare),
    spec(O, "BitTorrent bytes (whole range)", "A", "bittap", true, &[], false, false, Col::Sum("bytes")),
    spec(O, "BitTorrent by protocol (bits/s)", "A", "bittap", true, &["proto"], true, true, BYTES8),
    spec(O, "BitTorrent by method (bits/s)", "A", "bittap", true, &["method"], true, true, BYTES8),
    spec(O, "DPI view and port view (bits/s)", "A", "bittap", true, &[], true, true, BYTES8),
    spec(O, "DPI view and port view (bits/s)", "B", "bittap_port", false, &[], true, true, BYTES8),
    spec(O, "Port view by rule (bits/s)", "A", "bittap_port", false, &["rule"], true, true, BYTES8),
    spec(O, "Packets per second: link and BitTorrent", "A", "bittap", false, &[], true, true, Col::Rate("packets", 1.0)),
    spec(O, "Packets per second: link and BitTorrent", "B", "bittap", true, &[], true, true, Col::Rate("packets", 1.0)),
    spec(O, "BitTorrent bytes by protocol (whole range)", "A", "bittap", true, &["proto"], false, false, Col::Sum("bytes")),
    spec(O, "Distinct BitTorrent hosts per probe (estimate)", "A", "bittap_hosts", false, &["probe"], true, false, Col::Max("bittorrent")),
    spec(O, "BitTorrent per probe (bits/s)", "A", "bittap", true, &["probe"], true, true, BYTES8),
    spec(O, "Link load per probe (bits/s)", "A", "bittap", false, &["probe"], true, true, BYTES8),
    spec(O, "BitTorrent share per probe (%)", "A", "bittap", false, &["probe"], true, false, Col::BtShare),
    spec(O, "BitTorrent share per probe (whole range)", "A", "bittap", false, &["probe"], false, false, Col::BtShare),
    spec(H, "Packets received per second", "A", "bittap_health", false, &["probe"], true, false, Col::Rate("packets", 1.0)),
    spec(H, "Wire bits per second received", "A", "bittap_health", false, &["probe"], true, false, BYTES8),
    spec(H, "Drops (packets/s)", "A", "bittap_health", false, &["probe"], true, false, Col::Rate("kernel_drops", 1.0)),
    spec(H, "Drops (packets/s)", "B", "bittap_health", false, &["probe"], true, false, Col::Rate("interface_drops", 1.0)),
    spec(H, "Drops (packets/s)", "C", "bittap_health", false, &["probe"], true, false, Col::Rate("queue_drops", 1.0)),
    spec(H, "Drops (whole range)", "A", "bittap_health", false, &["probe"], false, false, Col::SumOf(&["kernel_drops", "interface_drops", "queue_drops"])),
    spec(H, "Minutes reported (whole range)", "A", "bittap_health", false, &["probe"], false, false, Col::Count("packets")),
    spec(H, "Frames not decoded (frames/s)", "A", "bittap_health", false, &["probe"], true, false, Col::Rate("non_ip", 1.0)),
    spec(H, "Frames not decoded (frames/s)", "B", "bittap_health", false, &["probe"], true, false, Col::Rate("undecodable", 1.0)),
    spec(H, "Frames not decoded (frames/s)", "C", "bittap_health", false, &["probe"], true, false, Col::Rate("unknown_link", 1.0)),
    spec(H, "Frames not decoded (frames/s)", "D", "bittap_health", false, &["probe"], true, false, Col::Rate("fragments_orphaned", 1.0)),
    spec(H, "Flows started, ended, evicted (flows/s)", "A", "bittap_health", false, &["probe"], true, false, Col::Rate("flows_created", 1.0)),
    spec(H, "Flows started, ended, evicted (flows/s)", "B", "bittap_health", false, &["probe"], true, false, Col::Rate("flows_ended", 1.0)),
    spec(H, "Flows started, ended, evicted (flows/s)", "C", "bittap_health", false, &["probe"], true, false, Col::Rate("flows_evicted", 1.0)),
    spec(H, "Flows without a verdict (% of ended flows)", "A", "bittap_health", false, &["probe"], true, false, Col::Percent("flows_unclassified", "flows_ended")),
    spec(H, "Flows tracked (most at once)", "A", "bittap_health", false, &["probe"], true, false, Col::Max("flows_tracked")),
    spec(H, "Database spool (bytes waiting)", "A", "bittap_health", false, &["probe"], true, false, Col::Max("spool_bytes")),
    spec(H, "Database spool (age of oldest write)", "A", "bittap_health", false, &["probe"], true, false, Col::Max("spool_age_seconds")),
    spec(S, "BitTorrent estimate with its 95 % interval (bits/s)", "A", "bittap", true, &[], true, true, BYTES8),
    spec(S, "BitTorrent estimate with its 95 % interval (bits/s)", "B", "bittap", true, &[], true, true, Col::Rate("bytes_low", 8.0)),
    spec(S, "BitTorrent estimate with its 95 % interval (bits/s)", "C", "bittap", true, &[], true, true, Col::Rate("bytes_high", 8.0)),
    spec(S, "Sampled traffic and link load from counters (bits/s)", "A", "bittap", false, &[], true, true, BYTES8),
    spec(S, "Sampled traffic and link load from counters (bits/s)", "B", "bittap_sflow", false, &[], true, false, Col::Rate("if_in_octets", 8.0)),
    spec(S, "BitTorrent estimate by protocol, with intervals (bits/s)", "A", "bittap", true, &["proto"], true, true, BYTES8),
    spec(S, "Samples per minute: all and BitTorrent", "A", "bittap", false, &[], true, false, Col::Rate("samples", 60.0)),
    spec(S, "Samples per minute: all and BitTorrent", "B", "bittap", true, &[], true, false, Col::Rate("samples", 60.0)),
    spec(S, "sFlow datagrams lost and samples dropped (per minute)", "A", "bittap_sflow", false, &["probe"], true, false, Col::Rate("datagrams_lost", 60.0)),
    spec(S, "sFlow datagrams lost and samples dropped (per minute)", "B", "bittap_sflow", false, &["probe"], true, false, Col::Rate("sample_drops", 60.0)),
    spec(S, "BitTorrent range: what the samples prove, up to what they cannot settle (bits/s)", "A", "bittap_sflow", false, &[], true, false, Col::Rate("bittorrent_bytes", 8.0)),
    spec(S, "BitTorrent range: what the samples prove, up to what they cannot settle (bits/s)", "B", "bittap_sflow", false, &[], true, false, Col::Rate("bittorrent_low", 8.0)),
    spec(S, "BitTorrent range: what the samples prove, up to what they cannot settle (bits/s)", "C", "bittap_sflow", false, &[], true, false, Col::Rate("bittorrent_high", 8.0)),
];

/// The value of `col` over `rows` (never empty).
fn compute(col: Col, rows: &[&Row], interval_ms: i64) -> Option<f64> {
    let sum = |f: &str| rows.iter().map(|r| r.fields[f]).sum::<f64>();
    let secs = (interval_ms / 1000) as f64;
    match col {
        Col::Rate(f, k) => Some(sum(f) * k / secs),
        Col::Sum(f) => Some(sum(f)),
        Col::SumOf(fs) => Some(fs.iter().map(|f| sum(f)).sum()),
        Col::Max(f) => rows.iter().map(|r| r.fields[f]).reduce(f64::max),
        Col::Count(f) => Some(rows.iter().filter(|r| r.fields.contains_key(f)).count() as f64),
        Col::Percent(a, b) => Some(sum(a) * 100.0 / sum(b)),
        Col::BtShare => {
            let bt: Vec<&Row> = rows
                .iter()
                .copied()
                .filter(|r| r.tags["class"] == "bittorrent")
                .collect();
            // sum() over no points is null in InfluxQL, and so is null * 100 / x.
            (!bt.is_empty())
                .then(|| bt.iter().map(|r| r.fields["bytes"]).sum::<f64>() * 100.0 / sum("bytes"))
        }
    }
}

/// What InfluxDB must return for `spec` in scenario `sc`, computed from the CSV rows.
fn expected(
    spec: &Spec,
    sc: &Scenario,
    rows: &[Row],
    vars: &BTreeMap<String, Vec<String>>,
) -> Answer {
    let sel = |r: &&Row| {
        r.m == spec.m
            && r.t >= sc.from
            && r.t <= sc.to
            && vars["probe"].contains(&r.tags["probe"])
            && (!spec.dir || vars["direction"].contains(&r.tags["direction"]))
            && (!spec.bt || r.tags["class"] == "bittorrent")
            // A point without the field is no point of the query (sampled fields are only
            // in the rows of sFlow probes).
            && spec.col.field().is_none_or(|f| r.fields.contains_key(f))
    };
    let mut groups: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in rows.iter().filter(sel) {
        let key = spec
            .by
            .iter()
            .map(|k| format!("{k}={}", r.tags[*k]))
            .collect::<Vec<_>>()
            .join(",");
        groups.entry(key).or_default().push(r);
    }
    let mut out = Answer::new();
    for (key, members) in groups {
        let mut points = Vec::new();
        if spec.time {
            // Buckets are aligned to the epoch; InfluxDB returns every bucket from the one
            // holding the range start to the one holding its end.
            let mut b = sc.from.div_euclid(sc.interval_ms) * sc.interval_ms;
            while b <= sc.to {
                let inside: Vec<&Row> = members
                    .iter()
                    .copied()
                    .filter(|r| r.t >= b && r.t < b + sc.interval_ms)
                    .collect();
                if !inside.is_empty() {
                    points.push((b, compute(spec.col, &inside, sc.interval_ms)));
                } else if spec.fill0 {
                    points.push((b, Some(0.0)));
                }
                b += sc.interval_ms;
            }
        } else {
            points.push((sc.from, compute(spec.col, &members, sc.interval_ms)));
        }
        out.insert(key, points);
    }
    out
}

fn same(got: &Answer, want: &Answer) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|((gk, gv), (wk, wv))| {
            gk == wk
                && gv.len() == wv.len()
                && gv.iter().zip(wv).all(|((gt, g), (wt, w))| {
                    gt == wt
                        && match (g, w) {
                            // Float arithmetic in InfluxDB and here: equal to 1e-9 relative.
                            (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                            (None, None) => true,
                            _ => false,
                        }
                })
        })
}

/// The dashboards of one folder, sorted by file name.
fn load_dashboards(folder: &str) -> Vec<(PathBuf, Value)> {
    let dir = common::repo().join(folder);
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// Every panel of a dashboard, those inside (collapsed) rows included.
fn walk_panels<'a>(panels: &'a [Value], out: &mut Vec<&'a Value>) {
    for p in panels {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            walk_panels(inner, out);
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str, at: &str) -> &'a str {
    v[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("{at}: `{key}` missing or empty"))
}

/// (type, uid) of every data source in the provisioning files (a line scan: the files are
/// ours and flat, `uid:` and `type:` inside one list item).
fn provisioned_datasources() -> BTreeSet<(String, String)> {
    let dir = common::repo().join("grafana/provisioning/datasources");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("datasource provisioning") {
        let path = entry.expect("dir entry").path();
        let text = std::fs::read_to_string(&path).expect("read provisioning");
        assert!(text.contains("apiVersion: 1"), "{}", path.display());
        let (mut uid, mut kind) = (None, None);
        for line in text.lines().map(str::trim) {
            let line = line.strip_prefix("- ").unwrap_or(line);
            if let Some(u) = line.strip_prefix("uid:") {
                uid = Some(u.trim().to_string());
            } else if let Some(t) = line.strip_prefix("type:") {
                kind = Some(t.trim().to_string());
            }
        }
        out.insert((
            kind.expect("data source type"),
            uid.expect("data source uid"),
        ));
    }
    out
}

/// Checks the structure Grafana needs of the dashboards of one folder, all on data source
/// `(kind, uid)`, and returns every query: panel targets (`query` for InfluxQL, `expr` for
/// PromQL) and template variable queries (`panel` = `variable NAME`, `ref_id` empty).
fn check_structure(
    dashboards: &[(PathBuf, Value)],
    (_, kind, ds_uid): (&str, &str, &str),
) -> Vec<Query> {
    assert!(
        provisioned_datasources().contains(&(kind.to_string(), ds_uid.to_string())),
        "{kind} data source {ds_uid} not provisioned: {:?}",
        provisioned_datasources()
    );
    for provider in ["bittap.yaml", "bittap-victoria.yaml"] {
        let text = std::fs::read_to_string(
            common::repo()
                .join("grafana/provisioning/dashboards")
                .join(provider),
        )
        .expect("dashboard provisioning");
        assert!(
            text.contains("type: file") && text.contains("path:"),
            "{provider}"
        );
    }
    let ds_ok = |v: &Value, at: &str| {
        assert_eq!(v["datasource"]["type"], kind, "{at}: datasource type");
        assert_eq!(v["datasource"]["uid"], ds_uid, "{at}: datasource uid");
    };
    let text_key = if kind == "influxdb" { "query" } else { "expr" };
    let mut queries = Vec::new();
    let mut dash_uids = BTreeSet::new();
    for (path, d) in dashboards {
        let at = path.display().to_string();
        let uid = str_of(d, "uid", &at).to_string();
        assert!(
            dash_uids.insert(uid.clone()),
            "{at}: dashboard uid {uid} twice"
        );
        str_of(d, "title", &at);
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{at}: schemaVersion"
        );
        assert!(
            d["time"]["from"].is_string() && d["time"]["to"].is_string(),
            "{at}: time"
        );
        let mut defined: BTreeSet<String> = MACROS.iter().map(|m| m.to_string()).collect();
        for var in d["templating"]["list"].as_array().expect("templating.list") {
            let name = str_of(var, "name", &at).to_string();
            let vat = format!("{at}: variable {name}");
            assert_eq!(var["type"], "query", "{vat}");
            assert!(var["multi"] == true && var["includeAll"] == true, "{vat}");
            assert!(
                var["allValue"].is_null(),
                "{vat}: All must mean every value"
            );
            ds_ok(var, &vat);
            // The Prometheus variable editor keeps the query in an object.
            let q = var["query"]
                .as_str()
                .or_else(|| var["query"]["query"].as_str())
                .filter(|q| !q.is_empty())
                .unwrap_or_else(|| panic!("{vat}: no query"))
                .to_string();
            assert!(defined.insert(name.clone()), "{vat}: defined twice");
            queries.push(Query {
                dash: uid.clone(),
                panel: format!("variable {name}"),
                ref_id: String::new(),
                text: q,
            });
        }
        let mut all = Vec::new();
        walk_panels(d["panels"].as_array().expect("panels"), &mut all);
        let mut ids = BTreeSet::new();
        let mut titles = BTreeSet::new();
        for p in all {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{at}: panel without id"));
            assert!(ids.insert(id), "{at}: panel id {id} twice");
            let title = str_of(p, "title", &at).to_string();
            let pat = format!("{at}: panel {title:?}");
            for k in ["h", "w", "x", "y"] {
                assert!(p["gridPos"][k].is_u64(), "{pat}: gridPos.{k}");
            }
            let kind = str_of(p, "type", &pat);
            if kind == "row" {
                assert!(p["targets"].is_null(), "{pat}: a row has no queries");
                continue;
            }
            assert!(
                ["timeseries", "stat", "bargauge"].contains(&kind),
                "{pat}: panel type {kind}"
            );
            assert!(titles.insert(title.clone()), "{pat}: title twice");
            ds_ok(p, &pat);
            str_of(p, "description", &pat);
            str_of(&p["fieldConfig"]["defaults"], "unit", &pat);
            assert_eq!(p["interval"], "1m", "{pat}: points are per minute");
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{pat}: no query");
            let mut refs = BTreeSet::new();
            for t in targets {
                let r = str_of(t, "refId", &pat).to_string();
                assert!(refs.insert(r.clone()), "{pat}: refId {r} twice");
                if text_key == "query" {
                    assert_eq!(t["rawQuery"], true, "{pat} {r}: raw InfluxQL");
                } else {
                    assert!(t["instant"] != true, "{pat} {r}: a range query");
                }
                ds_ok(t, &format!("{pat} {r}"));
                let q = str_of(t, text_key, &pat).to_string();
                for v in used_variables(&q) {
                    assert!(defined.contains(&v), "{pat} {r}: ${v} is not defined");
                }
                queries.push(Query {
                    dash: uid.clone(),
                    panel: title.clone(),
                    ref_id: r,
                    text: q,
                });
            }
        }
    }
    queries
}

fn scenarios() -> Vec<Scenario> {
    let at = |t: &str| rfc3339_minute_ms(&format!("2026-11-24T{t}:00Z"));
    vec![
        Scenario {
            name: "10 minutes, 1m, all probes, all directions",
            from: at("16:15"),
            to: at("16:25"),
            interval_ms: MIN,
            probe: None,
            direction: None,
        },
        Scenario {
            name: "10 minutes, 5m, ix-1, up and down",
            from: at("16:15"),
            to: at("16:25"),
            interval_ms: 5 * MIN,
            probe: Some(&["ix-1"]),
            direction: Some(&["down", "up"]),
        },
        Scenario {
            name: "16:17:30 to 16:21:30, 2m, ix-1",
            from: at("16:17") + 30_000,
            to: at("16:21") + 30_000,
            interval_ms: 2 * MIN,
            probe: Some(&["ix-1"]),
            direction: None,
        },
        Scenario {
            name: "one hour, 1h, ix-1 and ix-3 chosen, transit and unknown",
            from: at("16:00"),
            to: at("17:00"),
            interval_ms: 60 * MIN,
            probe: Some(&["ix-1", "ix-3"]),
            direction: Some(&["transit", "unknown"]),
        },
        Scenario {
            name: "16:18 to 16:20, 1m, ix-2 (idle at 16:19)",
            from: at("16:18"),
            to: at("16:20"),
            interval_ms: MIN,
            probe: Some(&["ix-2"]),
            direction: None,
        },
    ]
}

/// Computes what a query must return from the rows, for the selected variable values.
type Model = fn(&Spec, &Scenario, &[Row], &BTreeMap<String, Vec<String>>) -> Answer;

/// How one kind of data source is asked: its variable queries and its panel queries.
struct Backend<'a> {
    specs: &'a [Spec],
    escape: fn(&str) -> String,
    /// Runs a variable query; returns the values.
    variable: &'a dyn Fn(&str) -> Vec<String>,
    /// Runs a substituted panel query in a scenario.
    run: &'a dyn Fn(&str, &Scenario) -> Answer,
    model: Model,
}

/// Runs every query of `queries` in every scenario and compares with the model; returns
/// the number of checks (variable queries once, panel queries once per scenario).
fn check_queries(queries: &[Query], rows: &[Row], b: &Backend) -> usize {
    // Template variables: their queries list exactly the tag values of the data.
    let mut var_values: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for q in queries.iter().filter(|q| q.ref_id.is_empty()) {
        let name = q.panel.trim_start_matches("variable ").to_string();
        let got = (b.variable)(&q.text);
        assert_eq!(
            got,
            distinct(rows, variable_measurement(&q.text), &name),
            "{} {}",
            q.dash,
            q.panel
        );
        var_values.insert((q.dash.clone(), name), got);
        checked += 1;
    }
    assert_eq!(distinct(rows, "bittap", "probe"), ["ix-1", "ix-2", "ix-3"]);
    assert_eq!(distinct(rows, "bittap_sflow", "probe"), ["ix-3"]);
    assert_eq!(
        distinct(rows, "bittap", "direction"),
        ["down", "local", "transit", "unknown", "up"]
    );

    // Every query has exactly one expectation, and every expectation a query.
    let panel_queries: Vec<&Query> = queries.iter().filter(|q| !q.ref_id.is_empty()).collect();
    let spec_of = |q: &Query| {
        let mut found = b
            .specs
            .iter()
            .filter(|s| s.dash == q.dash && s.panel == q.panel && s.ref_id == q.ref_id);
        let spec = found.next();
        assert!(
            spec.is_some() && found.next().is_none(),
            "{} / {} / {}: needs exactly one expectation",
            q.dash,
            q.panel,
            q.ref_id
        );
        spec.expect("spec")
    };
    assert_eq!(
        b.specs.len(),
        panel_queries.len(),
        "an expectation without its query"
    );

    let mut nonempty: BTreeSet<(String, String, String)> = BTreeSet::new();
    for sc in &scenarios() {
        for q in &panel_queries {
            let spec = spec_of(q);
            assert_eq!(
                q.text.contains("$direction"),
                spec.dir,
                "{}: direction filter",
                q.panel
            );
            let mut vars = BTreeMap::new();
            for (name, chosen) in [("probe", sc.probe), ("direction", sc.direction)] {
                let Some(every) = var_values.get(&(q.dash.clone(), name.to_string())) else {
                    continue;
                };
                let values = match chosen {
                    Some(v) => v.iter().map(|s| s.to_string()).collect(),
                    None => every.clone(),
                };
                vars.insert(name.to_string(), values);
            }
            let text = interpolate(&q.text, sc, &vars, b.escape);
            assert!(
                text.match_indices('$')
                    .all(|(i, _)| text[i + 1..].starts_with('/')),
                "left unsubstituted: {text}"
            );
            let got = (b.run)(&text, sc);
            let mut model_vars = vars.clone();
            model_vars
                .entry("direction".into())
                .or_insert_with(|| distinct(rows, "bittap", "direction"));
            let want = (b.model)(spec, sc, rows, &model_vars);
            assert!(
                same(&got, &want),
                "{} / {} / {} [{}]\n{text}\ngot  {got:?}\nwant {want:?}",
                q.dash,
                q.panel,
                q.ref_id,
                sc.name
            );
            if sc.probe.is_none() {
                // The whole data, every probe: each query must show something here.
                assert!(
                    !got.is_empty(),
                    "{} / {} / {}: nothing",
                    q.dash,
                    q.panel,
                    q.ref_id
                );
            }
            if !got.is_empty() {
                nonempty.insert((q.dash.clone(), q.panel.clone(), q.ref_id.clone()));
            }
            checked += 1;
        }
    }
    // No query passes by returning nothing: each returns data in some scenario.
    assert_eq!(
        nonempty.len(),
        panel_queries.len(),
        "a query returned nothing everywhere"
    );
    eprintln!(
        "{} panel queries and {} variable queries; {checked} checks passed",
        panel_queries.len(),
        var_values.len()
    );
    checked
}

#[test]
fn every_influxql_dashboard_query_returns_the_numbers_of_the_csv() {
    let queries = check_structure(&load_dashboards(INFLUX.0), INFLUX);
    let Some(db) = Influxd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let url = db.url();
    let push: Vec<String> = [
        "--influx-url",
        &url,
        "--influx-db",
        DB,
        "--influx-user",
        USER,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let (rows, _, replaced) = lab_data(dir.path(), &push);
    let lp = dir.path().join("replaced.lp");
    std::fs::write(&lp, replaced).expect("write");
    let mut send = vec!["send".to_string(), s(&lp)];
    send.extend(push);
    bittap(&send.iter().map(String::as_str).collect::<Vec<_>>());

    let variable = |q: &str| -> Vec<String> {
        let (code, body) = db.query(q);
        assert_eq!(code, 200, "{q}: {body}");
        let json: Value = serde_json::from_str(&body).expect("json");
        json["results"][0]["series"][0]["values"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|kv| kv[1].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let run = |q: &str, _: &Scenario| run_query(&db, q);
    let checked = check_queries(
        &queries,
        &rows,
        &Backend {
            specs: SPECS,
            escape: regex_escape,
            variable: &variable,
            run: &run,
            model: expected,
        },
    );
    assert_eq!(checked, 5 + 49 * scenarios().len());

    // Grafana writes a relative range (the dashboards' default, now-6h) as now() arithmetic:
    // `time >= now() - 6h and time <= now()`. Every query must take that form too; over the
    // last ten years (all the data, whenever this runs) the whole-range panels give the
    // numbers of all rows, the others data.
    let all = Scenario {
        name: "relative: now-10y to now, 7d",
        from: 0,
        to: i64::MAX / 2,
        interval_ms: 7 * 24 * 60 * MIN,
        probe: None,
        direction: None,
    };
    let vars = BTreeMap::from([
        ("probe".to_string(), distinct(&rows, "bittap", "probe")),
        (
            "direction".to_string(),
            distinct(&rows, "bittap", "direction"),
        ),
    ]);
    for q in queries.iter().filter(|q| !q.ref_id.is_empty()) {
        let relative = q
            .text
            .replace("$timeFilter", "time >= now() - 3650d and time <= now()");
        let text = interpolate(&relative, &all, &vars, regex_escape);
        let got = run_query(&db, &text);
        assert!(!got.is_empty(), "{text}: nothing");
        let spec = SPECS
            .iter()
            .find(|s| s.dash == q.dash && s.panel == q.panel && s.ref_id == q.ref_id)
            .expect("spec");
        if !spec.time {
            let want = expected(spec, &all, &rows, &vars);
            let strip = |a: &Answer| -> Answer {
                a.iter()
                    .map(|(k, v)| (k.clone(), v.iter().map(|p| (0, p.1)).collect()))
                    .collect()
            };
            let (got, want) = (strip(&got), strip(&want));
            assert!(same(&got, &want), "{text}\ngot  {got:?}\nwant {want:?}");
        }
    }
}

/// A real VictoriaMetrics on a free loopback port, in a temporary directory; killed when
/// dropped. `None` when it is not installed and this is not CI.
struct Victoria {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Victoria {
    fn start() -> Option<Victoria> {
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
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = common::free_port();
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start victoria-metrics");
        let vm = Victoria {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let started = std::time::Instant::now();
        while common::http("GET", &format!("{}/health", vm.url), &[]).0 != 200 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "victoria-metrics did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(vm)
    }
}

/// Every panel query of the VictoriaMetrics dashboard. The metric is `{m}_{field}`; `time`
/// and `fill0` do not apply (see `expected_vm`).
#[rustfmt::skip]
const VM_SPECS: &[Spec] = &[
    spec(V, "Link load and BitTorrent (bits/s)", "A", "bittap", false, &[], true, false, BYTES8),
    spec(V, "Link load and BitTorrent (bits/s)", "B", "bittap", true, &[], true, false, BYTES8),
    spec(V, "BitTorrent share of bytes (%)", "A", "bittap", false, &[], true, false, Col::BtShare),
    spec(V, "BitTorrent by protocol (bits/s)", "A", "bittap", true, &["proto"], true, false, BYTES8),
    spec(V, "BitTorrent by method (bits/s)", "A", "bittap", true, &["method"], true, false, BYTES8),
    spec(V, "DPI view and port view (bits/s)", "A", "bittap", true, &[], true, false, BYTES8),
    spec(V, "DPI view and port view (bits/s)", "B", "bittap_port", false, &[], true, false, BYTES8),
    spec(V, "BitTorrent per probe (bits/s)", "A", "bittap", true, &["probe"], true, false, BYTES8),
    spec(V, "BitTorrent share per probe (%)", "A", "bittap", false, &["probe"], true, false, Col::BtShare),
    spec(V, "Packets received per second (health)", "A", "bittap_health", false, &["probe"], true, false, Col::Rate("packets", 1.0)),
    spec(V, "Drops (packets/s)", "A", "bittap_health", false, &["probe"], true, false, Col::Rate("kernel_drops", 1.0)),
    spec(V, "Drops (packets/s)", "B", "bittap_health", false, &["probe"], true, false, Col::Rate("interface_drops", 1.0)),
    spec(V, "Drops (packets/s)", "C", "bittap_health", false, &["probe"], true, false, Col::Rate("queue_drops", 1.0)),
    spec(V, "Flows tracked (most at once)", "A", "bittap_health", false, &["probe"], true, false, Col::Max("flows_tracked")),
];
const V: &str = "bittap-victoria";

/// Grafana's Prometheus data source widens the range to whole steps (start rounded down,
/// end rounded up) and asks `query_range` with step = `$__interval`.
fn aligned(sc: &Scenario) -> (i64, i64) {
    let iv = sc.interval_ms;
    (
        sc.from.div_euclid(iv) * iv,
        (sc.to + iv - 1).div_euclid(iv) * iv,
    )
}

/// What VictoriaMetrics must return: at every step t of the aligned range, `*_over_time`
/// over `[$__interval]` sees the samples in (t - interval, t] — also before the range start,
/// PromQL has no time filter — and a step without samples has no point.
fn expected_vm(
    spec: &Spec,
    sc: &Scenario,
    rows: &[Row],
    vars: &BTreeMap<String, Vec<String>>,
) -> Answer {
    let (start, end) = aligned(sc);
    let iv = sc.interval_ms;
    let mut out = Answer::new();
    let mut t = start;
    while t <= end {
        let mut groups: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
        for r in rows.iter().filter(|r| {
            r.m == spec.m
                && r.t > t - iv
                && r.t <= t
                && vars["probe"].contains(&r.tags["probe"])
                && (!spec.dir || vars["direction"].contains(&r.tags["direction"]))
                && (!spec.bt || r.tags["class"] == "bittorrent")
        }) {
            let key = spec
                .by
                .iter()
                .map(|k| format!("{k}={}", r.tags[*k]))
                .collect::<Vec<_>>()
                .join(",");
            groups.entry(key).or_default().push(r);
        }
        for (key, members) in groups {
            // A share with no BitTorrent sample has no left operand: no point.
            if let Some(v) = compute(spec.col, &members, iv) {
                out.entry(key).or_default().push((t, Some(v)));
            }
        }
        t += iv;
    }
    out
}

fn run_vm(url: &str, q: &str, sc: &Scenario) -> Answer {
    let (start, end) = aligned(sc);
    let (code, body) = common::http(
        "POST",
        &format!("{url}/api/v1/query_range"),
        &[
            ("query", q),
            ("start", &(start / 1000).to_string()),
            ("end", &(end / 1000).to_string()),
            ("step", &(sc.interval_ms / 1000).to_string()),
            ("nocache", "1"),
        ],
    );
    assert_eq!(code, 200, "{q}: {body}");
    let json: Value = serde_json::from_str(&body).expect("json");
    let mut out = Answer::new();
    for serie in json["data"]["result"].as_array().expect("result") {
        let key = serie["metric"]
            .as_object()
            .map(|t| {
                t.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let points = serie["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| {
                let t = v[0].as_f64().expect("seconds") as i64 * 1000;
                let x = v[1].as_str().and_then(|x| x.parse::<f64>().ok());
                (t, x)
            })
            .collect();
        out.insert(key, points);
    }
    out
}

#[test]
fn every_victoria_dashboard_query_returns_the_numbers_of_the_csv() {
    let queries = check_structure(&load_dashboards(VICTORIA.0), VICTORIA);
    let Some(vm) = Victoria::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (rows, lp_text, _) = lab_data(dir.path(), &[]);
    let lp = dir.path().join("all.lp");
    std::fs::write(&lp, lp_text).expect("write");
    bittap(&[
        "send",
        &s(&lp),
        "--influx-url",
        &vm.url,
        "--influx-bucket",
        "b",
        "--influx-org",
        "o",
    ]);
    assert_eq!(
        common::http("GET", &format!("{}/internal/force_flush", vm.url), &[]).0,
        200
    );

    // `label_values(METRIC, LABEL)`: Grafana asks the label values API for the range.
    let range = &scenarios()[0];
    let variable = |q: &str| -> Vec<String> {
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {q}"));
        let (metric, label) = inner.split_once(',').expect("METRIC, LABEL");
        let (code, body) = common::http(
            "POST",
            &format!("{}/api/v1/label/{}/values", vm.url, label.trim()),
            &[
                ("match[]", metric.trim()),
                ("start", &(range.from / 1000).to_string()),
                ("end", &(range.to / 1000).to_string()),
            ],
        );
        assert_eq!(code, 200, "{q}: {body}");
        let json: Value = serde_json::from_str(&body).expect("json");
        json["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    };
    let run = |q: &str, sc: &Scenario| run_vm(&vm.url, q, sc);
    let checked = check_queries(
        &queries,
        &rows,
        &Backend {
            specs: VM_SPECS,
            escape: prom_escape,
            variable: &variable,
            run: &run,
            model: expected_vm,
        },
    );
    assert_eq!(checked, 2 + 14 * scenarios().len());
}
