//! Several capture files merged into one stream in time order: the input is split into up
//! to four files at 0xff 0xfe 0xfd 0xfc markers.
#![no_main]
use bittap::capture::MergedReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir_in(std::env::temp_dir()) else {
        return;
    };
    let mut paths = Vec::new();
    let mut rest = data;
    for i in 0..4 {
        let end = rest
            .windows(4)
            .position(|w| w == [0xff, 0xfe, 0xfd, 0xfc])
            .unwrap_or(rest.len());
        let p = dir.path().join(format!("{i}.pcap"));
        if std::fs::write(&p, &rest[..end]).is_err() {
            return;
        }
        paths.push(p);
        rest = rest.get(end + 4..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
    }
    let Ok(mut r) = MergedReader::new(&paths) else {
        return;
    };
    while r.advance() {
        let p = r.packet().expect("a packet after advance");
        // Each file is read in its own order (time may go backwards inside one), so only
        // the bounds hold for every packet.
        assert!((bittap::capture::TS_MIN..=bittap::capture::TS_MAX).contains(&p.ts_ns));
        assert!(p.data.len() <= p.wire_len as usize);
    }
    for e in &r.problems {
        // Every problem names its file.
        assert!(e.to_string().contains(".pcap"));
    }
});
