//! Bencode and KRPC (DHT) parsing, tracker replies and the peers they advertise.
#![no_main]
use bittap::classify::bencode::bencode_len;
use bittap::classify::dht::parse_krpc;
use bittap::classify::peers::for_each_advertised_peer;
use bittap::classify::tracker_http::is_tracker_reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(n) = bencode_len(data) {
        assert!(n <= data.len());
    }
    let _ = parse_krpc(data);
    let _ = is_tracker_reply(data);
    let mut peers = 0usize;
    for_each_advertised_peer(data, &mut |_, _, _| peers += 1);
    // Each advertised peer takes at least 6 bytes of the message.
    assert!(peers <= data.len() / 6 + 1);
});
