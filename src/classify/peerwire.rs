//! Peer-wire message framing (BEP 3, BEP 6, BEP 10) for flows joined mid-stream: the capture
//! began after the handshake, or the handshake's direction is missing.
//!
//! A peer-wire stream after the handshake is a sequence of `<u32 length><u8 id><payload>`
//! messages whose lengths are fixed per id. The tracker follows the stream by sequence number
//! from a segment that starts on a message boundary and confirms after several whole messages
//! in a row; one message that breaks the rules while in step says it is not peer wire.

use super::signature::MIN_CUT_MATCH;
use super::{Answer, Evidence, Method, Packet, Probe, Proto, Rules};

/// Whole messages in a row needed to call a stream peer wire on framing alone.
pub const CONFIRM_MESSAGES: u8 = 3;
/// Largest `piece` block accepted (clients request 16 KiB; some allow up to 128 KiB).
const MAX_BLOCK: u32 = 128 * 1024;
/// Largest bitfield (a torrent of 2^21 pieces) and extended message accepted.
const MAX_BITFIELD: u32 = 1 << 18;
const MAX_EXTENDED: u32 = 1 << 20;

/// What one message header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    /// A message of a known id with a length allowed for it; `extended_handshake` marks a
    /// BEP 10 handshake (id 20, extended id 0, a bencoded dictionary).
    Valid {
        len: u32,
        extended_handshake: bool,
    },
    Invalid,
    /// Fewer than 5 bytes (or 6 for id 20) of header available.
    Short,
}

/// Checks the message header at the start of `b` (length prefix and id).
pub fn message(b: &[u8]) -> Message {
    let Some(h) = b.get(0..4) else {
        return Message::Short;
    };
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if len == 0 {
        return Message::KeepAlive;
    }
    let Some(&id) = b.get(4) else {
        return Message::Short;
    };
    let ok = match id {
        // choke, unchoke, interested, not interested; BEP 6 have all, have none
        0..=3 | 14 | 15 => len == 1,
        // have; BEP 6 suggest piece, allowed fast
        4 | 13 | 17 => len == 5,
        // bitfield
        5 => (2..=MAX_BITFIELD).contains(&len),
        // request, cancel; BEP 6 reject request
        6 | 8 | 16 => len == 13,
        // piece: index, begin, block
        7 => (10..=9 + MAX_BLOCK).contains(&len),
        // port (BEP 5)
        9 => len == 3,
        // extended (BEP 10)
        20 => (2..=MAX_EXTENDED).contains(&len),
        // BEP 52 hash request and hash reject (pieces root, base layer, index, length, proof
        // layers), hashes (the same, then 32-byte hashes)
        21 | 23 => len == 49,
        22 => len >= 49 && (len - 49) % 32 == 0 && len <= 49 + 32 * 1024,
        _ => false,
    };
    if !ok {
        return Message::Invalid;
    }
    let extended_handshake = if id == 20 {
        match b.get(5..7) {
            Some(&[0, b'd']) => true,
            Some(_) => false,
            None if b.len() == 5 => return Message::Short,
            None => false,
        }
    } else {
        false
    };
    Message::Valid {
        len,
        extended_handshake,
    }
}

/// Follows one direction of a TCP stream message by message.
#[derive(Debug, Clone, Copy, Default)]
pub struct FramingTracker {
    /// Sequence number where the next message starts, once in step.
    next: Option<u32>,
    messages: u8,
    failed: bool,
}

impl FramingTracker {
    /// Feeds one segment (`seq` of its first byte). `cut` says the capture cut the segment.
    /// Several whole messages in a row confirm peer wire on framing alone (heuristic); a BEP 10
    /// extension handshake confirms it by signature.
    pub fn on_segment(&mut self, seq: u32, data: &[u8], cut: bool) -> Answer {
        if self.failed {
            return Answer::NotThis;
        }
        if data.is_empty() {
            return Answer::Undecided;
        }
        let mut off = match self.next {
            Some(n) if n == seq => 0usize,
            Some(n) => {
                let ahead = n.wrapping_sub(seq) as i32;
                if ahead > 0 && (ahead as usize) < data.len() {
                    // The segment holds the next boundary (a retransmission overlapping it).
                    ahead as usize
                } else if ahead > 0 {
                    return Answer::Undecided; // inside the current message's body
                } else {
                    // Data missing before this segment: out of step until a segment starts
                    // on a boundary again.
                    self.next = None;
                    0
                }
            }
            None => 0,
        };
        let in_step = self.next.is_some();
        loop {
            let rest = &data[off..];
            if rest.is_empty() {
                self.next = Some(seq.wrapping_add(off as u32));
                break;
            }
            match message(rest) {
                Message::KeepAlive => off += 4,
                Message::Valid {
                    len,
                    extended_handshake,
                } => {
                    if extended_handshake {
                        return Answer::bittorrent(
                            Proto::Peerwire,
                            Method::Signature,
                            Evidence::ExtHandshake,
                        );
                    }
                    self.messages = self.messages.saturating_add(1);
                    let end = off as u64 + 4 + u64::from(len);
                    if end >= data.len() as u64 {
                        self.next = if cut {
                            None
                        } else {
                            Some(seq.wrapping_add(end as u32))
                        };
                        break;
                    }
                    off = end as usize;
                }
                Message::Short => {
                    // A header split across segments: lose step rather than guess.
                    self.next = None;
                    break;
                }
                Message::Invalid => {
                    if in_step || off > 0 {
                        self.failed = true;
                        return Answer::NotThis;
                    }
                    // Not on a boundary: wait for a segment that is.
                    self.messages = 0;
                    self.next = None;
                    break;
                }
            }
        }
        if self.messages >= CONFIRM_MESSAGES {
            Answer::bittorrent(Proto::Peerwire, Method::Heuristic, Evidence::Framing)
        } else {
            Answer::Undecided
        }
    }
}

impl Probe for FramingTracker {
    fn probe(&mut self, _: &Rules, pkt: &Packet<'_>) -> Answer {
        match pkt.tcp {
            Some(t) => self.on_segment(t.seq, pkt.payload, pkt.cut),
            None => Answer::NotThis,
        }
    }
}

/// The handshake (BEP 3) whose start the probes look for at the start of every segment.
pub const HANDSHAKE: &[u8] = b"\x13BitTorrent protocol";
/// The handshake's guard: its length byte and the protocol's name.
const HANDSHAKE_GUARD: &[u8] = b"\x13BitTorrent";

/// Whether a segment opens like the handshake (its length byte and the name `BitTorrent`)
/// but its 20-byte protocol string is wrong: a malformed handshake.
pub fn malformed_handshake(segment: &[u8]) -> bool {
    segment.len() >= HANDSHAKE.len()
        && segment.starts_with(HANDSHAKE_GUARD)
        && !segment.starts_with(HANDSHAKE)
}

/// The handshake at the start of a segment later in a stream (after an MSE exchange that
/// selected plaintext, or in a flow joined mid-stream); counts malformed handshakes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handshake {
    malformed: u32,
}

impl Probe for Handshake {
    fn probe(&mut self, _: &Rules, pkt: &Packet<'_>) -> Answer {
        let p = pkt.payload;
        if p.starts_with(HANDSHAKE)
            || (pkt.cut && p.len() >= MIN_CUT_MATCH && HANDSHAKE.starts_with(p))
        {
            return Answer::bittorrent(Proto::Peerwire, Method::Signature, Evidence::Handshake);
        }
        if malformed_handshake(p) {
            self.malformed = self.malformed.saturating_add(1);
        }
        Answer::NotThis
    }

    fn malformed(&self) -> u32 {
        self.malformed
    }
}

/// Most peers taken from one PEX message (BEP 11 allows 50 added per message).
const MAX_PEX_PEERS: usize = 200;
/// Longest segment searched for PEX messages: 50 IPv4 and 50 IPv6 peers with their flags and
/// the message's keys fit in well under this.
const MAX_PEX_SEGMENT: usize = 4096;

/// Calls `f` with each peer (IPv6 bytes, IPv4 mapped as `::ffff:a.b.c.d`; port) in the
/// `added` (6-byte records) and `added6` (18-byte records) strings of BEP 11 ut_pex messages
/// found in a plaintext peer-wire segment. Only strings wholly inside the segment whose length
/// is a multiple of the record size count. Does not allocate.
pub fn for_each_pex_peer(segment: &[u8], f: &mut dyn FnMut([u8; 16], u16)) {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    static ADDED: LazyLock<[(Finder<'static>, usize); 2]> =
        LazyLock::new(|| [(Finder::new(b"5:added"), 6), (Finder::new(b"6:added6"), 18)]);
    // PEX messages are small (at most 50 peers of each kind): bulk segments carry none.
    if segment.len() > MAX_PEX_SEGMENT {
        return;
    }
    let mut left = MAX_PEX_PEERS;
    for (finder, size) in ADDED.iter() {
        let (key, size) = (finder.needle(), *size);
        for at in finder.find_iter(segment) {
            let rest = &segment[at + key.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 6 || rest.get(digits) != Some(&b':') {
                continue;
            }
            let Ok(n) = std::str::from_utf8(&rest[..digits])
                .unwrap_or("x")
                .parse::<usize>()
            else {
                continue;
            };
            let Some(body) = rest.get(digits + 1..digits + 1 + n) else {
                continue;
            };
            if n % size != 0 {
                continue;
            }
            for c in body.chunks_exact(size) {
                if left == 0 {
                    return;
                }
                left -= 1;
                match super::peers::compact_endpoint(c) {
                    Some((ip, port)) if port != 0 => f(ip, port),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_headers() {
        let cases: &[(&[u8], Message)] = &[
            (&[0, 0, 0, 0], Message::KeepAlive),
            (
                &[0, 0, 0, 1, 2],
                Message::Valid {
                    len: 1,
                    extended_handshake: false,
                },
            ),
            (
                &[0, 0, 0, 5, 4, 0, 0, 0, 7],
                Message::Valid {
                    len: 5,
                    extended_handshake: false,
                },
            ),
            (
                &[0, 0, 0, 13, 6],
                Message::Valid {
                    len: 13,
                    extended_handshake: false,
                },
            ),
            (
                &[0, 0, 0x40, 0x09, 7],
                Message::Valid {
                    len: 0x4009,
                    extended_handshake: false,
                },
            ),
            (
                b"\x00\x00\x00\x20\x14\x00d1:md11:ut_metadatai2eee",
                Message::Valid {
                    len: 32,
                    extended_handshake: true,
                },
            ),
            (&[0, 0, 0, 2, 2], Message::Invalid), // interested with a body
            (&[0, 0, 0, 9, 7], Message::Invalid), // piece without a block
            (&[0, 0, 0, 1, 21], Message::Invalid), // unknown id
            (&[0x16, 0x03, 0x01, 0x02, 0x00], Message::Invalid), // TLS record
            (b"GET /", Message::Invalid),
            (&[0, 0, 0], Message::Short),
            (&[0, 0, 0, 1], Message::Short),
        ];
        for (b, want) in cases {
            assert_eq!(message(b), *want, "{b:02x?}");
        }
    }

    fn request(index: u32) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 13, 6];
        v.extend_from_slice(&index.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x40, 0]);
        v
    }

    #[test]
    fn requests_mid_stream_confirm_after_three() {
        let mut t = FramingTracker::default();
        let mut seq = 1000u32;
        for i in 0..2 {
            let m = request(i);
            assert_eq!(t.on_segment(seq, &m, false), Answer::Undecided);
            seq += m.len() as u32;
        }
        let m = request(2);
        assert_eq!(
            t.on_segment(seq, &m, false),
            Answer::bittorrent(Proto::Peerwire, Method::Heuristic, Evidence::Framing)
        );
    }

    #[test]
    fn piece_spanning_segments_is_followed() {
        let mut t = FramingTracker::default();
        // have, then a piece header with a 16 KiB block split over several segments, then
        // an unchoke at the right sequence number.
        let mut first = vec![0, 0, 0, 5, 4, 0, 0, 0, 1];
        first.extend_from_slice(&[0, 0, 0x40, 0x09, 7, 0, 0, 0, 1, 0, 0, 0, 0]);
        first.extend_from_slice(&[0xaa; 1000]);
        let mut seq = 5000u32;
        assert_eq!(t.on_segment(seq, &first, false), Answer::Undecided);
        seq += first.len() as u32;
        let remaining = 16384 - 1000;
        // Middle of the block: not a boundary, not checked.
        assert_eq!(t.on_segment(seq, &[0x55; 1448], false), Answer::Undecided);
        let boundary = 5000 + 9 + 4 + 0x4009;
        let _ = remaining;
        assert_eq!(
            t.on_segment(boundary, &[0, 0, 0, 1, 1], false),
            Answer::bittorrent(Proto::Peerwire, Method::Heuristic, Evidence::Framing)
        );
    }

    #[test]
    fn random_and_other_protocols_never_confirm() {
        let mut t = FramingTracker::default();
        let mut x = 0x1234_5678u32;
        for i in 0..20u32 {
            let seg: Vec<u8> = (0..1200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            assert_ne!(
                t.on_segment(i * 1200, &seg, false),
                Answer::bittorrent(Proto::Peerwire, Method::Heuristic, Evidence::Framing)
            );
        }
        let mut t = FramingTracker::default();
        assert_eq!(
            t.on_segment(0, b"\x16\x03\x03\x00\x30", false),
            Answer::Undecided
        );
        // In step, a broken message says no.
        let mut t = FramingTracker::default();
        let mut seg = request(1);
        seg.extend_from_slice(&[0, 0, 0, 9, 2]);
        assert_eq!(t.on_segment(0, &seg, false), Answer::NotThis);
    }

    #[test]
    fn pex_peers_are_read_from_added_strings() {
        // A ut_pex message (extended id 1) as libtorrent sends it: two IPv4 peers and one IPv6.
        let mut m = b"\x00\x00\x00\x00\x14\x01d5:added12:".to_vec();
        m.extend_from_slice(&[10, 77, 0, 12, 0x1a, 0xe1, 192, 0, 2, 7, 0xc8, 0xd5]);
        m.extend_from_slice(b"7:added.f2:\x00\x106:added618:");
        let mut v6 = [0u8; 18];
        v6[..4].copy_from_slice(&[0xfd, 0, 0, 0x77]);
        v6[15] = 0x13;
        v6[16..].copy_from_slice(&[0xd4, 0x31]);
        m.extend_from_slice(&v6);
        m.extend_from_slice(b"7:dropped0:e");
        let mut got = Vec::new();
        for_each_pex_peer(&m, &mut |ip, port| got.push((ip[12..].to_vec(), port)));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (vec![10, 77, 0, 12], 6881));
        assert_eq!(got[1], (vec![192, 0, 2, 7], 51413));
        assert_eq!(got[2].1, 54321);
        // Cut strings, lengths that are no multiple of the record, and no digits give nothing.
        for bad in [
            &b"d5:added12:\x0a\x4d\x00"[..],
            b"d5:added7:abcdefg",
            b"d5:added:xx",
            b"5:added99999999:",
        ] {
            let mut n = 0;
            for_each_pex_peer(bad, &mut |_, _| n += 1);
            assert_eq!(n, 0, "{bad:?}");
        }
    }

    #[test]
    fn v2_hash_messages_frame() {
        assert!(matches!(
            message(&[0, 0, 0, 49, 21]),
            Message::Valid { len: 49, .. }
        ));
        assert!(matches!(
            message(&[0, 0, 0, 49 + 64, 22]),
            Message::Valid { .. }
        ));
        assert_eq!(message(&[0, 0, 0, 50, 22]), Message::Invalid);
        assert_eq!(message(&[0, 0, 0, 48, 23]), Message::Invalid);
    }

    fn seg(payload: &[u8], cut: bool) -> Packet<'_> {
        Packet {
            transport: crate::classify::Transport::Tcp,
            dir: 0,
            tcp: Some(crate::decode::TcpInfo::default()),
            ports: (50000, 6881),
            payload,
            cut,
        }
    }

    #[test]
    fn handshakes_and_malformed_ones() {
        let r = Rules::builtin().expect("rules");
        let hs =
            b"\x13BitTorrent protocol\0\0\0\0\0\x10\0\x05aaaaaaaaaaaaaaaaaaaa-TR3000-bbbbbbbbbbbb";
        let yes = Answer::bittorrent(Proto::Peerwire, Method::Signature, Evidence::Handshake);
        let mut h = Handshake::default();
        assert_eq!(h.probe(&r, &seg(hs, false)), yes);
        assert_eq!(h.probe(&r, &seg(&hs[..8], true)), yes);
        assert_eq!(h.probe(&r, &seg(&hs[..7], true)), Answer::NotThis);
        assert_eq!(h.malformed(), 0);
        // The guard passes, the protocol string is wrong: counted, and no verdict.
        let cases: &[(&[u8], bool)] = &[
            (b"\x13BitTorrent protocoX\0\0\0\0\0\0\0\0", true),
            (b"\x13BitTorrent Protocol", true),
            (b"\x13BitTorrent pro", false),
            (b"\x13BitTorrenT protocol", false),
            (b"\x14BitTorrent protocol", false),
        ];
        for (i, &(p, counted)) in cases.iter().enumerate() {
            assert_eq!(malformed_handshake(p), counted, "case {i}");
            let before = h.malformed();
            assert_eq!(h.probe(&r, &seg(p, false)), Answer::NotThis, "case {i}");
            assert_eq!(h.malformed() - before, u32::from(counted), "case {i}");
        }
        assert_eq!(h.malformed(), 2);
    }
}
