//! Per-packet cost of what each offline worker does for every packet (framing the record and
//! hashing its address pair) against what it does only for its own (processing), for the
//! scaling model in README "Speed": rate(N) = 1 / (c_frame + c_work / N).
//!
//!     cargo run --release --example frame_cost -- FILE...
//!
//! Each measurement is the fastest of three passes over the (page-cached) input.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bittap::capture::{expand_inputs, CaptureFile, MergedReader};
use bittap::classify::Rules;
use bittap::engine::workers::worker_of;
use bittap::engine::{Config, Engine};

fn pass(files: &[PathBuf], mut f: impl FnMut(&bittap::capture::RawPacket<'_>)) -> (u64, f64) {
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..3 {
        let Ok(mut r) = MergedReader::new(files) else {
            eprintln!("frame_cost: cannot open the input");
            std::process::exit(2);
        };
        n = 0;
        let t = Instant::now();
        while r.advance() {
            if let Some(p) = r.packet() {
                f(&p);
                n += 1;
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    (n, best)
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Ok(files) = expand_inputs(&args) else {
        eprintln!("usage: frame_cost FILE...");
        std::process::exit(2);
    };
    let mut sink = 0usize;
    // The same framing through read(2) into a buffer instead of the map.
    let mut streamed = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for f in &files {
            let Ok(file) = std::fs::File::open(f) else {
                std::process::exit(2);
            };
            let Ok(mut c) = CaptureFile::from_reader(f, Box::new(file)) else {
                std::process::exit(2);
            };
            while let Ok(true) = c.advance() {
                if let Some(p) = c.current() {
                    sink = sink.wrapping_add(p.data.len());
                }
            }
        }
        streamed = streamed.min(t.elapsed().as_secs_f64());
    }
    let (n, frame) = pass(&files, |p| sink = sink.wrapping_add(p.data.len()));
    let (_, hash) = pass(&files, |p| {
        sink = sink.wrapping_add(worker_of(p.linktype, p.data, 2))
    });
    let rules = match Rules::builtin() {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("frame_cost: rules: {e}");
            std::process::exit(2);
        }
    };
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut e = Engine::new(Config::default(), rules.clone());
        let (_, t) = {
            let t0 = Instant::now();
            let Ok(mut r) = MergedReader::new(&files) else {
                std::process::exit(2);
            };
            while r.advance() {
                if let Some(p) = r.packet() {
                    e.process(&p);
                }
            }
            let _ = e.finish();
            (0, t0.elapsed().as_secs_f64())
        };
        best = best.min(t);
    }
    let ns = |t: f64| t * 1e9 / n.max(1) as f64;
    let c_frame = ns(hash);
    let c_work = ns(best) - ns(frame);
    println!("packets {n} (checksum {sink})");
    println!("framing, read(2)      {:.1} ns/packet", ns(streamed));
    println!("framing only          {:.1} ns/packet", ns(frame));
    println!("framing + hash        {c_frame:.1} ns/packet  (c_frame)");
    println!("one engine, all       {:.1} ns/packet", ns(best));
    println!("processing            {c_work:.1} ns/packet  (c_work = all - framing)");
    for w in [1u32, 2, 4, 8, 16, 64] {
        let r = 1e9 / (c_frame + c_work / f64::from(w));
        println!(
            "model N={w:<3}  {:.2} M packets/s, {:.2} x one engine",
            r / 1e6,
            r / (1e9 / ns(best))
        );
    }
}
