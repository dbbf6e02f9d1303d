//! Helpers shared by the fuzz targets: how a target's bytes become frames, segments and files.

use bittap::decode::linktype::*;

/// Every link type the decoder has, and one it has not (147).
pub const LINKTYPES: [u32; 15] = [
    NULL, ETHERNET, RAW, DLT_RAW_12, DLT_RAW_14, LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2, PPP,
    PPP_HDLC, C_HDLC, PPI, 147,
];

/// Splits `data` into chunks, each preceded by a header of `hdr` bytes and a one-byte length
/// (the last chunk takes what is left). Yields (header, chunk).
pub fn chunks(mut data: &[u8], hdr: usize) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < hdr + 1 {
            return None;
        }
        let (h, rest) = data.split_at(hdr);
        let len = usize::from(rest[0]).min(rest.len() - 1);
        let chunk = &rest[1..1 + len];
        data = &rest[1 + len..];
        Some((h, chunk))
    })
}

/// A frame sequence: 8 bytes of start time (i64, little-endian), then per frame a 4-byte
/// header — link type index, time step, extra wire bytes, length — and the frame.
pub struct Frame<'a> {
    pub ts_ns: i64,
    pub linktype: u32,
    pub wire_len: u32,
    pub data: &'a [u8],
}

pub fn frames(data: &[u8]) -> Vec<Frame<'_>> {
    let Some((start, mut rest)) = data.split_first_chunk::<8>() else {
        return Vec::new();
    };
    let mut ts = i64::from_le_bytes(*start);
    let mut out = Vec::new();
    while let Some((h, r)) = rest.split_first_chunk::<4>() {
        let len = usize::from(h[3]).min(r.len());
        let (frame, r) = r.split_at(len);
        rest = r;
        // Steps of a quarter second, either way; a few jump to the ends of time.
        ts = match h[1] {
            0x7f => i64::MAX,
            0x80 => i64::MIN,
            0x7e => 0,
            s => ts.saturating_add(i64::from(s as i8) * 250_000_000),
        };
        out.push(Frame {
            ts_ns: ts,
            linktype: LINKTYPES[usize::from(h[0]) % LINKTYPES.len()],
            wire_len: (frame.len() as u32).saturating_add(u32::from(h[2]) * 16),
            data: frame,
        });
    }
    out
}
