//! `decode` over every link type (the first byte picks it) and whatever tunnels the bytes
//! lead into.
#![no_main]
use bittap::decode::{decode, Decoded};
use bittap_fuzz::LINKTYPES;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let lt = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    if let Decoded::Ip(p) = decode(lt, frame) {
        // The payload is a view into the frame.
        let (start, end) = (
            frame.as_ptr() as usize,
            frame.as_ptr() as usize + frame.len(),
        );
        let ps = p.payload.as_ptr() as usize;
        assert!(p.payload.is_empty() || (ps >= start && ps + p.payload.len() <= end));
    }
});
