//! bittap-craft: writes deterministic, hand-crafted edge-case captures for bittap's tests,
//! plus their ground truth (SUMMARY.tsv, FLOWS.tsv, MINUTES.tsv, README.md).
//!
//! Usage: `cargo run --release --manifest-path tools/craft/Cargo.toml -- pcaps/crafted`

mod fmt;
mod model;
mod pkt;
mod scen;
mod summary;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;

use fmt::{epbs, opt_str, pcap, ts_units, Ng, Opt, PcapOpts};
use model::{Blk, Capture, FlowDef, Kind, Rec};
use pkt::{Encap, Rng};

/// A problem a correct reader must report.
#[derive(Clone)]
pub struct Problem {
    /// `error` (reading stops) or `warning` (reading ends early but what was read counts).
    pub severity: &'static str,
    pub what: String,
    /// Byte offset (in the file as stored; for .gz, in the compressed stream) where the
    /// problem begins.
    pub offset: usize,
}

/// One output file and its truth.
pub struct Out {
    pub path: String,
    pub bytes: Vec<u8>,
    pub format: String,
    pub linktypes: String,
    pub desc: String,
    /// The records a correct reader returns (wire length = data.len()).
    pub recs: Vec<Rec>,
    /// Captured length of each record in `recs`.
    pub caplens: Vec<usize>,
    pub flows: Vec<FlowDef>,
    pub problem: Option<Problem>,
}

fn pcap_out(path: &str, desc: &str, cap: &Capture, o: PcapOpts) -> Out {
    let w = pcap(&o, &cap.recs);
    Out {
        path: path.to_string(),
        bytes: w.bytes,
        format: format!(
            "pcap {}-endian {}",
            if o.big_endian { "big" } else { "little" },
            if o.nsec { "ns" } else { "µs" }
        ),
        linktypes: o.linktype.to_string(),
        desc: desc.to_string(),
        recs: cap.recs.clone(),
        caplens: cap
            .recs
            .iter()
            .map(|r| r.data.len().min(o.snaplen as usize))
            .collect(),
        flows: cap.flows.clone(),
        problem: None,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("gzip to memory");
    e.finish().expect("gzip to memory")
}

fn gz_out(path: &str, desc: &str, inner: &Out) -> Out {
    Out {
        path: path.to_string(),
        bytes: gzip(&inner.bytes),
        format: format!("gzip of {}", inner.format),
        linktypes: inner.linktypes.clone(),
        desc: desc.to_string(),
        recs: inner.recs.clone(),
        caplens: inner.caplens.clone(),
        flows: inner.flows.clone(),
        problem: None,
    }
}

/// Keeps only the first `n` records of an output's truth.
fn truth_prefix(o: &mut Out, n: usize) {
    o.recs.truncate(n);
    o.caplens.truncate(n);
    rederive_evidence(o);
}

/// Truth for a pcap stream `w` that ends after `end` bytes: complete records count; a record
/// whose 16-byte header is complete but whose data is cut also counts, with its original
/// length as wire bytes (the packet existed), as a packet of its flow when the captured part
/// still holds its Ethernet, IPv4 and TCP headers and as undecodable otherwise. Returns the
/// number of complete records and, if any, (index, captured, wire) of the partial one.
fn truth_until(
    o: &mut Out,
    w: &fmt::Written,
    end: usize,
) -> (usize, Option<(usize, usize, usize)>) {
    let mut complete = 0;
    let mut partial = None;
    let mut keep = 0;
    for (i, (&off, r)) in w.rec_offsets.iter().zip(&o.recs).enumerate() {
        if off + 16 > end {
            break;
        }
        keep = i + 1;
        let have = end - off - 16;
        if have >= r.data.len() {
            complete += 1;
        } else {
            partial = Some((i, have, r.data.len()));
            break;
        }
    }
    o.recs.truncate(keep);
    o.caplens.truncate(keep);
    if let Some((i, have, _)) = partial {
        o.caplens[i] = have;
        if have < eth_ipv4_tcp_header_len(&o.recs[i].data) {
            o.recs[i].kind = Kind::Undecodable;
        }
    }
    rederive_evidence(o);
    (complete, partial)
}

/// Length of the Ethernet + IPv4 + TCP headers of a frame built by this generator.
fn eth_ipv4_tcp_header_len(frame: &[u8]) -> usize {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let doff = usize::from(frame[14 + ihl + 12] >> 4) * 4;
    14 + ihl + doff
}

/// A flow expected to be found by signature keeps that verdict only if the readable
/// packets still carry the evidence (the handshake or a KRPC prefix); otherwise it is
/// expected as `other`.
fn rederive_evidence(o: &mut Out) {
    const EVIDENCE: [&[u8]; 3] = [b"\x13BitTorrent protocol", b"d1:ad2:id20:", b"d1:rd2:id20:"];
    for (id, f) in o.flows.iter_mut().enumerate() {
        if f.expect.method != "signature" {
            continue;
        }
        let mut bytes = Vec::new();
        for (r, &cap) in o.recs.iter().zip(&o.caplens) {
            if r.kind == (Kind::Flow { id, from_a: true })
                || r.kind == (Kind::Flow { id, from_a: false })
            {
                bytes.extend_from_slice(&r.data[..cap]);
            }
        }
        let found = EVIDENCE
            .iter()
            .any(|e| bytes.windows(e.len()).any(|w| w == *e));
        if !found {
            f.expect = model::OTHER;
            f.note
                .push_str(" (the signature is not among the readable packets)");
        }
    }
}

fn two_interfaces_ng() -> Out {
    let mut cap = scen::two_interfaces();
    // One pure ACK of interface 0 as a Simple Packet Block, one packet as an obsolete
    // Packet Block, a comment on one EPB.
    let if0: Vec<usize> = (0..cap.recs.len())
        .filter(|&i| cap.recs[i].iface == 0)
        .collect();
    cap.recs[if0[2]].blk = Blk::Spb; // the ACK completing the TCP handshake
    cap.recs[if0[5]].blk = Blk::Pb;
    cap.recs[if0[3]].comment = Some("initiator handshake".to_string());
    let mut ng = Ng::new();
    ng.shb(false, &[opt_str(4, "bittap-craft"), opt_str(3, "crafted")]);
    ng.idb(
        1,
        262_144,
        &[
            opt_str(2, "eth0"),
            opt_str(3, "interface 0: Ethernet, microseconds"),
        ],
    );
    ng.idb(
        101,
        262_144,
        &[
            opt_str(2, "tun0"),
            (9, vec![9u8]), // if_tsresol = 10^-9
        ],
    );
    let names: [(IpAddr, &str); 2] = [
        (IpAddr::from([10, 1, 5, 3]), "peer.example.net"),
        (
            "2001:db8:5::3".parse().expect("literal"),
            "peer6.example.net",
        ),
    ];
    ng.nrb(&names);
    let tsres = [6u32, 9];
    let half = cap.recs.len() / 2;
    for (i, r) in cap.recs.iter().enumerate() {
        if i == half {
            // A Custom Block (0x00000BAD, "may be copied") with the documentation PEN 32473,
            // then a block type no specification assigns (0x00000C0F): readers skip both.
            let mut body = Vec::new();
            ng.u32(&mut body, 32_473);
            body.extend_from_slice(b"bittap-craft custom data");
            ng.block(0x0000_0BAD, &body);
            let mut body = Vec::new();
            ng.u32(&mut body, 0xdead_beef);
            body.extend_from_slice(b"unknown block: skip me");
            ng.block(0x0000_0C0F, &body);
        }
        let ts = ts_units(r.ts_ns, tsres[r.iface as usize]);
        match r.blk {
            Blk::Epb => {
                let opts: Vec<Opt> = r.comment.iter().map(|c| opt_str(1, c)).collect();
                ng.epb(r.iface, ts, &r.data, r.data.len() as u32, &opts)
            }
            Blk::Spb => ng.spb(&r.data, r.data.len() as u32),
            Blk::Pb => ng.pb(r.iface as u16, ts, &r.data, r.data.len() as u32),
        }
    }
    let last = cap.recs.last().map(|r| r.ts_ns).unwrap_or(0);
    for iface in 0..2u32 {
        let n = cap.recs.iter().filter(|r| r.iface == iface).count() as u64;
        ng.isb(iface, ts_units(last, tsres[iface as usize]), n, 0);
    }
    Out {
        path: "two_interfaces.pcapng".into(),
        caplens: cap.recs.iter().map(|r| r.data.len()).collect(),
        bytes: ng.buf,
        format: "pcapng, 1 section, 2 interfaces".into(),
        linktypes: "1,101".into(),
        desc: "One section, IDB 0 Ethernet (µs), IDB 1 raw IP (if_tsresol=9, ns); a peer-wire flow \
               on interface 0 and a DHT flow on interface 1 interleaved in time; the 3rd packet \
               of interface 0 (ACK) is a Simple Packet Block (no timestamp: counted in the minute \
               of the packet before it), the 6th an obsolete Packet Block (type 2); one EPB has an \
               opt_comment; in the middle a Custom Block (type 0x00000BAD, PEN 32473; Wireshark lists it \
               as a record, capinfos does not count it) and a block of unassigned type 0x00000C0F, \
               both to be skipped (neither is a packet); an NRB after the IDBs and one ISB per \
               interface at the end."
            .into(),
        recs: cap.recs,
        flows: cap.flows,
        problem: None,
    }
}

fn two_sections_ng() -> Out {
    let cap = scen::two_sections();
    let mut ng = Ng::new();
    ng.shb(false, &[opt_str(4, "bittap-craft")]);
    ng.idb(1, 262_144, &[opt_str(2, "eth0")]);
    let (s1, s2): (Vec<Rec>, Vec<Rec>) = cap.recs.iter().cloned().partition(|r| r.iface == 0);
    epbs(&mut ng, &s1, &[6]);
    ng.shb(true, &[opt_str(4, "bittap-craft big-endian section")]);
    ng.idb(113, 262_144, &[opt_str(2, "any")]);
    let s2: Vec<Rec> = s2
        .into_iter()
        .map(|mut r| {
            r.iface = 0;
            r
        })
        .collect();
    epbs(&mut ng, &s2, &[6]);
    Out {
        path: "two_sections.pcapng".into(),
        caplens: cap.recs.iter().map(|r| r.data.len()).collect(),
        bytes: ng.buf,
        format: "pcapng, 2 sections (LE then BE)".into(),
        linktypes: "1 (section 1), 113 (section 2)".into(),
        desc: "Two sections: section 1 little-endian with an Ethernet IDB and a short peer-wire \
               flow; section 2 big-endian (byte-order magic written 1A 2B 3C 4D) with its own IDB \
               (Linux cooked SLL, 113, interface id 0 again), a short peer-wire flow and a DHT flow."
            .into(),
        recs: cap.recs,
        flows: cap.flows,
        problem: None,
    }
}

fn corrupt_pcapng() -> Out {
    let cap = scen::linktype_flow("corrupt_pcapng", &mut Encap::Eth, 0);
    let mut ng = Ng::new();
    ng.shb(false, &[]);
    ng.idb(1, 262_144, &[]);
    epbs(&mut ng, &cap.recs, &[6]);
    let off = ng.block_offsets[2];
    // 3rd block (first EPB): total length 10, below the 12-byte minimum and not a
    // multiple of 4 (the trailing length field keeps the real value).
    let len = u32::from_le_bytes(ng.buf[off + 4..off + 8].try_into().expect("4 bytes"));
    let bad_len: u32 = 10;
    ng.buf[off + 4..off + 8].copy_from_slice(&bad_len.to_le_bytes());
    let mut o = Out {
        path: "bad/corrupt.pcapng".into(),
        caplens: vec![],
        bytes: ng.buf,
        format: "pcapng (corrupt)".into(),
        linktypes: "1".into(),
        desc: format!(
            "SHB, IDB, then 3 EPBs of a DHT flow; the 3rd block (first EPB) has block total \
             length {bad_len} (smaller than 12 and not a multiple of 4; its trailing length field \
             still says {len}). No packet can be read."
        ),
        recs: vec![],
        flows: cap.flows.clone(),
        problem: Some(Problem {
            severity: "error",
            what: "pcapng block total length 10 (< 12, not a multiple of 4) in the 3rd block"
                .into(),
            offset: off,
        }),
    };
    truth_prefix(&mut o, 0);
    o
}

/// Decompresses as much of a gzip stream as possible; returns the bytes recovered.
fn gunzip_prefix(data: &[u8]) -> Vec<u8> {
    let mut d = flate2::read::GzDecoder::new(data);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match d.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fn bad_files(f1: &Out) -> Vec<Out> {
    let mut outs = Vec::new();
    let w = pcap(&PcapOpts::le_usec(1), &f1.recs);
    let n = f1.recs.len();

    // Last record cut in the middle.
    let last_off = w.rec_offsets[n - 1];
    let last_len = 16 + f1.recs[n - 1].data.len();
    let cut = last_off + last_len / 2;
    let mut o = Out {
        path: "bad/truncated_last_record.pcap".into(),
        bytes: w.bytes[..cut].to_vec(),
        desc: format!(
            "handshake_split_1_67.pcap cut at byte {cut}, inside its last record ({} of its {} \
             bytes present: the 16-byte record header is complete, {} of {} frame bytes). The \
             partial record still counts: {} wire bytes (orig_len), as undecodable (its IPv4 \
             header is cut).",
            cut - last_off,
            last_len,
            cut - last_off - 16,
            last_len - 16,
            last_len - 16
        ),
        problem: Some(Problem {
            severity: "warning",
            what: format!(
                "truncated last packet record (record starts at {last_off}, needs {last_len} bytes, file ends at {cut})"
            ),
            offset: last_off,
        }),
        ..clone_out(f1)
    };
    truth_until(&mut o, &w, cut);
    outs.push(o);

    // 4th record with caplen 0xFFFFFF00.
    let off4 = w.rec_offsets[3];
    let mut b = w.bytes.clone();
    b[off4 + 8..off4 + 12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let mut o = Out {
        path: "bad/corrupt_record_len.pcap".into(),
        bytes: b,
        desc: "handshake_split_1_67.pcap with the 4th record header's caplen set to 0xFFFFFF00 \
               (larger than the snaplen and the file)."
            .into(),
        problem: Some(Problem {
            severity: "error",
            what: "record caplen 0xFFFFFF00 exceeds snaplen 262144 (4th record header)".into(),
            offset: off4,
        }),
        ..clone_out(f1)
    };
    truth_prefix(&mut o, 3);
    outs.push(o);

    // Garbage.
    let mut rng = Rng::new("garbage_magic");
    let mut g = rng.bytes(1024);
    g[0] = 0x5a; // make sure no capture or gzip magic
    outs.push(Out {
        path: "bad/garbage_magic.pcap".into(),
        bytes: g,
        format: "not a capture".into(),
        linktypes: "-".into(),
        desc: "1024 pseudo-random bytes (fixed seed); no pcap, pcapng or gzip magic.".into(),
        recs: vec![],
        caplens: vec![],
        flows: vec![],
        problem: Some(Problem {
            severity: "error",
            what: "unknown file format (bad magic)".into(),
            offset: 0,
        }),
    });

    // Truncated global header.
    outs.push(Out {
        path: "bad/truncated_header.pcap".into(),
        bytes: w.bytes[..10].to_vec(),
        format: "pcap (truncated)".into(),
        linktypes: "-".into(),
        desc: "The first 10 bytes of a pcap global header (magic, version, half of thiszone)."
            .into(),
        recs: vec![],
        caplens: vec![],
        flows: vec![],
        problem: Some(Problem {
            severity: "error",
            what: "truncated pcap global header (10 of 24 bytes)".into(),
            offset: 0,
        }),
    });

    outs.push(corrupt_pcapng());

    // Empty.
    outs.push(Out {
        path: "bad/empty.pcap".into(),
        bytes: w.bytes[..24].to_vec(),
        format: "pcap little-endian µs".into(),
        linktypes: "1".into(),
        desc: "A valid 24-byte pcap global header and no packets (not an error).".into(),
        recs: vec![],
        caplens: vec![],
        flows: vec![],
        problem: None,
    });

    // Gzip stream cut in the middle.
    let gz = gzip(&w.bytes);
    let gcut = gz.len() / 2;
    let rec = gunzip_prefix(&gz[..gcut]);
    let mut o = Out {
        path: "bad/truncated.pcap.gz".into(),
        bytes: gz[..gcut].to_vec(),
        format: "gzip (cut) of pcap".into(),
        desc: String::new(),
        problem: Some(Problem {
            severity: "warning",
            what: String::new(),
            offset: gcut,
        }),
        ..clone_out(f1)
    };
    let (whole, partial) = truth_until(&mut o, &w, rec.len());
    let part = match partial {
        Some((i, have, wire)) => format!(
            "; record {} has its header and {have} of {wire} frame bytes, and counts with its \
             {wire} wire bytes{}",
            i + 1,
            if o.recs[i].kind == Kind::Undecodable {
                " as undecodable"
            } else {
                " as a packet of its flow (headers intact, payload cut)"
            }
        ),
        None => String::new(),
    };
    o.desc = format!(
        "gzip of handshake_split_1_67.pcap ({} bytes compressed) cut at byte {gcut}; a \
         streaming inflater (flate2, zlib) recovers {} of the {} decompressed bytes: \
         {whole} complete records{part}.",
        gz.len(),
        rec.len(),
        w.bytes.len()
    );
    if let Some(p) = o.problem.as_mut() {
        p.what = format!(
            "unexpected end of gzip stream at compressed byte {gcut} ({} decompressed bytes recovered)",
            rec.len()
        );
    }
    outs.push(o);
    outs
}

fn clone_out(o: &Out) -> Out {
    Out {
        path: o.path.clone(),
        bytes: o.bytes.clone(),
        format: o.format.clone(),
        linktypes: o.linktypes.clone(),
        desc: o.desc.clone(),
        recs: o.recs.clone(),
        caplens: o.caplens.clone(),
        flows: o.flows.clone(),
        problem: o.problem.clone(),
    }
}

fn build_all() -> Vec<Out> {
    let le = PcapOpts::le_usec;
    let mut outs = Vec::new();

    let f1 = pcap_out(
        "handshake_split_1_67.pcap",
        "TCP peer-wire flow; the initiator's handshake is a 1-byte segment then a 67-byte \
         segment; responder handshake, bitfield, interested, unchoke, request, 1 KiB piece, \
         FIN both ways.",
        &scen::handshake_split_1_67(),
        le(1),
    );
    outs.push(clone_out(&f1));
    outs.push(pcap_out(
        "handshake_split_20_48_ooo.pcap",
        "Handshake split 20+48: the 48-byte segment is captured first, a duplicate ACK, then \
         the 20-byte segment, then a retransmission of the 20-byte segment.",
        &scen::handshake_split_20_48_ooo(),
        le(1),
    ));
    outs.push(pcap_out(
        "one_direction.pcap",
        "Two flows seen in one direction only: (a) the initiator's packets only (SYN, ACK, \
         handshake, interested, requests, ACKs, FIN); (b) the responder's packets only \
         (SYN-ACK, handshake, bitfield, unchoke, pieces, FIN), no SYN.",
        &scen::one_direction(),
        le(1),
    ));
    outs.push(pcap_out(
        "vlan_qinq_mpls_pppoe.pcap",
        "The same 10-packet peer-wire flow six times (distinct ports): 802.1Q, QinQ, three \
         tags, MPLS 2 labels, PPPoE IPv4, PPPoE IPv6.",
        &scen::vlan_qinq_mpls_pppoe(),
        le(1),
    ));
    outs.push(pcap_out(
        "tunnels.pcap",
        "A 10-packet peer-wire flow inside each of: GRE, GRE key+seq, GRE TEB, ERSPAN II, \
         ERSPAN III, ERSPAN III with subheader, VXLAN. 5-tuples below are the inner ones.",
        &scen::tunnels(),
        le(1),
    ));
    outs.push(pcap_out(
        "ipv6_ext.pcap",
        "IPv6 peer-wire flow with hop-by-hop options; another with routing header (type 2, \
         segments left 0) + destination options; a UDP DHT exchange with destination options.",
        &scen::ipv6_ext(),
        le(1),
    ));
    outs.push(pcap_out(
        "fragments.pcap",
        "IPv4 UDP 3000-byte DHT query in 3 fragments; another in 3 fragments delivered last \
         first; IPv6 UDP in 2 fragments; TCP peer-wire flow whose handshake packet is \
         IPv4-fragmented (40 + 48 bytes). Every fragment counts as a packet of its flow.",
        &scen::fragments(),
        le(1),
    ));
    outs.push(pcap_out(
        "snaplen64.pcap",
        "Full peer-wire flow with 5 piece messages of 1400 bytes, snaplen 64: caplen = \
         min(64, wire length), orig_len = wire length (bytes counted are wire bytes).",
        &scen::snaplen64(),
        PcapOpts {
            snaplen: 64,
            ..le(1)
        },
    ));
    let ti = two_interfaces_ng();
    outs.push(clone_out(&ti));
    outs.push(two_sections_ng());

    // Link types.
    let lt = |name: &str, enc: Encap, v6: usize| {
        let mut e = enc;
        scen::linktype_flow(name, &mut e, v6)
    };
    outs.push(pcap_out(
        "linktypes/null_loopback.pcap",
        "DLT_NULL (0): IPv4 DHT flow with AF 2 (little-endian host order); IPv6 DHT flow whose \
         3 packets carry AF 30, 24 and 28.",
        &scen::null_loopback(),
        le(0),
    ));
    outs.push(pcap_out(
        "linktypes/raw_dlt12.pcap",
        "Link type 12 (DLT_RAW on most platforms): raw IPv4 and IPv6 packets.",
        &lt("raw_dlt12", Encap::Raw, 1),
        le(12),
    ));
    outs.push(pcap_out(
        "linktypes/raw_101.pcap",
        "LINKTYPE_RAW (101): raw IPv4 and IPv6 packets.",
        &lt("raw_101", Encap::Raw, 1),
        le(101),
    ));
    outs.push(pcap_out(
        "linktypes/ipv4_228.pcap",
        "LINKTYPE_IPV4 (228): raw IPv4 packets.",
        &lt("ipv4_228", Encap::Raw, 0),
        le(228),
    ));
    {
        let (mut cap, mut rng) = (Capture::new(model::T0_NS), Rng::new("ipv6_229"));
        let mut u = scen::udp_flow(
            &mut cap,
            &mut rng,
            pkt::v6("2001:db8:7::2", 50902),
            pkt::v6("2001:db8:7::3", 42002),
            model::DHT,
            "IPv6 DHT ping, response, find_node",
        );
        scen::dht_three(&mut cap, &mut Encap::Raw, &mut u, &mut rng);
        outs.push(pcap_out(
            "linktypes/ipv6_229.pcap",
            "LINKTYPE_IPV6 (229): raw IPv6 packets.",
            &cap,
            le(229),
        ));
    }
    outs.push(pcap_out(
        "linktypes/sll.pcap",
        "Linux cooked capture v1 (113): IPv4 and IPv6 DHT flows.",
        &lt("sll", Encap::Sll, 1),
        le(113),
    ));
    outs.push(pcap_out(
        "linktypes/sll2.pcap",
        "Linux cooked capture v2 (276): IPv4 and IPv6 DHT flows.",
        &lt("sll2", Encap::Sll2, 1),
        le(276),
    ));
    {
        let mut cap = lt("unknown_147", Encap::Eth, 0);
        for r in cap.recs.iter_mut() {
            r.kind = Kind::Undecodable;
        }
        cap.flows.clear();
        outs.push(pcap_out(
            "linktypes/unknown_147.pcap",
            "LINKTYPE_USER0 (147) holding Ethernet frames of a DHT flow: no decoder, every frame \
             counts as undecodable, no flows.",
            &cap,
            le(147),
        ));
    }
    outs.push(pcap_out(
        "linktypes/pcap_be_nsec.pcap",
        "Big-endian pcap with the nanosecond magic a1 b2 3c 4d, Ethernet, sub-µs timestamps.",
        &{
            let mut c = lt("pcap_be_nsec", Encap::Eth, 0);
            for (i, r) in c.recs.iter_mut().enumerate() {
                r.ts_ns += 123 + 111 * i as u64;
            }
            c
        },
        PcapOpts {
            big_endian: true,
            nsec: true,
            ..le(1)
        },
    ));
    outs.push(pcap_out(
        "linktypes/pcap_le_usec.pcap",
        "Little-endian pcap with the microsecond magic d4 c3 b2 a1, Ethernet.",
        &lt("pcap_le_usec", Encap::Eth, 0),
        le(1),
    ));

    // gzip.
    outs.push(gz_out(
        "gzip/handshake_split_1_67.pcap.gz",
        "gzip of handshake_split_1_67.pcap (same packets).",
        &f1,
    ));
    outs.push(gz_out(
        "gzip/noext",
        "gzip of two_interfaces.pcapng with no file extension: detect by magic bytes (1f 8b, \
         then 0a 0d 0d 0a inside).",
        &ti,
    ));

    outs.extend(bad_files(&f1));

    outs.push(pcap_out(
        "port6881_http.pcap",
        "Port traps: HTTP/1.1 GET + 200 text/html (~2 KB) on 6881; TLS ClientHello/server \
         flight on 51413; a real peer-wire handshake flow on 6881 (other server); a SYN-only \
         flow to 6882 (SYN + 2 retransmissions).",
        &scen::port6881_http(),
        le(1),
    ));
    outs.push(pcap_out(
        "mixed_minutes.pcap",
        "Flows across three UTC minutes (10:00:30 to 10:02:10): a peer-wire session with \
         pieces every 20 s, a flow opened in minute 0 whose handshake comes in minute 1, HTTP \
         on port 80, a DHT exchange; ARP request/reply and LLDP (non-IP), one IPv4 frame with \
         IHL 3 (undecodable).",
        &scen::mixed_minutes(),
        le(1),
    ));
    outs
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "pcaps/crafted".to_string());
    let dir = Path::new(&dir);
    let outs = build_all();
    for o in &outs {
        let p = dir.join(&o.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create output directory");
        }
        std::fs::write(&p, &o.bytes).expect("write capture");
    }
    summary::write_all(dir, &outs).expect("write summary files");
    let total: usize = outs.iter().map(|o| o.bytes.len()).sum();
    println!(
        "wrote {} captures ({} bytes) and SUMMARY.tsv, FLOWS.tsv, MINUTES.tsv, README.md to {}",
        outs.len(),
        total,
        dir.display()
    );
}
