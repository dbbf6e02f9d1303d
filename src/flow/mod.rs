//! Flows: bidirectional 5-tuples with small per-flow state, and the IP fragment tracker that
//! gives later fragments to the flow of their datagram.

use crate::aggregate::Direction;
use crate::classify::endpoints::Provenance;
use crate::classify::{Evidence, Verdict};
use crate::decode::{Addr, IPPROTO_TCP, IPPROTO_UDP};

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

    pub fn l4_name(&self) -> &'static str {
        match self.proto {
            IPPROTO_TCP => "tcp",
            IPPROTO_UDP => "udp",
            1 => "icmp",
            58 => "icmpv6",
            47 => "gre",
            50 => "esp",
            _ => "ip",
        }
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

/// A flow in the table.
#[derive(Debug, Clone)]
pub struct Flow {
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
    pub verdict: Option<Verdict>,
    /// Index of the probe state in the pool, while classifying.
    pub probe: Option<u32>,
    /// The port rule matching this flow's ports, if any (index + 1; 0 for none).
    pub port_rule: u8,
    /// Payload evidence was seen (a signature or structure, of whichever class).
    pub evidence: bool,
    /// What proved the verdict (or the evidence against BitTorrent).
    pub proof: Evidence,
    /// How an end of the flow was known as a BitTorrent endpoint when it started, if it was.
    pub correlated: Option<Provenance>,
    pub udp: bool,
    pub pending: [PendingCount; MAX_PENDING],
    pub n_pending: u8,
    /// Sketch hashes of the two ends, for the per-minute distinct-host count.
    pub host_hash: [u64; 2],
    /// The last minute whose host sketch has this flow's ends (once per flow and minute).
    pub hosts_minute: i64,
}

impl Flow {
    pub fn closed(&self) -> bool {
        self.rst || self.fins == FIN_FROM_SRC | FIN_FROM_DST
    }

    /// Adds to the pending counts; `false` when there is no room left.
    pub fn add_pending(
        &mut self,
        minute: i64,
        dir: Direction,
        packets: u32,
        bytes: u64,
        samples: u16,
    ) -> bool {
        let n = usize::from(self.n_pending);
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
        self.n_pending += 1;
        true
    }
}

/// Key of an IP datagram for fragment tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub id: u32,
}

/// What is known of a fragmented datagram.
#[derive(Debug, Clone, Copy)]
pub struct FragEntry {
    pub last_ts: i64,
    /// The transport ports, once the first fragment was seen.
    pub ports: Option<(u16, u16)>,
    /// Later fragments seen before the first one: counted once the first arrives.
    pub early: PendingCount,
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
        let mut f = Flow {
            first_ts: 0,
            last_ts: 0,
            packets: 0,
            bytes: 0,
            src_is_lo: true,
            dir_tag: [Direction::Unknown; 2],
            fins: 0,
            rst: false,
            verdict: None,
            probe: None,
            port_rule: 0,
            evidence: false,
            proof: Evidence::None,
            correlated: None,
            udp: false,
            pending: [PendingCount::default(); MAX_PENDING],
            n_pending: 0,
            host_hash: [0; 2],
            hosts_minute: i64::MIN,
        };
        assert!(f.add_pending(1, Direction::Up, 1, 10, 1));
        assert!(f.add_pending(1, Direction::Up, 1, 10, 1));
        assert_eq!(
            (f.n_pending, f.pending[0].packets, f.pending[0].bytes),
            (1, 2, 20)
        );
        for m in 2..=MAX_PENDING as i64 {
            assert!(f.add_pending(m, Direction::Down, 1, 1, 1));
        }
        assert!(!f.add_pending(99, Direction::Down, 1, 1, 1));
    }
}
