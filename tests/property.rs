//! Property tests: whatever frames come in — garbage, truncated headers, random link types,
//! plausible IP traffic with random fields — the per-minute series add up exactly to the
//! input's packets and wire bytes, and nothing panics.

use std::sync::Arc;

use bittap::aggregate::Counts;
use bittap::capture::RawPacket;
use bittap::classify::Rules;
use bittap::engine::{Config, Engine};
use bittap::flow::record::SharedFlows;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Frame {
    linktype: u32,
    ts_ns: i64,
    data: Vec<u8>,
    extra_wire: u32,
}

/// An Ethernet or raw-IP frame with IPv4/IPv6 and TCP/UDP headers whose fields are random:
/// few addresses and ports, so flows repeat; random flags, fragment fields and payloads.
fn plausible() -> impl Strategy<Value = (u32, Vec<u8>)> {
    (
        any::<bool>(),
        0u8..4,
        0u8..4,
        prop::sample::select(vec![6u8, 17, 1, 47]),
        prop::sample::select(vec![6881u16, 51413, 80, 443, 40000, 4789]),
        prop::sample::select(vec![6881u16, 1234, 50000]),
        any::<u8>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..80),
        prop::option::of(prop::sample::select(vec![
            b"\x13BitTorrent protocol".to_vec(),
            b"GET /announce?info_hash=".to_vec(),
            b"\x16\x03\x01".to_vec(),
        ])),
        any::<bool>(),
    )
        .prop_map(
            |(eth, a, b, proto, sp, dp, flags, frag, mut payload, prefix, v6)| {
                if let Some(p) = prefix {
                    let mut v = p;
                    v.extend_from_slice(&payload);
                    payload = v;
                }
                let mut l4 = Vec::new();
                l4.extend_from_slice(&sp.to_be_bytes());
                l4.extend_from_slice(&dp.to_be_bytes());
                if proto == 6 {
                    l4.extend_from_slice(&[
                        0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
                    ]);
                } else {
                    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                    l4.extend_from_slice(&[0, 0]);
                }
                l4.extend_from_slice(&payload);
                let mut ip = Vec::new();
                if v6 {
                    ip.extend_from_slice(&[0x60, 0, 0, 0]);
                    ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                    ip.extend_from_slice(&[proto, 64]);
                    ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a]);
                    ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b]);
                } else {
                    ip.extend_from_slice(&[0x45, 0]);
                    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                    ip.extend_from_slice(&[0, 7]);
                    // Random fragment fields: some packets become first or later fragments.
                    ip.extend_from_slice(
                        &(frag & 0x3fff & if frag % 3 == 0 { 0xffff } else { 0 }).to_be_bytes(),
                    );
                    ip.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, a, 10, 0, 0, b]);
                }
                ip.extend_from_slice(&l4);
                if eth {
                    let mut f = vec![0u8; 12];
                    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
                    f.extend_from_slice(&ip);
                    (1, f)
                } else {
                    (101, ip)
                }
            },
        )
}

fn frame() -> impl Strategy<Value = Frame> {
    let garbage = (
        prop::sample::select(vec![0u32, 1, 12, 101, 113, 228, 229, 276, 9, 104, 192, 147]),
        prop::collection::vec(any::<u8>(), 0..120),
    );
    (
        prop_oneof![1 => garbage, 3 => plausible()],
        0i64..400_000_000_000,
        0u32..3000,
        0usize..200,
    )
        .prop_map(|((linktype, mut data), ts_ns, extra_wire, cut)| {
            // Sometimes cut the frame as a small snap length would.
            if cut < data.len() && cut % 4 == 0 {
                data.truncate(cut);
            }
            Frame {
                linktype,
                ts_ns,
                data,
                extra_wire,
            }
        })
}

fn check(frames: &[Frame], cfg: Config) -> Result<(), TestCaseError> {
    let rules = Arc::new(Rules::builtin().expect("rules"));
    let mut p = Engine::new(cfg, rules);
    let flows = SharedFlows::default();
    p.set_flow_sink(Box::new(flows.clone()));
    let mut want = Counts::default();
    for f in frames {
        let wire = f.data.len() as u32 + f.extra_wire;
        want.add(1, u64::from(wire));
        p.process(&RawPacket {
            ts_ns: f.ts_ns,
            wire_len: wire,
            linktype: f.linktype,
            data: &f.data,
        });
    }
    p.finish().expect("sink");
    let mut got = Counts::default();
    for r in p.aggregator().series_rows() {
        got.add(r.counts.packets, r.counts.bytes);
    }
    prop_assert_eq!(got, want);
    let mut health = Counts::default();
    for (_, h) in p.aggregator().health_rows() {
        health.add(h.packets, h.bytes);
    }
    prop_assert_eq!(health, want);
    // Flows hold every packet that reached one.
    let flow_packets: u64 = flows.take().iter().map(|f| f.packets).sum();
    prop_assert!(flow_packets <= want.packets);
    prop_assert_eq!(p.probes_in_use(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn series_partition_any_input(frames in prop::collection::vec(frame(), 1..300)) {
        check(&frames, Config::default())?;
    }

    #[test]
    fn series_partition_with_tiny_tables_and_timeouts(frames in prop::collection::vec(frame(), 1..300)) {
        let cfg = Config {
            max_flows: 3,
            max_frags: 2,
            tcp_idle_ns: 2_000_000_000,
            udp_idle_ns: 1_000_000_000,
            frag_timeout_ns: 500_000_000,
            sweep_interval_ns: 300_000_000,
            ..Config::default()
        };
        check(&frames, cfg)?;
    }
}
