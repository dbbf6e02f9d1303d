//! Bencode (BEP 3) validation, DHT KRPC (BEP 5, with the BEP 42/43/44/51 fields) recognition,
//! HTTP tracker reply recognition, and extraction of the peers and nodes those messages
//! advertise.
//!
//! Everything here is pure: no allocation, no panics on any input, nesting bounded by
//! [`MAX_DEPTH`] (the recursion depth of the walker is the nesting depth of the input, so the
//! stack use is bounded too).
//!
//! # Key order
//!
//! BEP 3 says dictionary keys "must appear in sorted order (sorted as raw strings)". Decoders
//! in the field differ: libtorrent's `bdecode` and Transmission's DHT (jech/dht, which scans
//! the datagram with `memmem`) do not check the order, and some trackers (chihaya, for one)
//! do emit unsorted replies (`d8:intervali1800e5:peers0:8:completei5e…`). Encoders in every DHT
//! implementation we know of (libtorrent, µTorrent, jech/dht, anacrolix, Vuze) do sort. So:
//!
//! * [`bencode_len`] and [`parse_krpc`] are strict: keys strictly ascending (which also rules out
//!   duplicates). For DHT the order is part of the fingerprint (the `d1:ad2:id20:` prefixes in
//!   the signature table depend on it) and costs no real traffic;
//! * [`is_tracker_reply`] and [`for_each_advertised_peer`] accept keys in any order, because
//!   real trackers send unsorted dictionaries.
//!
//! # Other limits
//!
//! * integers must fit in an `i64` (no real message needs more; a 30-digit "integer" is more
//!   likely text that happens to start with `i`);
//! * string lengths are at most 9 digits (< 1 GB; a datagram is < 64 KiB);
//! * at most [`MAX_ENDPOINTS`] endpoints are reported per message; endpoints with port 0 are
//!   skipped (not reachable, so useless for endpoint learning).

use std::net::IpAddr;

/// Deepest nesting of lists and dictionaries accepted. KRPC needs 3 (message → `r` →
/// `values`), tracker replies 3 (`files` → info hash → counters); 16 leaves a wide margin.
pub const MAX_DEPTH: usize = 16;

/// Most endpoints reported per message by [`for_each_advertised_peer`]. A DHT response carries
/// at most 8 nodes (+ 8 nodes6) and about 100 values (the UDP size limit); trackers return 50
/// peers by default and rarely more than 200.
pub const MAX_ENDPOINTS: usize = 512;

/// Longest string length prefix, in digits.
const MAX_LEN_DIGITS: usize = 9;
/// Longest transaction id accepted. Clients use 2 (µTorrent, most) to 4 (libtorrent) bytes; the
/// margin covers crawlers and test tools.
const MAX_TID_LEN: usize = 64;
/// Longest query method name (`sample_infohashes` is 17).
const MAX_METHOD_LEN: usize = 32;
/// Longest `v` (client version) value: BEP 5 uses 4 bytes (2 letters + 2 version bytes); some
/// clients send longer strings.
const MAX_VERSION_LEN: usize = 64;
/// Length of a node id (and of an info hash).
const ID_LEN: usize = 20;

/// Why a parse stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// The data ends before the value does (could be valid if there were more).
    Truncated,
    /// The data cannot be valid bencode (or exceeds a limit).
    Invalid,
}

type R<T> = Result<T, Fail>;

/// Whether dictionary keys must be strictly ascending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Sorted,
    Any,
}

fn byte(data: &[u8], pos: usize) -> R<u8> {
    data.get(pos).copied().ok_or(Fail::Truncated)
}

/// Parses the integer `i…e` at `pos`; returns its value and the position after it.
fn int_at(data: &[u8], pos: usize) -> R<(i64, usize)> {
    if byte(data, pos)? != b'i' {
        return Err(Fail::Invalid);
    }
    let mut p = pos + 1;
    let neg = byte(data, p)? == b'-';
    if neg {
        p += 1;
    }
    let start = p;
    let mut v: i64 = 0;
    loop {
        let c = byte(data, p)?;
        match c {
            b'0'..=b'9' => {
                if p > start && byte(data, start)? == b'0' {
                    return Err(Fail::Invalid); // leading zero
                }
                let d = i64::from(c - b'0');
                let next = v.checked_mul(10).and_then(|m| {
                    if neg {
                        m.checked_sub(d)
                    } else {
                        m.checked_add(d)
                    }
                });
                v = next.ok_or(Fail::Invalid)?;
                p += 1;
            }
            b'e' => break,
            _ => return Err(Fail::Invalid),
        }
    }
    if p == start || (neg && v == 0) {
        return Err(Fail::Invalid); // `ie`, `i-e`, `i-0e`
    }
    Ok((v, p + 1))
}

/// Parses the string `<len>:<bytes>` at `pos`; returns the bytes and the position after them.
fn str_at(data: &[u8], pos: usize) -> R<(&[u8], usize)> {
    let mut p = pos;
    let mut len: usize = 0;
    loop {
        let c = byte(data, p)?;
        match c {
            b'0'..=b'9' => {
                if p - pos >= MAX_LEN_DIGITS || (p > pos && byte(data, pos)? == b'0') {
                    return Err(Fail::Invalid);
                }
                len = len * 10 + usize::from(c - b'0');
                p += 1;
            }
            b':' if p > pos => break,
            _ => return Err(Fail::Invalid),
        }
    }
    let start = p + 1;
    let end = start.checked_add(len).ok_or(Fail::Invalid)?;
    match data.get(start..end) {
        Some(s) => Ok((s, end)),
        None => Err(Fail::Truncated),
    }
}

/// Skips the value at `pos`, which sits at nesting `depth` (0 for the outermost value).
fn skip_value(data: &[u8], pos: usize, depth: usize, order: Order) -> R<usize> {
    match byte(data, pos)? {
        b'i' => int_at(data, pos).map(|(_, end)| end),
        b'0'..=b'9' => str_at(data, pos).map(|(_, end)| end),
        b'l' => {
            let mut list = List::open(data, pos, depth, order)?;
            while list.next_item()?.is_some() {}
            Ok(list.pos)
        }
        b'd' => {
            let mut dict = Dict::open(data, pos, depth, order)?;
            while dict.next_entry()?.is_some() {}
            Ok(dict.pos)
        }
        _ => Err(Fail::Invalid),
    }
}

/// A cursor over the items of a list. After `next_item` returns `Ok(None)`, `pos` is the
/// position after the closing `e`.
struct List<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
    order: Order,
}

impl<'a> List<'a> {
    fn open(data: &'a [u8], pos: usize, depth: usize, order: Order) -> R<Self> {
        if byte(data, pos)? != b'l' || depth >= MAX_DEPTH {
            return Err(Fail::Invalid);
        }
        Ok(List {
            data,
            pos: pos + 1,
            depth,
            order,
        })
    }

    /// The next item as (start, end), or `None` at the end of the list.
    fn next_item(&mut self) -> R<Option<(usize, usize)>> {
        if byte(self.data, self.pos)? == b'e' {
            self.pos += 1;
            return Ok(None);
        }
        let start = self.pos;
        self.pos = skip_value(self.data, start, self.depth + 1, self.order)?;
        Ok(Some((start, self.pos)))
    }
}

/// One dictionary entry: the key and where its value starts.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    key: &'a [u8],
    start: usize,
}

/// A cursor over the entries of a dictionary. After the last entry, `pos` is the position
/// after the closing `e`.
struct Dict<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
    order: Order,
    prev: Option<&'a [u8]>,
}

impl<'a> Dict<'a> {
    fn open(data: &'a [u8], pos: usize, depth: usize, order: Order) -> R<Self> {
        if byte(data, pos)? != b'd' || depth >= MAX_DEPTH {
            return Err(Fail::Invalid);
        }
        Ok(Dict {
            data,
            pos: pos + 1,
            depth,
            order,
            prev: None,
        })
    }

    /// Reads the next key (checking the order) and leaves `pos` at its value; `None` at the
    /// end of the dictionary.
    fn next_key(&mut self) -> R<Option<&'a [u8]>> {
        if byte(self.data, self.pos)? == b'e' {
            self.pos += 1;
            return Ok(None);
        }
        let (key, end) = str_at(self.data, self.pos)?;
        if self.order == Order::Sorted {
            if let Some(prev) = self.prev {
                if prev >= key {
                    return Err(Fail::Invalid);
                }
            }
        }
        self.prev = Some(key);
        self.pos = end;
        Ok(Some(key))
    }

    /// Skips the value after a key read by `next_key`; returns its extent.
    fn skip_val(&mut self) -> R<(usize, usize)> {
        let start = self.pos;
        self.pos = skip_value(self.data, start, self.depth + 1, self.order)?;
        Ok((start, self.pos))
    }

    fn next_entry(&mut self) -> R<Option<Entry<'a>>> {
        match self.next_key()? {
            None => Ok(None),
            Some(key) => {
                let (start, _) = self.skip_val()?;
                Ok(Some(Entry { key, start }))
            }
        }
    }
}

/// Validates one complete bencoded value at the start of `data` and returns its length in
/// bytes (anything after it is ignored). Integers `i-?[0-9]+e` without leading zeros or `-0`
/// and within `i64`; strings `<len>:<bytes>` with no leading zero in the length and all bytes
/// present; lists; dictionaries with string keys in strictly ascending byte order (BEP 3; see
/// the module notes). Nesting deeper than [`MAX_DEPTH`] is rejected.
pub fn bencode_len(data: &[u8]) -> Option<usize> {
    skip_value(data, 0, 0, Order::Sorted).ok()
}

/// The three KRPC message types (the `y` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KrpcKind {
    Query,
    Response,
    Error,
}

/// The string at `pos`, if the value there is a string.
fn string_value(data: &[u8], pos: usize) -> Option<&[u8]> {
    str_at(data, pos).ok().map(|(s, _)| s)
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

/// What a known tracker key's value must start with.
fn tracker_key_type(key: &[u8]) -> Option<fn(u8) -> bool> {
    fn int(b: u8) -> bool {
        b == b'i'
    }
    fn string(b: u8) -> bool {
        b.is_ascii_digit()
    }
    fn string_or_list(b: u8) -> bool {
        b.is_ascii_digit() || b == b'l'
    }
    fn dict(b: u8) -> bool {
        b == b'd'
    }
    match key {
        b"interval" | b"min interval" | b"complete" | b"incomplete" => Some(int),
        b"failure reason" | b"warning message" | b"tracker id" | b"peers6" => Some(string),
        b"peers" => Some(string_or_list),
        b"files" => Some(dict),
        _ => None,
    }
}

/// Recognises a bencoded HTTP tracker reply body (BEP 3 announce, BEP 48 scrape): a dictionary
/// with at least one of `interval`, `min interval`, `failure reason`, `warning message`,
/// `tracker id`, `complete`, `incomplete`, `peers`, `peers6`, `files`, whose value has the
/// right type (integer; string; string or list for `peers`; dictionary for `files`).
///
/// Keys may come in any order (real trackers send unsorted replies). Bytes after the
/// dictionary are ignored. Because a capture may cut the body short, a *prefix* is accepted
/// when everything in it is valid so far and at least one tracker key has been read in full
/// (with its value's first byte of the right type, if present): `d8:completei5e5:peers60:…`
/// cut anywhere after `d8:complete` is a tracker reply; `d8:comp` is not.
pub fn is_tracker_reply(body: &[u8]) -> bool {
    let Ok(mut dict) = Dict::open(body, 0, 0, Order::Any) else {
        return false;
    };
    let mut seen = false;
    loop {
        match dict.next_key() {
            Ok(Some(key)) => {
                if let Some(accepts) = tracker_key_type(key) {
                    match body.get(dict.pos) {
                        None => return true,
                        Some(&b) if !accepts(b) => return false,
                        Some(_) => seen = true,
                    }
                }
            }
            Ok(None) => return seen,
            Err(Fail::Truncated) => return seen,
            Err(Fail::Invalid) => return false,
        }
        match dict.skip_val() {
            Ok(_) => {}
            Err(Fail::Truncated) => return seen,
            Err(Fail::Invalid) => return false,
        }
    }
}

/// Passes endpoints to the caller, up to [`MAX_ENDPOINTS`], skipping port 0.
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

    #[test]
    fn bencode_len_table() {
        let ok: &[(&[u8], usize)] = &[
            (b"i0e", 3),
            (b"i42e", 4),
            (b"i-5e", 4),
            (b"i9223372036854775807e", 21),
            (b"i-9223372036854775808e", 22),
            (b"0:", 2),
            (b"4:spam", 6),
            (b"4:spamtrailing", 6),
            (b"le", 2),
            (b"de", 2),
            (b"l4:spami42ee", 12),
            (b"d3:cow3:moo4:spam4:eggse", 24),
            (b"d4:spaml1:a1:bee", 16),
            (b"d1:a0:2:aa0:1:b0:e", 18),
            (b"d0:i1e1:ai2ee", 13),
        ];
        for &(data, len) in ok {
            assert_eq!(
                bencode_len(data),
                Some(len),
                "{}",
                String::from_utf8_lossy(data)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"i01e",
            b"i-0e",
            b"i-01e",
            b"ie",
            b"i-e",
            b"i1",
            b"i1.5e",
            b"i+1e",
            b"i9223372036854775808e",
            b"04:spam",
            b"5:spam",
            b"4spam",
            b":",
            b"-1:a",
            b"1234567890:a",
            b"l4:spam",
            b"d3:cow3:moo",
            b"d4:spam4:eggs3:cow3:mooe",
            b"d3:cow3:moo3:cow3:mooe",
            b"d3:cowe",
            b"di1e3:mooe",
            b"dl1:ae1:be",
            b"x",
            b"e",
        ];
        for &data in bad {
            assert_eq!(bencode_len(data), None, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn depth_limit() {
        let nested = |n: usize| [vec![b'l'; n], vec![b'e'; n]].concat();
        assert_eq!(bencode_len(&nested(MAX_DEPTH)), Some(2 * MAX_DEPTH));
        assert_eq!(bencode_len(&nested(MAX_DEPTH + 1)), None);
        // Very deep input must not blow the stack.
        assert_eq!(bencode_len(&nested(100_000)), None);
        let dicts = |n: usize| [b"d1:a".repeat(n), b"i0e".to_vec(), vec![b'e'; n]].concat();
        assert_eq!(
            bencode_len(&dicts(MAX_DEPTH)),
            Some(4 * MAX_DEPTH + 3 + MAX_DEPTH)
        );
        assert_eq!(bencode_len(&dicts(MAX_DEPTH + 1)), None);
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

    #[test]
    fn tracker_reply_table() {
        let yes: &[&[u8]] = &[
            b"d8:completei5e10:incompletei2e8:intervali1800e12:min intervali900e5:peers0:e",
            b"d14:failure reason17:torrent not founde",
            b"d8:intervali1800e5:peers0:8:completei5e10:incompletei2ee",
            b"d5:filesd20:\xd1\x10\x1a,\xc2\xa9E\x92\x8c\x1fj\xd2Y\x01\xb3\x8f\x0f\x11!\x9bd8:completei5e10:downloadedi50e10:incompletei10eeee",
            b"d15:warning message4:slow8:intervali60e5:peers0:e\r\n",
            // Cut by the capture, at several places after a tracker key.
            b"d8:completei5e10:incompletei2e8:intervali1800e5:peers600:\xc0\x00\x02\x07",
            b"d8:completei5e10:incomp",
            b"d8:complete",
            b"d8:completei5",
            b"d3:foo3:bar8:intervali1",
        ];
        for &body in yes {
            assert!(is_tracker_reply(body), "{}", String::from_utf8_lossy(body));
        }
        let no: &[&[u8]] = &[
            b"",
            b"d",
            b"de",
            b"d8:comp",
            b"d3:foo3:bare",
            b"d3:foo3:bar",
            b"d8:interval3:abce",
            b"d8:intervali01ee",
            b"d5:peersi5ee",
            b"d5:filesl3:abcee",
            b"d14:failure reasoni1ee",
            b"<html><body>Not Found</body></html>",
            b"{\"interval\": 1800}",
            b"l8:intervali1800ee",
            b"d8:intervali1800e5:peers0:x",
        ];
        for &body in no {
            assert!(!is_tracker_reply(body), "{}", String::from_utf8_lossy(body));
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
}
