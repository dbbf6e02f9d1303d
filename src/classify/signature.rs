//! Byte signatures of `rules/signatures.toml` at the start of a stream or datagram (the
//! peer-wire handshake, LSD, the UDP tracker connect; TLS, SSH and the other openings that say
//! "not BitTorrent"), and the reassembled stream prefix they are matched against.

use super::rules::{Rules, Transport, MAX_EXTENT};
use super::{Answer, Class, Evidence, Method};

/// The first `MAX_EXTENT` bytes of one direction of a TCP stream, in sequence order.
///
/// The stream start is known from the SYN; without one, the lowest sequence number seen so
/// far is taken as the start, and the buffer shifts when an earlier segment turns up (an
/// out-of-order or retransmitted first segment).
#[derive(Clone)]
pub struct StreamPrefix {
    buf: [u8; MAX_EXTENT],
    have: u128,
    base: u32,
    state: Anchor,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Anchor {
    None,
    Tentative,
    Syn,
}

impl Default for StreamPrefix {
    fn default() -> Self {
        StreamPrefix {
            buf: [0; MAX_EXTENT],
            have: 0,
            base: 0,
            state: Anchor::None,
        }
    }
}

fn span_mask(start: usize, len: usize) -> u128 {
    let ones = if len >= 128 {
        u128::MAX
    } else {
        (1u128 << len) - 1
    };
    ones << start
}

impl StreamPrefix {
    pub fn syn(&mut self, seq: u32) {
        if self.state == Anchor::None {
            self.base = seq.wrapping_add(1);
            self.state = Anchor::Syn;
        }
    }

    pub fn anchored(&self) -> bool {
        self.state == Anchor::Syn
    }

    pub fn add(&mut self, seq: u32, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.state == Anchor::None {
            self.base = seq;
            self.state = Anchor::Tentative;
        }
        let mut rel = seq.wrapping_sub(self.base) as i32;
        if rel < 0 {
            let back = rel.unsigned_abs() as usize;
            if self.state == Anchor::Tentative && back < MAX_EXTENT {
                // An earlier segment: it becomes the start of the stream.
                self.buf.copy_within(0..MAX_EXTENT - back, back);
                self.have <<= back;
                self.base = seq;
                rel = 0;
            } else if back < data.len() {
                data = &data[back..];
                rel = 0;
            } else {
                return;
            }
        }
        let rel = rel as usize;
        if rel >= MAX_EXTENT {
            return;
        }
        let n = data.len().min(MAX_EXTENT - rel);
        self.buf[rel..rel + n].copy_from_slice(&data[..n]);
        self.have |= span_mask(rel, n);
    }

    /// The bytes known from the stream start without a gap.
    pub fn contiguous(&self) -> &[u8] {
        let n = (!self.have).trailing_zeros() as usize;
        &self.buf[..n.min(MAX_EXTENT)]
    }
}

/// How the bytes handed to the matcher end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// More bytes may follow (a stream prefix still filling).
    More,
    /// Nothing follows (a whole datagram, or a full prefix buffer).
    Complete,
    /// The capture's snap length cut the bytes here: a signature whose visible part matches,
    /// over at least `MIN_CUT_MATCH` bytes, counts as matched.
    Cut,
}

/// Fewest bytes of a signature that must be visible to match a payload cut by the snap length.
pub const MIN_CUT_MATCH: usize = 8;

/// Matches the signatures of one transport against the start of what one side sent.
pub fn match_signatures(rules: &Rules, transport: Transport, data: &[u8], end: End) -> Answer {
    for sig in rules.signatures.iter().filter(|s| s.transport == transport) {
        let sig_end = sig.offset + sig.bytes.len();
        let avail = data.len().min(sig_end);
        let seen = if avail > sig.offset {
            &data[sig.offset..avail]
        } else {
            &[][..]
        };
        if seen != &sig.bytes[..seen.len()] {
            continue;
        }
        let whole = avail == sig_end;
        let cut_match = end == End::Cut && seen.len() >= MIN_CUT_MATCH;
        if whole || cut_match {
            return match sig.class {
                Class::Bittorrent => {
                    Answer::bittorrent(sig.proto, Method::Signature, Evidence::Rule)
                }
                Class::Other => Answer::OTHER,
            };
        }
        if end == End::More {
            // This signature could still match, and it outranks every later one.
            return Answer::Undecided;
        }
    }
    Answer::NotThis
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Proto;

    const HANDSHAKE: &[u8] =
        b"\x13BitTorrent protocol\0\0\0\0\0\x10\0\x05aaaaaaaaaaaaaaaaaaaa-TR3000-bbbbbbbbbbbb";

    fn rules() -> Rules {
        Rules::builtin().expect("rules")
    }

    fn peerwire() -> Answer {
        Answer::bittorrent(Proto::Peerwire, Method::Signature, Evidence::Rule)
    }

    #[test]
    fn signature_table() {
        let r = rules();
        let cases: &[(&[u8], Transport, End, Answer)] = &[
            (HANDSHAKE, Transport::Tcp, End::More, peerwire()),
            (b"\x13Bit", Transport::Tcp, End::More, Answer::Undecided),
            (b"\x13Bit", Transport::Tcp, End::Complete, Answer::NotThis),
            (
                b"\x13BitTorrent protocoX",
                Transport::Tcp,
                End::More,
                Answer::NotThis,
            ),
            (
                b"\x16\x03\x01\x02\x00",
                Transport::Tcp,
                End::More,
                Answer::OTHER,
            ),
            (
                b"SSH-2.0-OpenSSH_9.2\r\n",
                Transport::Tcp,
                End::More,
                Answer::OTHER,
            ),
            // The handshake bytes mean nothing on UDP without uTP framing.
            (HANDSHAKE, Transport::Udp, End::Complete, Answer::NotThis),
            // Cut by a snap length: eight matching bytes are enough, fewer are not.
            (b"\x13BitTorr", Transport::Tcp, End::Cut, peerwire()),
            (b"\x13BitTor", Transport::Tcp, End::Cut, Answer::NotThis),
            (b"\x13BitTorX", Transport::Tcp, End::Cut, Answer::NotThis),
            (
                b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n",
                Transport::Udp,
                End::Complete,
                Answer::bittorrent(Proto::Lsd, Method::Signature, Evidence::Rule),
            ),
            (
                b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00\x12\x34\x56\x78",
                Transport::Udp,
                End::Complete,
                Answer::bittorrent(Proto::TrackerUdp, Method::Signature, Evidence::Rule),
            ),
        ];
        for (data, t, end, want) in cases {
            assert_eq!(
                match_signatures(&r, *t, data, *end),
                *want,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn prefix_reassembles_reordered_segments() {
        let mut p = StreamPrefix::default();
        p.add(120, b"world");
        assert_eq!(p.contiguous(), b"world");
        // An earlier segment of a stream whose start was not seen becomes its start.
        p.add(115, b"hello");
        assert_eq!(p.contiguous(), b"helloworld");
        // With the SYN seen, bytes before the start are cut off.
        let mut p = StreamPrefix::default();
        p.syn(99);
        assert!(p.anchored());
        p.add(98, b"xyab");
        assert_eq!(p.contiguous(), b"ab");
        // A gap stops the contiguous bytes.
        p.add(104, b"ef");
        assert_eq!(p.contiguous(), b"ab");
        p.add(102, b"cd");
        assert_eq!(p.contiguous(), b"abcdef");
    }
}
