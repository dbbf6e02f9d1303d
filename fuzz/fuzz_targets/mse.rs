//! The MSE (encrypted peer wire) shape tests over a sequence of segments in both directions.
#![no_main]
use bittap::classify::mse::{looks_framed, looks_random, MseShape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = (looks_random(data), looks_framed(data));
    let mut s = MseShape::default();
    for (h, seg) in bittap_fuzz::chunks(data, 1) {
        let _ = s.on_payload(usize::from(h[0]), seg);
    }
});
