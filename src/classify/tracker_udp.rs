//! UDP trackers (BEP 15): the shape of requests and responses, and the ids that tie a
//! conversation together.

use super::peers::compact_endpoint;
use super::{Answer, Evidence, Method, Packet, Probe, Proto, Rules, Transport};

/// BEP 15's protocol id, the first 8 bytes of every connect request.
const PROTOCOL_ID: [u8; 8] = [0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80];

/// A datagram that opens with BEP 15's protocol id but is no connect request (16 bytes,
/// action 0): a malformed tracker message.
pub fn malformed_connect(d: &[u8]) -> bool {
    d.starts_with(&PROTOCOL_ID) && (d.len() != 16 || d[8..12] != [0, 0, 0, 0])
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

/// Most peers taken from one announce response.
const MAX_ANNOUNCE_PEERS: usize = 512;

/// Calls `f` with each peer (IPv6 bytes, IPv4 mapped; port) of a BEP 15 announce response:
/// action 1, transaction id, interval, leechers, seeders, then 6-byte peers, or 18-byte ones
/// when the response came over IPv6 (`v6`). At most 512; a partial record at the end is
/// skipped.
pub fn for_each_announce_peer(d: &[u8], v6: bool, f: &mut dyn FnMut([u8; 16], u16)) {
    if d.len() <= 20 || d[..4] != [0, 0, 0, 1] {
        return;
    }
    let size = if v6 { 18 } else { 6 };
    for c in d[20..].chunks_exact(size).take(MAX_ANNOUNCE_PEERS) {
        if let Some((a, port)) = compact_endpoint(c) {
            f(a, port);
        }
    }
}

/// BEP 15 ties a UDP tracker conversation together: a request's transaction id comes back in
/// the response, and the connection id handed out by a connect response is sent with every
/// later request. Two datagrams tied this way (a request and its response in opposite
/// directions, a connect response and a request using its id, or two requests of one
/// connection with different transaction ids) are proof; either one alone, or a datagram and
/// its own retry, is only a shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackerTie {
    /// Last request per direction: (connection id, transaction id).
    request: [Option<([u8; 8], [u8; 4])>; 2],
    /// Connection id from a connect response, per direction it was sent in.
    granted: [Option<[u8; 8]>; 2],
    /// Transaction id of the last response per direction.
    response_tid: [Option<[u8; 4]>; 2],
}

impl TrackerTie {
    /// Feeds one datagram already known to be tracker-shaped; true when it ties up.
    pub fn on_datagram(&mut self, dir: usize, d: &[u8]) -> bool {
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

impl Probe for TrackerTie {
    /// A tracker-shaped datagram (never on a well-known service port: an EDNS message has
    /// `00 00 00 01` where BEP 15 puts "announce") is `Undecided` until it ties up; any other
    /// datagram is `NotThis`.
    fn probe(&mut self, rules: &Rules, pkt: &Packet<'_>) -> Answer {
        let (sport, dport) = pkt.ports;
        let service =
            rules.is_service(Transport::Udp, sport) || rules.is_service(Transport::Udp, dport);
        if service || !tracker_udp_shaped(pkt.payload) {
            return Answer::NotThis;
        }
        if self.on_datagram(pkt.dir & 1, pkt.payload) {
            Answer::bittorrent(Proto::TrackerUdp, Method::Signature, Evidence::TrackerTie)
        } else {
            Answer::Undecided
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: [u8; 8] = [0x5a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];

    fn announce(tid: u8) -> Vec<u8> {
        let mut a = CID.to_vec();
        a.extend_from_slice(&[0, 0, 0, 1, 0xde, 0xad, 0xbe, tid]);
        a.resize(98, 0x41);
        a
    }

    #[test]
    fn shapes() {
        let connect = [&PROTOCOL_ID[..], &[0, 0, 0, 0, 1, 2, 3, 4]].concat();
        let connect_reply = [0, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9];
        let mut announce_reply = vec![0, 0, 0, 1, 1, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2];
        assert!(tracker_udp_shaped(&announce(1)));
        assert!(tracker_udp_shaped(&connect_reply));
        assert!(tracker_udp_shaped(&announce_reply));
        announce_reply.extend_from_slice(&[10, 0, 0, 9, 0x1a, 0xe1]);
        assert!(tracker_udp_shaped(&announce_reply));
        announce_reply.push(0);
        assert!(!tracker_udp_shaped(&announce_reply));
        // A connect request is the signature's business, not a shape.
        assert!(!tracker_udp_shaped(&connect));
        assert!(!tracker_udp_shaped(&announce(1)[..97]));
        assert!(!tracker_udp_shaped(b"d1:ad2:id20:"));
    }

    #[test]
    fn ties() {
        let reply = vec![
            0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2,
        ];
        // A request and its response, in opposite directions.
        let mut t = TrackerTie::default();
        assert!(!t.on_datagram(0, &announce(0xef)));
        assert!(t.on_datagram(1, &reply));
        // A response and its own retry in the same direction tie nothing.
        let mut t = TrackerTie::default();
        assert!(!t.on_datagram(1, &reply));
        assert!(!t.on_datagram(1, &reply));
        // Two requests of one connection with different transaction ids.
        let mut t = TrackerTie::default();
        assert!(!t.on_datagram(0, &announce(1)));
        assert!(!t.on_datagram(0, &announce(1)));
        assert!(t.on_datagram(0, &announce(2)));
        // A connect response hands out the id a later request uses.
        let mut t = TrackerTie::default();
        let mut connect_reply = vec![0, 0, 0, 0, 9, 9, 9, 9];
        connect_reply.extend_from_slice(&CID);
        assert!(!t.on_datagram(1, &connect_reply));
        assert!(t.on_datagram(0, &announce(7)));
    }

    #[test]
    fn malformed_connects() {
        let connect = [&PROTOCOL_ID[..], &[0, 0, 0, 0, 1, 2, 3, 4]].concat();
        assert!(!malformed_connect(&connect));
        assert!(malformed_connect(&connect[..12]));
        assert!(malformed_connect(&[&connect[..], &[0]].concat()));
        let mut bad_action = connect.clone();
        bad_action[11] = 1;
        assert!(malformed_connect(&bad_action));
        assert!(!malformed_connect(&announce(1)));
        assert!(!malformed_connect(&PROTOCOL_ID[..7]));
    }

    #[test]
    fn announce_peers() {
        let mut reply = vec![0, 0, 0, 1, 1, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2];
        reply.extend_from_slice(&[10, 0, 0, 9, 0x1a, 0xe1, 192, 0, 2, 7, 0xc8, 0xd5, 1]);
        let mut got = Vec::new();
        for_each_announce_peer(&reply, false, &mut |a, p| got.push((a, p)));
        let mapped = |ip: [u8; 4]| {
            let mut m = [0u8; 16];
            m[10..12].copy_from_slice(&[0xff, 0xff]);
            m[12..].copy_from_slice(&ip);
            m
        };
        assert_eq!(
            got,
            vec![
                (mapped([10, 0, 0, 9]), 6881),
                (mapped([192, 0, 2, 7]), 51413)
            ]
        );
        // Over IPv6 the same bytes are no whole 18-byte record; a scrape reply has none.
        got.clear();
        for_each_announce_peer(&reply, true, &mut |a, p| got.push((a, p)));
        assert!(got.is_empty());
        reply[3] = 2;
        for_each_announce_peer(&reply, false, &mut |a, p| got.push((a, p)));
        assert!(got.is_empty());
    }
}
