//! `bittap report`: per-minute series (from `analyze`'s CSV files or from InfluxDB) turned
//! into an SVG chart, a Markdown summary and a list of level shifts.
//!
//! Everything here works on whole minutes, filled in from the first to the last minute with
//! data: a minute with no row had no packets.

pub mod chart;
pub mod input;
pub mod shift;
pub mod summary;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::aggregate::{PortRow, SeriesRow};
use crate::classify::{Class, Method, Proto};

pub const N_PROTO: usize = Proto::ALL.len();
pub const N_METHOD: usize = Method::ALL.len();

/// BitTorrent protos, in chart (stacking) order.
pub const BT_PROTOS: [Proto; 8] = [
    Proto::Peerwire,
    Proto::PeerwireMse,
    Proto::Utp,
    Proto::Dht,
    Proto::TrackerHttp,
    Proto::TrackerUdp,
    Proto::Lsd,
    Proto::Webseed,
];

/// What was counted in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    pub packets: u64,
    pub bytes: u64,
    pub bt_packets: u64,
    /// BitTorrent bytes by proto (index `Proto as usize`).
    pub bt_proto: [u64; N_PROTO],
    /// BitTorrent bytes by method (index `Method as usize`).
    pub bt_method: [u64; N_METHOD],
    /// Bytes on classic BitTorrent ports (the port view), whatever the verdict.
    pub port_bytes: u64,
    /// Estimated distinct BitTorrent hosts.
    pub hosts: Option<u64>,
}

impl Minute {
    pub fn bt_bytes(&self) -> u64 {
        self.bt_proto.iter().fold(0, |a, &b| a.saturating_add(b))
    }
}

/// Contiguous minutes from `start` (UTC minutes since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    pub start: i64,
    pub minutes: Vec<Minute>,
    /// A port view was given.
    pub has_ports: bool,
    /// A host count was given.
    pub has_hosts: bool,
}

/// The longest series a report or a chart covers: 366 days of minutes (about 60 MB of
/// minutes). A longer one (a typo in a time range, a capture with timestamps clamped to
/// 1970 and 2262) is refused rather than allocated.
pub const MAX_MINUTES: i64 = 366 * 1440;

/// Collects rows in any order, then fills the minutes in between.
#[derive(Debug, Default)]
pub struct Builder {
    map: BTreeMap<i64, Minute>,
    has_ports: bool,
    has_hosts: bool,
}

impl Builder {
    pub fn add_series(
        &mut self,
        minute: i64,
        proto: Proto,
        method: Method,
        packets: u64,
        bytes: u64,
    ) {
        // Saturating: the counts come from files and database replies.
        let m = self.map.entry(minute).or_default();
        m.packets = m.packets.saturating_add(packets);
        m.bytes = m.bytes.saturating_add(bytes);
        if proto.class() == Class::Bittorrent {
            m.bt_packets = m.bt_packets.saturating_add(packets);
            let p = &mut m.bt_proto[proto as usize];
            *p = p.saturating_add(bytes);
            let x = &mut m.bt_method[method as usize];
            *x = x.saturating_add(bytes);
        }
    }

    pub fn add_port(&mut self, minute: i64, bytes: u64) {
        self.has_ports = true;
        let m = self.map.entry(minute).or_default();
        m.port_bytes = m.port_bytes.saturating_add(bytes);
    }

    pub fn set_hosts(&mut self, minute: i64, n: u64) {
        self.has_hosts = true;
        self.map.entry(minute).or_default().hosts = Some(n);
    }

    /// The contiguous series, or why it cannot be one: it spans more than [`MAX_MINUTES`].
    pub fn build(self) -> Result<Series, String> {
        let (Some((&first, _)), Some((&last, _))) =
            (self.map.first_key_value(), self.map.last_key_value())
        else {
            return Ok(Series::default());
        };
        // In i128: minutes from a database reply may be anywhere in i64.
        let span = i128::from(last) - i128::from(first) + 1;
        if span > i128::from(MAX_MINUTES) {
            return Err(format!(
                "the series spans {span} minutes, {} to {}; a report or chart covers at most \
                 {MAX_MINUTES} (366 days): choose a narrower time range",
                minute_label(first),
                minute_label(last)
            ));
        }
        let mut minutes = vec![Minute::default(); (last - first + 1) as usize];
        for (m, v) in self.map {
            minutes[(m - first) as usize] = v;
        }
        if self.has_hosts {
            for m in &mut minutes {
                m.hosts.get_or_insert(0);
            }
        }
        Ok(Series {
            start: first,
            minutes,
            has_ports: self.has_ports,
            has_hosts: self.has_hosts,
        })
    }
}

impl Series {
    /// The series of an `analyze` run, as the report reads it back from the CSV files.
    pub fn from_rows(
        series: &[SeriesRow],
        ports: &[PortRow],
        hosts: &[(i64, u64)],
    ) -> Result<Series, String> {
        let mut b = Builder::default();
        for r in series {
            b.add_series(
                r.minute,
                r.proto,
                r.method,
                r.counts.packets,
                r.counts.bytes,
            );
        }
        for r in ports {
            b.add_port(r.minute, r.counts.bytes);
        }
        for &(m, n) in hosts {
            b.set_hosts(m, n);
        }
        b.build()
    }

    pub fn len(&self) -> usize {
        self.minutes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }
}

/// Where `bittap report` reads its series and writes its outputs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub series: Option<PathBuf>,
    pub port_series: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    pub influx: Option<input::Influx>,
    pub chart: Option<PathBuf>,
    /// The Markdown summary; without it, the caller prints it.
    pub summary: Option<PathBuf>,
    pub params: shift::Params,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(#[from] input::InputError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Write(std::io::Error),
}

/// What a report found.
#[derive(Debug)]
pub struct Report {
    pub series: Series,
    pub shifts: Vec<shift::Shift>,
    pub summary: String,
}

/// Reads the series, detects level shifts, writes the chart and the summary file.
pub fn run(o: &Options) -> Result<Report, Error> {
    let mut b = Builder::default();
    match (&o.series, &o.influx) {
        (Some(path), None) => {
            input::read_series(path, &mut b)?;
            if let Some(p) = &o.port_series {
                input::read_ports(p, &mut b)?;
            }
            if let Some(p) = &o.hosts {
                input::read_hosts(p, &mut b)?;
            }
        }
        (None, Some(db)) => db.read(&mut b)?,
        _ => {
            return Err(Error::Usage(
                "give either --series FILE or --influx-url with --influx-db".into(),
            ))
        }
    }
    let series = b.build().map_err(Error::Usage)?;
    let shifts = shift::detect(&series, &o.params);
    let summary = summary::render(&series, &shifts);
    if let Some(p) = &o.chart {
        chart::write(p, &series).map_err(Error::Write)?;
    }
    if let Some(p) = &o.summary {
        std::fs::write(p, &summary).map_err(|e| {
            Error::Write(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", p.display()),
            ))
        })?;
    }
    Ok(Report {
        series,
        shifts,
        summary,
    })
}

/// Bytes in a minute to bits per second.
pub fn bits_per_s(bytes_per_minute: f64) -> f64 {
    bytes_per_minute * 8.0 / 60.0
}

/// A rate with an SI prefix: `12.3 Mbit/s`.
pub fn si_rate(bps: f64) -> String {
    format!("{}bit/s", si(bps))
}

/// A number with an SI prefix and a trailing space: `12.3 M`, `950 `.
pub fn si(v: f64) -> String {
    const P: [&str; 6] = ["", "k", "M", "G", "T", "P"];
    let mut v = v;
    let mut i = 0;
    while v.abs() >= 1000.0 && i < P.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} ")
    } else if v.abs() >= 100.0 {
        format!("{v:.0} {}", P[i])
    } else {
        format!("{v:.1} {}", P[i])
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 UTC time (`2024-05-31T10:00:00Z`, optional fraction, `Z` or `+00:00`
/// or another offset) to seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// `2024-05-31 10:00` for a minute (UTC).
pub fn minute_label(minute: i64) -> String {
    let s = crate::aggregate::MinuteStart(minute).to_string();
    format!("{} {}", &s[..10], &s[11..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2006-05-31T10:00:00Z"), Some(1_149_069_600));
        assert_eq!(
            parse_rfc3339("2006-05-31T12:00:00+02:00"),
            Some(1_149_069_600)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00.5Z"), Some(951_782_400));
        assert_eq!(parse_rfc3339("2000-02-29"), None);
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(minute_label(1_149_069_600 / 60), "2006-05-31 10:00");
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si_rate(950.0), "950 bit/s");
        assert_eq!(si_rate(12_345_678.0), "12.3 Mbit/s");
        assert_eq!(si_rate(250_000.0), "250 kbit/s");
    }

    #[test]
    fn huge_counts_and_spans_from_input() {
        // Counts at the top of u64 in two minutes: sums saturate (issue 18).
        let mut b = Builder::default();
        for m in [0, 1] {
            b.add_series(m, Proto::Dht, Method::Signature, u64::MAX, u64::MAX);
            b.add_series(m, Proto::Utp, Method::Heuristic, u64::MAX, u64::MAX);
            b.add_port(m, u64::MAX);
            b.add_port(m, 1);
        }
        let s = b.build().expect("two minutes");
        assert_eq!(s.minutes[0].bytes, u64::MAX);
        assert_eq!(s.minutes[0].bt_bytes(), u64::MAX);
        let text = summary::render(&s, &shift::detect(&s, &Default::default()));
        assert!(text.contains("2 minutes"), "{text}");
        // Minutes far apart (a database reply may hold any i64): refused, not allocated.
        let mut b = Builder::default();
        b.add_series(i64::MIN, Proto::Other, Method::None, 1, 1);
        b.add_series(i64::MAX, Proto::Other, Method::None, 1, 1);
        let e = b.build().expect_err("too long");
        assert!(e.contains("at most 527040"), "{e}");
        let mut b = Builder::default();
        b.add_series(0, Proto::Other, Method::None, 1, 1);
        b.add_series(MAX_MINUTES - 1, Proto::Other, Method::None, 1, 1);
        assert_eq!(b.build().map(|s| s.len()), Ok(MAX_MINUTES as usize));
    }

    #[test]
    fn builder_fills_gaps() {
        let mut b = Builder::default();
        b.add_series(12, Proto::Other, Method::None, 1, 100);
        b.add_series(10, Proto::Dht, Method::Signature, 2, 300);
        b.set_hosts(10, 4);
        let s = b.build().expect("a short series");
        assert_eq!((s.start, s.len()), (10, 3));
        assert_eq!(s.minutes[0].bt_bytes(), 300);
        assert_eq!(
            s.minutes[1],
            Minute {
                hosts: Some(0),
                ..Minute::default()
            }
        );
        assert_eq!(s.minutes[2].bytes, 100);
    }
}
