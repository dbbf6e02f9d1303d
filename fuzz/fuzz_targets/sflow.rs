//! The sFlow collector: a sequence of datagrams (each after a 1-byte length header, see
//! `chunks`), decoded and fed to a pipeline as an exchange point's agents would send them.
//! Nothing may panic, and the collector's per-agent state stays bounded.
#![no_main]
use std::sync::{Arc, OnceLock};

use bittap::classify::Rules;
use bittap::engine::{Config, Engine};
use bittap::sflow::Collector;
use libfuzzer_sys::fuzz_target;

fn rules() -> Arc<Rules> {
    static R: OnceLock<Arc<Rules>> = OnceLock::new();
    R.get_or_init(|| Arc::new(Rules::builtin().expect("built-in rules")))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut p = Engine::new(Config::default(), rules());
    let mut c = Collector::new(None);
    let mut ts = 1_717_149_600_000_000_000i64;
    for (h, d) in bittap_fuzz::chunks(data, 1) {
        ts += i64::from(h[0]) * 1_000_000_000;
        c.datagram(ts, d, &mut p);
    }
    let _ = c.tracked();
    let _ = c.take_rows();
    let _ = p.finish();
});
