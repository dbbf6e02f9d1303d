//! HTTP tracker and web seed requests and replies.
#![no_main]
use bittap::classify::tracker_http::classify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
});
