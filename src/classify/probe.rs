//! Per-flow probe state: the first bytes of each direction, reassembled, and the signature
//! matcher that runs over them.

use super::mse::{Mse, MseTracker, Segment};
use super::peerwire::{Framing, FramingTracker};
use super::rules::{Rules, Transport, MAX_EXTENT};
use super::utp::{self, UtpAnswer, UtpTracker};
use super::{http, krpc, Class, Evidence, Method, Proto, Verdict};
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
/// Datagrams per direction probed before giving up on confirming uTP.
const MAX_UDP_PACKETS: u8 = 8;
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
    framing: FramingTracker,
    payload_packets: u8,
    /// The stream-start signatures have all said no.
    signatures_done: bool,
    framing_done: bool,
    done: bool,
    /// The first segment was an HTTP response's headers alone.
    http_body_next: bool,
}

/// Probe state of one flow being classified; lives in a [`ProbePool`].
#[derive(Clone, Default)]
pub struct ProbeState {
    dirs: [DirProbe; 2],
    utp: UtpTracker,
    mse: MseTracker,
    tracker: TrackerTie,
    /// What proved the last `Certain` answer.
    evidence: Evidence,
}

/// BEP 15 ties a UDP tracker conversation together: a request's transaction id comes back in
/// the response, and the connection id handed out by a connect response is sent with every
/// later request. Two datagrams tied this way (a request and its response in opposite
/// directions, a connect response and a request using its id, or two requests of one
/// connection with different transaction ids) are proof; either one alone, or a datagram and
/// its own retry, is only a shape.
#[derive(Clone, Copy, Default)]
struct TrackerTie {
    /// Last request per direction: (connection id, transaction id).
    request: [Option<([u8; 8], [u8; 4])>; 2],
    /// Connection id from a connect response, per direction it was sent in.
    granted: [Option<[u8; 8]>; 2],
    /// Transaction id of the last response per direction.
    response_tid: [Option<[u8; 4]>; 2],
}

impl TrackerTie {
    /// Feeds one datagram already known to be tracker-shaped; true when it ties up.
    fn on_datagram(&mut self, dir: usize, d: &[u8]) -> bool {
        let other = dir ^ 1;
        let take8 = |at: usize| {
            d.get(at..at + 8)
                .map(|b| <[u8; 8]>::try_from(b).unwrap_or_default())
        };
        let take4 = |at: usize| {
            d.get(at..at + 4)
                .map(|b| <[u8; 4]>::try_from(b).unwrap_or_default())
        };
        let action_req = take4(8).map(u32::from_be_bytes);
        if matches!(action_req, Some(1 | 2)) {
            if let (Some(cid), Some(tid)) = (take8(0), take4(12)) {
                // A retry repeats its transaction id: only a request with a new one, on the
                // same connection, ties with the last.
                // A DNS message on an unusual port repeats its header where BEP 15 has the
                // connection id: one question and no answers (`00 01 00 00` at 4..8) is a
                // connection id of a chance below 2^-32, so such requests tie no pair.
                let dns_header = cid[4..8] == [0, 1, 0, 0];
                let tied = self.granted[other] == Some(cid)
                    || self.request[dir].is_some_and(|(c, t)| c == cid && t != tid && !dns_header)
                    || self.response_tid[other] == Some(tid);
                self.request[dir] = Some((cid, tid));
                if tied {
                    return true;
                }
            }
        }
        if let (Some(action), Some(tid)) = (take4(0).map(u32::from_be_bytes), take4(4)) {
            if action <= 3 {
                if action == 0 && d.len() == 16 {
                    self.granted[dir] = take8(8);
                }
                self.response_tid[dir] = Some(tid);
                if self.request[other].is_some_and(|(_, t)| t == tid) {
                    return true;
                }
            }
        }
        false
    }
}

/// Most bytes a BitTorrent initiator sends before the responder's first byte. The responder
/// answers the handshake (68 bytes) or the MSE key (96–608) at once, since it needs nothing
/// more; clients write their extension handshake and bitfield after the answer, and even one
/// that wrote them first stays below this for torrents of up to 100 000 pieces. More,
/// acknowledged by a responder that stays silent (a flow seen from the receiving side only),
/// is a transfer of something else.
const MAX_UNANSWERED: u32 = 16 * 1024;

/// The handshake seen at the start of a segment later in a stream (after an MSE exchange that
/// selected plaintext, or in a flow joined mid-stream).
const HANDSHAKE: &[u8] = b"\x13BitTorrent protocol";

/// How KRPC messages begin (BEP 5 keys are sorted): query, response, BEP 42 response.
const KRPC_PREFIXES: [&[u8]; 3] = [b"d1:ad2:id20:", b"d1:rd2:id20:", b"d2:ip6:"];

/// Payload packets per direction that mid-stream framing may look at.
const MAX_FRAMING_PACKETS: u8 = 24;

fn certain(proto: Proto, method: Method) -> Answer {
    Answer::Certain(Verdict { proto, method })
}

/// The evidence behind an HTTP verdict.
fn http_evidence(v: Verdict) -> Evidence {
    match (v.proto, v.method) {
        (Proto::TrackerHttp, _) => Evidence::HttpTracker,
        (Proto::Webseed, Method::Signature) => Evidence::Webseed,
        (Proto::Webseed, _) => Evidence::WebseedAgent,
        _ => Evidence::NotBittorrent,
    }
}

/// Whether a datagram has the shape of a BEP 15 request or response (action and length);
/// shape alone is no proof, but it does not contradict BitTorrent.
pub fn tracker_udp_shaped(d: &[u8]) -> bool {
    let action = |at: usize| {
        d.get(at..at + 4)
            .map(|a| u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
    };
    let n = d.len();
    let request = match action(8) {
        Some(1) => n >= 98,
        Some(2) => n >= 36 && (n - 16).is_multiple_of(20),
        _ => false,
    };
    let response = match action(0) {
        Some(0) => n == 16,
        Some(1) => n >= 20 && ((n - 20).is_multiple_of(6) || (n - 20).is_multiple_of(18)),
        Some(2) => n >= 8 && (n - 8).is_multiple_of(12),
        Some(3) => n > 8,
        _ => false,
    };
    request || response
}

impl ProbeState {
    /// Feeds one packet; `dir` is 0 for packets from the flow's `src`, 1 for the reverse.
    /// `cut` says the capture's snap length cut the packet short.
    #[allow(clippy::too_many_arguments)]
    pub fn on_packet(
        &mut self,
        rules: &Rules,
        transport: Transport,
        dir: usize,
        tcp: Option<TcpInfo>,
        ports: (u16, u16),
        payload: &[u8],
        cut: bool,
    ) -> Answer {
        let dir = dir & 1;
        let mut mse = Mse::NotYet;
        if let Some(t) = tcp {
            if t.flags & TCP_SYN != 0 {
                self.dirs[dir].prefix.syn(t.seq);
            }
            if transport == Transport::Tcp && self.mse.wants_packets(MAX_UNANSWERED) {
                mse = self.mse.on_segment(Segment {
                    dir,
                    flags: t.flags,
                    seq: t.seq,
                    ack: t.ack,
                    len: t.len.max(payload.len() as u32),
                    payload,
                });
            }
        }
        if !payload.is_empty() && !self.dirs[dir].done {
            let d = &mut self.dirs[dir];
            d.payload_packets = d.payload_packets.saturating_add(1);
            let mut evidence = Evidence::Rule;
            let answer = match (transport, tcp) {
                (Transport::Tcp, Some(t)) => {
                    tcp_segment(rules, d, t.seq, payload, cut, &mut evidence)
                }
                _ => self.datagram(rules, dir, ports, payload, cut, &mut evidence),
            };
            if let Answer::Certain(v) = answer {
                self.evidence = if v.class() == Class::Other {
                    Evidence::NotBittorrent
                } else {
                    evidence
                };
                return answer;
            }
        }
        match mse {
            Mse::Handshake => {
                self.evidence = Evidence::MseHandshake;
                return certain(Proto::PeerwireMse, Method::Signature);
            }
            Mse::Rhythm => {
                self.evidence = Evidence::MseRhythm;
                return certain(Proto::PeerwireMse, Method::Heuristic);
            }
            Mse::Midstream => {
                self.evidence = Evidence::MseMidstream;
                return certain(Proto::PeerwireMse, Method::Heuristic);
            }
            Mse::NotYet | Mse::NotMine => {}
        }
        if transport == Transport::Tcp && self.opening_not_bittorrent() {
            self.evidence = Evidence::NotBittorrent;
            return Answer::Certain(Verdict::OTHER);
        }
        if self.dirs[0].done && self.dirs[1].done && !self.mse.active() {
            Answer::NotMine
        } else {
            Answer::NotYet
        }
    }

    /// What proved the last `Certain` answer.
    pub fn evidence(&self) -> Evidence {
        self.evidence
    }

    /// A TCP flow whose stream start was seen (from the SYN) opens with neither the
    /// handshake nor a key exchange MSE could have made, and it was no HTTP tracker or web
    /// seed: BitTorrent never opens a connection that way.
    fn opening_not_bittorrent(&self) -> bool {
        let seen_opening = self
            .dirs
            .iter()
            .any(|d| d.prefix.anchored() && d.signatures_done && d.payload_packets > 0);
        let awaiting_body = self.dirs.iter().any(|d| d.http_body_next);
        !awaiting_body
            && ((self.mse.failed() && seen_opening) || self.mse.silent_responder() > MAX_UNANSWERED)
    }

    /// True once some direction has been probed to the end without a match.
    pub fn any_done(&self) -> bool {
        (self.dirs[0].done || self.dirs[1].done) && !self.mse.active()
    }

    /// UDP: BitTorrent over UDP is always DHT, uTP, a UDP tracker or LSD, each with its own
    /// structure. A datagram with none of them is evidence that the flow is something else.
    #[allow(clippy::too_many_arguments)]
    fn datagram(
        &mut self,
        rules: &Rules,
        dir: usize,
        ports: (u16, u16),
        payload: &[u8],
        cut: bool,
        evidence: &mut Evidence,
    ) -> Answer {
        let end = if cut { End::Cut } else { End::Complete };
        if let Answer::Certain(v) = match_signatures(rules, Transport::Udp, payload, end) {
            return Answer::Certain(v);
        }
        if krpc::parse_krpc(payload).is_some() {
            *evidence = Evidence::Krpc;
            return certain(Proto::Dht, Method::Signature);
        }
        // A datagram cut short (snap length, or a first fragment) cannot be validated whole;
        // the sorted-key prefixes of KRPC queries and responses are evidence enough.
        if cut && KRPC_PREFIXES.iter().any(|p| payload.starts_with(p)) {
            *evidence = Evidence::KrpcPrefix;
            return certain(Proto::Dht, Method::Signature);
        }
        let excluded = utp::excluded_ports(ports.0, ports.1);
        let utp_shaped = !excluded && utp::parse(payload).is_some();
        if utp_shaped && self.utp.on_datagram(dir, payload) == UtpAnswer::Confirmed {
            *evidence = Evidence::Utp;
            return certain(Proto::Utp, Method::Signature);
        }
        // DNS and the other well-known UDP services are never tracker-shaped: an EDNS message
        // has `00 00 00 01` where BEP 15 puts "announce".
        let service =
            rules.is_service(Transport::Udp, ports.0) || rules.is_service(Transport::Udp, ports.1);
        let tracker_shaped = !service && tracker_udp_shaped(payload);
        if tracker_shaped && self.tracker.on_datagram(dir, payload) {
            *evidence = Evidence::TrackerTie;
            return certain(Proto::TrackerUdp, Method::Signature);
        }
        let d = &mut self.dirs[dir];
        let utp_like = utp_shaped || (!excluded && utp::header_like(payload));
        if !cut && !utp_like && !tracker_shaped {
            return Answer::Certain(Verdict::OTHER);
        }
        if d.payload_packets >= MAX_UDP_PACKETS {
            d.done = true;
        }
        Answer::NotYet
    }
}

/// TCP: stream-start signatures (the handshake, TLS, SSH), HTTP trackers and web seeds, a
/// handshake at a later segment start, then message framing for streams joined mid-way.
fn tcp_segment(
    rules: &Rules,
    d: &mut DirProbe,
    seq: u32,
    payload: &[u8],
    cut: bool,
    evidence: &mut Evidence,
) -> Answer {
    if d.payload_packets == 1 && http::awaits_body(payload) {
        // A response's headers alone: its body, in the next segment, says what it is.
        d.http_body_next = true;
    } else if d.payload_packets == 1 || d.http_body_next {
        let v = if d.http_body_next {
            Some(http::classify_body(payload))
        } else {
            http::classify(payload)
        };
        d.http_body_next = false;
        if let Some(v) = v {
            *evidence = http_evidence(v);
            return Answer::Certain(v);
        }
    }
    if !d.signatures_done {
        d.prefix.add(seq, payload);
        let data = d.prefix.contiguous();
        let end = if data.len() >= rules.max_extent {
            End::Complete
        } else if cut {
            End::Cut
        } else {
            End::More
        };
        match match_signatures(rules, Transport::Tcp, data, end) {
            Answer::Certain(v) => return Answer::Certain(v),
            Answer::NotMine if d.prefix.anchored() || d.payload_packets >= UNANCHORED_PATIENCE => {
                d.signatures_done = true;
            }
            _ => {}
        }
    }
    if payload.starts_with(HANDSHAKE)
        || (cut && payload.len() >= MIN_CUT_MATCH && HANDSHAKE.starts_with(payload))
    {
        *evidence = Evidence::Handshake;
        return certain(Proto::Peerwire, Method::Signature);
    }
    if !d.framing_done {
        match d.framing.on_segment(seq, payload, cut) {
            Framing::Confirmed { extended_handshake } => {
                let method = if extended_handshake {
                    *evidence = Evidence::ExtHandshake;
                    Method::Signature
                } else {
                    *evidence = Evidence::Framing;
                    Method::Heuristic
                };
                return certain(Proto::Peerwire, method);
            }
            Framing::NotMine => d.framing_done = true,
            Framing::NotYet => {
                if d.payload_packets >= MAX_FRAMING_PACKETS {
                    d.framing_done = true;
                }
            }
        }
    }
    // A stream whose start matches part of a signature may come a byte at a time: it is
    // followed until the prefix buffer is full.
    let partial = !d.signatures_done && !d.prefix.contiguous().is_empty();
    if (d.signatures_done || (d.payload_packets >= MAX_PAYLOAD_PACKETS && !partial))
        && d.framing_done
    {
        d.done = true;
    }
    if d.signatures_done && d.framing_done {
        Answer::NotMine
    } else {
        Answer::NotYet
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
                    ..TcpInfo::default()
                }),
                (50000, 6881),
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
                    len: data.len() as u32,
                    ..TcpInfo::default()
                }),
                (50000, 6881),
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
        // With the SYN seen, a non-matching start ends the signatures at once; message framing
        // keeps looking for a while (a plaintext stream after an MSE exchange), then gives up.
        let mut p = ProbeState::default();
        let seg = b"\x8e\x12random looking bytes of an encrypted stream";
        feed(&r, &mut p, Some(99), &[(100, seg)]);
        assert!(p.dirs[0].signatures_done && !p.any_done());
        let segs: Vec<(u32, &[u8])> = (1..MAX_FRAMING_PACKETS as u32)
            .map(|i| (100 + i * 100, &seg[..]))
            .collect();
        feed(&r, &mut p, None, &segs);
        assert!(p.any_done());
    }

    #[test]
    fn udp_tracker_conversations_tie_up() {
        let r = rules();
        let udp = |p: &mut ProbeState, dir: usize, d: &[u8]| {
            p.on_packet(&r, Transport::Udp, dir, None, (40000, 7000), d, false)
        };
        let cid = [0x5a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
        // An announce request (98 bytes) and its response (20 + 6 bytes), joined after the
        // connect exchange: tied by the transaction id.
        let mut announce = cid.to_vec();
        announce.extend_from_slice(&[0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        announce.resize(98, 0x41);
        let mut reply = vec![
            0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2,
        ];
        reply.extend_from_slice(&[10, 0, 0, 9, 0x1a, 0xe1]);
        let mut p = ProbeState::default();
        assert_eq!(udp(&mut p, 0, &announce), Answer::NotYet);
        assert_eq!(
            udp(&mut p, 1, &reply),
            Answer::Certain(Verdict {
                proto: Proto::TrackerUdp,
                method: Method::Signature
            })
        );
        // One direction only: two requests with the same connection id.
        let mut p = ProbeState::default();
        assert_eq!(udp(&mut p, 0, &announce), Answer::NotYet);
        announce[12] = 0x01;
        assert!(matches!(udp(&mut p, 0, &announce), Answer::Certain(_)));
        // A response whose transaction id matches nothing stays a mere shape.
        let mut p = ProbeState::default();
        reply[4] = 0x99;
        assert_eq!(udp(&mut p, 1, &reply), Answer::NotYet);
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

    fn tcp_pkt(
        r: &Rules,
        p: &mut ProbeState,
        dir: usize,
        flags: u8,
        seq: u32,
        ack: u32,
        data: &[u8],
    ) -> Answer {
        p.on_packet(
            r,
            Transport::Tcp,
            dir,
            Some(TcpInfo {
                flags,
                seq,
                ack,
                len: data.len() as u32,
            }),
            (40000, 6969),
            data,
            false,
        )
    }

    #[test]
    fn tracker_reply_body_in_its_own_segment_seen_from_the_server_only() {
        let r = rules();
        let mut p = ProbeState::default();
        // The server's side: SYN-ACK, the ack of a 300-byte request, headers, then the body.
        tcp_pkt(&r, &mut p, 0, 0x12, 5000, 101, &[]);
        tcp_pkt(&r, &mut p, 0, 0x10, 5001, 401, &[]);
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        assert_eq!(
            tcp_pkt(&r, &mut p, 0, 0x18, 5001, 401, head),
            Answer::NotYet
        );
        let body =
            b"d8:completei1e10:incompletei1e8:intervali1800e5:peers6:\x0a\x4d\x00\x0b\x1a\xe1e";
        let a = tcp_pkt(&r, &mut p, 0, 0x18, 5001 + head.len() as u32, 401, body);
        assert_eq!(a, certain(Proto::TrackerHttp, Method::Signature));
        assert_eq!(p.evidence(), Evidence::HttpTracker);
    }

    #[test]
    fn a_silent_receiver_of_bulk_data_is_not_a_peer() {
        let r = rules();
        let mut p = ProbeState::default();
        // Seen from the receiving server only: it acknowledges 20 KiB and never sends a byte.
        tcp_pkt(&r, &mut p, 0, 0x12, 9000, 1001, &[]);
        let mut last = Answer::NotYet;
        for k in 1..=14u32 {
            last = tcp_pkt(&r, &mut p, 0, 0x10, 9001, 1001 + k * 1448, &[]);
            if last != Answer::NotYet {
                break;
            }
        }
        assert_eq!(last, Answer::Certain(Verdict::OTHER));
        assert_eq!(p.evidence(), Evidence::NotBittorrent);
    }

    #[test]
    fn dns_with_edns_is_never_a_udp_tracker() {
        let r = rules();
        // An EDNS query of 98+ bytes: bytes 8..12 are NSCOUNT 0, ARCOUNT 1 ("announce").
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        q.resize(110, 0);
        let mut other = q.clone();
        other[12] = 0x08;
        for ports in [(40000, 53), (5353, 5353), (40000, 7000)] {
            let mut p = ProbeState::default();
            let mut answers = Vec::new();
            // A query, its identical retry, and a second query on the same socket.
            for d in [&q, &q, &other] {
                answers.push(p.on_packet(&r, Transport::Udp, 0, None, ports, d, false));
            }
            assert!(
                !answers
                    .iter()
                    .any(|a| matches!(a, Answer::Certain(v) if v.class() == Class::Bittorrent)),
                "{ports:?}: {answers:?}"
            );
        }
    }
}
