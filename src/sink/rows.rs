//! Outputs as data: each per-minute output (series, port view, health, hosts) is one schema
//! — a measurement, tag names and field names — and rows of tag values and field values.
//! CSV, NDJSON and line protocol render the same rows by the same names, and `report` reads
//! them back by those names.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::aggregate::members::MEMBER_FIRST;
use crate::aggregate::{Health, MinuteStart, PortRow, SeriesRow, SflowHealth};
use crate::classify::Rules;

use super::Format;

/// The names every reader and writer of the outputs uses.
pub const TIME: &str = "time";
pub const CLASS: &str = "class";
pub const PROTO: &str = "proto";
pub const METHOD: &str = "method";
pub const DIRECTION: &str = "direction";
pub const RULE: &str = "rule";
pub const L4: &str = "l4";
pub const PACKETS: &str = "packets";
pub const BYTES: &str = "bytes";
/// The exchange member of sFlow rows (`--members`).
pub const MEMBER: &str = "member";

/// Tags of a series row.
pub const SERIES_TAGS: &[&str] = &[CLASS, PROTO, METHOD, DIRECTION];
/// Tags of a port-view row.
pub const PORT_TAGS: &[&str] = &[RULE, L4, PROTO, DIRECTION];
/// Tags of a series row with members (sFlow `--members`).
pub const SERIES_MEMBER_TAGS: &[&str] = &[CLASS, PROTO, METHOD, DIRECTION, MEMBER];
/// Tags of a port-view row with members.
pub const PORT_MEMBER_TAGS: &[&str] = &[RULE, L4, PROTO, DIRECTION, MEMBER];
/// Fields of every series and port-view row.
pub const COUNT_FIELDS: &[&str] = &[PACKETS, BYTES];
/// Fields sampled rows (sFlow) add: samples, and the 95 % interval of the byte estimate.
pub const SAMPLED_FIELDS: &[&str] = &["samples", "bytes_low", "bytes_high"];
/// The field of the distinct-host rows in CSV and NDJSON.
pub const HOSTS_FIELD: &str = "bittorrent_hosts";
/// The same field in line protocol (`bittap_hosts`), named before the files existed.
pub const HOSTS_LINE_FIELD: &str = "bittorrent";

/// What sFlow input adds to the series and port-view rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape<'a> {
    /// Sampled input: each row has its samples and the 95 % interval of its bytes.
    pub sampled: bool,
    /// `--members`: the member names (by member index − [`MEMBER_FIRST`]); each row has a
    /// `member` tag, `unknown` for samples of no member.
    pub members: Option<&'a [String]>,
}

impl From<bool> for Shape<'static> {
    fn from(sampled: bool) -> Self {
        Shape {
            sampled,
            members: None,
        }
    }
}

impl<'a> Shape<'a> {
    /// The name of member index `m`.
    fn member(&self, m: u16) -> &'a str {
        let names = self.members.unwrap_or_default();
        m.checked_sub(MEMBER_FIRST)
            .and_then(|i| names.get(usize::from(i)))
            .map(String::as_str)
            .unwrap_or(crate::sflow::members::UNKNOWN)
    }
}

/// An output's names.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Line-protocol measurement.
    pub measurement: &'static str,
    pub tags: &'static [&'static str],
    pub fields: Vec<&'static str>,
}

/// One row: a minute, its tag values (in the schema's order) and field values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub minute: i64,
    pub tags: Vec<&'a str>,
    pub fields: Vec<u64>,
}

fn count_fields(sampled: bool) -> Vec<&'static str> {
    let mut f = COUNT_FIELDS.to_vec();
    if sampled {
        f.extend_from_slice(SAMPLED_FIELDS);
    }
    f
}

fn count_values(c: &crate::aggregate::Counts, sampled: bool, samples: u64, err: u64) -> Vec<u64> {
    let mut v = vec![c.packets, c.bytes];
    if sampled {
        v.extend([
            samples,
            c.bytes.saturating_sub(err),
            c.bytes.saturating_add(err),
        ]);
    }
    v
}

/// The series: one row per minute and tag set.
pub fn series<'a>(rows: &[SeriesRow], shape: impl Into<Shape<'a>>) -> (Schema, Vec<Row<'a>>) {
    let shape = shape.into();
    let sampled = shape.sampled;
    let schema = Schema {
        measurement: super::line::SERIES,
        tags: if shape.members.is_some() {
            SERIES_MEMBER_TAGS
        } else {
            SERIES_TAGS
        },
        fields: count_fields(sampled),
    };
    let rows = rows
        .iter()
        .map(|r| {
            let mut tags = vec![
                r.proto.class().name(),
                r.proto.name(),
                r.method.name(),
                r.direction.name(),
            ];
            if shape.members.is_some() {
                tags.push(shape.member(r.member));
            }
            Row {
                minute: r.minute,
                tags,
                fields: count_values(&r.counts, sampled, r.samples, r.bytes_err),
            }
        })
        .collect();
    (schema, rows)
}

/// The port view: rows of rules that exist in `rules`.
pub fn ports<'a, 'b: 'a>(
    rows: &[PortRow],
    rules: &'a Rules,
    shape: impl Into<Shape<'b>>,
) -> (Schema, Vec<Row<'a>>) {
    let shape = shape.into();
    let sampled = shape.sampled;
    let schema = Schema {
        measurement: super::line::PORTS,
        tags: if shape.members.is_some() {
            PORT_MEMBER_TAGS
        } else {
            PORT_TAGS
        },
        fields: count_fields(sampled),
    };
    let rows = rows
        .iter()
        .filter_map(|r| {
            let rule = rules.ports.get(r.rule)?;
            let mut tags = vec![
                rule.id.as_str(),
                rule.transport.name(),
                rule.proto.name(),
                r.direction.name(),
            ];
            if shape.members.is_some() {
                tags.push(shape.member(r.member));
            }
            Some(Row {
                minute: r.minute,
                tags,
                fields: count_values(&r.counts, sampled, r.samples, r.bytes_err),
            })
        })
        .collect();
    (schema, rows)
}

/// Capture health; with `sflow` (rows of the same minutes), sFlow's fields after the others
/// (a minute without its sFlow row has only the capture's).
pub fn health(
    rows: &[(i64, Health)],
    sflow: Option<&[(i64, SflowHealth)]>,
) -> (Schema, Vec<Row<'static>>) {
    let mut fields = Health::FIELDS.to_vec();
    if sflow.is_some() {
        fields.extend_from_slice(&SflowHealth::FIELDS);
    }
    let schema = Schema {
        measurement: super::line::HEALTH,
        tags: &[],
        fields,
    };
    let rows = rows
        .iter()
        .enumerate()
        .map(|(i, (minute, h))| {
            let mut fields = h.values().to_vec();
            if let Some(s) = sflow.and_then(|s| s.get(i)).filter(|(m, _)| m == minute) {
                fields.extend_from_slice(&s.1.values());
            }
            Row {
                minute: *minute,
                tags: Vec::new(),
                fields,
            }
        })
        .collect();
    (schema, rows)
}

/// sFlow's health per minute (line protocol's `bittap_sflow`).
pub fn sflow_health(rows: &[(i64, SflowHealth)]) -> (Schema, Vec<Row<'static>>) {
    let schema = Schema {
        measurement: super::line::SFLOW,
        tags: &[],
        fields: SflowHealth::FIELDS.to_vec(),
    };
    let rows = rows
        .iter()
        .map(|(minute, h)| Row {
            minute: *minute,
            tags: Vec::new(),
            fields: h.values().to_vec(),
        })
        .collect();
    (schema, rows)
}

/// Estimated distinct BitTorrent hosts per minute; `line`: line protocol's field name.
pub fn hosts(rows: &[(i64, u64)], line: bool) -> (Schema, Vec<Row<'static>>) {
    let schema = Schema {
        measurement: super::line::HOSTS,
        tags: &[],
        fields: vec![if line { HOSTS_LINE_FIELD } else { HOSTS_FIELD }],
    };
    let rows = rows
        .iter()
        .map(|&(minute, n)| Row {
            minute,
            tags: Vec::new(),
            fields: vec![n],
        })
        .collect();
    (schema, rows)
}

/// Writes rows as CSV (with the header if `header`) or NDJSON.
pub fn write<W: Write>(
    w: &mut W,
    fmt: Format,
    schema: &Schema,
    rows: &[Row<'_>],
    header: bool,
) -> io::Result<()> {
    if header && fmt == Format::Csv {
        let mut h = String::from(TIME);
        for n in schema.tags.iter().chain(&schema.fields) {
            h.push(',');
            h.push_str(n);
        }
        writeln!(w, "{h}")?;
    }
    let mut line = String::new();
    for r in rows {
        line.clear();
        let t = MinuteStart(r.minute);
        match fmt {
            Format::Csv => {
                let _ = write!(line, "{t}");
                for v in &r.tags {
                    let _ = write!(line, ",{v}");
                }
                for v in &r.fields {
                    let _ = write!(line, ",{v}");
                }
            }
            Format::Ndjson => {
                let _ = write!(line, "{{\"time\":\"{t}\"");
                for (k, v) in schema.tags.iter().zip(&r.tags) {
                    let _ = write!(line, ",\"{k}\":\"{v}\"");
                }
                for (k, v) in schema.fields.iter().zip(&r.fields) {
                    let _ = write!(line, ",\"{k}\":{v}");
                }
                line.push('}');
            }
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}

/// Appends rows as line protocol, each tagged with `probe` first.
pub fn render_line(out: &mut String, probe: &str, schema: &Schema, rows: &[Row<'_>]) {
    let mut tags: Vec<(&str, &str)> = Vec::with_capacity(1 + schema.tags.len());
    let mut fields: Vec<(&str, u64)> = Vec::with_capacity(schema.fields.len());
    for r in rows {
        tags.clear();
        tags.push(("probe", probe));
        tags.extend(schema.tags.iter().copied().zip(r.tags.iter().copied()));
        fields.clear();
        fields.extend(schema.fields.iter().copied().zip(r.fields.iter().copied()));
        super::line::line(out, schema.measurement, &tags, &fields, r.minute);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Counts, Direction};
    use crate::classify::{Method, Proto};

    fn one_series_row() -> Vec<SeriesRow> {
        vec![SeriesRow {
            minute: 28_000_000,
            proto: Proto::Dht,
            method: Method::Signature,
            direction: Direction::Unknown,
            counts: Counts {
                packets: 3,
                bytes: 300,
            },
            samples: 2,
            bytes_err: 50,
            member: 0,
        }]
    }

    /// The same names in the CSV header, the NDJSON keys and the line-protocol fields.
    #[test]
    fn one_schema_three_renderings() {
        let (schema, rows) = series(&one_series_row(), true);
        let (mut csv, mut nd) = (Vec::new(), Vec::new());
        write(&mut csv, Format::Csv, &schema, &rows, true).expect("csv");
        write(&mut nd, Format::Ndjson, &schema, &rows, true).expect("ndjson");
        let csv = String::from_utf8(csv).expect("utf-8");
        let nd = String::from_utf8(nd).expect("utf-8");
        let mut lp = String::new();
        render_line(&mut lp, "p", &schema, &rows);
        let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
        assert_eq!(
            header,
            [
                "time",
                "class",
                "proto",
                "method",
                "direction",
                "packets",
                "bytes",
                "samples",
                "bytes_low",
                "bytes_high"
            ]
        );
        let values: Vec<&str> = csv.lines().nth(1).expect("row").split(',').collect();
        for (k, v) in header.iter().zip(&values).skip(1) {
            let quoted = if schema.tags.contains(k) {
                format!("\"{k}\":\"{v}\"")
            } else {
                format!("\"{k}\":{v}")
            };
            assert!(nd.contains(&quoted), "{nd} lacks {quoted}");
            let lp_pair = if schema.tags.contains(k) {
                format!(",{k}={v}")
            } else {
                format!("{k}={v}i")
            };
            assert!(lp.contains(&lp_pair), "{lp} lacks {lp_pair}");
        }
        assert!(lp.starts_with("bittap,probe=p,"), "{lp}");
        assert!(values.contains(&"250") && values.contains(&"350"));
    }

    #[test]
    fn health_rows_take_sflow_fields_of_the_same_minute_only() {
        let h = [(5, Health::default()), (6, Health::default())];
        let s = [(5, SflowHealth::default())];
        let (schema, rows) = health(&h, Some(&s));
        assert_eq!(
            schema.fields.len(),
            Health::FIELDS.len() + SflowHealth::FIELDS.len()
        );
        assert_eq!(rows[0].fields.len(), schema.fields.len());
        assert_eq!(rows[1].fields.len(), Health::FIELDS.len());
    }
}
