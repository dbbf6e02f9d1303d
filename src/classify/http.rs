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
        Some(end) if krpc::is_tracker_reply(&head[end + 4..]) => Verdict {
            proto: Proto::TrackerHttp,
            method: Method::Signature,
        },
        _ => Verdict::OTHER,
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
}
