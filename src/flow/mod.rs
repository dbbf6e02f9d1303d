//! Flows: bidirectional 5-tuples with small per-flow state ([`table`]), the IP fragment
//! tracker that gives later fragments to the flow of their datagram ([`frag`]), the record a
//! finished flow leaves ([`record`]) and the home network that gives packets a direction
//! ([`home`]).

pub mod frag;
pub mod home;
mod index;
pub mod record;
pub mod table;

pub use home::{Direction, HomeNet};

use foldhash::fast::RandomState;
use hashbrown::HashMap;

/// The hash map of the flow and fragment tables: keyed per process (a random seed), so
/// crafted 5-tuples cannot collide them. Nothing is written in its order (flows ending
/// together are sorted; counts add up in any order), so outputs do not depend on the seed.
pub type Map<K, V> = HashMap<K, V, RandomState>;

/// Bytes from which a vector asks for huge pages ([`advise_huge`]).
const HUGE_ABOVE: usize = 8 << 20;
const PAGE: usize = 4096;

/// Asks for huge pages (transparent, 2 MiB) under a large vector's allocation: lookups
/// spread over an index of millions of flows then miss the TLB far less. Pages already
/// touched stay as they are; a small vector is left alone (a huge page would cost its whole
/// 2 MiB for a few entries). Only advice: where the kernel says no, nothing changes.
pub(crate) fn advise_huge<T>(v: &Vec<T>) {
    let len = v.capacity() * std::mem::size_of::<T>();
    if len < HUGE_ABOVE {
        return;
    }
    // madvise takes whole pages: the part of the allocation from its first page boundary.
    let start = v.as_ptr() as usize;
    let first = start.next_multiple_of(PAGE);
    let pages = (start + len).saturating_sub(first) / PAGE * PAGE;
    // SAFETY: advice over pages inside memory the vector owns; it changes no contents.
    unsafe {
        libc::madvise(first as *mut libc::c_void, pages, libc::MADV_HUGEPAGE);
    }
}

/// An empty table map with room for `n` entries.
pub fn new_map<K, V>(n: usize) -> Map<K, V> {
    Map::with_capacity_and_hasher(n, RandomState::default())
}
use crate::aggregate::{hll, Tag};
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

/// Packets counted while a flow had no verdict yet, per minute and tag (direction and
/// member).
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingCount {
    pub minute: i64,
    pub tag: Tag,
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
    /// Decided on what is known, which an offline `--threads` worker may not know yet: the
    /// flow holds its packets (at its probing index), probed no more, until it does (see
    /// `engine::settle`).
    Settling(u32),
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
    /// A packet of the flow was a sample standing for more than one packet (sFlow at a
    /// rate above 1): what its samples did not show may still be there.
    pub sampled: bool,
}

impl Classification {
    pub fn verdict(&self) -> Option<Verdict> {
        match self.stage {
            Stage::Decided(v) => Some(v),
            Stage::Probing(_) | Stage::Settling(_) => None,
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
        tag: impl Into<Tag>,
        packets: u32,
        bytes: u64,
        samples: u16,
    ) -> bool {
        self.add_within(MAX_PENDING, minute, tag.into(), packets, bytes, samples)
    }

    /// Adds to the held counts, holding at most `cap` (≤ [`MAX_PENDING`]) of them; `false`
    /// when there is no room left.
    fn add_within(
        &mut self,
        cap: usize,
        minute: i64,
        tag: Tag,
        packets: u32,
        bytes: u64,
        samples: u16,
    ) -> bool {
        let n = usize::from(self.n);
        for p in &mut self.pending[..n] {
            if p.minute == minute && p.tag == tag {
                p.packets = p.packets.saturating_add(packets);
                p.bytes += bytes;
                p.samples = p.samples.saturating_add(samples);
                return true;
            }
        }
        if n >= cap.min(MAX_PENDING) {
            return false;
        }
        self.pending[n] = PendingCount {
            minute,
            tag,
            packets,
            bytes,
            samples,
        };
        self.n += 1;
        true
    }
}

/// Held counts kept inline per flow being classified: most flows hold one or two minute and
/// direction pairs before their verdict (a handshake, a query and its answer).
const INLINE_HELD: usize = 2;

/// The held counts of one flow: the first [`INLINE_HELD`] inline, the rest (up to
/// [`MAX_PENDING`] in all) in a spill taken from the pool only when needed.
#[derive(Debug, Clone, Copy, Default)]
struct SmallHeld {
    inline: [PendingCount; INLINE_HELD],
    n: u8,
    /// Index + 1 of the spill in [`HeldPool::spills`]; 0 for none.
    spill: u32,
}

/// Held counts of the flows being classified, by probe index: compact for the common case,
/// spilling to a full [`Held`] (reused through a free list) for flows that span more minute
/// and direction pairs. Holds what one `[Held]` by index would, in the same order.
#[derive(Debug, Default)]
pub struct HeldPool {
    small: Vec<SmallHeld>,
    spills: Vec<Held>,
    free: Vec<u32>,
}

impl HeldPool {
    /// Makes room for index `i`.
    pub fn ensure(&mut self, i: u32) {
        let n = i as usize + 1;
        if self.small.len() < n {
            self.small.resize(n, SmallHeld::default());
        }
    }

    /// Adds to the held counts of index `i`; `false` when there is no room left.
    pub fn add(
        &mut self,
        i: u32,
        minute: i64,
        tag: impl Into<Tag>,
        packets: u32,
        bytes: u64,
        samples: u16,
    ) -> bool {
        let tag = tag.into();
        let s = &mut self.small[i as usize];
        let n = usize::from(s.n);
        for p in &mut s.inline[..n] {
            if p.minute == minute && p.tag == tag {
                p.packets = p.packets.saturating_add(packets);
                p.bytes += bytes;
                p.samples = p.samples.saturating_add(samples);
                return true;
            }
        }
        if s.spill == 0 {
            if n < INLINE_HELD {
                s.inline[n] = PendingCount {
                    minute,
                    tag,
                    packets,
                    bytes,
                    samples,
                };
                s.n += 1;
                return true;
            }
            let j = match self.free.pop() {
                Some(j) => j,
                None => {
                    self.spills.push(Held::default());
                    (self.spills.len() - 1) as u32
                }
            };
            s.spill = j + 1;
        }
        let spill = &mut self.spills[(s.spill - 1) as usize];
        spill.add_within(
            MAX_PENDING - INLINE_HELD,
            minute,
            tag,
            packets,
            bytes,
            samples,
        )
    }

    /// The held counts of index `i`, in the order they were first held: inline, then spilled.
    pub fn counts(&self, i: u32) -> (&[PendingCount], &[PendingCount]) {
        let s = &self.small[i as usize];
        let spilled = match s.spill {
            0 => &[][..],
            j => self.spills[(j - 1) as usize].counts(),
        };
        (&s.inline[..usize::from(s.n)], spilled)
    }

    /// Empties the held counts of index `i`, returning its spill to the pool.
    pub fn clear(&mut self, i: u32) {
        let s = &mut self.small[i as usize];
        if s.spill != 0 {
            let j = s.spill - 1;
            self.spills[j as usize].clear();
            self.free.push(j);
        }
        *s = SmallHeld::default();
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

    #[test]
    fn held_pool_is_compact_and_holds_what_held_does() {
        assert!(std::mem::size_of::<SmallHeld>() <= 56);
        let mut pool = HeldPool::default();
        let mut h = Held::default();
        pool.ensure(1);
        let adds = [
            (1, Direction::Up),
            (1, Direction::Down),
            (1, Direction::Up),
            (2, Direction::Up),
            (3, Direction::Up),
            (2, Direction::Up),
            (4, Direction::Up),
            (5, Direction::Up),
            (1, Direction::Down),
            (6, Direction::Up),
        ];
        for (k, (m, d)) in adds.into_iter().enumerate() {
            let b = k as u64 + 1;
            assert_eq!(pool.add(1, m, d, 1, b, 1), h.add(m, d, 1, b, 1));
            let (a, s) = pool.counts(1);
            let got: Vec<_> = a
                .iter()
                .chain(s)
                .map(|p| (p.minute, p.tag, p.bytes))
                .collect();
            let want: Vec<_> = h
                .counts()
                .iter()
                .map(|p| (p.minute, p.tag, p.bytes))
                .collect();
            assert_eq!(got, want);
        }
        assert!(pool.counts(0).0.is_empty());
        pool.clear(1);
        assert!(pool.counts(1).0.is_empty() && pool.counts(1).1.is_empty());
        // The spill went back to the pool and is reused, emptied.
        pool.ensure(2);
        for m in 0..3 {
            assert!(pool.add(2, m, Direction::Up, 1, 1, 1));
        }
        assert_eq!((pool.spills.len(), pool.counts(2).1.len()), (1, 1));
    }
}
