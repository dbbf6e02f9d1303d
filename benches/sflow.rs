//! The sFlow collector's speed on one core: every frame of the lab's captures as an sFlow v5
//! raw-header sample (the first 128 bytes, rate 1 in 100, eight samples per datagram, as an
//! agent sends them), replayed through `Collector::datagram` into a fresh pipeline per
//! iteration (`collector`), the same with `--members` (`collector_members`: 1,000 members,
//! each frame's source MAC mapped to one of them, ports that never match), and through the
//! decoder alone (`decode`). All report samples/s.
//!
//! `cargo bench --bench sflow`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bittap::capture::MergedReader;
use bittap::classify::Rules;
use bittap::engine::{Config, Engine};
use bittap::sflow::decode::{self, build, Sample};
use bittap::sflow::members::Members;
use bittap::sflow::Collector;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The lab's frames as datagrams, with the number of samples.
fn datagrams() -> (Vec<(i64, Vec<u8>)>, u64) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcaps/lab");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "pcap"));
    files.sort();
    let mut reader = MergedReader::new(&files).expect("lab captures");
    let (mut out, mut batch, mut n) = (Vec::new(), Vec::new(), 0u64);
    let mut seq = 0u32;
    let mut ts = 0;
    while reader.advance() {
        if let Some(pkt) = reader.packet() {
            let header = &pkt.data[..pkt.data.len().min(128)];
            n += 1;
            let rec = build::raw_header(1, pkt.wire_len + 4, 4, header);
            batch.push(build::flow_sample(false, n as u32, 1, 100, 0, 0, &[rec]));
            ts = pkt.ts_ns;
            if batch.len() == 8 {
                seq += 1;
                out.push((ts, build::datagram(&[192, 0, 2, 1], 0, seq, seq, &batch)));
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        out.push((
            ts,
            build::datagram(&[192, 0, 2, 1], 0, seq + 1, seq + 1, &batch),
        ));
    }
    (out, n)
}

/// A members file for the frames of `dgs`: 1,000 members with a port each (on ifIndexes
/// the samples do not have) and the frames' source MACs spread over them.
fn members(dgs: &[(i64, Vec<u8>)]) -> Members {
    let mut macs = std::collections::BTreeSet::new();
    for (_, d) in dgs {
        let Ok(dg) = decode::parse(d) else { continue };
        for s in dg.samples().flatten() {
            let Sample::Flow(f) = s else { continue };
            for r in f.records().flatten() {
                if let decode::FlowRecord::RawHeader(h) = r {
                    if let Some(m) = h.header.get(6..12) {
                        macs.insert(m.to_vec());
                    }
                }
            }
        }
    }
    let mut per: Vec<Vec<String>> = vec![Vec::new(); 1000];
    for (i, m) in macs.iter().enumerate() {
        let hex: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
        per[i % 1000].push(format!("\"{}\"", hex.join(":")));
    }
    let mut text = String::new();
    for (i, macs) in per.iter().enumerate() {
        text.push_str(&format!(
            "[[member]]\nname = \"m{i}\"\nmacs = [{}]\nports = [{{ agent = \"192.0.2.1\", if_index = {} }}]\n",
            macs.join(", "),
            1000 + i
        ));
    }
    Members::parse("bench", &text).expect("members")
}

fn bench(c: &mut Criterion) {
    let (dgs, samples) = datagrams();
    let members = Arc::new(members(&dgs));
    let rules = Arc::new(Rules::builtin().expect("rules"));
    let mut g = c.benchmark_group("sflow");
    g.throughput(Throughput::Elements(samples));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("collector", |b| {
        b.iter(|| {
            let mut p = Engine::new(Config::default(), rules.clone());
            let mut col = Collector::new(None);
            for (ts, d) in &dgs {
                col.datagram(*ts, d, &mut p);
            }
            p.finish().expect("finish");
            black_box(p.totals())
        })
    });
    g.bench_function("collector_members", |b| {
        b.iter(|| {
            let mut p = Engine::new(Config::default(), rules.clone());
            let mut col = Collector::new(None);
            col.set_members(Some(members.clone()));
            for (ts, d) in &dgs {
                col.datagram(*ts, d, &mut p);
            }
            p.finish().expect("finish");
            black_box(p.totals())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for (_, d) in &dgs {
                if let Ok(dg) = decode::parse(d) {
                    for s in dg.samples().flatten() {
                        if let Sample::Flow(f) = s {
                            n += f.records().count();
                        }
                    }
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
