//! Ground truth derived from what was built: SUMMARY.tsv (per file), FLOWS.tsv (per flow),
//! MINUTES.tsv (per file, minute and class) and README.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::model::Kind;
use crate::Out;

/// Ports the "classic BitTorrent port" series counts.
fn bt_port(p: u16) -> bool {
    (6881..=6889).contains(&p) || p == 6969 || p == 6771 || p == 51413
}

/// RFC 3339 UTC time with microseconds.
pub fn rfc3339(ts_ns: u64) -> String {
    let secs = ts_ns / 1_000_000_000;
    let us = (ts_ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn minute(ts_ns: u64) -> String {
    let m = ts_ns / 60_000_000_000 * 60_000_000_000;
    let s = rfc3339(m);
    format!("{}Z", &s[..19])
}

#[derive(Default)]
struct FlowStat {
    packets: u64,
    wire: u64,
    first: u64,
    last: u64,
    /// Direction of the first packet present.
    first_from_a: bool,
}

struct FileStat {
    packets: u64,
    wire: u64,
    captured: u64,
    nonip: u64,
    undecodable: u64,
    flow_packets: u64,
    flows: BTreeMap<usize, FlowStat>,
    minutes: BTreeMap<(String, &'static str), (u64, u64)>,
}

fn stats(o: &Out) -> FileStat {
    let mut s = FileStat {
        packets: 0,
        wire: 0,
        captured: 0,
        nonip: 0,
        undecodable: 0,
        flow_packets: 0,
        flows: BTreeMap::new(),
        minutes: BTreeMap::new(),
    };
    for (r, &cap) in o.recs.iter().zip(&o.caplens) {
        let wire = r.data.len() as u64;
        s.packets += 1;
        s.wire += wire;
        s.captured += cap as u64;
        let class = match r.kind {
            Kind::Flow { id, from_a } => {
                s.flow_packets += 1;
                let f = s.flows.entry(id).or_insert_with(|| FlowStat {
                    first: r.ts_ns,
                    first_from_a: from_a,
                    ..Default::default()
                });
                f.packets += 1;
                f.wire += wire;
                f.last = r.ts_ns;
                o.flows[id].expect.class
            }
            Kind::NonIp => {
                s.nonip += 1;
                "nonip"
            }
            Kind::Undecodable => {
                s.undecodable += 1;
                "undecodable"
            }
        };
        let m = s.minutes.entry((minute(r.ts_ns), class)).or_default();
        m.0 += 1;
        m.1 += wire;
    }
    s
}

pub fn write_all(dir: &Path, outs: &[Out]) -> std::io::Result<()> {
    let mut summary = String::from(
        "file\tformat\tlinktypes\tfile_bytes\tpackets\twire_bytes\tcaptured_bytes\tflows\tflow_packets\tnonip_packets\tundecodable_packets\tproblem\tproblem_offset\tproblem_detail\n",
    );
    let mut flows = String::from(
        "file\tl4\tsrc\tsport\tdst\tdport\texpected_class\texpected_proto\texpected_method\tbt_port\tpackets\twire_bytes\tfirst_seen\tlast_seen\tnote\n",
    );
    let mut minutes = String::from("file\tminute\tclass\tpackets\twire_bytes\n");
    let mut readme = String::new();
    readme.push_str(README_HEAD);

    for o in outs {
        let s = stats(o);
        let (psev, poff, pwhat) = match &o.problem {
            Some(p) => (p.severity, p.offset.to_string(), p.what.clone()),
            None => ("none", "-".to_string(), "-".to_string()),
        };
        writeln!(
            summary,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            o.path,
            o.format,
            o.linktypes,
            o.bytes.len(),
            s.packets,
            s.wire,
            s.captured,
            s.flows.len(),
            s.flow_packets,
            s.nonip,
            s.undecodable,
            psev,
            poff,
            pwhat
        )
        .ok();
        writeln!(
            readme,
            "\n### `{}`\n{}\n\n- {} bytes, {}, link type {}: **{} packets, {} wire bytes** ({} captured); flows: {}, non-IP: {}, undecodable: {}.",
            o.path,
            o.desc,
            o.bytes.len(),
            o.format,
            o.linktypes,
            s.packets,
            s.wire,
            s.captured,
            s.flows.len(),
            s.nonip,
            s.undecodable
        )
        .ok();
        if let Some(p) = &o.problem {
            writeln!(
                readme,
                "- Expected **{}** at byte offset **{}**: {}.",
                p.severity, p.offset, p.what
            )
            .ok();
        }
        for (&id, f) in &s.flows {
            let d = &o.flows[id];
            let (src, dst) = if f.first_from_a {
                (d.a, d.b)
            } else {
                (d.b, d.a)
            };
            let btp = u8::from(bt_port(src.port()) || bt_port(dst.port()));
            writeln!(
                flows,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                o.path,
                d.l4.name(),
                src.ip(),
                src.port(),
                dst.ip(),
                dst.port(),
                d.expect.class,
                d.expect.proto,
                d.expect.method,
                btp,
                f.packets,
                f.wire,
                rfc3339(f.first),
                rfc3339(f.last),
                d.note
            )
            .ok();
            let verdict = if d.expect.class == "bittorrent" {
                format!(
                    "{}/{} ({})",
                    d.expect.class, d.expect.proto, d.expect.method
                )
            } else {
                "other".to_string()
            };
            writeln!(
                readme,
                "  - {} {} → {} — {}; {} pkts, {} B{} — {}",
                d.l4.name(),
                src,
                dst,
                verdict,
                f.packets,
                f.wire,
                if btp == 1 {
                    "; on a BitTorrent port"
                } else {
                    ""
                },
                d.note
            )
            .ok();
        }
        for ((m, class), (p, b)) in &s.minutes {
            writeln!(minutes, "{}\t{}\t{}\t{}\t{}", o.path, m, class, p, b).ok();
        }
    }
    readme.push_str(README_TAIL);
    std::fs::write(dir.join("SUMMARY.tsv"), summary)?;
    std::fs::write(dir.join("FLOWS.tsv"), flows)?;
    std::fs::write(dir.join("MINUTES.tsv"), minutes)?;
    std::fs::write(dir.join("README.md"), readme)?;
    Ok(())
}

const README_HEAD: &str = "# Crafted edge-case captures

Generated by `tools/craft` (do not edit by hand; this README is generated too):

    cargo run --release --manifest-path tools/craft/Cargo.toml -- pcaps/crafted

The generator is deterministic: fixed timestamps from 2024-05-31T10:00:00Z (1717149600),
fixed documentation/private addresses (10.1.0.0/16, 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 2001:db8::/32), payloads from a fixed-seed PRNG. Running it twice gives
byte-identical files. Packets are built with etherparse (IPv4 header, TCP and UDP checksums
are correct, including over IPv6 extension headers and for fragmented datagrams).

## Ground truth files (derived from what the generator built, never typed by hand)

- `SUMMARY.tsv`: one row per file: format, link types, file size, packets and wire bytes
  (original lengths) a correct reader returns, captured bytes, number of flows, packets in
  flows, non-IP and undecodable frames, and the expected problem (`none`, `warning`: reading
  stops early but what was read counts, `error`) with the byte offset where it begins.
- `FLOWS.tsv`: one row per flow (innermost 5-tuple, bidirectional): `src` is the side that
  sent the first packet present in the file; expected class (`bittorrent` / `other`), proto
  (`peerwire`, `dht`, `-`), method (`signature` for payload evidence), `bt_port` (1 if either
  port is 6881-6889, 6969, 6771 or 51413), packets and wire bytes (both directions, every
  IP fragment counted), first/last packet time.
- `MINUTES.tsv`: per file, UTC minute and class (`bittorrent`, `other`, `nonip`,
  `undecodable`): packets and wire bytes, crediting every packet of a flow to the flow's
  final class (as the product spec requires).

Notes on the truth:
- Flows carrying a plain BEP 3 handshake are `bittorrent/peerwire` by signature, including
  one-direction flows. UDP flows carrying KRPC (`d1:ad2:id20:` / `d1:rd2:id20:`) are
  `bittorrent/dht` by signature.
- Flows marked `other` have no BitTorrent payload (HTTP and TLS on BitTorrent ports are
  `other`: payload evidence beats the port). The SYN-only flow to 6882 has no payload either
  way, so only the port rule can decide: expected `bittorrent/peerwire` with method `port`.
- Series conventions assumed by `tools/craft/compare.py`: non-IP and undecodable frames are
  `class=other` with `proto=non-ip` / `undecodable` in the series (MINUTES.tsv lists them
  as classes `nonip` and `undecodable`).
- In `bad/`, a record whose 16-byte header is complete but whose data is cut still counts
  as a packet with its original length (it was on the wire); it belongs to its flow if the
  captured part still holds the Ethernet/IPv4/TCP headers, and is undecodable otherwise. A
  flow whose signature is not among the readable packets is expected as `other`.
- Tunnels: only the innermost 5-tuple is a flow; outer GRE/ERSPAN/VXLAN headers are not.
- In `two_interfaces.pcapng` the Simple Packet Block has no timestamp; the minute counts
  assume it is placed at the time of the packet before it (all of that file is in 10:00).

## Files
";

const README_TAIL: &str = "
## Verification

All files were read back with tshark 4.0, tcpdump 4.99 and capinfos (Debian 12 packages)
by `tools/craft/verify.sh`, which checks that each readable file's packet count (capinfos,
and tcpdump where libpcap can read the file) matches SUMMARY.tsv, that tshark reports no
malformed packets and no bad IPv4/TCP/UDP checksums (except the one intended IHL-3 frame in
`mixed_minutes.pcap`), that the VLAN/QinQ/MPLS/PPPoE, GRE/ERSPAN II/III/VXLAN, IPv6
extension-header, fragment, DLT_NULL family, pcapng resolution and comment details dissect
as intended, and that every file in `bad/` except `empty.pcap` makes tshark fail. Run it
after regenerating: `tools/craft/verify.sh pcaps/crafted`.

`tools/craft/compare.py [--bittap target/release/bittap]` runs `bittap analyze` on every
file and compares its totals, health counters, per-flow verdicts and per-minute series with
SUMMARY.tsv, FLOWS.tsv and MINUTES.tsv.

Known reader limits seen while verifying: libpcap (tcpdump) refuses a pcapng file whose
interfaces have different link types (`two_interfaces.pcapng`, `gzip/noext`) and stops at
the big-endian second section of `two_sections.pcapng`; Wireshark shows the Custom Block of
`two_interfaces.pcapng` as an extra record (capinfos does not). Wireshark labels the HTTP
flow on port 6881 as BitTorrent by port alone: that is the false positive bittap must avoid.
";
