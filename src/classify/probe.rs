//! Per-flow probe state: the first bytes of each direction, reassembled, and the signature
//! matcher that runs over them.

use super::rules::{Rules, Transport, MAX_EXTENT};
use super::{Class, Method, Verdict};
use crate::decode::{TcpInfo, TCP_SYN};

/// What the probes say about a flow so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Decided: a BitTorrent verdict, or `Verdict::OTHER` when the payload shows another
    /// protocol.
    Certain(Verdict),
    /// Could still go either way.
    NotYet,
    /// Every probe has said no in every direction.
    NotMine,
}

/// Direction probing gives up after this many payload packets without a decision.
const MAX_PAYLOAD_PACKETS: u8 = 8;
/// A mismatch at the start of a stream whose start was not seen (no SYN) is trusted only
/// after this many payload segments, in case an earlier segment is still to come.
const UNANCHORED_PATIENCE: u8 = 3;

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
            let verdict = match sig.class {
                Class::Bittorrent => Verdict {
                    proto: sig.proto,
                    method: Method::Signature,
                },
                Class::Other => Verdict::OTHER,
            };
            return Answer::Certain(verdict);
        }
        if end == End::More {
            // This signature could still match, and it outranks every later one.
            return Answer::NotYet;
        }
    }
    Answer::NotMine
}

#[derive(Clone, Default)]
struct DirProbe {
    prefix: StreamPrefix,
    payload_packets: u8,
    done: bool,
}

/// Probe state of one flow being classified; lives in a [`ProbePool`].
#[derive(Clone, Default)]
pub struct ProbeState {
    dirs: [DirProbe; 2],
}

impl ProbeState {
    /// Feeds one packet; `dir` is 0 for packets from the flow's `src`, 1 for the reverse.
    /// `cut` says the capture's snap length cut the packet short.
    pub fn on_packet(
        &mut self,
        rules: &Rules,
        transport: Transport,
        dir: usize,
        tcp: Option<TcpInfo>,
        payload: &[u8],
        cut: bool,
    ) -> Answer {
        let d = &mut self.dirs[dir & 1];
        if let Some(t) = tcp {
            if t.flags & TCP_SYN != 0 {
                d.prefix.syn(t.seq);
            }
        }
        if !payload.is_empty() && !d.done {
            d.payload_packets = d.payload_packets.saturating_add(1);
            let answer = match (transport, tcp) {
                (Transport::Tcp, Some(t)) => {
                    d.prefix.add(t.seq, payload);
                    let data = d.prefix.contiguous();
                    let end = if data.len() >= rules.max_extent {
                        End::Complete
                    } else if cut {
                        End::Cut
                    } else {
                        End::More
                    };
                    let a = match_signatures(rules, transport, data, end);
                    if a == Answer::NotMine
                        && !d.prefix.anchored()
                        && d.payload_packets < UNANCHORED_PATIENCE
                    {
                        Answer::NotYet
                    } else {
                        a
                    }
                }
                _ => match match_signatures(
                    rules,
                    transport,
                    payload,
                    if cut { End::Cut } else { End::Complete },
                ) {
                    // Each datagram stands alone: a miss now says nothing of the next one.
                    Answer::NotMine => Answer::NotYet,
                    a => a,
                },
            };
            match answer {
                Answer::Certain(v) => return Answer::Certain(v),
                Answer::NotMine => d.done = true,
                Answer::NotYet => {
                    // A stream whose start matches part of a signature may come a byte at a
                    // time: it is followed until the prefix buffer is full. A gap before the
                    // start, or datagrams that match nothing, get a fixed budget.
                    let partial = transport == Transport::Tcp && !d.prefix.contiguous().is_empty();
                    if (d.payload_packets >= MAX_PAYLOAD_PACKETS && !partial)
                        || (transport == Transport::Udp && d.payload_packets >= 4)
                    {
                        d.done = true;
                    }
                }
            }
        }
        if self.dirs[0].done && self.dirs[1].done {
            Answer::NotMine
        } else {
            Answer::NotYet
        }
    }

    /// True once some direction has been probed to the end without a match.
    pub fn any_done(&self) -> bool {
        self.dirs[0].done || self.dirs[1].done
    }
}

/// Probe states of the flows still being classified, reused so that steady-state
/// classification allocates nothing.
#[derive(Default)]
pub struct ProbePool {
    states: Vec<ProbeState>,
    free: Vec<u32>,
}

impl ProbePool {
    pub fn alloc(&mut self) -> u32 {
        if let Some(i) = self.free.pop() {
            return i;
        }
        self.states.push(ProbeState::default());
        (self.states.len() - 1) as u32
    }

    pub fn get(&mut self, i: u32) -> &mut ProbeState {
        &mut self.states[i as usize]
    }

    pub fn release(&mut self, i: u32) {
        self.states[i as usize] = ProbeState::default();
        self.free.push(i);
    }

    /// Probe states in use.
    pub fn in_use(&self) -> usize {
        self.states.len() - self.free.len()
    }
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
        Answer::Certain(Verdict {
            proto: Proto::Peerwire,
            method: Method::Signature,
        })
    }

    #[test]
    fn signature_table() {
        let r = rules();
        let cases: &[(&[u8], Transport, End, Answer)] = &[
            (HANDSHAKE, Transport::Tcp, End::More, peerwire()),
            (b"\x13Bit", Transport::Tcp, End::More, Answer::NotYet),
            (b"\x13Bit", Transport::Tcp, End::Complete, Answer::NotMine),
            (
                b"\x13BitTorrent protocoX",
                Transport::Tcp,
                End::More,
                Answer::NotMine,
            ),
            (
                b"\x16\x03\x01\x02\x00",
                Transport::Tcp,
                End::More,
                Answer::Certain(Verdict::OTHER),
            ),
            (
                b"GET /index.html HTTP/1.1\r\n",
                Transport::Tcp,
                End::More,
                Answer::Certain(Verdict::OTHER),
            ),
            (b"GET /anno", Transport::Tcp, End::More, Answer::NotYet),
            (
                b"GET /announce?info_hash=%12",
                Transport::Tcp,
                End::More,
                Answer::Certain(Verdict {
                    proto: Proto::TrackerHttp,
                    method: Method::Signature,
                }),
            ),
            (
                b"SSH-2.0-OpenSSH_9.2\r\n",
                Transport::Tcp,
                End::More,
                Answer::Certain(Verdict::OTHER),
            ),
            // The handshake bytes mean nothing on UDP without uTP framing.
            (HANDSHAKE, Transport::Udp, End::Complete, Answer::NotMine),
            // Cut by a snap length: eight matching bytes are enough, fewer are not.
            (b"\x13BitTorr", Transport::Tcp, End::Cut, peerwire()),
            (b"\x13BitTor", Transport::Tcp, End::Cut, Answer::NotMine),
            (b"\x13BitTorX", Transport::Tcp, End::Cut, Answer::NotMine),
            (
                b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n",
                Transport::Udp,
                End::Complete,
                Answer::Certain(Verdict {
                    proto: Proto::Lsd,
                    method: Method::Signature,
                }),
            ),
            (
                b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00\x12\x34\x56\x78",
                Transport::Udp,
                End::Complete,
                Answer::Certain(Verdict {
                    proto: Proto::TrackerUdp,
                    method: Method::Signature,
                }),
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

    fn feed(r: &Rules, p: &mut ProbeState, syn: Option<u32>, segs: &[(u32, &[u8])]) -> Answer {
        if let Some(isn) = syn {
            p.on_packet(
                r,
                Transport::Tcp,
                0,
                Some(TcpInfo {
                    flags: TCP_SYN,
                    seq: isn,
                }),
                &[],
                false,
            );
        }
        let mut last = Answer::NotYet;
        for (seq, data) in segs {
            last = p.on_packet(
                r,
                Transport::Tcp,
                0,
                Some(TcpInfo {
                    flags: 0x18,
                    seq: *seq,
                }),
                data,
                false,
            );
        }
        last
    }

    #[test]
    fn handshake_split_and_reordered() {
        let r = rules();
        let base = 1000u32;
        for syn in [Some(base - 1), None] {
            // 1 + 67.
            let mut p = ProbeState::default();
            let a = feed(
                &r,
                &mut p,
                syn,
                &[(base, &HANDSHAKE[..1]), (base + 1, &HANDSHAKE[1..])],
            );
            assert_eq!(a, peerwire(), "1+67 syn={syn:?}");
            // 20 + 48, the second part first, then a retransmission of the first.
            let mut p = ProbeState::default();
            let a = feed(
                &r,
                &mut p,
                syn,
                &[(base + 20, &HANDSHAKE[20..]), (base, &HANDSHAKE[..20])],
            );
            assert_eq!(a, peerwire(), "20+48 reordered syn={syn:?}");
            // Byte by byte.
            let mut p = ProbeState::default();
            let segs: Vec<(u32, &[u8])> = (0..HANDSHAKE.len())
                .map(|i| (base + i as u32, &HANDSHAKE[i..i + 1]))
                .collect();
            assert_eq!(feed(&r, &mut p, syn, &segs), peerwire());
        }
    }

    #[test]
    fn sequence_wraps_around() {
        let r = rules();
        let mut p = ProbeState::default();
        let base = u32::MAX - 5;
        let a = feed(
            &r,
            &mut p,
            Some(base - 1),
            &[
                (base, &HANDSHAKE[..10]),
                (base.wrapping_add(10), &HANDSHAKE[10..]),
            ],
        );
        assert_eq!(a, peerwire());
    }

    #[test]
    fn mismatch_without_syn_waits_for_earlier_segments() {
        let r = rules();
        let mut p = ProbeState::default();
        // Mid-stream bytes first: not trusted as the stream start at once.
        let a = feed(
            &r,
            &mut p,
            None,
            &[(5000, b"\x00\x00\x40\x09\x07random piece data")],
        );
        assert_eq!(a, Answer::NotYet);
        // With the SYN seen, a non-matching start is final for that direction.
        let mut p = ProbeState::default();
        feed(
            &r,
            &mut p,
            Some(99),
            &[(100, b"\x8e\x12random looking bytes of an encrypted stream")],
        );
        assert!(p.any_done());
    }

    #[test]
    fn pool_reuses_slots() {
        let mut pool = ProbePool::default();
        let a = pool.alloc();
        let b = pool.alloc();
        pool.release(a);
        assert_eq!(pool.alloc(), a);
        assert_ne!(a, b);
        assert_eq!(pool.in_use(), 2);
    }
}
