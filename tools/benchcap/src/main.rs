//! benchcap: builds bittap's benchmark capture deterministically.
//!
//! It reads the given captures (files, or directories searched recursively) as one stream in
//! timestamp order through bittap's own `MergedReader`, turns every frame into an Ethernet
//! frame (raw IP, Linux cooked v1/v2 and BSD loopback frames are rewrapped in a fixed fake
//! Ethernet header; other link types are dropped and counted), and squeezes the stream's idle
//! gaps (each gap between consecutive packets is capped at `--max-gap-ms`), giving one
//! "base stream" of duration D.
//!
//! It then writes as many copies of the base stream as needed to reach `--size-mb` MiB, into
//! ONE pcap (LINKTYPE_ETHERNET, microsecond timestamps, snaplen 262144) in time order. Copy k
//! is shifted by k·max(D, span)/copies, so all copies overlap in time (many concurrent flows,
//! as on a busy link) and the whole file spans about D + max(D, span). In copy k every IPv4
//! unicast address keeps its first two octets and adds k·4099 (mod 2^16) to its last two; an
//! IPv6 unicast address adds k·4099 (mod 2^32) to its last 32 bits. The rewrite is a bijection
//! of addresses for each k, so both directions of a flow stay one flow and the copies' flows are
//! distinct. Multicast, broadcast and 0.0.0.0 are kept (LSD stays on its group). Addresses are
//! rewritten in the outer header and in IP-in-IP, GRE and VXLAN inner headers; the IPv4 header
//! checksum is recomputed and TCP/UDP checksums are updated incrementally (outer header only
//! for UDP-encapsulated tunnels).
//!
//! Same inputs and options give the same bytes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bittap::capture::{sniff, CaptureFile, MergedReader, RawPacket, Sniffed};

const SNAPLEN: u32 = 262_144;
const NS: i64 = 1_000_000_000;
const ADDR_STRIDE: u32 = 4099;
/// Fake MAC addresses of rewrapped frames (locally administered).
const FAKE_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const FAKE_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

struct Opts {
    out: PathBuf,
    size_mb: u64,
    span_secs: i64,
    max_gap_ms: i64,
    start_unix: i64,
    inputs: Vec<PathBuf>,
}

fn usage() -> &'static str {
    "usage: benchcap --out FILE [--size-mb N (MiB, default 1100)] [--span-secs S (default 600)] \
     [--max-gap-ms M (default 100)] [--start UNIX_SECS (default 1717200000)] INPUT..."
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        out: PathBuf::new(),
        size_mb: 1100,
        span_secs: 600,
        max_gap_ms: 100,
        start_unix: 1_717_200_000,
        inputs: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--out" => o.out = PathBuf::from(val("--out")?),
            "--size-mb" => o.size_mb = num(&val("--size-mb")?)?,
            "--span-secs" => o.span_secs = num(&val("--span-secs")?)?,
            "--max-gap-ms" => o.max_gap_ms = num(&val("--max-gap-ms")?)?,
            "--start" => o.start_unix = num(&val("--start")?)?,
            "-h" | "--help" => return Err(usage().to_string()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", usage())),
            _ => o.inputs.push(PathBuf::from(a)),
        }
    }
    if o.out.as_os_str().is_empty() || o.inputs.is_empty() {
        return Err(usage().to_string());
    }
    if o.size_mb == 0 || o.span_secs < 0 || o.max_gap_ms < 0 {
        return Err("sizes and durations must be positive".into());
    }
    Ok(o)
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

/// Capture files under `p` (recursively, in name order) or `p` itself.
fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let Ok(rd) = std::fs::read_dir(p) else {
            eprintln!("benchcap: {}: cannot list, skipped", p.display());
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            collect(&e, out);
        }
    } else if p.is_file() && matches!(sniff(p), Ok(s) if s != Sniffed::Unknown) {
        out.push(p.to_path_buf());
    }
}

/// The base stream: Ethernet frames back to back, with their squeezed relative times.
struct Base {
    frames: Vec<u8>,
    /// (relative time ns, wire length, offset in `frames`, captured length)
    pkts: Vec<(i64, u32, usize, u32)>,
    dropped: u64,
    read: u64,
}

fn be16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(o)?, *b.get(o + 1)?]))
}

/// Appends `p` as an Ethernet frame to `out`; returns its wire length, or `None` (dropped).
fn to_ethernet(p: &RawPacket<'_>, out: &mut Vec<u8>) -> Option<u32> {
    let d = p.data;
    let (ethertype, payload, hdr) = match p.linktype {
        1 => {
            let n = d.len().min(SNAPLEN as usize);
            out.extend_from_slice(&d[..n]);
            return Some(p.wire_len.max(n as u32));
        }
        101 | 12 | 14 | 228 | 229 => {
            let v = d.first()? >> 4;
            let et = match (p.linktype, v) {
                (228, _) => 0x0800,
                (229, _) => 0x86dd,
                (_, 4) => 0x0800,
                (_, 6) => 0x86dd,
                _ => return None,
            };
            (et, d, 0u32)
        }
        113 => (be16(d, 14)?, d.get(16..)?, 16),
        276 => (be16(d, 0)?, d.get(20..)?, 20),
        0 | 108 => {
            let fam = d.get(..4)?;
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let known = |f: u32| matches!(f, 2 | 24 | 28 | 30);
            let f = if p.linktype == 0 && known(le) { le } else { be };
            let et = match f {
                2 => 0x0800,
                24 | 28 | 30 => 0x86dd,
                _ => return None,
            };
            (et, &d[4..], 4)
        }
        _ => return None,
    };
    if ethertype < 0x0600 {
        return None;
    }
    let n = payload.len().min(SNAPLEN as usize - 14);
    out.extend_from_slice(&FAKE_DST_MAC);
    out.extend_from_slice(&FAKE_SRC_MAC);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(&payload[..n]);
    Some((p.wire_len.saturating_sub(hdr) + 14).max(n as u32 + 14))
}

fn load(files: &[PathBuf], max_gap_ns: i64) -> Result<Base, String> {
    let mut reader = MergedReader::new(files).map_err(|e| e.to_string())?;
    let mut base = Base {
        frames: Vec::new(),
        pkts: Vec::new(),
        dropped: 0,
        read: 0,
    };
    let mut prev: Option<i64> = None;
    let mut rel: i64 = 0;
    while reader.advance() {
        let Some(p) = reader.packet() else { continue };
        base.read += 1;
        let off = base.frames.len();
        let Some(wire) = to_ethernet(&p, &mut base.frames) else {
            base.dropped += 1;
            continue;
        };
        if let Some(prev) = prev {
            rel += (p.ts_ns - prev).clamp(0, max_gap_ns);
        }
        prev = Some(p.ts_ns);
        let caplen = (base.frames.len() - off) as u32;
        base.pkts.push((rel, wire, off, caplen));
    }
    for p in &reader.problems {
        eprintln!("benchcap: warning: {p}");
    }
    Ok(base)
}

// ---- address rewriting -------------------------------------------------------------------

fn map4(a: u32, delta: u32) -> u32 {
    if a >> 28 == 0xe || a == u32::MAX || a == 0 {
        return a;
    }
    (a & 0xffff_0000) | u32::from((a as u16).wrapping_add(delta as u16))
}

/// Ones'-complement incremental checksum update (RFC 1624) for 16-bit words old → new.
fn csum_update(hc: u16, old: &[u16], new: &[u16]) -> u16 {
    let mut sum = u32::from(!hc);
    for (&o, &n) in old.iter().zip(new) {
        sum += u32::from(!o) + u32::from(n);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn words(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// Updates the TCP or UDP checksum at transport offset `l4` for the address words old → new.
fn fix_l4(b: &mut [u8], proto: u8, l4: usize, old: &[u16], new: &[u16]) {
    let at = match proto {
        6 => l4 + 16,
        17 => l4 + 6,
        _ => return,
    };
    let Some(hc) = be16(b, at) else { return };
    if proto == 17 && hc == 0 {
        return; // no UDP checksum
    }
    let mut c = csum_update(hc, old, new);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn rw_eth(b: &mut [u8], off: usize, d: u32, depth: u8) {
    if depth > 8 {
        return;
    }
    let mut o = off + 12;
    loop {
        let Some(et) = be16(b, o) else { return };
        match et {
            0x8100 | 0x88a8 | 0x9100 => o += 4,
            0x0800 => return rw_ip4(b, o + 2, d, depth + 1),
            0x86dd => return rw_ip6(b, o + 2, d, depth + 1),
            0x8847 | 0x8848 => {
                let mut p = o + 2;
                loop {
                    let Some(&s) = b.get(p + 2) else { return };
                    p += 4;
                    if s & 1 == 1 {
                        break;
                    }
                }
                match b.get(p).map(|v| v >> 4) {
                    Some(4) => return rw_ip4(b, p, d, depth + 1),
                    Some(6) => return rw_ip6(b, p, d, depth + 1),
                    _ => return,
                }
            }
            0x8864 => {
                let p = o + 2;
                match be16(b, p + 6) {
                    Some(0x0021) => return rw_ip4(b, p + 8, d, depth + 1),
                    Some(0x0057) => return rw_ip6(b, p + 8, d, depth + 1),
                    _ => return,
                }
            }
            _ => return,
        }
    }
}

fn rw_inner(b: &mut [u8], proto: u8, l4: usize, d: u32, depth: u8) {
    match proto {
        4 => rw_ip4(b, l4, d, depth + 1),
        41 => rw_ip6(b, l4, d, depth + 1),
        47 => {
            let (Some(flags), Some(ptype)) = (be16(b, l4), be16(b, l4 + 2)) else {
                return;
            };
            if flags & 7 != 0 {
                return; // not GRE version 0
            }
            let hl = 4
                + if flags & 0x8000 != 0 { 4 } else { 0 }
                + if flags & 0x2000 != 0 { 4 } else { 0 }
                + if flags & 0x1000 != 0 { 4 } else { 0 };
            match ptype {
                0x0800 => rw_ip4(b, l4 + hl, d, depth + 1),
                0x86dd => rw_ip6(b, l4 + hl, d, depth + 1),
                0x6558 => rw_eth(b, l4 + hl, d, depth + 1),
                _ => {}
            }
        }
        17 if be16(b, l4 + 2) == Some(4789) => rw_eth(b, l4 + 16, d, depth + 1),
        _ => {}
    }
}

fn rw_ip4(b: &mut [u8], o: usize, d: u32, depth: u8) {
    if depth > 8 || b.len() < o + 20 || b[o] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(b[o] & 15) * 4;
    if ihl < 20 || b.len() < o + ihl {
        return;
    }
    let old = words(&b[o + 12..o + 20]);
    let src = u32::from_be_bytes([b[o + 12], b[o + 13], b[o + 14], b[o + 15]]);
    let dst = u32::from_be_bytes([b[o + 16], b[o + 17], b[o + 18], b[o + 19]]);
    b[o + 12..o + 16].copy_from_slice(&map4(src, d).to_be_bytes());
    b[o + 16..o + 20].copy_from_slice(&map4(dst, d).to_be_bytes());
    let new = words(&b[o + 12..o + 20]);
    // Header checksum, recomputed.
    b[o + 10] = 0;
    b[o + 11] = 0;
    let mut sum: u32 = words(&b[o..o + ihl]).iter().map(|&w| u32::from(w)).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    b[o + 10..o + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let frag_off = be16(b, o + 6).unwrap_or(0) & 0x1fff;
    if frag_off == 0 {
        let proto = b[o + 9];
        fix_l4(b, proto, o + ihl, &old, &new);
        rw_inner(b, proto, o + ihl, d, depth);
    }
}

fn rw_ip6(b: &mut [u8], o: usize, d: u32, depth: u8) {
    if depth > 8 || b.len() < o + 40 || b[o] >> 4 != 6 {
        return;
    }
    let old = words(&b[o + 8..o + 40]);
    for a in [o + 8, o + 24] {
        if b[a] == 0xff {
            continue; // multicast
        }
        let t = a + 12;
        let low = u32::from_be_bytes([b[t], b[t + 1], b[t + 2], b[t + 3]]);
        b[t..t + 4].copy_from_slice(&low.wrapping_add(d).to_be_bytes());
    }
    let new = words(&b[o + 8..o + 40]);
    let nh = b[o + 6];
    fix_l4(b, nh, o + 40, &old, &new);
    rw_inner(b, nh, o + 40, d, depth);
}

// ---- output -----------------------------------------------------------------------------

fn run(o: &Opts) -> Result<(), String> {
    let mut files = Vec::new();
    for p in &o.inputs {
        if !p.exists() {
            return Err(format!("{}: no such file or directory", p.display()));
        }
        collect(p, &mut files);
    }
    files.sort();
    files.dedup();
    // Only files that open as captures; MergedReader would refuse the whole set otherwise.
    let mut usable = Vec::new();
    for f in files {
        match CaptureFile::open(&f, None) {
            Ok(_) => usable.push(f),
            Err(e) => eprintln!("benchcap: skipped: {e}"),
        }
    }
    if usable.is_empty() {
        return Err("no readable capture among the inputs".into());
    }
    let base = load(&usable, o.max_gap_ms * 1_000_000)?;
    if base.pkts.is_empty() {
        return Err("the inputs hold no packet that can be written as Ethernet".into());
    }
    let per_copy: u64 = base.pkts.iter().map(|p| 16 + u64::from(p.3)).sum();
    let target = o.size_mb << 20;
    let copies = (target.saturating_sub(24)).div_ceil(per_copy).max(1);
    let dur = base.pkts.last().map(|p| p.0).unwrap_or(0);
    let spread = dur.max(o.span_secs * NS);
    let shift = |k: u64| (i128::from(spread) * i128::from(k) / i128::from(copies as i64)) as i64;
    let start_ns = o.start_unix * NS;

    let tmp = o.out.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(8 << 20, file);
    let mut hdr = Vec::with_capacity(24);
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&0i32.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes());
    hdr.extend_from_slice(&SNAPLEN.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    let werr = |e: std::io::Error| format!("{}: {e}", tmp.display());
    w.write_all(&hdr).map_err(werr)?;

    let mut heap: BinaryHeap<Reverse<(i64, u64, usize)>> = BinaryHeap::new();
    for k in 0..copies {
        heap.push(Reverse((shift(k) + base.pkts[0].0, k, 0)));
    }
    let mut scratch = Vec::with_capacity(SNAPLEN as usize);
    let (mut n, mut wire_bytes, mut cap_bytes) = (0u64, 0u64, 0u64);
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    while let Some(Reverse((t, k, i))) = heap.pop() {
        let (_, wire, off, caplen) = base.pkts[i];
        scratch.clear();
        scratch.extend_from_slice(&base.frames[off..off + caplen as usize]);
        let delta = (k as u32).wrapping_mul(ADDR_STRIDE);
        if delta != 0 {
            rw_eth(&mut scratch, 0, delta, 0);
        }
        let ts = start_ns + t;
        first = first.min(ts);
        last = last.max(ts);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts / NS) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&(((ts % NS) / 1000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&caplen.to_le_bytes());
        rec[12..16].copy_from_slice(&wire.to_le_bytes());
        w.write_all(&rec).map_err(werr)?;
        w.write_all(&scratch).map_err(werr)?;
        n += 1;
        wire_bytes += u64::from(wire);
        cap_bytes += u64::from(caplen);
        if let Some(next) = base.pkts.get(i + 1) {
            heap.push(Reverse((shift(k) + next.0, k, i + 1)));
        }
    }
    w.flush().map_err(werr)?;
    drop(w);
    std::fs::rename(&tmp, &o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;

    let file_size = 24 + n * 16 + cap_bytes;
    println!(
        "benchcap: inputs: {} capture files, {} packets read, {} dropped (link type not convertible to Ethernet)",
        usable.len(),
        base.read,
        base.dropped
    );
    println!(
        "benchcap: base stream: {} packets, {:.1} s after squeezing gaps to {} ms; {} copies shifted by {:.1} s each",
        base.pkts.len(),
        dur as f64 / 1e9,
        o.max_gap_ms,
        copies,
        shift(1) as f64 / 1e9
    );
    println!(
        "benchcap: wrote {}: {} packets, {} wire bytes (mean {:.1} B/packet), {} file bytes, span {:.1} s",
        o.out.display(),
        n,
        wire_bytes,
        wire_bytes as f64 / n as f64,
        file_size,
        (last - first) as f64 / 1e9
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchcap: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map4_is_a_bijection_per_copy() {
        let d = 7u32.wrapping_mul(ADDR_STRIDE);
        let mut seen = std::collections::HashSet::new();
        for low in 0..=0xffffu32 {
            assert!(seen.insert(map4(0x0a00_0000 | low, d)));
        }
        assert_eq!(map4(0xefc0_988f, d), 0xefc0_988f); // LSD group kept
    }

    #[test]
    fn ipv4_checksums_stay_valid() {
        // IPv4/UDP with a valid header checksum and UDP checksum.
        let mut ip = vec![
            0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 192, 168, 1, 5, 10, 0, 0, 9,
        ];
        let udp = [0x1a, 0xe1, 0x1a, 0xe1, 0, 12, 0, 0, b'a', b'b', b'c', b'd'];
        let sum = |b: &[u8]| {
            let mut s: u32 = words(b).iter().map(|&w| u32::from(w)).sum();
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        let hc = !sum(&ip);
        ip[10..12].copy_from_slice(&hc.to_be_bytes());
        let l4sum = |ip: &[u8], udp: &[u8]| {
            let mut pseudo = ip[12..20].to_vec();
            pseudo.extend_from_slice(&[0, 17, 0, 12]);
            pseudo.extend_from_slice(udp);
            sum(&pseudo)
        };
        let mut udp = udp.to_vec();
        let c = !l4sum(&ip, &udp);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&udp);
        rw_eth(&mut frame, 0, 3 * ADDR_STRIDE, 0);
        let ip2 = &frame[14..34];
        assert_ne!(&ip2[12..20], &ip[12..20]);
        assert_eq!(sum(ip2), 0xffff);
        assert_eq!(l4sum(ip2, &frame[34..]), 0xffff);
    }
}
