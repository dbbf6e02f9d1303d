//! One flow's probes (signatures, peer wire framing, MSE shape, uTP, HTTP, UDP tracker ties)
//! over a sequence of packets: per packet a 6-byte header (direction and flags, TCP sequence
//! number, a snap-length cut flag) and the payload. The first byte picks TCP or UDP.
#![no_main]
use std::sync::{Arc, OnceLock};

use bittap::classify::probe::ProbeState;
use bittap::classify::rules::Transport;
use bittap::classify::Rules;
use bittap::decode::TcpInfo;
use libfuzzer_sys::fuzz_target;

fn rules() -> Arc<Rules> {
    static R: OnceLock<Arc<Rules>> = OnceLock::new();
    R.get_or_init(|| Arc::new(Rules::builtin().expect("built-in rules")))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let rules = rules();
    let tcp = sel & 1 == 0;
    let transport = if tcp { Transport::Tcp } else { Transport::Udp };
    let ports = [
        (40000u16, 6881u16),
        (6881, 40000),
        (50000, 80),
        (1234, 1234),
    ][usize::from(sel >> 1) % 4];
    let mut st = ProbeState::default();
    for (h, payload) in bittap_fuzz::chunks(rest, 6) {
        let dir = usize::from(h[0] & 1);
        let info = tcp.then(|| TcpInfo {
            flags: h[1],
            seq: u32::from_le_bytes([h[2], h[3], h[4], h[5]]),
            // The acknowledgement number from the same bytes turned round, so the one-direction
            // tracking of the other side gets odd and plausible values alike.
            ack: u32::from_be_bytes([h[5], h[4], h[3], h[2]]),
            len: payload.len() as u32,
        });
        let p = if dir == 0 { ports } else { (ports.1, ports.0) };
        let _ = st.on_packet(&rules, transport, dir, info, p, payload, h[0] & 2 != 0);
    }
});
