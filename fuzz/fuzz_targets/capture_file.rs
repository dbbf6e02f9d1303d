//! One capture file of any format (pcap, pcapng, gzip of either), read to its end.
#![no_main]
use std::path::Path;

use bittap::capture::CaptureFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reader = Box::new(std::io::Cursor::new(data.to_vec()));
    let Ok(mut f) = CaptureFile::from_reader(Path::new("fuzz.pcap"), reader) else {
        return;
    };
    let mut n = 0u64;
    while let Ok(true) = f.advance() {
        let p = f.current().expect("a packet after advance");
        assert!(p.data.len() <= p.wire_len as usize);
        n += 1;
    }
    assert_eq!(n, f.packets());
    let _ = f.clamp_warning().map(|w| w.to_string());
});
