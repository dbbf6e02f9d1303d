//! The dispatcher: runs the sub-protocol probes over the first packets of a flow, in order
//! of cost and strength, and answers for the flow. Each probe lives in its own file: stream
//! and datagram signatures (`signature`), HTTP trackers and web seeds (`tracker_http`), the
//! peer-wire handshake and framing (`peerwire`), MSE (`mse`), DHT (`dht`), uTP (`utp`) and UDP
//! trackers (`tracker_udp`).

use super::dht::Krpc;
use super::mse::MseTracker;
use super::peerwire::{FramingTracker, Handshake};
use super::rules::{Rules, Transport};
use super::signature::{match_signatures, End, StreamPrefix};
use super::tracker_http::HttpProbe;
use super::tracker_udp::{self, TrackerTie};
use super::utp::UtpTracker;
use super::{Answer, Class, Evidence, Packet, Probe};
use crate::decode::{TcpInfo, TCP_SYN};

/// Direction probing gives up after this many payload packets without a decision.
const MAX_PAYLOAD_PACKETS: u8 = 8;
/// Datagrams per direction probed before giving up on confirming uTP.
const MAX_UDP_PACKETS: u8 = 8;
/// A mismatch at the start of a stream whose start was not seen (no SYN) is trusted only
/// after this many payload segments, in case an earlier segment is still to come.
const UNANCHORED_PATIENCE: u8 = 3;

/// Most bytes a BitTorrent initiator sends before the responder's first byte. The responder
/// answers the handshake (68 bytes) or the MSE key (96–608) at once, since it needs nothing
/// more; clients write their extension handshake and bitfield after the answer, and even one
/// that wrote them first stays below this for torrents of up to 100 000 pieces. More,
/// acknowledged by a responder that stays silent (a flow seen from the receiving side only),
/// is a transfer of something else.
const MAX_UNANSWERED: u32 = 16 * 1024;

/// Payload packets per direction that mid-stream framing may look at.
const MAX_FRAMING_PACKETS: u8 = 24;

/// The probes of one direction of a TCP flow.
#[derive(Clone, Default)]
struct DirProbe {
    prefix: StreamPrefix,
    http: HttpProbe,
    framing: FramingTracker,
    payload_packets: u8,
    /// The stream-start signatures have all said no.
    signatures_done: bool,
    framing_done: bool,
    done: bool,
}

/// Probe state of one flow being classified; lives in a [`ProbePool`].
#[derive(Clone, Default)]
pub struct ProbeState {
    dirs: [DirProbe; 2],
    handshake: Handshake,
    krpc: Krpc,
    utp: UtpTracker,
    mse: MseTracker,
    tracker: TrackerTie,
    /// Malformed UDP tracker connects (counted here: the signatures answer them first).
    malformed_connects: u32,
    /// Malformed messages already handed out by [`ProbeState::take_malformed`].
    malformed_taken: u32,
}

/// Stops at the first probe that decides.
macro_rules! decided {
    ($answer:expr) => {
        if let a @ Answer::Verdict(..) = $answer {
            return a;
        }
    };
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
        let pkt = Packet {
            transport,
            dir,
            tcp,
            ports,
            payload,
            cut,
        };
        let mut mse = Answer::Undecided;
        if let Some(t) = tcp {
            if t.flags & TCP_SYN != 0 {
                self.dirs[dir].prefix.syn(t.seq);
            }
            if transport == Transport::Tcp && self.mse.wants_packets(MAX_UNANSWERED) {
                mse = self.mse.probe(rules, &pkt);
            }
        }
        if !payload.is_empty() && !self.dirs[dir].done {
            let d = &mut self.dirs[dir];
            d.payload_packets = d.payload_packets.saturating_add(1);
            let answer = match (transport, tcp) {
                (Transport::Tcp, Some(t)) => {
                    tcp_segment(rules, d, &mut self.handshake, &pkt, t.seq)
                }
                _ => self.datagram(rules, &pkt),
            };
            if let Answer::Verdict(v, e) = answer {
                let e = if v.class() == Class::Other {
                    Evidence::NotBittorrent
                } else {
                    e
                };
                return Answer::Verdict(v, e);
            }
        }
        decided!(mse);
        if transport == Transport::Tcp && self.opening_not_bittorrent() {
            return Answer::OTHER;
        }
        if self.dirs[0].done && self.dirs[1].done && !self.mse.active() {
            Answer::NotThis
        } else {
            Answer::Undecided
        }
    }

    /// Malformed BitTorrent messages seen in the flow so far: a cheap guard passed (the
    /// handshake's opening, a KRPC dictionary's first keys, BEP 15's protocol id) and the
    /// validation failed.
    pub fn malformed(&self) -> u32 {
        self.malformed_connects
            .saturating_add(self.handshake.malformed())
            .saturating_add(self.krpc.malformed())
    }

    /// Malformed messages since the last call: taken after each packet, they add up to a
    /// count per minute of packet time.
    pub fn take_malformed(&mut self) -> u32 {
        let total = self.malformed();
        let new = total.wrapping_sub(self.malformed_taken);
        self.malformed_taken = total;
        new
    }

    /// A TCP flow whose stream start was seen (from the SYN) opens with neither the
    /// handshake nor a key exchange MSE could have made, and it was no HTTP tracker or web
    /// seed: BitTorrent never opens a connection that way.
    fn opening_not_bittorrent(&self) -> bool {
        let seen_opening = self
            .dirs
            .iter()
            .any(|d| d.prefix.anchored() && d.signatures_done && d.payload_packets > 0);
        let awaiting_body = self.dirs.iter().any(|d| d.http.awaiting_body());
        !awaiting_body
            && ((self.mse.failed() && seen_opening) || self.mse.silent_responder() > MAX_UNANSWERED)
    }

    /// True once some direction has been probed to the end without a match.
    pub fn any_done(&self) -> bool {
        (self.dirs[0].done || self.dirs[1].done) && !self.mse.active()
    }

    /// UDP: BitTorrent over UDP is always DHT, uTP, a UDP tracker or LSD, each with its own
    /// structure. A datagram with none of them is evidence that the flow is something else.
    fn datagram(&mut self, rules: &Rules, pkt: &Packet<'_>) -> Answer {
        if !pkt.cut && tracker_udp::malformed_connect(pkt.payload) {
            self.malformed_connects = self.malformed_connects.saturating_add(1);
        }
        let end = if pkt.cut { End::Cut } else { End::Complete };
        decided!(match_signatures(rules, Transport::Udp, pkt.payload, end));
        decided!(self.krpc.probe(rules, pkt));
        let utp = self.utp.probe(rules, pkt);
        decided!(utp);
        let tracker = self.tracker.probe(rules, pkt);
        decided!(tracker);
        if !pkt.cut && utp == Answer::NotThis && tracker == Answer::NotThis {
            return Answer::OTHER;
        }
        let d = &mut self.dirs[pkt.dir];
        if d.payload_packets >= MAX_UDP_PACKETS {
            d.done = true;
        }
        Answer::Undecided
    }
}

/// TCP: HTTP trackers and web seeds, stream-start signatures (the handshake, TLS, SSH), a
/// handshake at a later segment start, then message framing for streams joined mid-way.
fn tcp_segment(
    rules: &Rules,
    d: &mut DirProbe,
    handshake: &mut Handshake,
    pkt: &Packet<'_>,
    seq: u32,
) -> Answer {
    decided!(d.http.probe(rules, pkt));
    if !d.signatures_done {
        d.prefix.add(seq, pkt.payload);
        let data = d.prefix.contiguous();
        let end = if data.len() >= rules.max_extent {
            End::Complete
        } else if pkt.cut {
            End::Cut
        } else {
            End::More
        };
        match match_signatures(rules, Transport::Tcp, data, end) {
            a @ Answer::Verdict(..) => return a,
            Answer::NotThis if d.prefix.anchored() || d.payload_packets >= UNANCHORED_PATIENCE => {
                d.signatures_done = true;
            }
            _ => {}
        }
    }
    decided!(handshake.probe(rules, pkt));
    if !d.framing_done {
        match d.framing.probe(rules, pkt) {
            a @ Answer::Verdict(..) => return a,
            Answer::NotThis => d.framing_done = true,
            Answer::Undecided => {
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
        Answer::NotThis
    } else {
        Answer::Undecided
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
    use crate::classify::{Method, Proto};

    const HANDSHAKE: &[u8] =
        b"\x13BitTorrent protocol\0\0\0\0\0\x10\0\x05aaaaaaaaaaaaaaaaaaaa-TR3000-bbbbbbbbbbbb";

    fn rules() -> Rules {
        Rules::builtin().expect("rules")
    }

    fn peerwire() -> Answer {
        Answer::bittorrent(Proto::Peerwire, Method::Signature, Evidence::Rule)
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
        let mut last = Answer::Undecided;
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
        assert_eq!(a, Answer::Undecided);
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
        assert_eq!(udp(&mut p, 0, &announce), Answer::Undecided);
        assert_eq!(
            udp(&mut p, 1, &reply),
            Answer::bittorrent(Proto::TrackerUdp, Method::Signature, Evidence::TrackerTie)
        );
        // One direction only: two requests with the same connection id.
        let mut p = ProbeState::default();
        assert_eq!(udp(&mut p, 0, &announce), Answer::Undecided);
        announce[12] = 0x01;
        assert!(matches!(udp(&mut p, 0, &announce), Answer::Verdict(..)));
        // A response whose transaction id matches nothing stays a mere shape.
        let mut p = ProbeState::default();
        reply[4] = 0x99;
        assert_eq!(udp(&mut p, 1, &reply), Answer::Undecided);
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
            Answer::Undecided
        );
        let body =
            b"d8:completei1e10:incompletei1e8:intervali1800e5:peers6:\x0a\x4d\x00\x0b\x1a\xe1e";
        let a = tcp_pkt(&r, &mut p, 0, 0x18, 5001 + head.len() as u32, 401, body);
        assert_eq!(
            a,
            Answer::bittorrent(Proto::TrackerHttp, Method::Signature, Evidence::HttpTracker)
        );
    }

    #[test]
    fn a_silent_receiver_of_bulk_data_is_not_a_peer() {
        let r = rules();
        let mut p = ProbeState::default();
        // Seen from the receiving server only: it acknowledges 20 KiB and never sends a byte.
        tcp_pkt(&r, &mut p, 0, 0x12, 9000, 1001, &[]);
        let mut last = Answer::Undecided;
        for k in 1..=14u32 {
            last = tcp_pkt(&r, &mut p, 0, 0x10, 9001, 1001 + k * 1448, &[]);
            if last != Answer::Undecided {
                break;
            }
        }
        assert_eq!(last, Answer::OTHER);
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
                    .any(|a| matches!(a, Answer::Verdict(v, _) if v.class() == Class::Bittorrent)),
                "{ports:?}: {answers:?}"
            );
        }
    }

    #[test]
    fn malformed_messages_are_counted_and_taken_once() {
        let r = rules();
        let mut p = ProbeState::default();
        let udp = |p: &mut ProbeState, d: &[u8], cut: bool| {
            p.on_packet(&r, Transport::Udp, 0, None, (40000, 6881), d, cut)
        };
        // A KRPC query without its transaction id, and a connect of the wrong length.
        udp(
            &mut p,
            b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:y1:qe",
            false,
        );
        let connect = b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00\x12\x34\x56\x78\x00";
        udp(&mut p, connect, false);
        assert_eq!(p.malformed(), 2);
        assert_eq!(p.take_malformed(), 2);
        assert_eq!(p.take_malformed(), 0);
        // Cut by the snap length: not judged.
        udp(&mut p, &connect[..12], true);
        assert_eq!(p.take_malformed(), 0);
        // A TCP segment that opens like the handshake with the wrong protocol string.
        let mut p = ProbeState::default();
        feed(
            &r,
            &mut p,
            Some(99),
            &[(100, b"\x13BitTorrent protocoX and more bytes")],
        );
        assert_eq!(p.take_malformed(), 1);
        // Valid messages count nothing.
        let mut p = ProbeState::default();
        feed(&r, &mut p, Some(99), &[(100, HANDSHAKE)]);
        udp(
            &mut p,
            b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe",
            false,
        );
        assert_eq!(p.malformed(), 0);
    }

    #[test]
    fn every_detector_answers_through_the_one_trait() {
        use crate::classify::{Packet, Probe};
        let r = rules();
        let ping = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe";
        let pkt = Packet {
            transport: Transport::Udp,
            dir: 0,
            tcp: None,
            ports: (40000, 6881),
            payload: ping,
            cut: false,
        };
        let (mut k, mut u, mut t) = (
            Krpc::default(),
            UtpTracker::default(),
            TrackerTie::default(),
        );
        let (mut h, mut f, mut m) = (
            Handshake::default(),
            FramingTracker::default(),
            MseTracker::default(),
        );
        let mut http = HttpProbe::default();
        let probes: [&mut dyn Probe; 7] =
            [&mut k, &mut u, &mut t, &mut h, &mut f, &mut m, &mut http];
        let answers: Vec<Answer> = probes.into_iter().map(|p| p.probe(&r, &pkt)).collect();
        let dht = Answer::bittorrent(Proto::Dht, Method::Signature, Evidence::Krpc);
        assert_eq!(answers[0], dht);
        assert!(answers[0].teaches());
        // The others say no to a KRPC datagram (the TCP ones to a packet without TCP).
        assert!(
            answers[1..6].iter().all(|a| *a == Answer::NotThis),
            "{answers:?}"
        );
        // HTTP looks at payloads only: a datagram that is no HTTP is not HTTP.
        assert_eq!(answers[6], Answer::NotThis);
    }
}
