//! The capture model: records with timestamps and ground truth (which flow, which class),
//! plus the flow definitions the summary is derived from.

use std::net::SocketAddr;

/// 2024-05-31T10:00:00Z in nanoseconds.
pub const T0_NS: u64 = 1_717_149_600 * 1_000_000_000;

/// Expected verdict of a flow.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub class: &'static str,
    pub proto: &'static str,
    pub method: &'static str,
}

pub const PEERWIRE: Expect = Expect {
    class: "bittorrent",
    proto: "peerwire",
    method: "signature",
};
pub const DHT: Expect = Expect {
    class: "bittorrent",
    proto: "dht",
    method: "signature",
};
/// No payload either way, on a classic BitTorrent port: the verdict can only come from the
/// port rule (method `port`).
pub const PORT_ONLY: Expect = Expect {
    class: "bittorrent",
    proto: "peerwire",
    method: "port",
};
pub const OTHER: Expect = Expect {
    class: "other",
    proto: "-",
    method: "-",
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

/// One flow (innermost 5-tuple). `a` is the initiator as built; the summary reports the
/// side that sent the first packet actually present in the capture as `src`.
#[derive(Clone, Debug)]
pub struct FlowDef {
    pub l4: L4,
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub expect: Expect,
    pub note: String,
}

/// What a record is, for the ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A packet of flow `id`; `from_a` tells the direction.
    Flow { id: usize, from_a: bool },
    /// A frame of a known link type that carries no IP (ARP, LLDP).
    NonIp,
    /// A frame that should carry IP but cannot be decoded (or an unknown link type).
    Undecodable,
}

/// How a record is stored in a pcapng file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blk {
    Epb,
    /// Simple Packet Block: no interface id, no timestamp.
    Spb,
    /// Obsolete Packet Block (type 2).
    Pb,
}

#[derive(Clone, Debug)]
pub struct Rec {
    pub ts_ns: u64,
    /// The frame as it was on the wire (the writer applies any snap length).
    pub data: Vec<u8>,
    pub kind: Kind,
    pub iface: u32,
    pub blk: Blk,
    pub comment: Option<String>,
}

/// A capture under construction.
pub struct Capture {
    pub flows: Vec<FlowDef>,
    pub recs: Vec<Rec>,
    /// Current time in ns.
    pub t: u64,
    /// Interface for the next records (pcapng).
    pub iface: u32,
    /// When set, only packets sent by that side (`true` = a) are kept.
    pub only_from_a: Option<bool>,
}

impl Capture {
    pub fn new(start_ns: u64) -> Self {
        Capture {
            flows: Vec::new(),
            recs: Vec::new(),
            t: start_ns,
            iface: 0,
            only_from_a: None,
        }
    }

    pub fn flow(
        &mut self,
        l4: L4,
        a: SocketAddr,
        b: SocketAddr,
        expect: Expect,
        note: &str,
    ) -> usize {
        self.flows.push(FlowDef {
            l4,
            a,
            b,
            expect,
            note: note.to_string(),
        });
        self.flows.len() - 1
    }

    /// Advances the clock by `dt_us` microseconds.
    pub fn wait_us(&mut self, dt_us: u64) {
        self.t += dt_us * 1000;
    }

    /// Sets the clock to `s` seconds (plus `us` µs) after 2024-05-31T10:00:00Z.
    pub fn at(&mut self, s: u64, us: u64) {
        self.t = T0_NS + s * 1_000_000_000 + us * 1000;
    }

    /// Records a frame `dt_us` after the previous one.
    pub fn put(&mut self, dt_us: u64, data: Vec<u8>, kind: Kind) {
        self.wait_us(dt_us);
        if let (Some(keep), Kind::Flow { from_a, .. }) = (self.only_from_a, kind) {
            if keep != from_a {
                return;
            }
        }
        self.recs.push(Rec {
            ts_ns: self.t,
            data,
            kind,
            iface: self.iface,
            blk: Blk::Epb,
            comment: None,
        });
    }

    /// Sorts the records by time (stable: equal times keep their order).
    pub fn sort(&mut self) {
        self.recs.sort_by_key(|r| r.ts_ns);
    }
}
