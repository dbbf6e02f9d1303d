//! Classification: what a flow is, and how that was decided.
//!
//! Probes look only at the first payload of each direction; the answer is kept in the flow and
//! the probe state is returned to a pool. Byte signatures and port lists are data
//! (`rules/`); structural checks live in code.

pub mod endpoints;
pub mod http;
pub mod krpc;
pub mod mse;
pub mod peerwire;
pub mod probe;
pub mod rules;
pub mod utp;

pub use probe::{Answer, ProbePool, ProbeState};
pub use rules::{RuleError, Rules, Transport};

/// `bittorrent` or `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Bittorrent,
    Other,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Bittorrent => "bittorrent",
            Class::Other => "other",
        }
    }
}

/// The protocol of a verdict. The first eight are the BitTorrent family; the last three are
/// the kinds of `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Proto {
    Peerwire,
    PeerwireMse,
    Utp,
    Dht,
    TrackerHttp,
    TrackerUdp,
    Lsd,
    Webseed,
    /// IP traffic that is not BitTorrent (or not known to be).
    Other,
    /// Frames that carry no IP (ARP, LLDP, STP, …).
    NonIp,
    /// Frames that could not be decoded (malformed, cut short, unknown link type).
    Undecodable,
}

impl Proto {
    pub const ALL: [Proto; 11] = [
        Proto::Peerwire,
        Proto::PeerwireMse,
        Proto::Utp,
        Proto::Dht,
        Proto::TrackerHttp,
        Proto::TrackerUdp,
        Proto::Lsd,
        Proto::Webseed,
        Proto::Other,
        Proto::NonIp,
        Proto::Undecodable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Proto::Peerwire => "peerwire",
            Proto::PeerwireMse => "peerwire-mse",
            Proto::Utp => "utp",
            Proto::Dht => "dht",
            Proto::TrackerHttp => "tracker-http",
            Proto::TrackerUdp => "tracker-udp",
            Proto::Lsd => "lsd",
            Proto::Webseed => "webseed",
            Proto::Other => "other",
            Proto::NonIp => "non-ip",
            Proto::Undecodable => "undecodable",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.name() == s)
    }

    pub fn class(self) -> Class {
        if (self as u8) < (Proto::Other as u8) {
            Class::Bittorrent
        } else {
            Class::Other
        }
    }

    pub fn bittorrent_names() -> Vec<&'static str> {
        Proto::ALL
            .into_iter()
            .filter(|p| p.class() == Class::Bittorrent)
            .map(Proto::name)
            .collect()
    }
}

/// How a verdict was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Method {
    /// Payload evidence: a signature or a structural check.
    Signature,
    /// An endpoint learned from a positively identified flow.
    Correlation,
    /// The shape of the flow (e.g. an encrypted handshake), or framing alone.
    Heuristic,
    /// A port rule only, with no payload evidence either way.
    Port,
    /// Not BitTorrent: nothing to say how.
    None,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Signature,
        Method::Correlation,
        Method::Heuristic,
        Method::Port,
        Method::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Signature => "signature",
            Method::Correlation => "correlation",
            Method::Heuristic => "heuristic",
            Method::Port => "port",
            Method::None => "none",
        }
    }
}

/// A flow's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub proto: Proto,
    pub method: Method,
}

impl Verdict {
    pub const OTHER: Verdict = Verdict {
        proto: Proto::Other,
        method: Method::None,
    };

    pub fn class(self) -> Class {
        self.proto.class()
    }
}
