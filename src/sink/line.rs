//! InfluxDB line protocol, written to spec: measurement, tag and field-key escaping, integer
//! fields as signed `i` (which every InfluxDB version and VictoriaMetrics accept), timestamps
//! in nanoseconds at the minute start. Tags stay low-cardinality: probe, class, proto,
//! method, direction (and rule/l4 in the port view); never an address.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use crate::aggregate::{minute_start_ns, Health, PortRow, SeriesRow, SflowHealth};
use crate::classify::Rules;

/// Measurement of the series (partitioning the input).
pub const SERIES: &str = "bittap";
/// Measurement of the port view.
pub const PORTS: &str = "bittap_port";
/// Measurement of capture health.
pub const HEALTH: &str = "bittap_health";
/// Measurement of the distinct BitTorrent hosts per minute (a sketch's estimate).
pub const HOSTS: &str = "bittap_hosts";
/// Measurement of sFlow input's health and the link load of the agents' counters.
pub const SFLOW: &str = "bittap_sflow";

/// Escapes a measurement name: commas and spaces.
pub fn escape_measurement(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, ',' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Escapes a tag key, tag value or field key: commas, equals signs and spaces. Line breaks
/// cannot be escaped in line protocol, so they become spaces (escaped).
pub fn escape_key(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
}

/// One line: measurement, tags (empty values left out), integer fields, the minute's start.
pub(super) fn line(
    out: &mut String,
    measurement: &str,
    tags: &[(&str, &str)],
    fields: &[(&str, u64)],
    minute: i64,
) {
    escape_measurement(measurement, out);
    for (k, v) in tags {
        if v.is_empty() {
            continue; // an empty tag value is not allowed
        }
        out.push(',');
        escape_key(k, out);
        out.push('=');
        escape_key(v, out);
    }
    for (i, (k, v)) in fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        escape_key(k, out);
        let _ = write!(out, "={v}i");
    }
    let _ = writeln!(out, " {}", minute_start_ns(minute));
}

/// The series, port view and health of a run as line protocol, one line per row.
pub fn render(
    probe: &str,
    series: &[SeriesRow],
    ports: &[PortRow],
    health: &[(i64, Health)],
    rules: &Rules,
) -> String {
    render_with(probe, series, ports, health, None, None, rules)
}

/// [`render`], and with `sflow` (sampled input) the series and port view also carry
/// `samples`, `bytes_low` and `bytes_high` (the 95 % interval), plus the `bittap_sflow`
/// measurement per minute; with `members` (sFlow `--members`) they carry the `member` tag.
pub fn render_with(
    probe: &str,
    series: &[SeriesRow],
    ports: &[PortRow],
    health: &[(i64, Health)],
    sflow: Option<&[(i64, SflowHealth)]>,
    members: Option<&[String]>,
    rules: &Rules,
) -> String {
    use super::rows;
    let mut out = String::new();
    let shape = rows::Shape {
        sampled: sflow.is_some(),
        members,
    };
    let (schema, r) = rows::series(series, shape);
    rows::render_line(&mut out, probe, &schema, &r);
    let (schema, r) = rows::ports(ports, rules, shape);
    rows::render_line(&mut out, probe, &schema, &r);
    let (schema, r) = rows::health(health, None);
    rows::render_line(&mut out, probe, &schema, &r);
    let (schema, r) = rows::sflow_health(sflow.unwrap_or_default());
    rows::render_line(&mut out, probe, &schema, &r);
    out
}

/// Distinct BitTorrent hosts per minute as line protocol (field `bittorrent`): an estimate
/// from a sketch, never an address.
pub fn render_hosts(probe: &str, hosts: &[(i64, u64)]) -> String {
    let mut out = String::new();
    let (schema, r) = super::rows::hosts(hosts, true);
    super::rows::render_line(&mut out, probe, &schema, &r);
    out
}

/// Writes line protocol to a file (for a machine with no route to the database; send it
/// later).
pub fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let mut f = std::fs::File::create(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    f.write_all(text.as_bytes())?;
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Counts, Direction};
    use crate::classify::{Method, Proto};

    #[test]
    fn escaping_per_spec() {
        let cases = [
            ("plain", "plain", "plain"),
            ("a b", "a\\ b", "a\\ b"),
            ("a,b", "a\\,b", "a\\,b"),
            ("a=b", "a=b", "a\\=b"),
            ("line\nbreak", "line\nbreak", "line\\ break"),
            ("\"q\"", "\"q\"", "\"q\""),
        ];
        for (input, measurement, key) in cases {
            let (mut m, mut k) = (String::new(), String::new());
            escape_measurement(input, &mut m);
            escape_key(input, &mut k);
            assert_eq!((m.as_str(), k.as_str()), (measurement, key), "{input:?}");
        }
    }

    #[test]
    fn lines_for_series_ports_and_health() {
        let rules = Rules::builtin().expect("rules");
        let series = [SeriesRow {
            minute: 28_619_160,
            proto: Proto::Peerwire,
            method: Method::Signature,
            direction: Direction::Up,
            counts: Counts {
                packets: 3,
                bytes: 1500,
            },
            samples: 3,
            bytes_err: 0,
            member: 0,
        }];
        let ports = [PortRow {
            minute: 28_619_160,
            rule: 0,
            direction: Direction::Unknown,
            counts: Counts {
                packets: 1,
                bytes: 60,
            },
            samples: 1,
            bytes_err: 0,
            member: 0,
        }];
        let health = [(
            28_619_160,
            Health {
                packets: 4,
                bytes: 1560,
                ..Health::default()
            },
        )];
        let text = render("ix 1,fra", &series, &ports, &health, &rules);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "bittap,probe=ix\\ 1\\,fra,class=bittorrent,proto=peerwire,method=signature,direction=up packets=3i,bytes=1500i 1717149600000000000"
        );
        assert_eq!(
            lines[1],
            "bittap_port,probe=ix\\ 1\\,fra,rule=peer-6881-6889-tcp,l4=tcp,proto=peerwire,direction=unknown packets=1i,bytes=60i 1717149600000000000"
        );
        assert!(
            lines[2]
                .starts_with("bittap_health,probe=ix\\ 1\\,fra packets=4i,bytes=1560i,non_ip=0i,"),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with(" 1717149600000000000"));
        assert_eq!(
            render_hosts("ix-1", &[(28_619_160, 12)]),
            "bittap_hosts,probe=ix-1 bittorrent=12i 1717149600000000000\n"
        );
    }
}
