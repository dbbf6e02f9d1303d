//! Peers and nodes advertised inside BitTorrent messages: compact endpoints (BEP 5, BEP 11,
//! BEP 15, BEP 23), the `nodes`, `nodes6` and `values` of DHT responses, and the `peers` and
//! `peers6` of HTTP tracker replies.
//!
//! * at most [`MAX_ENDPOINTS`] endpoints are reported per message; endpoints with port 0 are
//!   skipped (not reachable, so useless for endpoint learning).

use std::net::IpAddr;

use super::bencode::{byte, int_at, string_value, Dict, Fail, List, Order, R};
use super::dht::ID_LEN;

/// Most endpoints reported per message by [`for_each_advertised_peer`]. A DHT response carries
/// at most 8 nodes (+ 8 nodes6) and about 100 values (the UDP size limit); trackers return 50
/// peers by default and rarely more than 200.
pub const MAX_ENDPOINTS: usize = 512;

/// A compact endpoint (BEP 5, BEP 11, BEP 15, BEP 23): 4 (IPv4) or 16 (IPv6) address bytes,
/// then a big-endian port; the address as IPv6 bytes, IPv4 mapped as `::ffff:a.b.c.d`.
pub fn compact_endpoint(entry: &[u8]) -> Option<([u8; 16], u16)> {
    let mut ip = [0u8; 16];
    let port = match entry.len() {
        6 => {
            ip[10] = 0xff;
            ip[11] = 0xff;
            ip[12..16].copy_from_slice(&entry[..4]);
            [entry[4], entry[5]]
        }
        18 => {
            ip.copy_from_slice(&entry[..16]);
            [entry[16], entry[17]]
        }
        _ => return None,
    };
    Some((ip, u16::from_be_bytes(port)))
}

/// Passes endpoints to the caller, up to [`MAX_ENDPOINTS`], skipping port 0.
struct Sink<'f> {
    f: &'f mut dyn FnMut([u8; 16], u16, bool),
    left: usize,
    /// The records being walked are DHT nodes (`nodes`, `nodes6`), not peers.
    node: bool,
}

impl Sink<'_> {
    /// Reports one endpoint; `Err` once the cap is reached (to stop the walk).
    fn emit(&mut self, ip: [u8; 16], port: u16) -> R<()> {
        if self.left == 0 {
            return Err(Fail::Invalid);
        }
        if port != 0 {
            self.left -= 1;
            (self.f)(ip, port, self.node);
        }
        Ok(())
    }

    /// A compact address: 4 or 16 address bytes followed by a big-endian port.
    fn compact(&mut self, entry: &[u8]) -> R<()> {
        match compact_endpoint(entry) {
            Some((addr, port)) => self.emit(addr, port),
            None => Ok(()),
        }
    }

    /// A string of fixed-size records, each ending with a compact address of `addr_len`
    /// bytes (skipping `skip` bytes of node id first). Ignored unless the length is a
    /// multiple of the record size.
    fn records(&mut self, s: &[u8], skip: usize, addr_len: usize) -> R<()> {
        let size = skip + addr_len;
        if !s.len().is_multiple_of(size) {
            return Ok(());
        }
        for rec in s.chunks_exact(size) {
            self.compact(&rec[skip..])?;
        }
        Ok(())
    }
}

/// Converts a textual IP address (dictionary-model tracker peers) to the mapped form.
fn text_ip(s: &[u8]) -> Option<[u8; 16]> {
    let ip: IpAddr = std::str::from_utf8(s).ok()?.parse().ok()?;
    Some(match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    })
}

/// `values`: a list of compact peer strings (6 or 18 bytes each).
fn walk_values(data: &[u8], pos: usize, depth: usize, sink: &mut Sink) -> R<()> {
    let mut list = List::open(data, pos, depth, Order::Any)?;
    while let Some((start, _)) = list.next_item()? {
        if let Some(s) = string_value(data, start) {
            sink.compact(s)?;
        }
    }
    Ok(())
}

/// Tracker `peers`, dictionary model: a list of `{ip: "a.b.c.d" or "::1", port: n, …}`.
fn walk_peer_dicts(data: &[u8], pos: usize, depth: usize, sink: &mut Sink) -> R<()> {
    let mut list = List::open(data, pos, depth, Order::Any)?;
    while let Some((start, _)) = list.next_item()? {
        let Ok(mut peer) = Dict::open(data, start, depth + 1, Order::Any) else {
            continue;
        };
        let mut ip = None;
        let mut port = None;
        while let Some(e) = peer.next_entry()? {
            match e.key {
                b"ip" => ip = string_value(data, e.start).and_then(text_ip),
                b"port" => {
                    port = int_at(data, e.start)
                        .ok()
                        .and_then(|(v, _)| u16::try_from(v).ok())
                }
                _ => {}
            }
        }
        if let (Some(ip), Some(port)) = (ip, port) {
            sink.emit(ip, port)?;
        }
    }
    Ok(())
}

fn walk_message(msg: &[u8], sink: &mut Sink) -> R<()> {
    let mut top = Dict::open(msg, 0, 0, Order::Any)?;
    while let Some(e) = top.next_entry()? {
        match e.key {
            b"r" => {
                let Ok(mut r) = Dict::open(msg, e.start, 1, Order::Any) else {
                    continue;
                };
                while let Some(f) = r.next_entry()? {
                    match f.key {
                        b"nodes" | b"nodes6" => {
                            if let Some(s) = string_value(msg, f.start) {
                                let size = if f.key == b"nodes" { 6 } else { 18 };
                                sink.node = true;
                                let walked = sink.records(s, ID_LEN, size);
                                sink.node = false;
                                walked?;
                            }
                        }
                        b"values" if byte(msg, f.start)? == b'l' => {
                            walk_values(msg, f.start, 2, sink)?;
                        }
                        _ => {}
                    }
                }
            }
            b"peers" => match byte(msg, e.start)? {
                b'l' => walk_peer_dicts(msg, e.start, 1, sink)?,
                _ => {
                    if let Some(s) = string_value(msg, e.start) {
                        sink.records(s, 0, 6)?;
                    }
                }
            },
            b"peers6" => {
                if let Some(s) = string_value(msg, e.start) {
                    sink.records(s, 0, 18)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Calls `f` with each endpoint (IPv6 bytes, IPv4 mapped as `::ffff:a.b.c.d`; port) advertised
/// in a KRPC response (`r` → `nodes` (26-byte records), `nodes6` (38), `values` (list of 6- or
/// 18-byte strings)) or an HTTP tracker reply (`peers` as a compact string of 6-byte records or
/// a list of dictionaries with a textual `ip` and an integer `port`; `peers6`, 18-byte
/// records). `f`'s third argument says the endpoint is a DHT node (`nodes`, `nodes6`), reachable
/// over UDP only, rather than a peer. Keys may be in any order. Compact strings whose length is not a multiple of the
/// record size are skipped; endpoints with port 0 are skipped; at most [`MAX_ENDPOINTS`] are
/// reported. The walk stops at the first malformed byte, so a message cut short yields the
/// endpoints of the fields that were complete. Does not allocate.
pub fn for_each_advertised_peer(msg: &[u8], f: &mut dyn FnMut([u8; 16], u16, bool)) {
    let mut sink = Sink {
        f,
        left: MAX_ENDPOINTS,
        node: false,
    };
    let _ = walk_message(msg, &mut sink);
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::dht::{parse_krpc, KrpcKind};
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

    fn mapped(ip: [u8; 4]) -> [u8; 16] {
        let mut m = [0u8; 16];
        m[10] = 0xff;
        m[11] = 0xff;
        m[12..].copy_from_slice(&ip);
        m
    }

    fn collect(msg: &[u8]) -> Vec<([u8; 16], u16)> {
        let mut out = Vec::new();
        for_each_advertised_peer(msg, &mut |ip, port, _| out.push((ip, port)));
        out
    }
    #[test]
    fn peers_from_dht_response() {
        let v6 = {
            let mut a = [0u8; 18];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            a[15] = 1;
            a[16..].copy_from_slice(&6881u16.to_be_bytes());
            a
        };
        let msg = cat(&[
            b"d1:rd2:id20:",
            NID2,
            b"5:nodes52:",
            &node(NID, [192, 0, 2, 7], 6881),
            &node(HASH, [198, 51, 100, 9], 51413),
            b"5:token4:\x01\x02\x03\x04",
            b"6:valuesl6:\xcb\x00\x71\x05\x1a\xe118:",
            &v6,
            b"6:\x01\x02\x03\x04\x00\x005:shortee",
            b"1:t2:aa1:y1:re",
        ]);
        assert_eq!(parse_krpc(&msg), Some(KrpcKind::Response));
        let mut ip6 = [0u8; 16];
        ip6.copy_from_slice(&v6[..16]);
        assert_eq!(
            collect(&msg),
            vec![
                (mapped([192, 0, 2, 7]), 6881),
                (mapped([198, 51, 100, 9]), 51413),
                (mapped([203, 0, 113, 5]), 6881),
                (ip6, 6881),
            ]
        );
    }

    #[test]
    fn peers_from_nodes6_and_bad_lengths() {
        let mut rec = NID.to_vec();
        let mut ip = [0u8; 16];
        ip[0] = 0x20;
        ip[1] = 0x01;
        ip[15] = 9;
        rec.extend_from_slice(&ip);
        rec.extend_from_slice(&4242u16.to_be_bytes());
        let msg = cat(&[
            b"d1:rd2:id20:",
            NID2,
            b"5:nodes27:",
            &node(NID, [192, 0, 2, 7], 6881),
            b"x6:nodes638:",
            &rec,
            b"e1:t2:aa1:y1:re",
        ]);
        // nodes has a stray byte: skipped whole; nodes6 is fine.
        assert_eq!(collect(&msg), vec![(ip, 4242)]);
    }

    #[test]
    fn peers_from_tracker_replies() {
        let mut ip6 = [0u8; 16];
        ip6[..2].copy_from_slice(&[0xfe, 0x80]);
        ip6[15] = 2;
        let compact = cat(&[
            b"d8:completei5e10:incompletei2e8:intervali1800e5:peers12:",
            b"\xc0\x00\x02\x07\x1a\xe1\xc6\x33\x64\x09\xc8\xd5",
            b"6:peers618:",
            &ip6,
            b"\x1a\xe1e",
        ]);
        assert!(is_tracker_reply(&compact));
        assert_eq!(
            collect(&compact),
            vec![
                (mapped([192, 0, 2, 7]), 6881),
                (mapped([198, 51, 100, 9]), 51413),
                (ip6, 6881),
            ]
        );

        // Dictionary model (compact=0), unsorted keys as some trackers send them.
        let dicts = b"d8:intervali1800e5:peersld2:ip9:192.0.2.77:peer id20:-TR3000-abcdefghijkl4:porti6881eed2:ip11:2001:db8::14:porti51413eed2:ip11:example.org4:porti1eed2:ip8:10.0.0.14:porti70000eeee";
        assert!(is_tracker_reply(dicts));
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        assert_eq!(
            collect(dicts),
            vec![(mapped([192, 0, 2, 7]), 6881), (v6, 51413)]
        );
    }

    #[test]
    fn endpoint_cap_and_port_zero() {
        let n = 600;
        let mut peers = Vec::new();
        for i in 0..n {
            peers.extend_from_slice(&[10, 0, (i >> 8) as u8, i as u8, 0x1a, 0xe1]);
        }
        let msg = cat(&[
            b"d8:intervali1800e5:peers",
            format!("{}:", peers.len()).as_bytes(),
            &peers,
            b"e",
        ]);
        assert_eq!(collect(&msg).len(), MAX_ENDPOINTS);
        let zero = b"d5:peers12:\x01\x02\x03\x04\x00\x00\x05\x06\x07\x08\x00\x01e";
        assert_eq!(collect(zero), vec![(mapped([5, 6, 7, 8]), 1)]);
    }

    #[test]
    fn no_peers_from_garbage() {
        for msg in [
            &b""[..],
            b"GET / HTTP/1.1\r\n",
            b"d5:peers6:\x01\x02",
            b"l6:\x01\x02\x03\x04\x05\x06e",
        ] {
            assert!(collect(msg).is_empty());
        }
    }
}
