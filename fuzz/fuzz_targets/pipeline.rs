//! The whole pipeline over a sequence of frames (see `bittap_fuzz::frames`), with tables
//! small enough that eviction, timeouts and fragment expiry all happen; checks conservation:
//! the series and the health add up to the frames' packets and wire bytes.
#![no_main]
use std::sync::{Arc, OnceLock};

use bittap::aggregate::Counts;
use bittap::capture::RawPacket;
use bittap::classify::Rules;
use bittap::engine::{Config, Engine};
use bittap::flow::record::SharedFlows;
use libfuzzer_sys::fuzz_target;

fn rules() -> Arc<Rules> {
    static R: OnceLock<Arc<Rules>> = OnceLock::new();
    R.get_or_init(|| Arc::new(Rules::builtin().expect("built-in rules")))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let frames = bittap_fuzz::frames(data);
    if frames.is_empty() {
        return;
    }
    let tiny = data[0] & 1 == 1;
    let cfg = if tiny {
        Config {
            max_flows: 4,
            max_frags: 2,
            max_endpoints: 4,
            tcp_idle_ns: 2_000_000_000,
            udp_idle_ns: 1_000_000_000,
            frag_timeout_ns: 500_000_000,
            sweep_interval_ns: 250_000_000,
            ..Config::default()
        }
    } else {
        Config::default()
    };
    let mut p = Engine::new(cfg, rules());
    let flows = SharedFlows::default();
    p.set_flow_sink(Box::new(flows.clone()));
    let mut want = Counts::default();
    for f in &frames {
        want.add(1, u64::from(f.wire_len));
        p.process(&RawPacket {
            ts_ns: f.ts_ns,
            wire_len: f.wire_len,
            linktype: f.linktype,
            data: f.data,
        });
    }
    p.finish().expect("flow sink");
    assert_eq!(p.probes_in_use(), 0);
    let agg = p.aggregator();
    let mut got = Counts::default();
    let series = agg.series_rows();
    for r in &series {
        got.add(r.counts.packets, r.counts.bytes);
    }
    assert_eq!(got, want, "series");
    let health = agg.health_rows();
    let mut h = Counts::default();
    for (_, x) in &health {
        h.add(x.packets, x.bytes);
    }
    assert_eq!(h, want, "health");
    let flow_packets: u64 = flows.take().iter().map(|f| f.packets).sum();
    assert!(flow_packets <= want.packets);
    let ports = agg.port_rows();
    let text = bittap::sink::line::render("fuzz", &series, &ports, &health, &rules());
    assert_eq!(
        text.lines().count(),
        series.len() + ports.len() + health.len()
    );
});
