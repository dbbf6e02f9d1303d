//! Outputs: per-minute series, port view, health and per-flow verdicts as CSV or NDJSON, and
//! the run summary for people.

pub mod influx;
pub mod line;
pub mod rows;
pub mod spool;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::aggregate::{Health, MinuteStart, PortRow, Rfc3339, SeriesRow, SflowHealth};
use crate::classify::{Class, Method, Proto, Rules};
use crate::decode::addr_to_ip;
use crate::flow::record::{FlowRecord, FlowSink};

/// CSV, or NDJSON when the file name ends in .json, .ndjson or .jsonl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn for_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json" | "ndjson" | "jsonl") => Format::Ndjson,
            _ => Format::Csv,
        }
    }
}

fn minute_time(minute: i64) -> MinuteStart {
    MinuteStart(minute)
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 16, f))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Creates (truncates) an output file, buffered; errors name the path.
pub fn create_file(path: &Path) -> io::Result<BufWriter<File>> {
    create(path)
}

/// Opens a file for appending (created if missing); true when it was empty, so a CSV header
/// is due.
pub fn open_append(path: &Path) -> io::Result<(BufWriter<File>, bool)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let empty = f.metadata().map(|m| m.len() == 0).unwrap_or(true);
    Ok((BufWriter::with_capacity(1 << 16, f), empty))
}

/// Writes the series: one row per minute and tag set with packets; with `sampled` (sFlow
/// input) each row also has its samples and the 95 % interval of its bytes.
pub fn write_series<'a>(
    path: &Path,
    rows: &[SeriesRow],
    shape: impl Into<rows::Shape<'a>>,
) -> io::Result<()> {
    let mut w = create(path)?;
    write_series_to(&mut w, Format::for_path(path), rows, true, shape)?;
    w.flush()
}

/// Writes series rows to `w`, with the CSV header if `header` (live appends minute by minute).
pub fn write_series_to<'a, W: Write>(
    w: &mut W,
    fmt: Format,
    rows: &[SeriesRow],
    header: bool,
    shape: impl Into<rows::Shape<'a>>,
) -> io::Result<()> {
    let (schema, rows) = rows::series(rows, shape);
    rows::write(w, fmt, &schema, &rows, header)
}

/// Writes the port view: bytes on the classic BitTorrent ports, whatever the verdict.
pub fn write_port_series<'a>(
    path: &Path,
    rows: &[PortRow],
    rules: &Rules,
    shape: impl Into<rows::Shape<'a>>,
) -> io::Result<()> {
    let mut w = create(path)?;
    write_port_series_to(&mut w, Format::for_path(path), rows, rules, true, shape)?;
    w.flush()
}

/// Writes port-view rows to `w`, with the CSV header if `header`.
pub fn write_port_series_to<'a, W: Write>(
    w: &mut W,
    fmt: Format,
    rows: &[PortRow],
    rules: &Rules,
    header: bool,
    shape: impl Into<rows::Shape<'a>>,
) -> io::Result<()> {
    let (schema, rows) = rows::ports(rows, rules, shape);
    rows::write(w, fmt, &schema, &rows, header)
}

/// Writes capture health per minute; with `sflow` (rows of the same minutes), sFlow's own
/// health columns after the others.
pub fn write_health(
    path: &Path,
    rows: &[(i64, Health)],
    sflow: Option<&[(i64, SflowHealth)]>,
) -> io::Result<()> {
    let mut w = create(path)?;
    write_health_to(&mut w, Format::for_path(path), rows, true, sflow)?;
    w.flush()
}

/// Writes health rows to `w`, with the CSV header if `header`.
pub fn write_health_to<W: Write>(
    w: &mut W,
    fmt: Format,
    rows: &[(i64, Health)],
    header: bool,
    sflow: Option<&[(i64, SflowHealth)]>,
) -> io::Result<()> {
    let (schema, rows) = rows::health(rows, sflow);
    rows::write(w, fmt, &schema, &rows, header)
}

/// Writes the estimated distinct BitTorrent hosts per minute (`time,bittorrent_hosts`).
pub fn write_hosts(path: &Path, rows: &[(i64, u64)]) -> io::Result<()> {
    let mut w = create(path)?;
    write_hosts_to(&mut w, Format::for_path(path), rows, true)?;
    w.flush()
}

/// Writes distinct-host rows to `w`, with the CSV header if `header`.
pub fn write_hosts_to<W: Write>(
    w: &mut W,
    fmt: Format,
    rows: &[(i64, u64)],
    header: bool,
) -> io::Result<()> {
    let (schema, rows) = rows::hosts(rows, false);
    rows::write(w, fmt, &schema, &rows, header)
}

/// Streams finished flows to a file.
/// Columns of the CSV flow records.
pub const FLOW_HEADER: &str =
    "first_seen,last_seen,l4,src_ip,src_port,dst_ip,dst_port,class,proto,method,packets,bytes,end,evidence";

pub struct FlowWriter {
    w: BufWriter<File>,
    fmt: Format,
}

impl FlowWriter {
    pub fn create(path: &Path) -> io::Result<FlowWriter> {
        let mut w = create(path)?;
        let fmt = Format::for_path(path);
        if fmt == Format::Csv {
            writeln!(w, "{FLOW_HEADER}")?;
        }
        Ok(FlowWriter { w, fmt })
    }

    /// Appends to a file (live runs restart onto the same file); the CSV header only when
    /// the file is new.
    pub fn append(path: &Path) -> io::Result<FlowWriter> {
        let (mut w, empty) = open_append(path)?;
        let fmt = Format::for_path(path);
        if empty && fmt == Format::Csv {
            writeln!(w, "{FLOW_HEADER}")?;
        }
        Ok(FlowWriter { w, fmt })
    }
}

impl FlowSink for FlowWriter {
    fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        let first = Rfc3339 {
            ts_ns: r.first_ts,
            frac_digits: 6,
        };
        let last = Rfc3339 {
            ts_ns: r.last_ts,
            frac_digits: 6,
        };
        let (src, dst) = (addr_to_ip(r.src), addr_to_ip(r.dst));
        let (c, p, m, e, ev) = (
            r.verdict.class().name(),
            r.verdict.proto.name(),
            r.verdict.method.name(),
            r.end.name(),
            r.evidence.name(),
        );
        match self.fmt {
            Format::Csv => writeln!(
                self.w,
                "{first},{last},{},{src},{},{dst},{},{c},{p},{m},{},{},{e},{ev}",
                r.l4, r.src_port, r.dst_port, r.packets, r.bytes
            ),
            Format::Ndjson => writeln!(
                self.w,
                "{{\"first_seen\":\"{first}\",\"last_seen\":\"{last}\",\"l4\":\"{}\",\"src_ip\":\"{src}\",\"src_port\":{},\"dst_ip\":\"{dst}\",\"dst_port\":{},\"class\":\"{c}\",\"proto\":\"{p}\",\"method\":\"{m}\",\"packets\":{},\"bytes\":{},\"end\":\"{e}\",\"evidence\":\"{ev}\"}}",
                r.l4, r.src_port, r.dst_port, r.packets, r.bytes
            ),
        }
    }
}

impl Drop for FlowWriter {
    fn drop(&mut self) {
        let _ = self.w.flush();
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The run summary printed on stdout.
pub fn summary(series: &[SeriesRow], ports: &[PortRow], flows_seen: Option<(u64, u64)>) -> String {
    let mut s = String::new();
    let (mut pk, mut by) = (0u64, 0u64);
    let (mut bt_pk, mut bt_by) = (0u64, 0u64);
    let mut by_proto = [(0u64, 0u64); Proto::ALL.len()];
    let mut by_method = [(0u64, 0u64); Method::ALL.len()];
    for r in series {
        pk += r.counts.packets;
        by += r.counts.bytes;
        by_proto[r.proto as usize].0 += r.counts.packets;
        by_proto[r.proto as usize].1 += r.counts.bytes;
        if r.proto.class() == Class::Bittorrent {
            bt_pk += r.counts.packets;
            bt_by += r.counts.bytes;
            by_method[r.method as usize].0 += r.counts.packets;
            by_method[r.method as usize].1 += r.counts.bytes;
        }
    }
    let minutes = match (series.first(), series.last()) {
        (Some(a), Some(b)) => format!(
            "{} to {} ({} minutes)",
            minute_time(a.minute),
            minute_time(b.minute + 1),
            b.minute - a.minute + 1
        ),
        _ => "no packets".into(),
    };
    let _ = writeln!(
        s,
        "input: {pk} packets, {} on the wire, {minutes}",
        human_bytes(by)
    );
    let _ = writeln!(
        s,
        "BitTorrent: {bt_pk} packets, {} = {:.2}% of bytes, {:.2}% of packets",
        human_bytes(bt_by),
        pct(bt_by, by),
        pct(bt_pk, pk)
    );
    for p in Proto::ALL {
        let (n, b) = by_proto[p as usize];
        if n > 0 {
            let _ = writeln!(
                s,
                "  {:<13} {:>12} packets {:>10} {:>7.2}%  [{}]",
                p.name(),
                n,
                human_bytes(b),
                pct(b, by),
                p.class().name()
            );
        }
    }
    let _ = writeln!(s, "BitTorrent by method (how it was found):");
    for m in Method::ALL {
        let (n, b) = by_method[m as usize];
        if n > 0 {
            let _ = writeln!(
                s,
                "  {:<13} {:>12} packets {:>10} {:>7.2}%",
                m.name(),
                n,
                human_bytes(b),
                pct(b, by)
            );
        }
    }
    let port_bytes: u64 = ports.iter().map(|r| r.counts.bytes).sum();
    let dpi_bytes = bt_by - by_method[Method::Port as usize].1;
    let _ = writeln!(
        s,
        "port view (bytes on classic BitTorrent ports, whatever the verdict): {} = {:.2}%; payload-based view: {} = {:.2}%",
        human_bytes(port_bytes),
        pct(port_bytes, by),
        human_bytes(dpi_bytes),
        pct(dpi_bytes, by)
    );
    if let Some((flows, bt_flows)) = flows_seen {
        let _ = writeln!(s, "flows: {flows}, of which BitTorrent: {bt_flows}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Counts, Direction};

    #[test]
    fn format_by_extension() {
        assert_eq!(Format::for_path(Path::new("a.csv")), Format::Csv);
        assert_eq!(Format::for_path(Path::new("a.json")), Format::Ndjson);
        assert_eq!(Format::for_path(Path::new("a.ndjson")), Format::Ndjson);
        assert_eq!(Format::for_path(Path::new("a")), Format::Csv);
    }

    #[test]
    fn summary_shares() {
        let row = |proto, method, bytes| SeriesRow {
            minute: 28_619_160,
            proto,
            method,
            direction: Direction::Unknown,
            counts: Counts { packets: 1, bytes },
            samples: 1,
            bytes_err: 0,
            member: 0,
        };
        let rows = [
            row(Proto::Peerwire, Method::Signature, 300),
            row(Proto::Dht, Method::Port, 100),
            row(Proto::Other, Method::None, 600),
        ];
        let s = summary(&rows, &[], None);
        assert!(
            s.contains("BitTorrent: 2 packets, 400 B = 40.00% of bytes"),
            "{s}"
        );
        assert!(s.contains("payload-based view: 300 B = 30.00%"), "{s}");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
