//! The multi-worker path allocates nothing per packet in steady state (its own test binary:
//! the counting allocator is process-wide, and tests in one binary run in parallel).

mod common;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{ALLOCS, COUNTING};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bittap::capture::RawPacket;
use bittap::classify::Rules;
use bittap::engine::Config;

/// The multi-worker path allocates nothing per packet either: batches are pre-allocated and
/// recycled, channels are bounded arrays, and each worker's pipeline is warm after one pass.
#[test]
fn workers_second_pass_allocates_nothing() {
    let files: Vec<_> = [
        "handshake_split_1_67.pcap",
        "vlan_qinq_mpls_pppoe.pcap",
        "tunnels.pcap",
        "ipv6_ext.pcap",
        "fragments.pcap",
        "two_interfaces.pcapng",
        "mixed_minutes.pcap",
    ]
    .iter()
    .map(|f| common::crafted(f))
    .collect();
    let packets = counting_alloc::load(&files);
    let mut w = bittap::engine::workers::Workers::start(
        2,
        &Config::default(),
        Arc::new(Rules::builtin().expect("rules")),
        None,
        None,
        true,
    )
    .expect("workers");
    let feed = |w: &mut bittap::engine::workers::Workers| {
        for o in &packets {
            w.dispatch(&RawPacket {
                ts_ns: o.ts_ns,
                wire_len: o.wire_len,
                linktype: o.linktype,
                data: &o.data,
            });
        }
    };
    feed(&mut w);
    // A flush waits until the workers have processed everything sent.
    drop(w.flush(i64::MIN));
    // The first time a thread blocks on a std channel, std allocates that thread's waiting
    // context once (a thread-local). Whether the dispatcher ever waited for a free batch in
    // the first pass depends on how busy the machine is, so make this thread wait once now:
    // what is counted below is then only what dispatching itself allocates. The same holds
    // for each worker thread, which blocks on its empty queue once it has answered the flush:
    // the pause gives a worker that never waited in the first pass (on a loaded machine its
    // batches were all queued before it ran) the time to do so.
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(0);
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        rx.recv()
    });
    tx.send(()).expect("rendezvous");
    let _ = t.join();
    ALLOCS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    feed(&mut w);
    // Waits for the workers too; a flush of nothing allocates nothing.
    let f = w.flush(i64::MIN);
    COUNTING.store(false, Ordering::Relaxed);
    assert!(f.agg.is_empty());
    let allocs = ALLOCS.load(Ordering::Relaxed);
    let done = w.finish();
    assert_eq!(done.totals.packets, 2 * packets.len() as u64);
    assert_eq!(
        allocs,
        0,
        "allocations dispatching {} packets",
        packets.len()
    );
}
