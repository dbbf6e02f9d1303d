//! pcapng blocks after a section header: interface descriptions with any options
//! (if_tsresol, if_tsoffset), packets of every block type, timestamps anywhere.
#![no_main]
use std::path::Path;

use bittap::capture::CaptureFile;
use libfuzzer_sys::fuzz_target;

/// A little-endian section header block (28 bytes).
const SHB: [u8; 28] = [
    0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
];

fuzz_target!(|data: &[u8]| {
    // Inputs that are not pcapng already get a section header in front.
    let mut bytes = Vec::with_capacity(data.len() + SHB.len());
    if !data.starts_with(&SHB[..4]) {
        bytes.extend_from_slice(&SHB);
    }
    bytes.extend_from_slice(data);
    let Ok(mut f) = CaptureFile::from_reader(
        Path::new("fuzz.pcapng"),
        Box::new(std::io::Cursor::new(bytes)),
    ) else {
        return;
    };
    let mut last = None;
    while let Ok(true) = f.advance() {
        let p = f.current().expect("a packet after advance");
        assert!(p.data.len() <= p.wire_len as usize);
        assert!((bittap::capture::TS_MIN..=bittap::capture::TS_MAX).contains(&p.ts_ns));
        last = Some(p.ts_ns);
    }
    let _ = last;
    let _ = f.clamp_warning().map(|w| w.to_string());
});
