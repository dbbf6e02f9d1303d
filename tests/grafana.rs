//! The Grafana dashboards of `grafana/`, checked without Grafana: their structure (keys,
//! unique ids, the provisioned data source uid, every variable defined) and every query in
//! them — panel targets, in rows and collapsed rows, and template variable queries — run
//! against a real InfluxDB 1.x holding two probes' data from `pcaps/lab/`, with Grafana's
//! macros and variables substituted as Grafana substitutes them, under several time ranges,
//! `$__interval` values and variable selections. Each result must equal numbers computed
//! here independently from the CSV files (`--series`, `--port-series`, `--health`) that the
//! same runs wrote. A query with no expectation in `SPECS`, or an expectation with no query,
//! fails the test, so a new panel cannot go in untested.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::influxd::{Influxd, DB, PASSWORD, USER};
use serde_json::Value;

/// The uid the provisioned data source has, which every panel must name.
const DATASOURCE_UID: &str = "bittap-influxdb";
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

/// Analyses `captures` as probe `probe`, pushing to the database and writing the three CSV
/// files, and returns their rows.
fn probe_run(db: &Influxd, dir: &Path, probe: &str, captures: &[&str], extra: &[&str]) -> Vec<Row> {
    let lab = common::repo().join("pcaps/lab");
    let (series, ports, health) = (
        dir.join(format!("{probe}-series.csv")),
        dir.join(format!("{probe}-ports.csv")),
        dir.join(format!("{probe}-health.csv")),
    );
    let mut args: Vec<String> = vec!["analyze".into(), "-q".into()];
    args.extend(captures.iter().map(|c| s(&lab.join(c))));
    for (flag, path) in [
        ("--series", &series),
        ("--port-series", &ports),
        ("--health", &health),
    ] {
        args.push(flag.into());
        args.push(s(path));
    }
    let url = db.url();
    args.extend(
        [
            "--probe",
            probe,
            "--influx-url",
            &url,
            "--influx-db",
            DB,
            "--influx-user",
            USER,
        ]
        .iter()
        .map(|a| a.to_string()),
    );
    args.extend(extra.iter().map(|a| a.to_string()));
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
    rows.extend(csv_rows(&health, "bittap_health", probe, &[]));
    rows
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
    if ms % 3_600_000 == 0 {
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

/// Substitutes a query as Grafana's InfluxDB data source does before sending it:
/// - `$timeFilter` → `time >= FROMms and time <= TOms` (epoch milliseconds, both ends in);
/// - `$__interval_ms` → the interval in ms (`60000`), `$__interval` → its text (`1m`, `5m`);
/// - `$__from`, `$__to` → epoch milliseconds;
/// - a multi-value/"All" variable (`$probe` or `${probe}`) → its values regex-escaped,
///   joined by `|` in parentheses when more than one (`(ix\-1|ix\-2)`), the value alone
///   when one; "All" without a custom all value means every value of the variable's query.
fn interpolate(q: &str, sc: &Scenario, vars: &BTreeMap<String, Vec<String>>) -> String {
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
            [one] => regex_escape(one),
            many => format!(
                "({})",
                many.iter()
                    .map(|v| regex_escape(v))
                    .collect::<Vec<_>>()
                    .join("|")
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
type Result = BTreeMap<String, Vec<(i64, Option<f64>)>>;

fn run_query(db: &Influxd, q: &str) -> Result {
    let (code, body) = common::http(
        "POST",
        &format!("{}/query?db={DB}&u={USER}&p={PASSWORD}&epoch=ms", db.url()),
        &[("q", q)],
    );
    assert_eq!(code, 200, "{q}: {body}");
    let json: Value = serde_json::from_str(&body).expect("json");
    let res = &json["results"][0];
    assert!(res["error"].is_null(), "{q}: {}", res["error"]);
    let mut out = Result::new();
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
        dir: !matches!(m.as_bytes(), b"bittap_health"),
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
) -> Result {
    let sel = |r: &&Row| {
        r.m == spec.m
            && r.t >= sc.from
            && r.t <= sc.to
            && vars["probe"].contains(&r.tags["probe"])
            && (!spec.dir || vars["direction"].contains(&r.tags["direction"]))
            && (!spec.bt || r.tags["class"] == "bittorrent")
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
    let mut out = Result::new();
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

fn same(got: &Result, want: &Result) -> bool {
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

fn load_dashboards() -> Vec<(PathBuf, Value)> {
    let dir = common::repo().join("grafana/dashboards");
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .expect("grafana/dashboards")
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
    assert!(out.len() >= 2, "dashboards in {}", dir.display());
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

/// The uids of the provisioned data sources (a line scan: the file is ours and flat).
fn provisioned_uids() -> BTreeSet<String> {
    let path = common::repo().join("grafana/provisioning/datasources/bittap.yaml");
    let text = std::fs::read_to_string(&path).expect("datasource provisioning");
    assert!(text.contains("apiVersion: 1"), "{}", path.display());
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("uid:"))
        .map(|u| u.trim().to_string())
        .collect()
}

/// Checks the structure Grafana needs and returns every query: panel targets and template
/// variable queries (`panel` = `variable NAME`, `ref_id` empty).
fn check_structure(dashboards: &[(PathBuf, Value)]) -> Vec<Query> {
    let uids = provisioned_uids();
    assert!(uids.contains(DATASOURCE_UID), "{uids:?}");
    let provider =
        std::fs::read_to_string(common::repo().join("grafana/provisioning/dashboards/bittap.yaml"))
            .expect("dashboard provisioning");
    assert!(provider.contains("type: file") && provider.contains("path:"));
    let ds_ok = |v: &Value, at: &str| {
        assert_eq!(v["datasource"]["type"], "influxdb", "{at}: datasource type");
        let uid = v["datasource"]["uid"].as_str().unwrap_or_default();
        assert!(
            uids.contains(uid),
            "{at}: datasource uid {uid:?} not provisioned"
        );
    };
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
            let q = str_of(var, "query", &vat).to_string();
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
                assert_eq!(t["rawQuery"], true, "{pat} {r}: raw InfluxQL");
                ds_ok(t, &format!("{pat} {r}"));
                let q = str_of(t, "query", &pat).to_string();
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

#[test]
fn every_dashboard_query_returns_the_numbers_of_the_csv() {
    let dashboards = load_dashboards();
    let queries = check_structure(&dashboards);
    let Some(db) = Influxd::start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");

    // Probe ix-1: ten lab captures over 16:17–16:21 (every minute), with a home network so
    // up/down/local/transit occur. Probe ix-2: other captures, no minute 16:17 nor 16:19 (so
    // idle buckets occur), direction unknown.
    let mut rows = probe_run(
        &db,
        dir.path(),
        "ix-1",
        &[
            "bt-plain-http.pcap",
            "bt-udp-tracker.pcap",
            "bt-mse-required.pcap",
            "bt-utp.pcap",
            "bt-dht-magnet.pcap",
            "bt-pex.pcap",
            "bt-mixed.pcap",
            "bt-classic-ports.pcap",
            "neg-ssh.pcap",
        ],
        &["--home-net", "10.77.0.10/32,10.77.0.11/32"],
    );
    rows.extend(probe_run(
        &db,
        dir.path(),
        "ix-2",
        &[
            "bt-mse-preferred.pcap",
            "bt-utp-mse.pcap",
            "bt-ipv6.pcap",
            "bt-webseed.pcap",
            "neg-http-tls.pcap",
            "neg-dns.pcap",
            "neg-random.pcap",
            "neg-btports.pcap",
        ],
        &[],
    ));

    // Drops and the spool are filled only by live capture, so files give zeros. To see the
    // drop and spool panels pick the right fields, overlay non-zero values on some health
    // points (same series and time: InfluxDB merges the fields) and in the expected rows;
    // also a peak of the flow table in an early minute (in these captures it only grows, so
    // max and last of a bucket would agree).
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
    let mut lines = String::new();
    for (probe, time, values) in overlay {
        let t = rfc3339_minute_ms(time);
        let row = rows
            .iter_mut()
            .find(|r| r.m == "bittap_health" && r.tags["probe"] == probe && r.t == t)
            .expect("health row to overlay");
        let fields: Vec<String> = live
            .iter()
            .zip(values)
            .map(|(f, v)| {
                row.fields.insert(f.to_string(), v as f64);
                format!("{f}={v}i")
            })
            .collect();
        lines.push_str(&format!(
            "bittap_health,probe={probe} {} {}\n",
            fields.join(","),
            t * 1_000_000
        ));
    }
    let lp = dir.path().join("overlay.lp");
    std::fs::write(&lp, lines).expect("write overlay");
    let url = db.url();
    bittap(&[
        "send",
        &s(&lp),
        "--influx-url",
        &url,
        "--influx-db",
        DB,
        "--influx-user",
        USER,
    ]);

    let distinct = |m: &str, tag: &str| -> Vec<String> {
        let set: BTreeSet<String> = rows
            .iter()
            .filter(|r| r.m == m)
            .map(|r| r.tags[tag].clone())
            .collect();
        set.into_iter().collect()
    };

    // Template variables: their queries list exactly the tag values of the data.
    let mut var_values: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for q in queries.iter().filter(|q| q.ref_id.is_empty()) {
        let name = q.panel.trim_start_matches("variable ").to_string();
        let (code, body) = db.query(&q.text);
        assert_eq!(code, 200, "{}: {body}", q.text);
        let json: Value = serde_json::from_str(&body).expect("json");
        let got: Vec<String> = json["results"][0]["series"][0]["values"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|kv| kv[1].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(got, distinct("bittap", &name), "{} {}", q.dash, q.panel);
        var_values.insert((q.dash.clone(), name), got);
        checked += 1;
    }
    assert_eq!(distinct("bittap", "probe"), ["ix-1", "ix-2"]);
    assert_eq!(
        distinct("bittap", "direction"),
        ["down", "local", "transit", "unknown", "up"]
    );

    // Every query has exactly one expectation, and every expectation a query.
    let panel_queries: Vec<&Query> = queries.iter().filter(|q| !q.ref_id.is_empty()).collect();
    for q in &panel_queries {
        let n = SPECS
            .iter()
            .filter(|s| s.dash == q.dash && s.panel == q.panel && s.ref_id == q.ref_id)
            .count();
        assert_eq!(
            n, 1,
            "{} / {} / {}: expectations in SPECS",
            q.dash, q.panel, q.ref_id
        );
    }
    assert_eq!(
        SPECS.len(),
        panel_queries.len(),
        "an expectation without its query"
    );

    let at = |t: &str| rfc3339_minute_ms(&format!("2026-11-24T{t}:00Z"));
    let scenarios = [
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
            name: "one hour, 1h, both probes chosen, transit and unknown",
            from: at("16:00"),
            to: at("17:00"),
            interval_ms: 60 * MIN,
            probe: Some(&["ix-1", "ix-2"]),
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
    ];
    let mut nonempty: BTreeSet<(String, String, String)> = BTreeSet::new();
    for sc in &scenarios {
        for q in &panel_queries {
            let spec = SPECS
                .iter()
                .find(|s| s.dash == q.dash && s.panel == q.panel && s.ref_id == q.ref_id)
                .expect("spec");
            assert_eq!(
                q.text.contains("$direction"),
                spec.dir,
                "{}: direction filter",
                q.panel
            );
            let all = |name: &str| var_values.get(&(q.dash.clone(), name.to_string())).cloned();
            let mut vars = BTreeMap::new();
            for (name, chosen) in [("probe", sc.probe), ("direction", sc.direction)] {
                let Some(every) = all(name) else { continue };
                let values = match chosen {
                    Some(v) => v.iter().map(|s| s.to_string()).collect(),
                    None => every,
                };
                vars.insert(name.to_string(), values);
            }
            let text = interpolate(&q.text, sc, &vars);
            assert!(
                text.match_indices('$')
                    .all(|(i, _)| text[i + 1..].starts_with('/')),
                "left unsubstituted: {text}"
            );
            let got = run_query(&db, &text);
            let mut model_vars = vars.clone();
            model_vars
                .entry("direction".into())
                .or_insert_with(|| distinct("bittap", "direction"));
            let want = expected(spec, sc, &rows, &model_vars);
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
}
