//! The MSE (encrypted peer wire) tracker over a sequence of TCP packets in both directions:
//! per packet a 14-byte header (direction, flags, sequence and acknowledgement numbers, a
//! declared length that may exceed the captured payload) and the payload.
#![no_main]
use bittap::classify::mse::{looks_framed, looks_random, MseTracker, Segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = (looks_random(data), looks_framed(data));
    let mut t = MseTracker::default();
    for (h, seg) in bittap_fuzz::chunks(data, 14) {
        let le = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let _ = t.on_segment(Segment {
            dir: usize::from(h[0] & 1),
            flags: h[1],
            seq: le(2),
            ack: le(6),
            len: le(10).max(seg.len() as u32),
            payload: seg,
        });
        let _ = (t.active(), t.failed(), t.silent_responder(), t.wants_packets(1 << 14));
    }
});
