//! uTP header parsing and the uTP conversation tracker over datagrams both ways.
#![no_main]
use bittap::classify::utp::{parse, UtpTracker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(h) = parse(data) {
        assert!(h.payload_len(data.len()) <= data.len());
    }
    let mut t = UtpTracker::default();
    for (h, d) in bittap_fuzz::chunks(data, 1) {
        let _ = t.on_datagram(usize::from(h[0]), d);
        let _ = parse(d);
    }
    let _ = t.confirmed();
});
