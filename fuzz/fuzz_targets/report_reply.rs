//! `bittap report --influx-url`: a database's query reply (InfluxDB 1.x JSON) into a series.
#![no_main]
use bittap::report::input::read_reply;
use bittap::report::Builder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut b = Builder::default();
    for kind in 0..3 {
        let _ = read_reply(&json, "fuzz", kind, &mut b);
    }
    if let Ok(s) = b.build() {
        let shifts = bittap::report::shift::detect(&s, &Default::default());
        let _ = bittap::report::summary::render(&s, &shifts);
    }
});
