//! Classification: what a flow is, and how that was decided.
//!
//! Probes look only at the first payload of each direction; the answer is kept in the flow and
//! the probe state is returned to a pool. Byte signatures and port lists are data
//! (`rules/`); structural checks live in code.

pub mod bencode;
pub mod correlate;
pub mod dht;
pub mod endpoints;
pub mod mse;
pub mod peers;
pub mod peerwire;
pub mod probe;
pub mod rules;
pub mod signature;
pub mod tracker_http;
pub mod tracker_udp;
pub mod utp;
pub mod webseed;

pub use probe::{ProbePool, ProbeState};
pub use rules::{RuleError, Rules, Transport};

use crate::decode::TcpInfo;

/// What a probe says about a flow after a packet. Every sub-protocol's detector answers with
/// it, and so does the dispatcher ([`ProbeState`]) that runs them.
///
/// For the caller: while `Undecided`, keep probing and keep holding the packets' counts;
/// `NotThis` from the dispatcher means every probe has said no in every direction (decide by
/// the fallbacks: a learned endpoint, a port rule); a `Verdict` ends probing, the held counts
/// go to it, and it may teach the endpoint table when [`Answer::teaches`] says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Could still go either way.
    Undecided,
    /// Not this protocol (from the dispatcher: no BitTorrent protocol at all).
    NotThis,
    /// Decided, with what proved it: a BitTorrent verdict, or `Verdict::OTHER` with
    /// `Evidence::NotBittorrent` when the payload shows another protocol.
    Verdict(Verdict, Evidence),
}

impl Answer {
    /// The payload shows another protocol.
    pub const OTHER: Answer = Answer::Verdict(Verdict::OTHER, Evidence::NotBittorrent);

    /// A BitTorrent verdict.
    pub const fn bittorrent(proto: Proto, method: Method, evidence: Evidence) -> Answer {
        Answer::Verdict(Verdict { proto, method }, evidence)
    }

    /// Whether the answer may teach the endpoint table: BitTorrent on strong evidence (a
    /// shape, framing alone or a user agent never spreads to other flows).
    pub fn teaches(self) -> bool {
        matches!(self, Answer::Verdict(v, e) if v.class() == Class::Bittorrent && e.strong())
    }
}

/// One packet of a flow as every probe sees it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub transport: Transport,
    /// 0 for packets from the flow's `src`, 1 for the reverse.
    pub dir: usize,
    pub tcp: Option<TcpInfo>,
    /// (source, destination) ports of this packet.
    pub ports: (u16, u16),
    pub payload: &'a [u8],
    /// The capture's snap length cut the packet short.
    pub cut: bool,
}

/// The detector of one sub-protocol: fed a flow's packets, it answers for that protocol
/// alone. [`ProbeState`] runs them in order of cost and strength.
pub trait Probe {
    fn probe(&mut self, rules: &Rules, pkt: &Packet<'_>) -> Answer;

    /// Messages seen so far that passed this protocol's cheap guard (a prefix, a shape) but
    /// failed its validation.
    fn malformed(&self) -> u32 {
        0
    }
}

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
    /// Sampled input only (a packet sample standing for more than one packet): a flow whose
    /// samples showed no evidence either way, no learned endpoint and no port rule. Counted
    /// as other, but it may be BitTorrent the samples missed (mid-stream peer wire or MSE,
    /// uTP cut short), so the BitTorrent interval's upper end includes it ([`crate::aggregate::BtRange`]).
    Unresolved,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Signature,
        Method::Correlation,
        Method::Heuristic,
        Method::Port,
        Method::None,
        Method::Unresolved,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Signature => "signature",
            Method::Correlation => "correlation",
            Method::Heuristic => "heuristic",
            Method::Port => "port",
            Method::None => "none",
            Method::Unresolved => "unresolved",
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

    /// Other, on sampled input with no evidence either way (see [`Method::Unresolved`]).
    pub const UNRESOLVED: Verdict = Verdict {
        proto: Proto::Other,
        method: Method::Unresolved,
    };

    pub fn class(self) -> Class {
        self.proto.class()
    }
}

/// What proved a verdict, for the flow records and for deciding what may teach the endpoint
/// table: only strong evidence does (see [`Evidence::strong`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Evidence {
    /// Nothing either way (no payload, or the probes ran out before deciding).
    #[default]
    None,
    /// A byte signature of `rules/signatures.toml` at the start of a stream or datagram (the
    /// peer-wire handshake, LSD, the UDP tracker connect; or another protocol's opening).
    Rule,
    /// The peer-wire handshake at the start of a later segment.
    Handshake,
    /// A BEP 10 extension handshake in a stream joined mid-way.
    ExtHandshake,
    /// Whole peer-wire messages in a row, mid-stream: framing only.
    Framing,
    /// An MSE key exchange followed by the plaintext handshake.
    MseHandshake,
    /// An MSE key exchange followed by the peer-wire rhythm of the encrypted stream.
    MseRhythm,
    /// A stream joined mid-way whose writes have the peer-wire rhythm (weak: labels, never
    /// teaches).
    MseMidstream,
    /// A KRPC message validated whole.
    Krpc,
    /// A datagram cut by the snap length that opens with a KRPC query or response's keys.
    KrpcPrefix,
    /// uTP confirmed over consistent packets.
    Utp,
    /// UDP tracker datagrams tied by their transaction or connection ids.
    TrackerTie,
    /// An HTTP tracker announce or scrape, or a bencoded tracker reply.
    HttpTracker,
    /// A BEP 17/19 web seed request.
    Webseed,
    /// A BitTorrent client's user agent on a plain HTTP download.
    WebseedAgent,
    /// An end of the flow was observed in a flow identified with strong evidence.
    ObservedPeer,
    /// An end of the flow was advertised as a peer (DHT, tracker, PEX).
    AdvertisedPeer,
    /// An end of the flow was advertised as a DHT node.
    DhtNode,
    /// A port rule.
    Port,
    /// The payload shows another protocol, or a TCP opening that BitTorrent never sends.
    NotBittorrent,
}

impl Evidence {
    pub fn name(self) -> &'static str {
        match self {
            Evidence::None => "none",
            Evidence::Rule => "rule",
            Evidence::Handshake => "handshake",
            Evidence::ExtHandshake => "ext-handshake",
            Evidence::Framing => "framing",
            Evidence::MseHandshake => "mse-handshake",
            Evidence::MseRhythm => "mse-rhythm",
            Evidence::MseMidstream => "mse-midstream",
            Evidence::Krpc => "krpc",
            Evidence::KrpcPrefix => "krpc-prefix",
            Evidence::Utp => "utp",
            Evidence::TrackerTie => "tracker-tie",
            Evidence::HttpTracker => "http-tracker",
            Evidence::Webseed => "webseed",
            Evidence::WebseedAgent => "webseed-agent",
            Evidence::ObservedPeer => "observed-peer",
            Evidence::AdvertisedPeer => "advertised-peer",
            Evidence::DhtNode => "dht-node",
            Evidence::Port => "port",
            Evidence::NotBittorrent => "not-bittorrent",
        }
    }

    /// Proof, or inference strong enough to teach the endpoint table: a whole handshake or
    /// message signature, confirmed uTP, validated KRPC, tied tracker datagrams, a confirmed
    /// MSE exchange. Framing alone, a user agent, a learned endpoint and a port never teach.
    pub fn strong(self) -> bool {
        matches!(
            self,
            Evidence::Rule
                | Evidence::Handshake
                | Evidence::ExtHandshake
                | Evidence::MseHandshake
                | Evidence::MseRhythm
                | Evidence::Krpc
                | Evidence::KrpcPrefix
                | Evidence::Utp
                | Evidence::TrackerTie
                | Evidence::HttpTracker
                | Evidence::Webseed
        )
    }
}
