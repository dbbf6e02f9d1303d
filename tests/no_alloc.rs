//! The hot path allocates nothing per packet in steady state: after one pass over a set of
//! captures has sized the tables, a second pass over the same packets (new flows, probes,
//! fragments, minute switches) makes no allocation at all.

mod common;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{ALLOCS, COUNTING};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bittap::capture::RawPacket;
use bittap::classify::Rules;
use bittap::engine::{Config, Engine};

#[test]
fn second_pass_allocates_nothing() {
    let files: Vec<_> = [
        "handshake_split_1_67.pcap",
        "handshake_split_20_48_ooo.pcap",
        "one_direction.pcap",
        "vlan_qinq_mpls_pppoe.pcap",
        "tunnels.pcap",
        "ipv6_ext.pcap",
        "fragments.pcap",
        "snaplen64.pcap",
        "two_interfaces.pcapng",
        "port6881_http.pcap",
        "mixed_minutes.pcap",
        "linktypes/unknown_147.pcap",
    ]
    .iter()
    .map(|f| common::crafted(f))
    .collect();
    let packets = counting_alloc::load(&files);
    assert!(packets.len() > 300, "{} packets", packets.len());

    let mut pipeline = Engine::new(
        Config::default(),
        Arc::new(Rules::builtin().expect("rules")),
    );
    let feed = |p: &mut Engine| {
        for o in &packets {
            p.process(&RawPacket {
                ts_ns: o.ts_ns,
                wire_len: o.wire_len,
                linktype: o.linktype,
                data: &o.data,
            });
        }
    };
    feed(&mut pipeline);
    pipeline.finish().expect("finish");
    // The unknown link type's one-time warning is out of the way too.
    let warnings = pipeline.warnings.len();

    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    feed(&mut pipeline);
    COUNTING.store(false, Ordering::Relaxed);
    let allocs = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(
        allocs,
        0,
        "allocations in the second pass over {} packets",
        packets.len()
    );
    assert_eq!(pipeline.warnings.len(), warnings);
    pipeline.finish().expect("finish");
    assert_eq!(pipeline.totals().packets, 2 * packets.len() as u64);
}
