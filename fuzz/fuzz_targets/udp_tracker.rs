//! The UDP tracker (BEP 15) shape test and the signature matcher over UDP payloads, then a
//! request/response pair through a probe (the transaction and connection id ties).
#![no_main]
use std::sync::{Arc, OnceLock};

use bittap::classify::probe::ProbeState;
use bittap::classify::signature::{match_signatures, End};
use bittap::classify::tracker_udp::tracker_udp_shaped;
use bittap::classify::rules::Transport;
use bittap::classify::Rules;
use libfuzzer_sys::fuzz_target;

fn rules() -> Arc<Rules> {
    static R: OnceLock<Arc<Rules>> = OnceLock::new();
    R.get_or_init(|| Arc::new(Rules::builtin().expect("built-in rules")))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let rules = rules();
    let _ = tracker_udp_shaped(data);
    for end in [End::More, End::Complete, End::Cut] {
        let _ = match_signatures(&rules, Transport::Udp, data, end);
        let _ = match_signatures(&rules, Transport::Tcp, data, end);
    }
    let mut st = ProbeState::default();
    for (i, (_, d)) in bittap_fuzz::chunks(data, 0).enumerate() {
        let dir = i & 1;
        let ports = if dir == 0 {
            (40000, 6969)
        } else {
            (6969, 40000)
        };
        let _ = st.on_packet(&rules, Transport::Udp, dir, None, ports, d, false);
    }
});
