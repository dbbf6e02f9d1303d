//! Bencode (BEP 3): a validating, allocation-free walker shared by the DHT, tracker and
//! advertised-peer parsers.
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
//! * [`bencode_len`] and [`super::dht::parse_krpc`] are strict: keys strictly ascending (which
//!   also rules out duplicates). For DHT the order is part of the fingerprint (the
//!   `d1:ad2:id20:` prefixes in the signature table depend on it) and costs no real traffic;
//! * [`super::tracker_http::is_tracker_reply`] and [`super::peers::for_each_advertised_peer`]
//!   accept keys in any order, because real trackers send unsorted dictionaries.
//!
//! # Other limits
//!
//! * integers must fit in an `i64` (no real message needs more; a 30-digit "integer" is more
//!   likely text that happens to start with `i`);
//! * string lengths are at most 9 digits (< 1 GB; a datagram is < 64 KiB).

/// Deepest nesting of lists and dictionaries accepted. KRPC needs 3 (message → `r` →
/// `values`), tracker replies 3 (`files` → info hash → counters); 16 leaves a wide margin.
pub const MAX_DEPTH: usize = 16;

/// Longest string length prefix, in digits.
const MAX_LEN_DIGITS: usize = 9;

/// Why a parse stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fail {
    /// The data ends before the value does (could be valid if there were more).
    Truncated,
    /// The data cannot be valid bencode (or exceeds a limit).
    Invalid,
}

pub(super) type R<T> = Result<T, Fail>;

/// Whether dictionary keys must be strictly ascending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    Sorted,
    Any,
}

pub(super) fn byte(data: &[u8], pos: usize) -> R<u8> {
    data.get(pos).copied().ok_or(Fail::Truncated)
}

/// Parses the integer `i…e` at `pos`; returns its value and the position after it.
pub(super) fn int_at(data: &[u8], pos: usize) -> R<(i64, usize)> {
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
pub(super) fn str_at(data: &[u8], pos: usize) -> R<(&[u8], usize)> {
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
pub(super) struct List<'a> {
    data: &'a [u8],
    pub(super) pos: usize,
    depth: usize,
    order: Order,
}

impl<'a> List<'a> {
    pub(super) fn open(data: &'a [u8], pos: usize, depth: usize, order: Order) -> R<Self> {
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
    pub(super) fn next_item(&mut self) -> R<Option<(usize, usize)>> {
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
pub(super) struct Entry<'a> {
    pub(super) key: &'a [u8],
    pub(super) start: usize,
}

/// A cursor over the entries of a dictionary. After the last entry, `pos` is the position
/// after the closing `e`.
pub(super) struct Dict<'a> {
    data: &'a [u8],
    pub(super) pos: usize,
    depth: usize,
    order: Order,
    prev: Option<&'a [u8]>,
}

impl<'a> Dict<'a> {
    pub(super) fn open(data: &'a [u8], pos: usize, depth: usize, order: Order) -> R<Self> {
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
    pub(super) fn next_key(&mut self) -> R<Option<&'a [u8]>> {
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
    pub(super) fn skip_val(&mut self) -> R<(usize, usize)> {
        let start = self.pos;
        self.pos = skip_value(self.data, start, self.depth + 1, self.order)?;
        Ok((start, self.pos))
    }

    pub(super) fn next_entry(&mut self) -> R<Option<Entry<'a>>> {
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

/// The string at `pos`, if the value there is a string.
pub(super) fn string_value(data: &[u8], pos: usize) -> Option<&[u8]> {
    str_at(data, pos).ok().map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
