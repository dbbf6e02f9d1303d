//! Peer wire message headers and the framing tracker over a segmented stream (per segment a
//! 4-byte relative sequence step and a cut flag).
#![no_main]
use bittap::classify::peerwire::{message, FramingTracker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = message(data);
    let mut t = FramingTracker::default();
    let mut seq = 1000u32;
    for (h, seg) in bittap_fuzz::chunks(data, 5) {
        seq = seq.wrapping_add(u32::from_le_bytes([h[0], h[1], h[2], h[3]]) % 4096);
        let _ = t.on_segment(seq, seg, h[4] & 1 != 0);
        let _ = message(seg);
    }
});
