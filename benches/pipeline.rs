//! Criterion benches of the hot path over the committed captures (`pcaps/`, without
//! `pcaps/crafted/bad`), loaded into memory once: `pipeline` runs `Engine::process` over every
//! packet (a fresh pipeline per iteration, `finish()` at the end), `decode` runs
//! `decode::decode` alone. Both report packets/s. Speed is never asserted.
//!
//! `scripts/bench.sh` is the end-to-end benchmark (≥ 1 GB capture, compared with tcpdump).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bittap::capture::{MergedReader, RawPacket};
use bittap::classify::Rules;
use bittap::decode::{self, Decoded};
use bittap::engine::{Config, Engine};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// One packet, owned.
struct Owned {
    ts_ns: i64,
    wire_len: u32,
    linktype: u32,
    data: Vec<u8>,
}

impl Owned {
    fn raw(&self) -> RawPacket<'_> {
        RawPacket {
            ts_ns: self.ts_ns,
            wire_len: self.wire_len,
            linktype: self.linktype,
            data: &self.data,
        }
    }
}

fn collect(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.starts_with(skip) {
            continue;
        }
        if p.is_dir() {
            collect(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}

/// Every packet of the captures under `pcaps/`, in the order `bittap analyze pcaps/…` reads
/// them. Files that are not captures, or that `MergedReader` refuses, are left out.
fn load() -> Vec<Owned> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let mut files = Vec::new();
    collect(&root, &root.join("crafted").join("bad"), &mut files);
    let usable: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| MergedReader::new(std::slice::from_ref(f)).is_ok())
        .collect();
    let mut packets = Vec::new();
    let Ok(mut reader) = MergedReader::new(&usable) else {
        return packets;
    };
    while reader.advance() {
        if let Some(p) = reader.packet() {
            packets.push(Owned {
                ts_ns: p.ts_ns,
                wire_len: p.wire_len,
                linktype: p.linktype,
                data: p.data.to_vec(),
            });
        }
    }
    packets
}

fn benches(c: &mut Criterion) {
    let packets = load();
    let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
    eprintln!(
        "bench input: {} packets, {} captured bytes from pcaps/",
        packets.len(),
        bytes
    );
    if packets.is_empty() {
        eprintln!("no packets under pcaps/: nothing to bench");
        return;
    }
    let rules = Arc::new(Rules::builtin().expect("built-in rules"));
    let mut g = c.benchmark_group("hot_path");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function("pipeline", |b| {
        b.iter(|| {
            let mut p = Engine::new(Config::default(), rules.clone());
            for pkt in &packets {
                p.process(&pkt.raw());
            }
            black_box(p.finish().is_ok());
            black_box(p.totals().packets)
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut ip = 0u64;
            for pkt in &packets {
                if let Decoded::Ip(d) = decode::decode(pkt.linktype, black_box(&pkt.data)) {
                    ip += u64::from(d.sport) + d.payload.len() as u64;
                }
            }
            black_box(ip)
        })
    });
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
