//! HTTP trackers (BEP 3, BEP 48) and web seeds (BEP 17, BEP 19), told apart from ordinary
//! HTTP by the request's query parameters, the reply's bencoded body, or a user agent that
//! belongs only to BitTorrent clients.

use super::krpc;
use super::{Method, Proto, Verdict};

/// How far into the first packet of a direction the request line and headers are read.
const LOOK: usize = 2048;

/// User agents of programs that are only BitTorrent clients (aria2 and wget also fetch plain
/// HTTP with ranges, so they are not evidence).
const BT_AGENTS: [&[u8]; 14] = [
    b"libtorrent/",
    b"Transmission/",
    b"qBittorrent/",
    b"uTorrent/",
    b"\xc2\xb5Torrent/",
    b"BitTorrent/",
    b"Deluge",
    b"rtorrent/",
    b"Azureus",
    b"BitComet/",
    b"BiglyBT",
    b"KTorrent",
    b"Tixati",
    b"Tribler",
];

const METHODS: [&[u8]; 7] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"OPTIONS ",
    b"DELETE ",
    b"CONNECT ",
];

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
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
    let signature = |proto| Verdict {
        proto,
        method: Method::Signature,
    };
    if target.starts_with(b"/webseed?") && find(target, b"info_hash=").is_some() {
        return signature(Proto::Webseed);
    }
    let query = target.iter().position(|&b| b == b'?').map(|q| &target[q..]);
    if let Some(q) = query {
        let announce = find(target, b"announce").is_some() || find(target, b"scrape").is_some();
        if find(q, b"info_hash=").is_some() && (announce || find(q, b"peer_id=").is_some()) {
            return signature(Proto::TrackerHttp);
        }
    }
    let agent = header(head, b"user-agent").unwrap_or_default();
    if BT_AGENTS.iter().any(|a| agent.starts_with(a)) {
        // A BitTorrent client fetching a file over HTTP is a web seed (BEP 19); the agent is
        // good evidence but not proof.
        return Verdict {
            proto: Proto::Webseed,
            method: Method::Heuristic,
        };
    }
    Verdict::OTHER
}

fn response(head: &[u8]) -> Verdict {
    match find(head, b"\r\n\r\n") {
        Some(end) if tracker_reply_body(&head[end + 4..]) => TRACKER_REPLY,
        _ => Verdict::OTHER,
    }
}

const TRACKER_REPLY: Verdict = Verdict {
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
        TRACKER_REPLY
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
        return krpc::is_tracker_reply(skip_chunk_size(&out[..n]));
    }
    krpc::is_tracker_reply(body)
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
        krpc::for_each_advertised_peer(skip_chunk_size(&out), f);
    } else if body.first() == Some(&b'd') {
        krpc::for_each_advertised_peer(body, f);
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
}
