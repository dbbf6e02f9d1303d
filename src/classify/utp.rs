//! uTP (BEP 29) structural checks.
//!
//! uTP is the main source of false positives among BitTorrent detectors: its 20-byte header has
//! no magic number, so a single datagram can only be *compatible* with uTP. This module splits
//! the work in two:
//!
//! * [`parse`] checks one datagram against everything BEP 29 and the real implementations
//!   (libtorrent, libutp as used by Transmission and µTorrent) allow, and returns the header;
//! * [`UtpTracker`] follows a UDP flow and confirms it only when two packets agree the way one
//!   uTP connection's packets must (connection ids, sequence and ack numbers, timestamps).
//!
//! Everything here is pure: no allocation, no panics on any input.

use super::{Answer, Evidence, Method, Packet, Probe, Proto, Rules};

/// Packet type: data.
pub const ST_DATA: u8 = 0;
/// Packet type: finish (the sender's last packet).
pub const ST_FIN: u8 = 1;
/// Packet type: state (an ack; no payload).
pub const ST_STATE: u8 = 2;
/// Packet type: reset (hard close).
pub const ST_RESET: u8 = 3;
/// Packet type: connection request.
pub const ST_SYN: u8 = 4;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The only header version in use (the low nibble of byte 0).
const VERSION: u8 = 1;

/// Extension types: end of chain, selective ack (BEP 29), extension bits (libutp),
/// close reason (libtorrent, 4 bytes).
const EXT_NONE: u8 = 0;
const EXT_CLOSE_REASON: u8 = 3;
/// Longest extension chain accepted (there are only three extension types).
const MAX_EXTENSIONS: u8 = 4;

/// Largest advertised receive window accepted on any packet. libtorrent advertises what is
/// left of its per-socket receive buffer, and that buffer defaulted to 100 MiB
/// (`m_in_buf_size(100 * 1024 * 1024)`); it can be configured larger, hence the margin.
const MAX_WINDOW: u32 = 0x0800_0000;
/// Largest window accepted on a SYN: libtorrent sends 0, libutp (Transmission, µTorrent) its
/// initial receive buffer (1 MiB by default, µTorrent up to 0x380000). The bound is what
/// rejects DNS queries whose id starts with 0x41: their "window" is the first bytes of the
/// query name, i.e. a label length (1..=63) in the top byte, so at least 0x0100_0000.
const MAX_SYN_WINDOW: u32 = 0x0080_0000;

/// Sequence and ack numbers of related packets must lie within this distance (16-bit,
/// wrapping). libutp caps packets in flight at 511 (`OUTGOING_BUFFER_MAX_SIZE`); twice that
/// leaves room for libtorrent's larger windows and for capture reordering.
const SEQ_WINDOW: u16 = 1024;
/// Two packets from the same sender must carry timestamps (µs) that advance by more than 0
/// and at most this much (libutp sends keep-alives every 29 s).
const MAX_TS_STEP: u32 = 120_000_000;
/// Packets a tracker looks at before it gives up on a flow that never became consistent.
const MAX_PACKETS: u8 = 16;

/// A parsed uTP header (BEP 29), with the extension chain validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtpHeader {
    /// Packet type: [`ST_DATA`], [`ST_FIN`], [`ST_STATE`], [`ST_RESET`] or [`ST_SYN`].
    pub kind: u8,
    pub conn_id: u16,
    pub timestamp: u32,
    pub timestamp_diff: u32,
    pub window: u32,
    pub seq: u16,
    pub ack: u16,
    /// Header length including extensions; the payload starts here.
    pub header_len: usize,
}

impl UtpHeader {
    /// Bytes after the header.
    pub fn payload_len(&self, datagram_len: usize) -> usize {
        datagram_len.saturating_sub(self.header_len)
    }
}

/// Walks the extension chain that starts after the fixed header; returns the header length.
/// Each extension is `[next type][length][length bytes]`; types above 3 are unknown to every
/// implementation, lengths are whole 32-bit words (selective-ack bitmasks are a multiple of 4
/// bytes, extension bits 8, libtorrent's close reason exactly 4), and the chain must end
/// inside the datagram.
fn extension_chain_end(p: &[u8], first: u8) -> Option<usize> {
    let mut ty = first;
    let mut off = HEADER_LEN;
    let mut count = 0u8;
    while ty != EXT_NONE {
        if ty > EXT_CLOSE_REASON {
            return None;
        }
        count += 1;
        if count > MAX_EXTENSIONS {
            return None;
        }
        let next = *p.get(off)?;
        let len = usize::from(*p.get(off + 1)?);
        if len < 4 || len % 4 != 0 || (ty == EXT_CLOSE_REASON && len != 4) {
            return None;
        }
        off += 2 + len;
        if off > p.len() {
            return None;
        }
        ty = next;
    }
    Some(off)
}

/// Single-packet structural check. Returns `None` when any rule fails:
///
/// * version 1, type ≤ 4, a valid extension chain (see [`extension_chain_end`]);
/// * connection id ≠ 0 and timestamp ≠ 0 (both are random or clock values);
/// * window ≤ 128 MiB, and ≤ 8 MiB on a SYN; window 0 only without payload;
/// * SYN: timestamp difference 0 (nothing received yet) and no payload;
/// * STATE and RESET: no payload; DATA: payload; FIN: either.
pub fn parse(payload: &[u8]) -> Option<UtpHeader> {
    let h: &[u8; HEADER_LEN] = payload.get(..HEADER_LEN)?.try_into().ok()?;
    if h[0] & 0x0f != VERSION {
        return None;
    }
    let kind = h[0] >> 4;
    if kind > ST_SYN {
        return None;
    }
    let header_len = extension_chain_end(payload, h[1])?;
    let header = UtpHeader {
        kind,
        conn_id: u16::from_be_bytes([h[2], h[3]]),
        timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        timestamp_diff: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        window: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        seq: u16::from_be_bytes([h[16], h[17]]),
        ack: u16::from_be_bytes([h[18], h[19]]),
        header_len,
    };
    let has_payload = payload.len() > header_len;
    if header.conn_id == 0 || header.timestamp == 0 || header.window > MAX_WINDOW {
        return None;
    }
    if header.window == 0 && has_payload {
        return None;
    }
    let ok = match kind {
        ST_SYN => header.timestamp_diff == 0 && !has_payload && header.window <= MAX_SYN_WINDOW,
        ST_STATE | ST_RESET => !has_payload,
        ST_DATA => has_payload,
        _ => true, // ST_FIN
    };
    ok.then_some(header)
}

/// Ports on which uTP-looking datagrams are really something else: DNS 53, mDNS 5353, LLMNR
/// 5355, Teredo 3544, CAPWAP 5246/5247, STUN 3478, QUIC 443, and every port below 1024
/// (BitTorrent clients never use them; nDPI skips them too).
pub fn excluded_ports(sport: u16, dport: u16) -> bool {
    const EXCLUDED: [u16; 8] = [53, 443, 3478, 3544, 5246, 5247, 5353, 5355];
    sport < 1024 || dport < 1024 || EXCLUDED.contains(&sport) || EXCLUDED.contains(&dport)
}

/// Two packets of the flow agree as packets of one uTP connection do.
pub const CONFIRMED: Answer = Answer::bittorrent(Proto::Utp, Method::Signature, Evidence::Utp);

/// What a tracker keeps of the last uTP packet of one direction (12 bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Last {
    present: bool,
    kind: u8,
    conn_id: u16,
    seq: u16,
    ack: u16,
    timestamp: u32,
}

impl Last {
    fn of(h: &UtpHeader) -> Last {
        Last {
            present: true,
            kind: h.kind,
            conn_id: h.conn_id,
            seq: h.seq,
            ack: h.ack,
            timestamp: h.timestamp,
        }
    }
}

/// Where a tracker stands; `Confirmed` and `Rejected` are final.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    Undecided,
    Confirmed,
    Rejected,
}

/// Per-flow state across packets, for a UDP flow (28 bytes, `Copy`).
///
/// A 5-tuple that carries uTP carries one or more uTP connections between two sockets. Those
/// sockets are also the clients' DHT sockets (libtorrent and Transmission use one UDP port for
/// both), so a KRPC message can appear in a uTP flow; the caller recognises those before it
/// gets here. The tracker therefore says `NotThis` for a first datagram that is not uTP, and
/// after a valid uTP header tolerates datagrams that are still uTP-like (version 1, type ≤ 4)
/// or bencoded dictionaries; anything else ends the flow as `NotThis`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UtpTracker {
    last: [Last; 2],
    packets: u8,
    state: State,
}

/// `b - a` as a signed 16-bit distance.
fn dist(a: u16, b: u16) -> i32 {
    i32::from(b.wrapping_sub(a) as i16)
}

/// `b` lies in `[a, a + SEQ_WINDOW]` (wrapping).
fn ahead(a: u16, b: u16) -> bool {
    (0..=i32::from(SEQ_WINDOW)).contains(&dist(a, b))
}

/// `b` lies within `SEQ_WINDOW` of `a`, either way (wrapping).
fn near(a: u16, b: u16) -> bool {
    dist(a, b).abs() <= i32::from(SEQ_WINDOW)
}

/// Both packets come from the same sender, `prev` first.
fn same_direction_ok(prev: &Last, cur: &Last) -> bool {
    let step = cur.timestamp.wrapping_sub(prev.timestamp);
    if step == 0 || step > MAX_TS_STEP {
        return false;
    }
    if prev.kind == ST_RESET || cur.kind == ST_RESET {
        // A reset carries a random sequence number.
        return false;
    }
    match (prev.kind == ST_SYN, cur.kind == ST_SYN) {
        // A retransmitted SYN repeats id and sequence number.
        (true, true) => cur.conn_id == prev.conn_id && cur.seq == prev.seq,
        // The SYN carries the id the initiator receives on; it sends on id + 1, and its
        // sequence numbers continue after the SYN's.
        (true, false) => {
            cur.conn_id == prev.conn_id.wrapping_add(1) && ahead(prev.seq.wrapping_add(1), cur.seq)
        }
        (false, true) => false,
        (false, false) => {
            let consumes = |k: u8| k == ST_DATA || k == ST_FIN;
            // DATA and FIN consume a sequence number; STATE carries the next one unchanged.
            let seq_ok = if consumes(prev.kind) && consumes(cur.kind) {
                cur.seq != prev.seq && ahead(prev.seq, cur.seq)
            } else {
                ahead(prev.seq, cur.seq)
            };
            cur.conn_id == prev.conn_id && seq_ok && ahead(prev.ack, cur.ack)
        }
    }
}

/// `reply` answers `syn` from the other side: it carries the SYN's connection id and acks the
/// SYN's sequence number (a STATE acks it exactly; later packets ack further).
fn syn_reply_ok(syn: &Last, reply: &Last) -> bool {
    if reply.kind == ST_SYN || reply.conn_id != syn.conn_id {
        return false;
    }
    if reply.kind == ST_RESET {
        return reply.ack == syn.seq;
    }
    ahead(syn.seq, reply.ack)
}

/// The packets come from opposite directions.
fn cross_direction_ok(a: &Last, b: &Last) -> bool {
    match (a.kind == ST_SYN, b.kind == ST_SYN) {
        (true, true) => false,
        (true, false) => syn_reply_ok(a, b),
        (false, true) => syn_reply_ok(b, a),
        (false, false) => {
            if a.kind == ST_RESET || b.kind == ST_RESET {
                return false;
            }
            // One side sends on the other's id + 1; each acks near the other's sequence.
            let ids =
                a.conn_id == b.conn_id.wrapping_add(1) || b.conn_id == a.conn_id.wrapping_add(1);
            ids && near(a.seq, b.ack) && near(b.seq, a.ack)
        }
    }
}

/// A datagram that may share a uTP flow without being uTP: a bencoded dictionary (DHT on the
/// same socket), or a uTP-like header that failed a finer rule.
fn tolerated(payload: &[u8]) -> bool {
    let bencoded =
        payload.len() >= 2 && payload.first() == Some(&b'd') && payload.last() == Some(&b'e');
    bencoded || header_like(payload)
}

/// A uTP header by its version and type alone: what real clients send besides the packets
/// [`parse`] accepts (libutp's RESET with timestamp 0, libtorrent's window 0), so such a
/// datagram is no evidence against uTP.
pub fn header_like(payload: &[u8]) -> bool {
    payload.len() >= HEADER_LEN && payload[0] & 0x0f == VERSION && payload[0] >> 4 <= ST_SYN
}

impl UtpTracker {
    /// Feeds one datagram of the flow; `dir` is 0 for packets from the flow's first sender, 1
    /// for the reverse (any other value counts as 1). A verdict and `NotThis` are final: later
    /// calls repeat them.
    pub fn on_datagram(&mut self, dir: usize, payload: &[u8]) -> Answer {
        match self.state {
            State::Confirmed => return CONFIRMED,
            State::Rejected => return Answer::NotThis,
            State::Undecided => {}
        }
        let d = usize::from(dir != 0);
        self.packets = self.packets.saturating_add(1);
        let seen_utp = self.last[0].present || self.last[1].present;
        let Some(h) = parse(payload) else {
            if seen_utp && tolerated(payload) && self.packets < MAX_PACKETS {
                return Answer::Undecided;
            }
            self.state = State::Rejected;
            return Answer::NotThis;
        };
        let cur = Last::of(&h);
        let mine = &self.last[d];
        let other = &self.last[1 - d];
        let consistent = (mine.present && same_direction_ok(mine, &cur))
            || (other.present && cross_direction_ok(other, &cur));
        self.last[d] = cur;
        if consistent {
            self.state = State::Confirmed;
            CONFIRMED
        } else if self.packets >= MAX_PACKETS {
            self.state = State::Rejected;
            Answer::NotThis
        } else {
            Answer::Undecided
        }
    }

    /// True once the flow has been confirmed as uTP.
    pub fn confirmed(&self) -> bool {
        self.state == State::Confirmed
    }
}

impl Probe for UtpTracker {
    /// Feeds the tracker only datagrams that pass [`parse`], off the excluded ports: a
    /// `Verdict` once confirmed; `Undecided` while such datagrams come, or datagrams that
    /// are uTP by their first byte alone ([`header_like`]); `NotThis` for anything else.
    fn probe(&mut self, _: &Rules, pkt: &Packet<'_>) -> Answer {
        if excluded_ports(pkt.ports.0, pkt.ports.1) {
            return Answer::NotThis;
        }
        if parse(pkt.payload).is_some() {
            if self.on_datagram(pkt.dir, pkt.payload) == CONFIRMED {
                return CONFIRMED;
            }
            return Answer::Undecided;
        }
        if header_like(pkt.payload) {
            Answer::Undecided
        } else {
            Answer::NotThis
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from whitespace-separated hex pairs.
    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
            .collect()
    }

    /// The 68-byte peer-wire handshake a client sends first inside uTP.
    fn handshake(peer_id_prefix: &[u8; 8]) -> Vec<u8> {
        let mut v = b"\x13BitTorrent protocol".to_vec();
        v.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x05]);
        v.extend_from_slice(&hex(
            "d2 47 4e 86 c9 5b 19 f0 3d 5a 8f 2a 0c 91 74 e5 b8 13 6a 3f",
        ));
        v.extend_from_slice(peer_id_prefix);
        v.extend_from_slice(b"k3Zp0qL9xWc2");
        v
    }

    fn with(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = hex(header);
        v.extend_from_slice(payload);
        v
    }

    // libtorrent: SYN (window 0, ack 0), the STATE reply, the initiator's first DATA.
    const LT_SYN: &str = "41 00 3a 7c 5e 3c 1a 20 00 00 00 00 00 00 00 00 9c 21 00 00";
    const LT_STATE: &str = "21 00 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21";
    const LT_DATA_HDR: &str = "01 00 3a 7d 5e 3c 9b 10 29 f4 7e 02 00 10 00 00 9c 22 51 df";
    const LT_DATA2_HDR: &str = "01 00 3a 7d 5e 3d 0c 44 29 f4 80 17 00 0f fa 00 9c 23 51 df";
    // libutp (Transmission): SYN with a 1 MiB window, DATA.
    const TR_SYN: &str = "41 00 b1 07 00 4f 2a 91 00 00 00 00 00 10 00 00 00 01 00 00";
    const TR_DATA_HDR: &str = "01 00 b1 08 00 50 7c 33 0c 1e 55 70 00 10 00 00 00 02 c4 4a";
    // µTorrent: SYN carrying the 8-byte extension-bits extension, window 0x380000.
    const UT_SYN_EXT: &str =
        "41 02 c2 19 7f 00 13 a8 00 00 00 00 00 38 00 00 4d 10 00 00 00 08 00 00 00 00 00 00 00 00";
    // µTorrent DATA with a selective ack (ext 1, 4 bytes) before the payload.
    const UT_DATA_SACK_HDR: &str =
        "01 01 c2 1a 7f 04 55 02 00 21 3b 9e 00 38 00 00 4d 14 8e 2f 00 04 05 00 00 00";
    // libtorrent STATE with a 4-byte selective ack; FIN with a close reason (ext 3).
    const LT_STATE_SACK: &str =
        "21 01 3a 7c 88 13 90 22 2a 0a ff 01 00 0f 80 00 51 e1 9c 26 00 04 0b 00 00 00";
    const LT_FIN_REASON: &str =
        "11 03 3a 7d 5e 41 77 80 29 f5 00 13 00 10 00 00 9c 30 51 e5 00 04 00 00 00 0f";
    const LT_RESET: &str = "31 00 3a 7c 88 20 00 19 00 00 00 00 00 00 00 00 6e 02 9c 31";

    #[test]
    fn positives_parse() {
        let lt = handshake(b"-LT2060-");
        let tr = handshake(b"-TR4060-");
        let ut = handshake(b"-UT355S-");
        let cases: Vec<(&str, Vec<u8>, u8, usize)> = vec![
            ("libtorrent SYN", hex(LT_SYN), ST_SYN, 20),
            ("libtorrent STATE", hex(LT_STATE), ST_STATE, 20),
            (
                "libtorrent DATA + handshake",
                with(LT_DATA_HDR, &lt),
                ST_DATA,
                20,
            ),
            ("libutp SYN", hex(TR_SYN), ST_SYN, 20),
            (
                "libutp DATA + handshake",
                with(TR_DATA_HDR, &tr),
                ST_DATA,
                20,
            ),
            ("uTorrent SYN + ext bits", hex(UT_SYN_EXT), ST_SYN, 30),
            (
                "uTorrent DATA + SACK",
                with(UT_DATA_SACK_HDR, &ut),
                ST_DATA,
                26,
            ),
            ("libtorrent STATE + SACK", hex(LT_STATE_SACK), ST_STATE, 26),
            (
                "libtorrent FIN + close reason",
                hex(LT_FIN_REASON),
                ST_FIN,
                26,
            ),
            ("libtorrent RESET", hex(LT_RESET), ST_RESET, 20),
        ];
        for (name, bytes, kind, header_len) in cases {
            let h = parse(&bytes).unwrap_or_else(|| panic!("{name} should parse"));
            assert_eq!((h.kind, h.header_len), (kind, header_len), "{name}");
            if kind == ST_DATA {
                assert!(
                    bytes[header_len..].starts_with(b"\x13BitTorrent protocol"),
                    "{name}"
                );
            }
        }
        let h = parse(&hex(LT_SYN)).unwrap();
        assert_eq!(
            h,
            UtpHeader {
                kind: ST_SYN,
                conn_id: 0x3a7c,
                timestamp: 0x5e3c_1a20,
                timestamp_diff: 0,
                window: 0,
                seq: 0x9c21,
                ack: 0,
                header_len: 20
            }
        );
    }

    fn wireguard(kind: u8, len: usize) -> Vec<u8> {
        let mut v = vec![kind, 0, 0, 0, 0x9a, 0x31, 0x0c, 0x7e];
        v.extend((0..len - 8).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)));
        v
    }

    #[test]
    fn negatives_rejected() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // id 0x4100 reads as type SYN version 1; name "io." is the window 0x02696f00.
            ("20-byte DNS query, id 0x41..", hex("41 00 01 00 00 01 00 00 00 00 00 00 02 69 6f 00 00 01 00 01")),
            // id 0x2100 reads as STATE; the question is payload.
            (
                "DNS query, id 0x21..",
                hex("21 00 01 00 00 01 00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01"),
            ),
            ("STUN binding request", hex("00 01 00 00 21 12 a4 42 8f 1c 33 a0 47 b2 e5 10 9d 6c 02 f8")),
            (
                "QUIC long header (Initial v1)",
                hex("c3 00 00 00 01 08 5d 2a 91 c4 0e 77 31 b8 00 00 44 d0 6f 12 aa 90"),
            ),
            ("QUIC long header 0xc1", hex("c1 00 00 00 01 08 5d 2a 91 c4 0e 77 31 b8 00 00 44 d0 6f 12 aa 90")),
            (
                "Teredo bubble (IPv6 header)",
                hex("60 00 00 00 00 00 3b ff 20 01 00 00 4d 3c 11 02 00 00 f2 27 b1 a9 c3 fd"),
            ),
            ("Teredo origin indication", hex("00 00 c3 5a 3f 57 fe 8c 60 00 00 00 00 00 3b ff 20 01 00 00")),
            ("WireGuard handshake initiation", wireguard(1, 148)),
            ("WireGuard handshake response", wireguard(2, 92)),
            ("STATE carrying payload", with(LT_STATE, b"\x00\x00\x00\x0d\x06\x00\x00\x00\x01")),
            ("SYN carrying payload", with(LT_SYN, b"hello")),
            ("SYN with timestamp difference", hex("41 00 3a 7c 5e 3c 1a 20 00 00 00 01 00 00 00 00 9c 21 00 00")),
            ("DATA without payload", hex(LT_DATA_HDR)),
            ("DATA with window 0", with("01 00 3a 7d 5e 3c 9b 10 29 f4 7e 02 00 00 00 00 9c 22 51 df", b"x")),
            ("connection id 0", hex("21 00 00 00 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21")),
            ("timestamp 0", hex("21 00 3a 7c 00 00 00 00 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21")),
            ("window above 128 MiB", hex("21 00 3a 7c 88 12 04 f1 2a 0b 1c 4d 0f 00 00 00 51 e0 9c 21")),
            ("version 2", hex("22 00 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21")),
            ("type 5", hex("51 00 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21")),
            ("extension type 4", hex("21 04 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21 00 04 00 00 00 00")),
            ("extension length 2", hex("21 01 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21 00 02 00 00")),
            ("extension past the end", hex("21 01 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21 00 08 00 00")),
            ("chain cut after the header", hex("21 01 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21")),
            (
                "five extensions",
                hex("21 01 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21 \
                     01 04 00 00 00 00 01 04 00 00 00 00 01 04 00 00 00 00 01 04 00 00 00 00 00 04 00 00 00 00"),
            ),
            ("close reason of 8 bytes", hex("11 03 3a 7d 5e 41 77 80 29 f5 00 13 00 10 00 00 9c 30 51 e5 00 08 00 00 00 0f 00 00 00 00")),
            ("DHT query", b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe".to_vec()),
            ("random bytes", hex("9f 3b e2 04 71 c8 5a 16 0d ee 42 b7 93 28 6c f1 05 aa 3e 7d d4 19")),
            ("short", hex("21 00 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c")),
            ("empty", Vec::new()),
        ];
        for (name, bytes) in cases {
            assert_eq!(parse(&bytes), None, "{name} should be rejected");
        }
    }

    #[test]
    fn ports() {
        for (s, d) in [
            (40000, 53),
            (53, 40000),
            (5353, 5353),
            (50000, 5355),
            (3544, 61000),
            (5246, 50000),
            (50000, 5247),
            (3478, 40000),
            (443, 50000),
            (50000, 443),
            (1023, 6881),
            (6881, 80),
        ] {
            assert!(excluded_ports(s, d), "{s} -> {d}");
        }
        for (s, d) in [(6881, 51413), (1024, 65535), (50000, 6771), (49152, 8999)] {
            assert!(!excluded_ports(s, d), "{s} -> {d}");
        }
    }

    /// `(dir, datagram)` pairs of one flow.
    type Packets = Vec<(usize, Vec<u8>)>;

    /// Feeds `(dir, datagram)` pairs; returns every answer.
    fn run(packets: &[(usize, Vec<u8>)]) -> Vec<Answer> {
        let mut t = UtpTracker::default();
        packets
            .iter()
            .map(|(dir, p)| t.on_datagram(*dir, p))
            .collect()
    }

    use Answer::{NotThis, Undecided};

    #[test]
    fn sequences() {
        let lt = handshake(b"-LT2060-");
        let tr = handshake(b"-TR4060-");
        let ut = handshake(b"-UT355S-");
        let cases: Vec<(&str, Packets, Vec<Answer>)> = vec![
            ("SYN -> STATE", vec![(0, hex(LT_SYN)), (1, hex(LT_STATE))], vec![Undecided, CONFIRMED]),
            ("STATE seen before SYN", vec![(1, hex(LT_STATE)), (0, hex(LT_SYN))], vec![Undecided, CONFIRMED]),
            ("SYN -> RESET", vec![(0, hex(LT_SYN)), (1, hex("31 00 3a 7c 88 12 04 f1 00 00 00 00 00 00 00 00 07 d2 9c 21"))], vec![Undecided, CONFIRMED]),
            (
                "one direction: DATA, DATA",
                vec![(0, with(LT_DATA_HDR, &lt)), (0, with(LT_DATA2_HDR, b"\x00\x00\x00\x01\x02"))],
                vec![Undecided, CONFIRMED],
            ),
            ("one direction: SYN, DATA (libutp)", vec![(0, hex(TR_SYN)), (0, with(TR_DATA_HDR, &tr))], vec![Undecided, CONFIRMED]),
            (
                "one direction: SYN + ext, DATA + SACK (uTorrent)",
                vec![(0, hex(UT_SYN_EXT)), (0, with(UT_DATA_SACK_HDR, &ut))],
                vec![Undecided, CONFIRMED],
            ),
            ("one direction: SYN retransmitted", vec![(0, hex(LT_SYN)), (0, hex("41 00 3a 7c 5e 4b 5c 60 00 00 00 00 00 00 00 00 9c 21 00 00"))], vec![Undecided, CONFIRMED]),
            ("one direction: STATE, STATE + SACK", vec![(1, hex(LT_STATE)), (1, hex(LT_STATE_SACK))], vec![Undecided, CONFIRMED]),
            ("mid-stream: STATE then DATA", vec![(1, hex(LT_STATE_SACK)), (0, with(LT_DATA2_HDR, b"\x00\x00\x00\x01\x02"))], vec![Undecided, CONFIRMED]),
            ("DATA then FIN", vec![(0, with(LT_DATA2_HDR, b"\x00\x00\x00\x00")), (0, hex(LT_FIN_REASON))], vec![Undecided, CONFIRMED]),
            ("uTP then DHT then uTP", vec![(0, hex(LT_SYN)), (0, b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe".to_vec()), (1, hex(LT_STATE))], vec![Undecided, Undecided, CONFIRMED]),
            // Negatives.
            ("single SYN", vec![(0, hex(LT_SYN))], vec![Undecided]),
            ("single DATA", vec![(0, with(LT_DATA_HDR, &lt))], vec![Undecided]),
            ("single STATE", vec![(1, hex(LT_STATE))], vec![Undecided]),
            (
                "SYN, STATE with another conn id",
                vec![(0, hex(LT_SYN)), (1, hex("21 00 3a 90 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 9c 21"))],
                vec![Undecided, Undecided],
            ),
            (
                "SYN, STATE acking another seq",
                vec![(0, hex(LT_SYN)), (1, hex("21 00 3a 7c 88 12 04 f1 2a 0b 1c 4d 00 10 00 00 51 e0 10 00"))],
                vec![Undecided, Undecided],
            ),
            (
                "DATA, DATA with another conn id",
                vec![(0, with(LT_DATA_HDR, &lt)), (0, with("01 00 3a 90 5e 3d 0c 44 29 f4 80 17 00 0f fa 00 9c 23 51 df", b"x"))],
                vec![Undecided, Undecided],
            ),
            (
                "DATA, DATA with the same timestamp",
                vec![(0, with(LT_DATA_HDR, &lt)), (0, with("01 00 3a 7d 5e 3c 9b 10 29 f4 80 17 00 0f fa 00 9c 23 51 df", b"x"))],
                vec![Undecided, Undecided],
            ),
            (
                "DATA, DATA with a repeated seq",
                vec![(0, with(LT_DATA_HDR, &lt)), (0, with("01 00 3a 7d 5e 3d 0c 44 29 f4 80 17 00 0f fa 00 9c 22 51 df", b"x"))],
                vec![Undecided, Undecided],
            ),
            (
                "both directions, ids differing by 2",
                vec![(1, hex(LT_STATE_SACK)), (0, with("01 00 3a 7e 5e 3d 0c 44 29 f4 80 17 00 0f fa 00 9c 23 51 df", b"x"))],
                vec![Undecided, Undecided],
            ),
            (
                "DNS retries on a high port (DATA-looking)",
                vec![
                    (0, hex("01 00 01 00 00 01 00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01")),
                    (0, hex("01 00 01 00 00 01 00 00 00 00 00 00 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01")),
                ],
                vec![Undecided, Undecided],
            ),
            ("DHT first", vec![(0, b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe".to_vec()), (1, hex(LT_STATE))], vec![NotThis, NotThis]),
            ("uTP then garbage", vec![(0, hex(LT_SYN)), (1, hex("9f 3b e2 04 71 c8 5a 16 0d ee 42 b7 93 28 6c f1 05 aa 3e 7d")), (1, hex(LT_STATE))], vec![Undecided, NotThis, NotThis]),
            ("WireGuard both ways", vec![(0, wireguard(1, 148)), (1, wireguard(2, 92))], vec![NotThis, NotThis]),
        ];
        for (name, packets, want) in cases {
            assert_eq!(run(&packets), want, "{name}");
        }
    }

    #[test]
    fn confirmed_is_final_and_give_up_after_max_packets() {
        let mut t = UtpTracker::default();
        assert_eq!(t.on_datagram(0, &hex(LT_SYN)), Undecided);
        assert_eq!(t.on_datagram(1, &hex(LT_STATE)), CONFIRMED);
        assert!(t.confirmed());
        assert_eq!(t.on_datagram(1, b"junk"), CONFIRMED);

        // Valid headers that never agree: a fresh connection id each time.
        let mut t = UtpTracker::default();
        let mut answers = Vec::new();
        for i in 0..MAX_PACKETS {
            let id = 0x1000u16 + u16::from(i) * 7;
            let mut p = hex(LT_STATE);
            p[2..4].copy_from_slice(&id.to_be_bytes());
            answers.push(t.on_datagram(usize::from(i % 2), &p));
        }
        assert!(answers[..answers.len() - 1].iter().all(|a| *a == Undecided));
        assert_eq!(answers.last(), Some(&NotThis));
    }

    #[test]
    fn tracker_is_small() {
        assert!(std::mem::size_of::<UtpTracker>() <= 32);
    }

    #[test]
    fn never_panics_on_prefixes_and_mutations() {
        let lt = handshake(b"-LT2060-");
        let base = [
            with(LT_DATA_HDR, &lt),
            hex(LT_STATE_SACK),
            hex(UT_SYN_EXT),
            hex(LT_FIN_REASON),
        ];
        for b in &base {
            for n in 0..=b.len() {
                let _ = parse(&b[..n]);
                let mut t = UtpTracker::default();
                let _ = t.on_datagram(0, &b[..n]);
                let _ = t.on_datagram(7, &b[..n]);
            }
            for i in 0..b.len() {
                for v in [0x00, 0x01, 0x03, 0x04, 0xff] {
                    let mut m = b.clone();
                    m[i] = v;
                    let _ = parse(&m);
                }
            }
        }
    }
}
