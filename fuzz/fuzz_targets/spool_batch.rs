//! The spool's on-disk batches: file names (sequence and time) and batch contents as a
//! restarted spooler finds them, half-written and foreign files included.
#![no_main]
use bittap::sink::spool::{parse_batch_name, read_batch, recover_dir};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (name, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    let _ = parse_batch_name(&name);
    let Ok(dir) = tempfile::tempdir_in(std::env::temp_dir()) else {
        return;
    };
    // A name that is a path of its own (a slash, "..") is not something a directory holds.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return;
    }
    if std::fs::write(dir.path().join(&*name), body).is_err() {
        return;
    }
    if let Ok(batches) = recover_dir(dir.path()) {
        for p in batches {
            let _ = read_batch(&p);
        }
    }
});
