//! Web seeds (BEP 17, BEP 19): a BEP 17 `/webseed?info_hash=` request is proof; a plain HTTP
//! download by a program that is only a BitTorrent client is a BEP 19 web seed on good
//! evidence, not proof. The HTTP request itself is read by [`super::tracker_http::classify`].

use super::tracker_http::find;
use super::{Method, Proto, Verdict};

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

/// A BEP 17 request: the request target's path is `/webseed` with an `info_hash` parameter.
pub fn by_target(target: &[u8]) -> Option<Verdict> {
    (target.starts_with(b"/webseed?") && find(target, b"info_hash=").is_some()).then_some(Verdict {
        proto: Proto::Webseed,
        method: Method::Signature,
    })
}

/// A request whose `User-Agent` belongs only to BitTorrent clients: a BitTorrent client
/// fetching a file over HTTP is a web seed (BEP 19); the agent is good evidence but not proof.
pub fn by_agent(agent: &[u8]) -> Option<Verdict> {
    BT_AGENTS
        .iter()
        .any(|a| agent.starts_with(a))
        .then_some(Verdict {
            proto: Proto::Webseed,
            method: Method::Heuristic,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let yes: &[&[u8]] = &[
            b"/webseed?info_hash=%aa%bb&piece=3",
            b"/webseed?piece=3&info_hash=aaaaaaaaaaaaaaaaaaaa",
        ];
        for t in yes {
            assert_eq!(by_target(t).map(|v| v.method), Some(Method::Signature));
        }
        let no: &[&[u8]] = &[
            b"/webseed.bin",
            b"/webseed?piece=3",
            b"/seed/webseed?info_hash=aa",
            b"/announce?info_hash=aa",
        ];
        for t in no {
            assert_eq!(by_target(t), None, "{}", String::from_utf8_lossy(t));
        }
    }

    #[test]
    fn agents() {
        let yes: &[&[u8]] = &[
            b"libtorrent/2.0.8.0",
            b"Transmission/4.0.6",
            b"qBittorrent/4.6.2",
            b"\xc2\xb5Torrent/3.6",
            b"Deluge 2.1.1",
        ];
        for a in yes {
            assert_eq!(by_agent(a).map(|v| v.method), Some(Method::Heuristic));
        }
        let no: &[&[u8]] = &[
            b"aria2/1.36.0",
            b"Wget/1.21.3",
            b"curl/7.88.1",
            b"",
            b"Mozilla/5.0 libtorrent/1",
        ];
        for a in no {
            assert_eq!(by_agent(a), None, "{}", String::from_utf8_lossy(a));
        }
    }
}
