//! Property tests of time from the input at its extremes: packet timestamps 0 and the ends of
//! `i64`, pcapng `if_tsresol` and `if_tsoffset` anywhere in their ranges, timestamps 0 and
//! 2^64-1, time going backwards within a file and across files. Nothing panics (these run on
//! debug builds too, where overflow is checked), the series add up to the input's packets and
//! wire bytes, and every minute written lies in 1970-01-01..=2262-01-01 (issue 18).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bittap::aggregate::Counts;
use bittap::analyze::{self, Options};
use bittap::capture::{RawPacket, TS_MAX, TS_MIN};
use bittap::classify::Rules;
use bittap::engine::{Config, Engine};
use bittap::flow::record::SharedFlows;
use bittap::sink;
use proptest::prelude::*;

fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(1),
        Just(-1),
        Just(i64::MIN),
        Just(i64::MIN + 1),
        Just(i64::MAX),
        Just(i64::MAX - 1),
        Just(TS_MAX),
        Just(TS_MAX + 1),
        any::<i64>(),
        0i64..1_000_000_000_000,
    ]
}

/// A UDP packet on port 6881 or a TCP BitTorrent handshake, over Ethernet, from one of a few
/// hosts, so flows and endpoints repeat across the time jumps.
fn frame(host: u8, tcp: bool) -> Vec<u8> {
    let payload: &[u8] = if tcp {
        b"\x13BitTorrent protocol\0\0\0\0\0\0\0\0"
    } else {
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
    };
    let mut l4 = Vec::new();
    l4.extend_from_slice(&40000u16.to_be_bytes());
    l4.extend_from_slice(&6881u16.to_be_bytes());
    if tcp {
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 7, 0, 0, 64, if tcp { 6 } else { 17 }, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, host, 10, 0, 1, 1]);
    f.extend_from_slice(&l4);
    f
}

fn pipeline_run(stamps: &[(i64, u8, bool)], cfg: Config) -> Result<(), TestCaseError> {
    let rules = Arc::new(Rules::builtin().expect("rules"));
    let mut p = Engine::new(cfg, rules.clone());
    let flows = SharedFlows::default();
    p.set_flow_sink(Box::new(flows.clone()));
    let mut want = Counts::default();
    for &(ts_ns, host, tcp) in stamps {
        let data = frame(host % 4, tcp);
        want.add(1, data.len() as u64);
        p.process(&RawPacket {
            ts_ns,
            wire_len: data.len() as u32,
            linktype: 1,
            data: &data,
        });
    }
    p.finish().expect("sink");
    let agg = p.aggregator();
    let series = agg.series_rows();
    let mut got = Counts::default();
    for r in &series {
        got.add(r.counts.packets, r.counts.bytes);
    }
    prop_assert_eq!(got, want);
    let health = agg.health_rows();
    let mut h = Counts::default();
    for (_, x) in &health {
        h.add(x.packets, x.bytes);
    }
    prop_assert_eq!(h, want);
    // Every writer of minutes takes them (the minute → nanoseconds conversion overflowed).
    let ports = agg.port_rows();
    let hosts = agg.hosts_rows();
    let mut out = Vec::new();
    sink::write_series_to(&mut out, sink::Format::Csv, &series, true, false).expect("series");
    sink::write_health_to(&mut out, sink::Format::Ndjson, &health, true, None).expect("health");
    sink::write_hosts_to(&mut out, sink::Format::Csv, &hosts, true).expect("hosts");
    sink::write_port_series_to(&mut out, sink::Format::Ndjson, &ports, &rules, true, false)
        .expect("ports");
    let lines = sink::line::render("p", &series, &ports, &health, &rules);
    prop_assert_eq!(
        lines.lines().count(),
        series.len() + ports.len() + health.len()
    );
    let _ = sink::line::render_hosts("p", &hosts);
    let _ = sink::summary(&series, &ports, None);
    let flow_packets: u64 = flows.take().iter().map(|f| f.packets).sum();
    prop_assert!(flow_packets <= want.packets);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Packet times straight into the pipeline (the library's own entry), unclamped.
    #[test]
    fn pipeline_takes_any_packet_time(
        stamps in prop::collection::vec((extreme_i64(), any::<u8>(), any::<bool>()), 1..60)
    ) {
        pipeline_run(&stamps, Config::default())?;
    }

    #[test]
    fn pipeline_takes_any_packet_time_with_tiny_tables(
        stamps in prop::collection::vec((extreme_i64(), any::<u8>(), any::<bool>()), 1..60)
    ) {
        let cfg = Config {
            max_flows: 2,
            max_frags: 1,
            max_endpoints: 2,
            tcp_idle_ns: 1,
            udp_idle_ns: 1,
            frag_timeout_ns: 1,
            sweep_interval_ns: 1,
            endpoint_ttl_ns: 1,
            ..Config::default()
        };
        pipeline_run(&stamps, cfg)?;
    }
}

/// One capture file: pcapng with `if_tsresol`/`if_tsoffset` (or their absence), or pcap.
#[derive(Debug, Clone)]
struct File {
    pcapng: bool,
    big: bool,
    tsresol: Option<u8>,
    tsoffset: Option<i64>,
    /// Timestamps in the file's units (pcap: seconds and fraction from the two halves).
    stamps: Vec<(u64, u8, bool)>,
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1u64 << 63),
        Just(u64::from(u32::MAX)),
        any::<u64>(),
        1_700_000_000_000_000u64..1_700_000_100_000_000,
    ]
}

fn file() -> impl Strategy<Value = File> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop_oneof![
            Just(0u8),
            Just(6),
            Just(9),
            Just(19),
            Just(20),
            Just(0x7f),
            Just(0x80),
            Just(0x80 | 63),
            Just(0x80 | 64),
            Just(0xff),
            any::<u8>()
        ]),
        prop::option::of(extreme_i64()),
        prop::collection::vec((extreme_u64(), any::<u8>(), any::<bool>()), 1..12),
    )
        .prop_map(|(pcapng, big, tsresol, tsoffset, stamps)| File {
            pcapng,
            big,
            tsresol,
            tsoffset,
            stamps,
        })
}

fn u16b(v: u16, big: bool) -> [u8; 2] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn u32b(v: u32, big: bool) -> [u8; 4] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// Writes `f`; returns the packets and wire bytes in it.
fn write_file(path: &Path, f: &File) -> Counts {
    let mut out = Vec::new();
    let mut want = Counts::default();
    let big = f.big;
    if f.pcapng {
        let block = |out: &mut Vec<u8>, btype: u32, body: &[u8]| {
            let len = (12 + body.len()) as u32;
            out.extend_from_slice(&u32b(btype, big));
            out.extend_from_slice(&u32b(len, big));
            out.extend_from_slice(body);
            out.extend_from_slice(&u32b(len, big));
        };
        let mut shb = u32b(0x1a2b_3c4d, big).to_vec();
        shb.extend_from_slice(&u16b(1, big));
        shb.extend_from_slice(&u16b(0, big));
        shb.extend_from_slice(&[0xff; 8]);
        block(&mut out, 0x0a0d_0d0a, &shb);
        let mut idb = u16b(1, big).to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&u32b(0, big));
        if let Some(r) = f.tsresol {
            idb.extend_from_slice(&u16b(9, big));
            idb.extend_from_slice(&u16b(1, big));
            idb.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = f.tsoffset {
            idb.extend_from_slice(&u16b(14, big));
            idb.extend_from_slice(&u16b(8, big));
            idb.extend_from_slice(&if big {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            });
        }
        idb.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut out, 1, &idb);
        for &(units, host, tcp) in &f.stamps {
            let data = frame(host % 4, tcp);
            want.add(1, data.len() as u64);
            let mut epb = u32b(0, big).to_vec();
            epb.extend_from_slice(&u32b((units >> 32) as u32, big));
            epb.extend_from_slice(&u32b(units as u32, big));
            epb.extend_from_slice(&u32b(data.len() as u32, big));
            epb.extend_from_slice(&u32b(data.len() as u32, big));
            epb.extend_from_slice(&data);
            while !epb.len().is_multiple_of(4) {
                epb.push(0);
            }
            block(&mut out, 6, &epb);
        }
    } else {
        out.extend_from_slice(&u32b(0xa1b2_c3d4, big));
        out.extend_from_slice(&u16b(2, big));
        out.extend_from_slice(&u16b(4, big));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&u32b(65535, big));
        out.extend_from_slice(&u32b(1, big));
        for &(units, host, tcp) in &f.stamps {
            let data = frame(host % 4, tcp);
            want.add(1, data.len() as u64);
            // Seconds and a fraction, either of them anything (a fraction of a second above
            // 10^6 µs is invalid, but it is in the file).
            out.extend_from_slice(&u32b((units >> 32) as u32, big));
            out.extend_from_slice(&u32b(units as u32, big));
            out.extend_from_slice(&u32b(data.len() as u32, big));
            out.extend_from_slice(&u32b(data.len() as u32, big));
            out.extend_from_slice(&data);
        }
    }
    std::fs::write(path, out).expect("write capture");
    want
}

fn analyze_files(files: &[File]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut want = Counts::default();
    let mut inputs: Vec<PathBuf> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let p = dir.path().join(format!("{i}.cap"));
        let c = write_file(&p, f);
        want.add(c.packets, c.bytes);
        inputs.push(p);
    }
    let series = dir.path().join("series.csv");
    let opts = Options {
        inputs,
        series: Some(series.clone()),
        flows: Some(dir.path().join("flows.csv")),
        port_series: Some(dir.path().join("ports.csv")),
        health: Some(dir.path().join("health.csv")),
        hosts: Some(dir.path().join("hosts.csv")),
        line_protocol: Some(dir.path().join("lines.lp")),
        probe: "p".into(),
        ..Options::default()
    };
    let rules = Arc::new(Rules::builtin().expect("rules"));
    let out = analyze::run(&opts, Config::default(), rules).expect("analyze");
    prop_assert!(out.errors.is_empty(), "{:?}", out.errors);
    prop_assert_eq!((out.packets, out.bytes), (want.packets, want.bytes));
    let text = std::fs::read_to_string(&series).expect("series");
    let mut got = Counts::default();
    let lo = bittap::aggregate::MinuteStart(TS_MIN / 60_000_000_000).to_string();
    let hi = bittap::aggregate::MinuteStart(TS_MAX / 60_000_000_000).to_string();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        prop_assert_eq!(cols.len(), 7, "{}", line);
        // RFC 3339 of four-digit years sorts as text.
        prop_assert!(cols[0] >= lo.as_str() && cols[0] <= hi.as_str(), "{}", line);
        got.add(
            cols[5].parse().expect("packets"),
            cols[6].parse().expect("bytes"),
        );
    }
    prop_assert_eq!(got, want);
    // Clamped timestamps are said, once per file.
    let clamped = out
        .warnings
        .iter()
        .filter(|w| w.contains("outside 1970-01-01T00:00:00Z..2262-01-01T00:00:00Z"))
        .count();
    prop_assert!(clamped <= files.len());
    for l in std::fs::read_to_string(dir.path().join("lines.lp"))
        .expect("lines")
        .lines()
    {
        let ts: i64 = l
            .rsplit(' ')
            .next()
            .and_then(|t| t.parse().ok())
            .expect("timestamp");
        prop_assert!((TS_MIN..=TS_MAX).contains(&ts), "{}", l);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Files with time at its extremes, in any order, several at once: their minutes may go
    /// backwards from one file to the next and within a file.
    #[test]
    fn captures_with_extreme_timestamps(files in prop::collection::vec(file(), 1..4)) {
        analyze_files(&files)?;
    }
}

#[test]
fn clamped_timestamps_are_counted_at_the_bounds_with_one_warning() {
    // Seconds (10^0), offset -2^63 s: 0 units is long before 1970, 2^64-1 units long after 2262.
    let f = File {
        pcapng: true,
        big: false,
        tsresol: Some(0),
        tsoffset: Some(i64::MIN),
        stamps: vec![(0, 1, false), (u64::MAX, 1, false), (0, 2, true)],
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("x.pcapng");
    write_file(&p, &f);
    let series = dir.path().join("series.csv");
    let opts = Options {
        inputs: vec![p],
        series: Some(series.clone()),
        ..Options::default()
    };
    let rules = Arc::new(Rules::builtin().expect("rules"));
    let out = analyze::run(&opts, Config::default(), rules).expect("analyze");
    assert_eq!(out.packets, 3);
    let w: Vec<&String> = out
        .warnings
        .iter()
        .filter(|w| w.contains("outside"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", out.warnings);
    assert!(
        w[0].contains("x.pcapng: at byte offset 72: 3 packet timestamp(s) outside"),
        "{}",
        w[0]
    );
    let text = std::fs::read_to_string(&series).expect("series");
    let minutes: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(
        minutes.into_iter().collect::<Vec<_>>(),
        ["1970-01-01T00:00:00Z", "2262-01-01T00:00:00Z"]
    );
}
