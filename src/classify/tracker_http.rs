//! HTTP trackers (BEP 3, BEP 48), told apart from ordinary HTTP by the request's query
//! parameters or the reply's bencoded body; this is also the HTTP front that hands requests to
//! the web seed checks ([`super::webseed`]).

use super::bencode::{Dict, Fail, Order};
use super::{peers, webseed, Answer, Evidence, Method, Packet, Probe, Proto, Rules, Verdict};

/// How far into the first packet of a direction the request line and headers are read.
const LOOK: usize = 2048;

const METHODS: [&[u8]; 7] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"OPTIONS ",
    b"DELETE ",
    b"CONNECT ",
];

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

pub(super) fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        if line[..colon].eq_ignore_ascii_case(name) {
            Some(line[colon + 1..].trim_ascii())
        } else {
            None
        }
    })
}

/// What the start of one direction of a TCP flow says, if it is HTTP; `None` if it is not.
/// A non-BitTorrent HTTP message gives `Verdict::OTHER`.
pub fn classify(payload: &[u8]) -> Option<Verdict> {
    let head = &payload[..payload.len().min(LOOK)];
    if METHODS.iter().any(|m| head.starts_with(m)) {
        return Some(request(head));
    }
    if head.starts_with(b"HTTP/1.") {
        return Some(response(head));
    }
    None
}

fn request(head: &[u8]) -> Verdict {
    let line_end = find(head, b"\r\n").unwrap_or(head.len());
    let line = &head[..line_end];
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    if let Some(v) = webseed::by_target(target) {
        return v;
    }
    let query = target.iter().position(|&b| b == b'?').map(|q| &target[q..]);
    if let Some(q) = query {
        let announce = find(target, b"announce").is_some() || find(target, b"scrape").is_some();
        if find(q, b"info_hash=").is_some() && (announce || find(q, b"peer_id=").is_some()) {
            return TRACKER;
        }
    }
    let agent = header(head, b"user-agent").unwrap_or_default();
    webseed::by_agent(agent).unwrap_or(Verdict::OTHER)
}

fn response(head: &[u8]) -> Verdict {
    match find(head, b"\r\n\r\n") {
        Some(end) if tracker_reply_body(&head[end + 4..]) => TRACKER,
        _ => Verdict::OTHER,
    }
}

/// An announce or scrape request, or a bencoded reply.
const TRACKER: Verdict = Verdict {
    proto: Proto::TrackerHttp,
    method: Method::Signature,
};

/// Whether a segment is an HTTP response's headers with nothing after them: the body (a
/// tracker's bencoded reply, say) comes in the next segment.
pub fn awaits_body(payload: &[u8]) -> bool {
    payload.starts_with(b"HTTP/1.") && payload.ends_with(b"\r\n\r\n")
}

/// What the segment after a response's headers says: a tracker reply, or another body.
pub fn classify_body(segment: &[u8]) -> Verdict {
    if tracker_reply_body(segment) {
        TRACKER
    } else {
        Verdict::OTHER
    }
}

/// Whether a response body (or its first part) is a bencoded tracker reply, also under a
/// chunked coding or gzip.
fn tracker_reply_body(body: &[u8]) -> bool {
    let body = skip_chunk_size(body);
    if body.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = [0u8; 512];
        let mut gz = flate2::read::GzDecoder::new(body);
        let mut n = 0;
        while n < out.len() {
            match gz.read(&mut out[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        return is_tracker_reply(skip_chunk_size(&out[..n]));
    }
    is_tracker_reply(body)
}

/// Largest tracker reply body inflated from gzip.
const MAX_INFLATED: u64 = 64 * 1024;

/// Calls `f` with each peer (and DHT node) in one segment of a tracker's reply: the body after
/// the headers when the segment holds them, or a later segment of the body (the headers and
/// the body often come in separate segments). A chunked body's size line is skipped; a gzip
/// body (`Content-Encoding: gzip`, or its magic bytes) whose compressed bytes are in the segment
/// is inflated (up to 64 KiB). A body cut at the segment's end yields the peers of the fields
/// that are whole.
pub fn for_each_tracker_reply_peer(segment: &[u8], f: &mut dyn FnMut([u8; 16], u16, bool)) {
    let body = if segment.starts_with(b"HTTP/1.") {
        match find(segment, b"\r\n\r\n") {
            Some(end) => &segment[end + 4..],
            None => return,
        }
    } else {
        segment
    };
    let body = skip_chunk_size(body);
    if body.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        let mut gz = flate2::read::GzDecoder::new(body).take(MAX_INFLATED);
        // A body cut short still inflates its first part.
        let _ = gz.read_to_end(&mut out);
        peers::for_each_advertised_peer(skip_chunk_size(&out), f);
    } else if body.first() == Some(&b'd') {
        peers::for_each_advertised_peer(body, f);
    }
}

/// Skips a chunked transfer coding's size line (`1a3\r\n`, maybe with extensions).
fn skip_chunk_size(b: &[u8]) -> &[u8] {
    let hex = b
        .iter()
        .take(8)
        .take_while(|c| c.is_ascii_hexdigit())
        .count();
    if hex == 0 {
        return b;
    }
    match find(&b[hex..b.len().min(hex + 64)], b"\r\n") {
        Some(i) if b[hex] == b'\r' || b[hex] == b';' => &b[hex + i + 2..],
        _ => b,
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

/// The evidence behind an HTTP verdict.
fn evidence(v: Verdict) -> Evidence {
    match (v.proto, v.method) {
        (Proto::TrackerHttp, _) => Evidence::HttpTracker,
        (Proto::Webseed, Method::Signature) => Evidence::Webseed,
        (Proto::Webseed, _) => Evidence::WebseedAgent,
        _ => Evidence::NotBittorrent,
    }
}

/// HTTP at the start of one direction of a TCP flow: the first segment's request or
/// response, or the next segment when the first was a response's headers alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpProbe {
    segments: u8,
    /// The first segment was a response's headers alone: its body, in the next segment, says
    /// what it is.
    body_next: bool,
}

impl HttpProbe {
    /// Whether the body of a response whose headers came alone is still to come.
    pub fn awaiting_body(&self) -> bool {
        self.body_next
    }
}

impl Probe for HttpProbe {
    /// Fed the payload segments of one direction: a verdict for HTTP (`Verdict::OTHER` for
    /// HTTP that is no tracker or web seed), `Undecided` while a body is awaited, `NotThis`
    /// otherwise.
    fn probe(&mut self, _: &Rules, pkt: &Packet<'_>) -> Answer {
        let p = pkt.payload;
        self.segments = self.segments.saturating_add(1);
        if self.segments == 1 && awaits_body(p) {
            self.body_next = true;
            return Answer::Undecided;
        }
        if self.segments == 1 || self.body_next {
            let v = if self.body_next {
                Some(classify_body(p))
            } else {
                classify(p)
            };
            self.body_next = false;
            if let Some(v) = v {
                return Answer::Verdict(v, evidence(v));
            }
        }
        Answer::NotThis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(proto: Proto, method: Method) -> Option<Verdict> {
        Some(Verdict { proto, method })
    }

    #[test]
    fn requests_and_replies() {
        let cases: &[(&[u8], Option<Verdict>)] = &[
            (
                b"GET /announce?info_hash=%124Vx%9A&peer_id=-TR4060-abcdefghijkl&port=51413 HTTP/1.1\r\nHost: t\r\n\r\n",
                v(Proto::TrackerHttp, Method::Signature),
            ),
            (
                b"GET /a1b2c3/announce.php?passkey=x&info_hash=%00%01 HTTP/1.0\r\n\r\n",
                v(Proto::TrackerHttp, Method::Signature),
            ),
            (
                b"GET /scrape?info_hash=aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
                v(Proto::TrackerHttp, Method::Signature),
            ),
            (
                b"GET /webseed?info_hash=%aa%bb&piece=3 HTTP/1.1\r\n\r\n",
                v(Proto::Webseed, Method::Signature),
            ),
            (
                b"GET /webseed.bin HTTP/1.1\r\nHost: 10.77.0.20\r\nUser-Agent: libtorrent/2.0.8.0\r\nRange: bytes=0-57343\r\n\r\n",
                v(Proto::Webseed, Method::Heuristic),
            ),
            // aria2 and curl download plain files too.
            (
                b"GET /webseed.bin HTTP/1.1\r\nUser-Agent: aria2/1.36.0\r\nRange: bytes=0-57343\r\n\r\n",
                Some(Verdict::OTHER),
            ),
            (b"GET /index.html HTTP/1.1\r\nUser-Agent: curl/7.88.1\r\n\r\n", Some(Verdict::OTHER)),
            // A search page that mentions info_hash without a tracker path or peer id.
            (b"GET /search?q=info_hash=abc HTTP/1.1\r\n\r\n", Some(Verdict::OTHER)),
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nd8:completei3e10:incompletei1e8:intervali1800e5:peers6:\x0a\x4d\x00\x0c\x1a\xe1e",
                v(Proto::TrackerHttp, Method::Signature),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>", Some(Verdict::OTHER)),
            (b"\x13BitTorrent protocol", None),
            (b"\x16\x03\x01\x00\xa5", None),
        ];
        for (p, want) in cases {
            assert_eq!(classify(p), *want, "{}", String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn tracker_reply_peers_from_split_chunked_and_gzip_bodies() {
        let body = b"d8:intervali1800e5:peers12:\x0a\x4d\x00\x0b\x1a\xe1\x0a\x4d\x00\x0c\xc8\xd5e";
        let peers = |seg: &[u8]| {
            let mut v = Vec::new();
            for_each_tracker_reply_peer(seg, &mut |ip, port, _| v.push((ip[12..].to_vec(), port)));
            v
        };
        let want = vec![(vec![10, 77, 0, 11], 6881), (vec![10, 77, 0, 12], 51413)];
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        assert_eq!(peers(&[&head[..], body].concat()), want, "one segment");
        assert!(peers(&head).is_empty());
        assert_eq!(peers(body), want, "the body in a segment of its own");
        let chunked = [
            &format!("{:x}\r\n", body.len()).into_bytes()[..],
            body,
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(peers(&chunked), want, "chunked");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, body).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let gzip_head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n".to_vec();
        assert_eq!(peers(&[&gzip_head[..], &gz].concat()), want, "gzip");
        assert!(peers(b"<html>d5:peers</html>").is_empty());
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

    fn seg(payload: &[u8]) -> Packet<'_> {
        Packet {
            transport: crate::classify::Transport::Tcp,
            dir: 0,
            tcp: Some(crate::decode::TcpInfo::default()),
            ports: (40000, 80),
            payload,
            cut: false,
        }
    }

    #[test]
    fn probe_reads_the_first_segment_or_the_body_after_headers() {
        let r = Rules::builtin().expect("rules");
        let announce =
            b"GET /announce?info_hash=%124Vx%9A&peer_id=-TR4060-abcdefghijkl HTTP/1.1\r\n\r\n";
        let tracker =
            Answer::bittorrent(Proto::TrackerHttp, Method::Signature, Evidence::HttpTracker);
        let mut h = HttpProbe::default();
        assert_eq!(h.probe(&r, &seg(announce)), tracker);
        // Only the first segment counts.
        let mut h = HttpProbe::default();
        assert_eq!(h.probe(&r, &seg(b"\x00\x01binary")), Answer::NotThis);
        assert_eq!(h.probe(&r, &seg(announce)), Answer::NotThis);
        // Headers alone, then the body.
        let mut h = HttpProbe::default();
        assert_eq!(
            h.probe(&r, &seg(b"HTTP/1.1 200 OK\r\n\r\n")),
            Answer::Undecided
        );
        assert!(h.awaiting_body());
        assert_eq!(h.probe(&r, &seg(b"d8:intervali1800e5:peers0:e")), tracker);
        assert!(!h.awaiting_body());
        let mut h = HttpProbe::default();
        h.probe(&r, &seg(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert_eq!(h.probe(&r, &seg(b"<html>")), Answer::OTHER);
        // A web seed found by its agent is labelled, with weak evidence.
        let mut h = HttpProbe::default();
        let a = h.probe(
            &r,
            &seg(b"GET /f.bin HTTP/1.1\r\nUser-Agent: Transmission/4.0.6\r\n\r\n"),
        );
        assert_eq!(
            a,
            Answer::bittorrent(Proto::Webseed, Method::Heuristic, Evidence::WebseedAgent)
        );
        assert!(!a.teaches());
    }
}
