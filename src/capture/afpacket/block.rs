//! Walking a TPACKET_V3 block in place: every header, offset and length read from a byte
//! slice of the block and checked against it.

use super::ETHERNET;
use crate::capture::RawPacket;

// Offsets in `struct tpacket_block_desc` (version 3 header) and `struct tpacket3_hdr`.
pub(super) const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST: usize = 16;
pub(super) const BLK_HDR_LEN: usize = 48;
const PKT_NEXT: usize = 0;
const PKT_SEC: usize = 4;
const PKT_NSEC: usize = 8;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_VLAN_TCI: usize = 32;
const PKT_VLAN_TPID: usize = 36;
pub(super) const PKT_HDR_LEN: usize = 48;
/// `sockaddr_ll` follows the frame header (TPACKET_ALIGN(sizeof(tpacket3_hdr)) = 48);
/// `sll_pkttype` is its byte 10.
const SLL_PKTTYPE: usize = PKT_HDR_LEN + 10;
const _: () = assert!(std::mem::size_of::<libc::tpacket3_hdr>() == PKT_HDR_LEN);
const _: () = assert!(std::mem::size_of::<libc::tpacket_block_desc>() == BLK_HDR_LEN);

pub(super) struct Walked {
    pub(super) frames: usize,
    pub(super) malformed: u32,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// The frames of one TPACKET_V3 block, every header and slice bounds-checked against the
/// block: a frame that does not fit ends the walk of the block (counted as malformed).
pub(super) fn walk_block(
    block: &[u8],
    loopback: bool,
    scratch: &mut Vec<u8>,
    f: &mut impl FnMut(&RawPacket<'_>),
) -> Walked {
    let mut w = Walked {
        frames: 0,
        malformed: 0,
    };
    let (Some(num), Some(first)) = (u32_at(block, BLK_NUM_PKTS), u32_at(block, BLK_FIRST)) else {
        w.malformed = 1;
        return w;
    };
    let mut off = first as usize;
    for i in 0..num {
        let Some(frame) = frame_at(block, off) else {
            w.malformed += 1;
            return w;
        };
        if !(loopback && frame.pkttype == libc::PACKET_OUTGOING) {
            let data = frame.data;
            let (data, wire_len) = match frame.vlan {
                Some((tpid, tci)) if data.len() >= 12 => {
                    // Put the tag the kernel took off back in, as libpcap does.
                    scratch.clear();
                    scratch.extend_from_slice(&data[..12]);
                    scratch.extend_from_slice(&tpid.to_be_bytes());
                    scratch.extend_from_slice(&tci.to_be_bytes());
                    scratch.extend_from_slice(&data[12..]);
                    (scratch.as_slice(), frame.wire_len.saturating_add(4))
                }
                _ => (data, frame.wire_len),
            };
            f(&RawPacket {
                ts_ns: frame.ts_ns,
                wire_len,
                linktype: ETHERNET,
                data,
            });
            w.frames += 1;
        }
        if i + 1 < num {
            if frame.next == 0 {
                w.malformed += 1;
                return w;
            }
            off = match off.checked_add(frame.next as usize) {
                Some(o) => o,
                None => {
                    w.malformed += 1;
                    return w;
                }
            };
        }
    }
    w
}

struct Frame<'a> {
    next: u32,
    ts_ns: i64,
    wire_len: u32,
    pkttype: u8,
    vlan: Option<(u16, u16)>,
    data: &'a [u8],
}

fn frame_at(block: &[u8], off: usize) -> Option<Frame<'_>> {
    if off < BLK_HDR_LEN {
        return None;
    }
    let hdr = block.get(off..off.checked_add(SLL_PKTTYPE + 1)?)?;
    let snaplen = u32_at(hdr, PKT_SNAPLEN)? as usize;
    let mac = u16_at(hdr, PKT_MAC)? as usize;
    let start = off.checked_add(mac)?;
    let data = block.get(start..start.checked_add(snaplen)?)?;
    let status = u32_at(hdr, PKT_STATUS)?;
    let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tci = u32_at(hdr, PKT_VLAN_TCI).unwrap_or(0) as u16;
        let tpid = match u16_at(hdr, PKT_VLAN_TPID) {
            Some(t) if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 && t != 0 => t,
            _ => 0x8100,
        };
        (tpid, tci)
    });
    let (ts, _) = crate::capture::clamp_ts(
        i128::from(u32_at(hdr, PKT_SEC)?) * 1_000_000_000 + i128::from(u32_at(hdr, PKT_NSEC)?),
    );
    Some(Frame {
        next: u32_at(hdr, PKT_NEXT)?,
        ts_ns: ts,
        wire_len: u32_at(hdr, PKT_LEN)?,
        pkttype: hdr[SLL_PKTTYPE],
        vlan,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::afpacket::bpf::tests::{udp4, udp6};

    struct Fake {
        ts: (u32, u32),
        len: u32,
        status: u32,
        pkttype: u8,
        vlan: (u16, u16),
        data: Vec<u8>,
    }

    fn fake(data: &[u8]) -> Fake {
        Fake {
            ts: (1_700_000_000, 5),
            len: data.len() as u32 + 100,
            status: 0,
            pkttype: libc::PACKET_HOST,
            vlan: (0, 0),
            data: data.to_vec(),
        }
    }

    /// A block as the kernel lays it out: descriptor, then frames at 16-aligned offsets.
    fn block(frames: &[Fake]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, BLK_STATUS, libc::TP_STATUS_USER);
        put32(&mut b, BLK_NUM_PKTS, frames.len() as u32);
        put32(&mut b, BLK_FIRST, BLK_HDR_LEN as u32);
        let mut off = BLK_HDR_LEN;
        for (i, f) in frames.iter().enumerate() {
            let mac = 80usize;
            let next = (mac + f.data.len()).next_multiple_of(16);
            let last = i + 1 == frames.len();
            put32(&mut b, off + PKT_NEXT, if last { 0 } else { next as u32 });
            put32(&mut b, off + PKT_SEC, f.ts.0);
            put32(&mut b, off + PKT_NSEC, f.ts.1);
            put32(&mut b, off + PKT_SNAPLEN, f.data.len() as u32);
            put32(&mut b, off + PKT_LEN, f.len);
            put32(&mut b, off + PKT_STATUS, f.status);
            b[off + PKT_MAC..off + PKT_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
            put32(&mut b, off + PKT_VLAN_TCI, u32::from(f.vlan.1));
            b[off + PKT_VLAN_TPID..off + PKT_VLAN_TPID + 2]
                .copy_from_slice(&f.vlan.0.to_ne_bytes());
            b[off + SLL_PKTTYPE] = f.pkttype;
            b[off + mac..off + mac + f.data.len()].copy_from_slice(&f.data);
            off += next;
        }
        b
    }

    fn walk(b: &[u8], loopback: bool) -> (Vec<(i64, u32, Vec<u8>)>, u32) {
        let mut got = Vec::new();
        let mut scratch = Vec::new();
        let w = walk_block(b, loopback, &mut scratch, &mut |p: &RawPacket<'_>| {
            assert_eq!(p.linktype, ETHERNET);
            got.push((p.ts_ns, p.wire_len, p.data.to_vec()));
        });
        assert_eq!(w.frames, got.len());
        (got, w.malformed)
    }

    #[test]
    fn block_walk_hands_out_each_frame_in_place() {
        let a = udp4([1; 4], [2; 4], 1, 2);
        let b = udp6([3; 16], [4; 16]);
        let (got, bad) = walk(&block(&[fake(&a), fake(&b)]), false);
        assert_eq!(bad, 0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (1_700_000_000_000_000_005, a.len() as u32 + 100, a));
        assert_eq!(got[1].2, b);
    }

    #[test]
    fn block_walk_puts_stripped_vlan_tags_back() {
        let a = udp4([1; 4], [2; 4], 1, 2);
        let mut f = fake(&a);
        f.status = libc::TP_STATUS_VLAN_VALID;
        f.vlan = (0, 0x0064);
        let mut q = fake(&a);
        q.status = libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID;
        q.vlan = (0x88a8, 7);
        let (got, _) = walk(&block(&[f, q]), false);
        let mut want = a[..12].to_vec();
        want.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        want.extend_from_slice(&a[12..]);
        assert_eq!(got[0].2, want);
        assert_eq!(got[0].1, a.len() as u32 + 104);
        assert_eq!(&got[1].2[12..16], &[0x88, 0xa8, 0, 7]);
    }

    #[test]
    fn block_walk_skips_loopbacks_outgoing_copies() {
        let a = udp4([127, 0, 0, 1], [127, 0, 0, 1], 1, 2);
        let mut out = fake(&a);
        out.pkttype = libc::PACKET_OUTGOING;
        let blk = block(&[out, fake(&a)]);
        assert_eq!(walk(&blk, true).0.len(), 1);
        // On another interface an outgoing frame is traffic too.
        assert_eq!(walk(&blk, false).0.len(), 2);
    }

    #[test]
    fn hostile_block_headers_stay_inside_the_block() {
        let a = udp4([1; 4], [2; 4], 1, 2);
        let good = block(&[fake(&a), fake(&a), fake(&a)]);
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        let second = BLK_HDR_LEN + (80 + a.len()).next_multiple_of(16);
        // A snap length past the end of the block: the frames before it only.
        let mut b = good.clone();
        put32(&mut b, second + PKT_SNAPLEN, u32::MAX);
        assert_eq!(
            walk(&b, false),
            (
                vec![(1_700_000_000_000_000_005, a.len() as u32 + 100, a.clone())],
                1
            )
        );
        // A MAC offset past the end.
        let mut b = good.clone();
        b[second + PKT_MAC..second + PKT_MAC + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert_eq!(walk(&b, false).0.len(), 1);
        // More frames claimed than there are, a next offset of 0, or one out of the block.
        let mut b = good.clone();
        put32(&mut b, BLK_NUM_PKTS, u32::MAX);
        assert_eq!(walk(&b, false), (walk(&good, false).0, 1));
        let mut b = good.clone();
        put32(&mut b, BLK_HDR_LEN + PKT_NEXT, 0);
        assert_eq!(walk(&b, false).0.len(), 1);
        let mut b = good.clone();
        put32(&mut b, BLK_HDR_LEN + PKT_NEXT, u32::MAX);
        assert_eq!(walk(&b, false).0.len(), 1);
        // A first frame inside the block descriptor, or past the end.
        for first in [0, 4096 - 8, u32::MAX] {
            let mut b = good.clone();
            put32(&mut b, BLK_FIRST, first);
            assert_eq!(walk(&b, false), (vec![], 1));
        }
        // A block too short for its descriptor.
        assert_eq!(walk(&good[..10], false), (vec![], 1));
    }
}
