//! DHT (BEP 5 KRPC, with the BEP 42/43/44/51 fields): a datagram validated whole as one
//! KRPC message, and the probe that counts datagrams that open like KRPC but are not.
//!
//! Pure and allocation-free like the bencode walker it uses ([`super::bencode`]).

use super::bencode::{bencode_len, byte, int_at, string_value, Dict, List, Order, R};
use super::{Answer, Evidence, Method, Packet, Probe, Proto, Rules};

/// Longest transaction id accepted. Clients use 2 (µTorrent, most) to 4 (libtorrent) bytes; the
/// margin covers crawlers and test tools.
const MAX_TID_LEN: usize = 64;
/// Longest query method name (`sample_infohashes` is 17).
const MAX_METHOD_LEN: usize = 32;
/// Longest `v` (client version) value: BEP 5 uses 4 bytes (2 letters + 2 version bytes); some
/// clients send longer strings.
const MAX_VERSION_LEN: usize = 64;
/// Length of a node id (and of an info hash).
pub(super) const ID_LEN: usize = 20;

/// The three KRPC message types (the `y` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KrpcKind {
    Query,
    Response,
    Error,
}

/// Whether the dictionary at `pos` (nesting `depth`) has an `id` key holding 20 bytes.
fn dict_has_node_id(data: &[u8], pos: usize, depth: usize) -> bool {
    let Ok(mut dict) = Dict::open(data, pos, depth, Order::Sorted) else {
        return false;
    };
    while let Ok(Some(e)) = dict.next_entry() {
        if e.key == b"id" {
            return string_value(data, e.start).is_some_and(|id| id.len() == ID_LEN);
        }
    }
    false
}

/// Whether the value at `pos` is the error list `[code, message]`.
fn is_error_list(data: &[u8], pos: usize, depth: usize) -> bool {
    let check = || -> R<bool> {
        let mut list = List::open(data, pos, depth, Order::Sorted)?;
        let Some((code, _)) = list.next_item()? else {
            return Ok(false);
        };
        let Some((msg, _)) = list.next_item()? else {
            return Ok(false);
        };
        Ok(byte(data, code)? == b'i'
            && byte(data, msg)?.is_ascii_digit()
            && list.next_item()?.is_none())
    };
    check().unwrap_or(false)
}

/// A query method name: a short identifier (`ping`, `find_node`, `get_peers`,
/// `announce_peer`, `get`, `put`, `sample_infohashes`, or another client's extension).
fn is_method_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_METHOD_LEN
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
}

/// Recognises a UDP datagram that is exactly one KRPC message (BEP 5): one bencoded
/// dictionary (strictly sorted keys) spanning the whole datagram, with
///
/// * `y` = `q`, `r` or `e`; `t` a non-empty string of at most 64 bytes;
/// * for a query: `q` a method name (ASCII identifier, ≤ 32 bytes) and `a` a dictionary with a
///   20-byte `id`;
/// * for a response: `r` a dictionary with a 20-byte `id`;
/// * for an error: `e` the list `[integer, string]`;
/// * if present: `v` a string (≤ 64 bytes), `ip` (BEP 42) 6 or 18 bytes, `ro` (BEP 43) an
///   integer.
///
/// Other keys are allowed. Returns `None` if the datagram is not KRPC.
pub fn parse_krpc(datagram: &[u8]) -> Option<KrpcKind> {
    let d = datagram;
    if d.first() != Some(&b'd') {
        return None;
    }
    if bencode_len(d)? != d.len() {
        return None;
    }
    let mut dict = Dict::open(d, 0, 0, Order::Sorted).ok()?;
    let mut y = None;
    let mut tid_ok = false;
    let mut method_ok = false;
    let mut args_ok = false;
    let mut reply_ok = false;
    let mut error_ok = false;
    while let Some(e) = dict.next_entry().ok()? {
        match e.key {
            b"y" => y = Some(string_value(d, e.start)?),
            b"t" => {
                let t = string_value(d, e.start)?;
                tid_ok = !t.is_empty() && t.len() <= MAX_TID_LEN;
            }
            b"q" => method_ok = string_value(d, e.start).is_some_and(is_method_name),
            b"a" => args_ok = dict_has_node_id(d, e.start, 1),
            b"r" => reply_ok = dict_has_node_id(d, e.start, 1),
            b"e" => error_ok = is_error_list(d, e.start, 1),
            b"v" if string_value(d, e.start)?.len() > MAX_VERSION_LEN => return None,
            b"ip" => {
                let ip = string_value(d, e.start)?;
                if ip.len() != 6 && ip.len() != 18 {
                    return None;
                }
            }
            b"ro" => {
                int_at(d, e.start).ok()?;
            }
            _ => {}
        }
    }
    if !tid_ok {
        return None;
    }
    match y? {
        b"q" if method_ok && args_ok => Some(KrpcKind::Query),
        b"r" if reply_ok => Some(KrpcKind::Response),
        b"e" if error_ok => Some(KrpcKind::Error),
        _ => None,
    }
}

/// How KRPC messages begin (BEP 5 keys are sorted): query, response, BEP 42 response.
pub const KRPC_PREFIXES: [&[u8]; 3] = [b"d1:ad2:id20:", b"d1:rd2:id20:", b"d2:ip6:"];

/// The guard of a KRPC message, for counting malformed ones: the prefixes above, a BEP 42
/// response with an IPv6 address, and an error.
const GUARDS: [&[u8]; 5] = [
    b"d1:ad2:id20:",
    b"d1:rd2:id20:",
    b"d2:ip6:",
    b"d2:ip18:",
    b"d1:eli",
];

/// Whether a whole datagram opens like a KRPC message but is not one: a malformed message.
pub fn malformed_krpc(datagram: &[u8]) -> bool {
    GUARDS.iter().any(|g| datagram.starts_with(g)) && parse_krpc(datagram).is_none()
}

/// The DHT probe: a datagram validated whole, or one cut short that opens with a query's or
/// response's sorted keys. Counts whole datagrams that open like KRPC and fail validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Krpc {
    malformed: u32,
}

impl Probe for Krpc {
    fn probe(&mut self, _: &Rules, pkt: &Packet<'_>) -> Answer {
        let d = pkt.payload;
        if parse_krpc(d).is_some() {
            return Answer::bittorrent(Proto::Dht, Method::Signature, Evidence::Krpc);
        }
        // A datagram cut short (snap length, or a first fragment) cannot be validated whole;
        // the sorted-key prefixes of KRPC queries and responses are evidence enough.
        if pkt.cut {
            if KRPC_PREFIXES.iter().any(|p| d.starts_with(p)) {
                return Answer::bittorrent(Proto::Dht, Method::Signature, Evidence::KrpcPrefix);
            }
        } else if GUARDS.iter().any(|g| d.starts_with(g)) {
            self.malformed = self.malformed.saturating_add(1);
        }
        Answer::NotThis
    }

    fn malformed(&self) -> u32 {
        self.malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::peers::{for_each_advertised_peer, MAX_ENDPOINTS};
    use crate::classify::tracker_http::is_tracker_reply;

    /// A node id with bytes that look like bencode syntax, to catch parsers that scan.
    const NID: &[u8; 20] = b"\x00e:d\xffi1e\x80l0123456789";
    const NID2: &[u8; 20] = b"\xeb\xff6isQ\xffJ\xec)\xcd\xba\xab\xf2\xfb\xe3F|\xc2g";
    const HASH: &[u8; 20] = b"\xd1\x10\x1a,\xc2\xa9E\x92\x8c\x1fj\xd2Y\x01\xb3\x8f\x0f\x11!\x9b";

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn node(id: &[u8; 20], ip: [u8; 4], port: u16) -> Vec<u8> {
        cat(&[id, &ip, &port.to_be_bytes()])
    }

    /// Real-shaped KRPC messages from several clients, with the expected kind.
    fn krpc_positives() -> Vec<(&'static str, Vec<u8>, KrpcKind)> {
        use KrpcKind::*;
        let two_nodes = cat(&[
            &node(NID2, [192, 0, 2, 7], 6881),
            &node(HASH, [198, 51, 100, 9], 51413),
        ]);
        let mut v6 = [0u8; 18];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        v6[16] = 0x1a;
        v6[17] = 0xe1;
        vec![
            (
                "libtorrent ping",
                cat(&[
                    b"d1:ad2:id20:",
                    NID,
                    b"e1:q4:ping1:t4:\x9a\x01\x00\x001:v4:LT\x01\x021:y1:qe",
                ]),
                Query,
            ),
            (
                "transmission (jech/dht) ping",
                cat(&[
                    b"d1:ad2:id20:",
                    NID,
                    b"e1:q4:ping1:t4:pn\x00\x001:v4:TR\x03\x001:y1:qe",
                ]),
                Query,
            ),
            (
                "find_node with want (BEP 32)",
                cat(&[
                    b"d1:ad2:id20:",
                    NID,
                    b"6:target20:",
                    NID2,
                    b"4:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe",
                ]),
                Query,
            ),
            (
                "utorrent get_peers",
                cat(&[
                    b"d1:ad2:id20:",
                    NID,
                    b"9:info_hash20:",
                    HASH,
                    b"e1:q9:get_peers1:t2:\x00\x011:v4:UT\xab\xcd1:y1:qe",
                ]),
                Query,
            ),
            (
                "announce_peer with implied_port, port, token",
                cat(&[
                    b"d1:ad2:id20:",
                    NID,
                    b"12:implied_porti1e9:info_hash20:",
                    HASH,
                    b"4:porti6881e5:token8:\x01\x02\x03\x04\x05\x06\x07\x08e",
                    b"1:q13:announce_peer1:t2:aa1:y1:qe",
                ]),
                Query,
            ),
            (
                "read-only ping (BEP 43 ro)",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping2:roi1e1:t2:aa1:y1:qe"]),
                Query,
            ),
            (
                "BEP 44 get",
                cat(&[
                    b"d1:ad2:id20:",
                    NID,
                    b"3:seqi3e6:target20:",
                    HASH,
                    b"e1:q3:get1:t2:aa1:y1:qe",
                ]),
                Query,
            ),
            (
                "BEP 44 mutable put with salt and cas",
                cat(&[
                    b"d1:ad3:casi3e2:id20:",
                    NID,
                    b"1:k32:",
                    &[0x77; 32],
                    b"4:salt6:foobar3:seqi4e3:sig64:",
                    &[0x5a; 64],
                    b"5:token4:\xde\xad\xbe\xef1:v12:Hello World!e",
                    b"1:q3:put1:t2:aa1:y1:qe",
                ]),
                Query,
            ),
            (
                "BEP 51 sample_infohashes query",
                cat(&[
                    b"d1:ad2:id20:",
                    NID,
                    b"6:target20:",
                    HASH,
                    b"e1:q17:sample_infohashes1:t2:aa1:y1:qe",
                ]),
                Query,
            ),
            (
                "ping response",
                cat(&[b"d1:rd2:id20:", NID2, b"e1:t2:aa1:y1:re"]),
                Response,
            ),
            (
                "find_node response with 2 compact nodes",
                cat(&[
                    b"d1:rd2:id20:",
                    NID2,
                    b"5:nodes52:",
                    &two_nodes,
                    b"e1:t2:aa1:y1:re",
                ]),
                Response,
            ),
            (
                "get_peers response with nodes, token, values (v4 and v6)",
                cat(&[
                    b"d1:rd2:id20:",
                    NID2,
                    b"5:nodes52:",
                    &two_nodes,
                    b"5:token8:\x11\x22\x33\x44\x55\x66\x77\x88",
                    b"6:valuesl6:\xcb\x00\x71\x05\x1a\xe118:",
                    &v6,
                    b"ee1:t2:aa1:v4:LT\x01\x021:y1:re",
                ]),
                Response,
            ),
            (
                "BEP 42 response with ip first",
                cat(&[
                    b"d2:ip6:\xc6\x33\x64\x01\x1a\xe11:rd2:id20:",
                    NID2,
                    b"e1:t4:\x9a\x01\x00\x001:v4:LT\x01\x021:y1:re",
                ]),
                Response,
            ),
            (
                "BEP 44 get response",
                cat(&[
                    b"d1:rd2:id20:",
                    NID2,
                    b"1:k32:",
                    &[0x77; 32],
                    b"5:nodes26:",
                    &node(NID, [203, 0, 113, 5], 6881),
                    b"3:seqi4e3:sig64:",
                    &[0x5a; 64],
                    b"5:token4:\xde\xad\xbe\xef1:v12:Hello World!e1:t2:aa1:y1:re",
                ]),
                Response,
            ),
            (
                "BEP 51 sample_infohashes response",
                cat(&[
                    b"d1:rd2:id20:",
                    NID2,
                    b"8:intervali21600e5:nodes26:",
                    &node(NID, [203, 0, 113, 5], 6881),
                    b"3:numi300e7:samples40:",
                    HASH,
                    NID,
                    b"e1:t2:aa1:y1:re",
                ]),
                Response,
            ),
            (
                "BEP 5 error example",
                b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee".to_vec(),
                Error,
            ),
            (
                "libtorrent error with v",
                b"d1:eli203e14:invalid packete1:t2:\x00\x071:v4:LT\x02\x001:y1:ee".to_vec(),
                Error,
            ),
        ]
    }

    #[test]
    fn krpc_positives_are_recognised() {
        for (name, msg, kind) in krpc_positives() {
            assert_eq!(parse_krpc(&msg), Some(kind), "{name}");
            assert_eq!(bencode_len(&msg), Some(msg.len()), "{name}");
        }
    }

    #[test]
    fn every_truncation_of_a_positive_is_rejected() {
        for (name, msg, _) in krpc_positives() {
            for cut in 0..msg.len() {
                assert_eq!(parse_krpc(&msg[..cut]), None, "{name} cut at {cut}");
                assert_eq!(bencode_len(&msg[..cut]), None, "{name} cut at {cut}");
            }
        }
    }

    #[test]
    fn krpc_negatives() {
        let dns: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
        let mut deep = b"d1:ad2:id20:".to_vec();
        deep.extend_from_slice(NID);
        deep.extend_from_slice(b"1:x");
        deep.extend_from_slice(&[b'l'; 17]);
        deep.extend_from_slice(&[b'e'; 17]);
        deep.extend_from_slice(b"e1:q4:ping1:t2:aa1:y1:qe");
        let mut rng: u32 = 0x1234_5678;
        let random: Vec<u8> = (0..200)
            .map(|_| {
                rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (rng >> 24) as u8
            })
            .collect();
        let table: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("random bytes", random),
            ("DNS query", dns.to_vec()),
            (
                "JSON",
                br#"{"t":"aa","y":"q","q":"ping","a":{"id":"abcdefghij0123456789"}}"#.to_vec(),
            ),
            (
                "unsorted keys",
                cat(&[b"d1:q4:ping1:ad2:id20:", NID, b"e1:t2:aa1:y1:qe"]),
            ),
            (
                "unsorted inner keys",
                cat(&[
                    b"d1:ad6:target20:",
                    HASH,
                    b"2:id20:",
                    NID,
                    b"e1:q9:find_node1:t2:aa1:y1:qe",
                ]),
            ),
            (
                "duplicate key",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t2:aa1:t2:bb1:y1:qe"]),
            ),
            (
                "missing y",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t2:aae"]),
            ),
            (
                "y = x",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t2:aa1:y1:xe"]),
            ),
            (
                "y = qq",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t2:aa1:y2:qqe"]),
            ),
            (
                "y an integer",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t2:aa1:yi1ee"]),
            ),
            (
                "missing t",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:y1:qe"]),
            ),
            (
                "empty t",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t0:1:y1:qe"]),
            ),
            (
                "t an integer",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:ti7e1:y1:qe"]),
            ),
            (
                "id of 19 bytes",
                cat(&[b"d1:ad2:id19:", &NID[..19], b"e1:q4:ping1:t2:aa1:y1:qe"]),
            ),
            (
                "id of 21 bytes",
                cat(&[b"d1:rd2:id21:", NID, b"xe1:t2:aa1:y1:re"]),
            ),
            ("query without a", b"d1:q4:ping1:t2:aa1:y1:qe".to_vec()),
            (
                "query without q",
                cat(&[b"d1:ad2:id20:", NID, b"e1:t2:aa1:y1:qe"]),
            ),
            (
                "method with a space",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q5:pi ng1:t2:aa1:y1:qe"]),
            ),
            ("response without r", b"d1:t2:aa1:y1:re".to_vec()),
            (
                "response r is a list",
                cat(&[b"d1:rl2:id20:", NID, b"e1:t2:aa1:y1:re"]),
            ),
            (
                "error with string first",
                b"d1:el5:oops!i201ee1:t2:aa1:y1:ee".to_vec(),
            ),
            (
                "error with 3 items",
                b"d1:eli201e3:abci0ee1:t2:aa1:y1:ee".to_vec(),
            ),
            (
                "ip of 4 bytes",
                cat(&[
                    b"d2:ip4:\xc6\x33\x64\x011:rd2:id20:",
                    NID2,
                    b"e1:t2:aa1:y1:re",
                ]),
            ),
            (
                "v an integer",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t2:aa1:vi1e1:y1:qe"]),
            ),
            (
                "ro a string",
                cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping2:ro1:11:t2:aa1:y1:qe"]),
            ),
            (
                "string length overflowing",
                cat(&[b"d1:ad2:id99:", NID, b"e1:q4:ping1:t2:aa1:y1:qe"]),
            ),
            ("huge string length", b"d1:t99999999999:aa1:y1:qe".to_vec()),
            ("nesting deeper than MAX_DEPTH", deep),
            (
                "trailing garbage",
                cat(&[b"d1:rd2:id20:", NID2, b"e1:t2:aa1:y1:rexyz"]),
            ),
            (
                "trailing newline",
                cat(&[b"d1:rd2:id20:", NID2, b"e1:t2:aa1:y1:re\n"]),
            ),
            (
                "two messages",
                cat(&[
                    b"d1:rd2:id20:",
                    NID2,
                    b"e1:t2:aa1:y1:red1:rd2:id20:",
                    NID2,
                    b"e1:t2:aa1:y1:re",
                ]),
            ),
            ("a list, not a dict", b"l1:y1:qe".to_vec()),
            (
                "bad integer i01e",
                cat(&[b"d1:ad2:id20:", NID, b"4:porti01ee1:q4:ping1:t2:aa1:y1:qe"]),
            ),
            (
                "bad integer i-0e",
                cat(&[b"d1:ad2:id20:", NID, b"4:porti-0ee1:q4:ping1:t2:aa1:y1:qe"]),
            ),
            (
                "non-string key",
                cat(&[b"d1:ad2:id20:", NID, b"i1ei2ee1:q4:ping1:t2:aa1:y1:qe"]),
            ),
        ];
        for (name, msg) in table {
            assert_eq!(parse_krpc(&msg), None, "{name}");
        }
    }

    /// Single-byte mutations of every positive: never a panic, and every answer agrees with
    /// `bencode_len` (a KRPC message is always valid bencode spanning the datagram).
    #[test]
    fn mutations_never_panic() {
        for (_, msg, _) in krpc_positives() {
            for i in 0..msg.len() {
                for b in [0u8, b'e', b'd', b'l', b'i', b':', b'0', b'9', b'-', 0xff] {
                    let mut m = msg.clone();
                    m[i] = b;
                    if parse_krpc(&m).is_some() {
                        assert_eq!(bencode_len(&m), Some(m.len()));
                    }
                    let _ = is_tracker_reply(&m);
                    for_each_advertised_peer(&m, &mut |_, _, _| {});
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::Just(b'd'), proptest::prelude::Just(b'l'),
                proptest::prelude::Just(b'e'), proptest::prelude::Just(b'i'),
                proptest::prelude::Just(b':'), proptest::prelude::Just(b'1'),
                proptest::prelude::Just(b'0'), proptest::prelude::Just(b'-'),
                proptest::prelude::any::<u8>(),
            ],
            0..200,
        )) {
            if let Some(n) = bencode_len(&data) {
                proptest::prop_assert!(n <= data.len());
            }
            let _ = parse_krpc(&data);
            let _ = is_tracker_reply(&data);
            let mut count = 0;
            for_each_advertised_peer(&data, &mut |_, _, _| count += 1);
            proptest::prop_assert!(count <= MAX_ENDPOINTS);
        }
    }

    fn datagram(payload: &[u8], cut: bool) -> Packet<'_> {
        Packet {
            transport: crate::classify::Transport::Udp,
            dir: 0,
            tcp: None,
            ports: (40000, 6881),
            payload,
            cut,
        }
    }

    #[test]
    fn probe_counts_malformed_messages() {
        let r = Rules::builtin().expect("rules");
        let mut k = Krpc::default();
        let ping = cat(&[b"d1:ad2:id20:", NID, b"e1:q4:ping1:t2:aa1:y1:qe"]);
        let dht = |e| Answer::bittorrent(Proto::Dht, Method::Signature, e);
        assert_eq!(k.probe(&r, &datagram(&ping, false)), dht(Evidence::Krpc));
        // Cut by the snap length: the prefix is evidence, and nothing is malformed.
        assert_eq!(
            k.probe(&r, &datagram(&ping[..30], true)),
            dht(Evidence::KrpcPrefix)
        );
        assert_eq!(k.malformed(), 0);
        // Whole datagrams that pass the guard and fail validation.
        let bad: &[&[u8]] = &[
            &ping[..ping.len() - 1],
            b"d1:ad2:id20:short",
            b"d1:rd2:id20:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00e1:t2:aa1:y1:qe",
            b"d1:eli201ee1:t2:aa1:y1:ee",
            b"d2:ip6:\x01\x02\x03\x04\x05\x06e",
        ];
        for (i, d) in bad.iter().enumerate() {
            assert!(malformed_krpc(d), "case {i}");
            assert_eq!(
                k.probe(&r, &datagram(d, false)),
                Answer::NotThis,
                "case {i}"
            );
        }
        assert_eq!(k.malformed(), bad.len() as u32);
        // Other datagrams are not counted; a valid error is no malformed message.
        let error = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        assert_eq!(k.probe(&r, &datagram(error, false)), dht(Evidence::Krpc));
        for d in [&b"d1:xi1ee"[..], b"\x41\x01\x00\x00", b""] {
            assert!(!malformed_krpc(d));
            assert_eq!(k.probe(&r, &datagram(d, false)), Answer::NotThis);
        }
        assert_eq!(k.malformed(), bad.len() as u32);
    }
}
