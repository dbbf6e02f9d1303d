//! sFlow test data: captures of sFlow v5 datagrams, as `tcpdump -w x.pcap udp port 6343` on a
//! collector would write them, built from frames with bittap's datagram builder.

use std::io::Write;
use std::path::{Path, PathBuf};

use bittap::capture::MergedReader;
use bittap::sflow::decode::build;

/// Writes `datagrams` (arrival time in ns, sFlow datagram) as a pcap of UDP packets from
/// 127.0.0.1:40000 to 127.0.0.1:`port`.
pub fn write_pcap(path: &Path, datagrams: &[(i64, Vec<u8>)], port: u16) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut hdr = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        hdr.extend_from_slice(&v.to_le_bytes());
    }
    // Version is two u16s; rewrite bytes 4..8 as 2, 4.
    hdr[4..8].copy_from_slice(&[2, 0, 4, 0]);
    f.write_all(&hdr).expect("write");
    for (ts, d) in datagrams {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + d.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&40000u16.to_be_bytes());
        frame.extend_from_slice(&port.to_be_bytes());
        frame.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(d);
        let (s, us) = (ts / 1_000_000_000, (ts % 1_000_000_000) / 1000);
        for v in [s as u32, us as u32, frame.len() as u32, frame.len() as u32] {
            f.write_all(&v.to_le_bytes()).expect("write");
        }
        f.write_all(&frame).expect("write");
    }
    f.flush().expect("flush");
}

/// The header bytes a sample carries (sFlow agents' usual default).
pub const HEADER: usize = 128;

/// What one agent (IPv4 `agent`, one interface) exports for the frames of `captures`: each
/// Ethernet frame sampled with probability 1/`rate` (a fixed-seed generator, so the same
/// samples every run), its first [`HEADER`] bytes in a raw-header flow sample at that rate, the
/// frame's arrival time as the datagram's; and every 20 s of packet time a counter sample
/// whose input octets are the wire bytes of every frame so far (the true link load). One
/// sample per datagram, sequence numbers without gaps; the agent's drops counter grows by one
/// every 25 flow samples.
pub fn agent_datagrams(
    captures: &[PathBuf],
    rate: u32,
    seed: u64,
    agent: [u8; 4],
) -> Vec<(i64, Vec<u8>)> {
    const IF_INDEX: u32 = 7;
    const COUNTER_EVERY_NS: i64 = 20_000_000_000;
    let mut reader = MergedReader::new(captures).expect("open captures");
    let mut rng = seed | 1;
    let mut next = || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let (mut out, mut seq, mut flow_seq, mut counter_seq) = (Vec::new(), 0u32, 0u32, 0u32);
    let (mut pool, mut octets, mut last_counter) = (0u32, 0u64, i64::MIN);
    while reader.advance() {
        let Some(pkt) = reader.packet() else { continue };
        if pkt.linktype != 1 {
            continue;
        }
        pool = pool.wrapping_add(1);
        octets += u64::from(pkt.wire_len);
        let uptime = (pkt.ts_ns / 1_000_000) as u32;
        if next() % u64::from(rate.max(1)) == 0 {
            let header = &pkt.data[..pkt.data.len().min(HEADER)];
            let stripped = 4; // the frame check sequence
            let rec = build::raw_header(1, pkt.wire_len + stripped, stripped, header);
            // The agent's drops counter: one sample in 25 lost for lack of resources.
            let s =
                build::flow_sample(false, flow_seq, IF_INDEX, rate, pool, flow_seq / 25, &[rec]);
            flow_seq += 1;
            seq += 1;
            out.push((pkt.ts_ns, build::datagram(&agent, 0, seq, uptime, &[s])));
        }
        if last_counter == i64::MIN || pkt.ts_ns - last_counter >= COUNTER_EVERY_NS {
            last_counter = pkt.ts_ns;
            let c = build::if_counters(false, counter_seq, IF_INDEX, octets, 0);
            counter_seq += 1;
            seq += 1;
            out.push((pkt.ts_ns + 1, build::datagram(&agent, 0, seq, uptime, &[c])));
        }
    }
    out
}
