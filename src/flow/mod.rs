//! Flows: bidirectional 5-tuples with small per-flow state ([`table`]), the IP fragment
//! tracker that gives later fragments to the flow of their datagram ([`frag`]), the record a
//! finished flow leaves ([`record`]) and the home network that gives packets a direction
//! ([`home`]).

pub mod frag;
pub mod home;
pub mod record;
pub mod table;

pub use home::{Direction, HomeNet};

use foldhash::fast::RandomState;
use hashbrown::HashMap;

/// The hash map of the flow and fragment tables: keyed per process (a random seed), so
/// crafted 5-tuples cannot collide them. Nothing is written in its order (flows ending
/// together are sorted; counts add up in any order), so outputs do not depend on the seed.
pub type Map<K, V> = HashMap<K, V, RandomState>;

/// An empty table map with room for `n` entries.
pub fn new_map<K, V>(n: usize) -> Map<K, V> {
    Map::with_capacity_and_hasher(n, RandomState::default())
}
use crate::aggregate::hll;
use crate::classify::endpoints::Provenance;
use crate::classify::{Evidence, Verdict};
#[cfg(test)]
use crate::decode::IPPROTO_TCP;
use crate::decode::{Addr, IpPacket, IPPROTO_UDP, TCP_FIN, TCP_RST};

/// Canonical bidirectional key: the lower endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Addr,
    pub hi: Addr,
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet, and whether its sender is the key's `lo` endpoint.
    #[inline]
    pub fn of(src: Addr, sport: u16, dst: Addr, dport: u16, proto: u8) -> (FlowKey, bool) {
        if (src, sport) <= (dst, dport) {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    lo_port: sport,
                    hi_port: dport,
                    proto,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    lo_port: dport,
                    hi_port: sport,
                    proto,
                },
                false,
            )
        }
    }

    pub fn l4(&self) -> record::L4 {
        record::L4::of(self.proto)
    }
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// TCP FIN in both directions, or RST, then the linger time.
    Closed,
    /// No packet for the idle timeout.
    Idle,
    /// The table was full.
    Evicted,
    /// A new connection (SYN) reused the 5-tuple of a closed one.
    Reused,
    /// The input ended.
    Eof,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::Reused => "reused",
            EndReason::Eof => "eof",
        }
    }
}

/// Packets counted while a flow had no verdict yet, per minute and direction tag.
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingCount {
    pub minute: i64,
    pub dir: u8,
    /// Packets (estimated, for sampled input: samples times their sampling rates).
    pub packets: u32,
    pub bytes: u64,
    /// Samples behind `packets` (equal to it for captures; saturates).
    pub samples: u16,
}

pub const MAX_PENDING: usize = 6;

pub const FIN_FROM_SRC: u8 = 1;
pub const FIN_FROM_DST: u8 = 2;

/// A flow in the table, in its parts: the flow itself and how far its classification got.
/// What only a flow being classified needs (its probe state and the packets it holds, see
/// [`Held`]) lives outside the table, by probe index, so a decided flow stays small.
#[derive(Debug, Clone)]
pub struct Flow {
    pub state: FlowState,
    pub class: Classification,
}

/// What a flow is, whatever it turns out to carry.
#[derive(Debug, Clone)]
pub struct FlowState {
    pub first_ts: i64,
    pub last_ts: i64,
    pub packets: u64,
    pub bytes: u64,
    /// Whether the flow's `src` (the sender of its first packet) is the key's `lo` endpoint.
    pub src_is_lo: bool,
    /// Direction tags of packets from src, and from dst.
    pub dir_tag: [Direction; 2],
    pub fins: u8,
    pub rst: bool,
    pub udp: bool,
    /// The port rule matching this flow's ports, if any (index + 1; 0 for none).
    pub port_rule: u8,
    /// Sketch hashes of the two ends, for the per-minute distinct-host count.
    pub host_hash: [u64; 2],
    /// The last minute whose host sketch has this flow's ends (once per flow and minute).
    pub hosts_minute: i64,
}

impl FlowState {
    /// The state of a flow whose first packet is `ip` (sent by the key's `lo` end when
    /// `sender_lo`); nothing counted yet.
    pub fn new(
        key: &FlowKey,
        sender_lo: bool,
        ts: i64,
        ip: &IpPacket<'_>,
        home: &HomeNet,
        port_rule: u8,
    ) -> FlowState {
        FlowState {
            first_ts: ts,
            last_ts: ts,
            packets: 0,
            bytes: 0,
            src_is_lo: sender_lo,
            dir_tag: [
                home.direction(ip.src, ip.dst),
                home.direction(ip.dst, ip.src),
            ],
            fins: 0,
            rst: false,
            udp: ip.proto == IPPROTO_UDP,
            port_rule,
            host_hash: [hll::hash_addr(key.lo), hll::hash_addr(key.hi)],
            hosts_minute: i64::MIN,
        }
    }

    /// Counts a packet (`dir` 0 from the flow's src, 1 from its dst, with TCP `flags`) into
    /// the flow; returns the packet's direction tag.
    #[inline]
    pub fn touch(&mut self, ts: i64, packets: u32, bytes: u64, flags: u8, dir: usize) -> Direction {
        self.last_ts = self.last_ts.max(ts);
        self.packets += u64::from(packets);
        self.bytes += bytes;
        if flags & TCP_FIN != 0 {
            self.fins |= if dir == 0 { FIN_FROM_SRC } else { FIN_FROM_DST };
        }
        if flags & TCP_RST != 0 {
            self.rst = true;
        }
        self.dir_tag[dir & 1]
    }

    pub fn closed(&self) -> bool {
        self.rst || self.fins == FIN_FROM_SRC | FIN_FROM_DST
    }
}

/// Where classification stands: probing (with the index of the probe state in the pool), or
/// decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Probing(u32),
    Decided(Verdict),
}

/// A flow's classification.
#[derive(Debug, Clone)]
pub struct Classification {
    pub stage: Stage,
    /// Payload evidence was seen (a signature or structure, of whichever class).
    pub evidence: bool,
    /// What proved the verdict (or the evidence against BitTorrent).
    pub proof: Evidence,
    /// How an end of the flow was known as a BitTorrent endpoint, if it was.
    pub correlated: Option<Provenance>,
}

impl Classification {
    pub fn verdict(&self) -> Option<Verdict> {
        match self.stage {
            Stage::Decided(v) => Some(v),
            Stage::Probing(_) => None,
        }
    }
}

/// Packets counted while a flow had no verdict yet, per minute and direction tag.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    pending: [PendingCount; MAX_PENDING],
    n: u8,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn counts(&self) -> &[PendingCount] {
        &self.pending[..usize::from(self.n)]
    }

    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Adds to the held counts; `false` when there is no room left.
    pub fn add(
        &mut self,
        minute: i64,
        dir: Direction,
        packets: u32,
        bytes: u64,
        samples: u16,
    ) -> bool {
        let n = usize::from(self.n);
        for p in &mut self.pending[..n] {
            if p.minute == minute && p.dir == dir as u8 {
                p.packets = p.packets.saturating_add(packets);
                p.bytes += bytes;
                p.samples = p.samples.saturating_add(samples);
                return true;
            }
        }
        if n == MAX_PENDING {
            return false;
        }
        self.pending[n] = PendingCount {
            minute,
            dir: dir as u8,
            packets,
            bytes,
            samples,
        };
        self.n += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_symmetric() {
        let (k1, lo1) = FlowKey::of(10, 5000, 20, 6881, IPPROTO_TCP);
        let (k2, lo2) = FlowKey::of(20, 6881, 10, 5000, IPPROTO_TCP);
        assert_eq!(k1, k2);
        assert!(lo1 && !lo2);
        // Same address both ends: ports decide.
        let (k3, _) = FlowKey::of(7, 2, 7, 1, IPPROTO_UDP);
        assert_eq!((k3.lo_port, k3.hi_port), (1, 2));
    }

    #[test]
    fn pending_merges_and_bounds() {
        let mut h = Held::default();
        assert!(h.add(1, Direction::Up, 1, 10, 1));
        assert!(h.add(1, Direction::Up, 1, 10, 1));
        let c = h.counts();
        assert_eq!(
            (c.len(), c[0].packets, c[0].bytes, c[0].samples),
            (1, 2, 20, 2)
        );
        for m in 2..=MAX_PENDING as i64 {
            assert!(h.add(m, Direction::Down, 1, 1, 1));
        }
        assert!(!h.add(99, Direction::Down, 1, 1, 1));
        assert_eq!(h.counts().len(), MAX_PENDING);
        h.clear();
        assert!(h.is_empty());
    }
}
