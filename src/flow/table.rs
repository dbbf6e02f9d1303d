//! The flow table and its lifecycle: a flow is created by its first packet, touched by each
//! one after, lingers a little once closed, and ends when idle past its timeout, when the
//! table is full (the longest-idle sixteenth is evicted), when a new connection reuses its
//! closed 5-tuple, or at the end of input. The table only keeps flows: the ones that end are
//! handed back to the caller, which counts and records them.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use super::index::{fold, Index};
use super::{EndReason, Flow, FlowKey, Stage};
use crate::decode::IPPROTO_TCP;

/// How long flows may stay quiet.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Idle timeout of TCP flows.
    pub tcp_idle_ns: i64,
    /// Idle timeout of UDP and other flows.
    pub udp_idle_ns: i64,
    /// How long a TCP flow stays after FIN both ways or RST (late retransmissions).
    pub linger_ns: i64,
}

impl Timeouts {
    fn of(&self, key: &FlowKey, f: &Flow) -> i64 {
        if f.state.closed() {
            self.linger_ns
        } else if key.proto == IPPROTO_TCP {
            self.tcp_idle_ns
        } else {
            self.udp_idle_ns
        }
    }
}

/// Entries a table emptied at the end of input keeps room for.
const KEPT: usize = 1 << 16;

/// A flow that left the table, and why.
pub type Ended = (FlowKey, Flow, EndReason);

/// The flows, packed in a vector (`slab`), found by key through an index of their
/// positions (see [`Index`]): a position and its key's hash cost 8 bytes per slot where a
/// whole entry would cost 128, and the slots are a power of two, at most three quarters used. Removing a flow moves the last one
/// into its place. Sweeps walk the vector, so the order they meet flows in never depends on
/// the hash seed.
pub struct FlowTable {
    index: Index,
    slab: Vec<(FlowKey, Flow)>,
    hasher: RandomState,
    max: usize,
    timeouts: Timeouts,
    scratch: Vec<i64>,
}

impl FlowTable {
    pub fn new(max: usize, timeouts: Timeouts) -> FlowTable {
        FlowTable {
            index: Index::with_capacity(max.min(KEPT)),
            slab: Vec::with_capacity(max.min(KEPT)),
            hasher: RandomState::default(),
            max,
            timeouts,
            scratch: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Whether a new flow needs room made first.
    pub fn is_full(&self) -> bool {
        self.slab.len() >= self.max
    }

    /// The hash of a key, for [`FlowTable::find`] and [`FlowTable::insert_hashed`]: a packet
    /// hashes its key once.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u32 {
        fold(self.hasher.hash_one(key))
    }

    /// Asks for the index line the lookup of `key` will read: called a packet ahead, it
    /// overlaps that cache miss with the work on the packet before.
    #[inline]
    pub fn prefetch(&self, key: &FlowKey) {
        self.index.prefetch(self.hash(key));
    }

    /// The position of the flow of `key` (whose hash is `h`), if it is in the table.
    #[inline]
    pub fn find(&self, h: u32, key: &FlowKey) -> Option<usize> {
        let slab = &self.slab;
        self.index
            .find(h, |i| slab.get(i).is_some_and(|e| e.0 == *key))
    }

    fn position(&self, key: &FlowKey) -> Option<usize> {
        self.find(self.hash(key), key)
    }

    pub fn contains(&self, key: &FlowKey) -> bool {
        self.position(key).is_some()
    }

    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Flow> {
        let i = self.position(key)?;
        self.slab.get_mut(i).map(|e| &mut e.1)
    }

    /// The flow at position `i` (from [`FlowTable::find`] or [`FlowTable::insert_hashed`],
    /// valid until the table next changes).
    #[inline]
    pub fn at_mut(&mut self, i: usize) -> Option<&mut Flow> {
        self.slab.get_mut(i).map(|e| &mut e.1)
    }

    pub fn flows_mut(&mut self) -> impl Iterator<Item = &mut Flow> {
        self.slab.iter_mut().map(|e| &mut e.1)
    }

    /// Adds a flow that is not in the table (the caller made room first).
    pub fn insert(&mut self, key: FlowKey, flow: Flow) {
        let h = self.hash(&key);
        self.insert_hashed(h, key, flow);
    }

    /// Adds a flow that is not in the table, whose key hashes to `h`; returns its position.
    pub fn insert_hashed(&mut self, h: u32, key: FlowKey, flow: Flow) -> usize {
        let i = self.slab.len();
        self.slab.push((key, flow));
        self.index.insert(h, i);
        i
    }

    /// Takes the flow at position `i` out; the last flow moves into its place.
    fn take(&mut self, i: usize) -> (FlowKey, Flow) {
        let last = self.slab.len() - 1;
        self.index.remove(self.hash(&self.slab[i].0), i);
        if i != last {
            self.index.moved(self.hash(&self.slab[last].0), last, i);
        }
        self.slab.swap_remove(i)
    }

    /// Takes out the flows `end` gives a reason for, walking the vector.
    fn take_where<'a>(
        &'a mut self,
        end: impl Fn(&FlowKey, &Flow) -> Option<EndReason> + 'a,
    ) -> impl Iterator<Item = Ended> + 'a {
        let mut i = 0;
        std::iter::from_fn(move || {
            while i < self.slab.len() {
                let (k, f) = &self.slab[i];
                if let Some(reason) = end(k, f) {
                    let (k, f) = self.take(i);
                    return Some((k, f, reason));
                }
                i += 1;
            }
            None
        })
    }

    /// Ends a closed flow whose 5-tuple a new connection (a SYN) reuses.
    pub fn reuse(&mut self, key: &FlowKey) -> Option<Ended> {
        let i = self.position(key)?;
        self.reuse_at(i)
    }

    /// Ends the flow at position `i` if it is closed (a SYN reuses its 5-tuple).
    pub fn reuse_at(&mut self, i: usize) -> Option<Ended> {
        if !self.slab.get(i)?.1.state.closed() {
            return None;
        }
        let (k, f) = self.take(i);
        Some((k, f, EndReason::Reused))
    }

    /// Takes out the flows idle past their timeout at `now` (a closed one past its linger
    /// time), or every flow at the end of input.
    pub fn expire(&mut self, now: i64, eof: bool) -> impl Iterator<Item = Ended> + '_ {
        let t = self.timeouts;
        if eof {
            // Every flow goes: the index is emptied at once rather than flow by flow, and the
            // vector keeps its capacity for a next pass.
            self.index.clear();
        }
        let mut i = 0;
        std::iter::from_fn(move || {
            if eof {
                // The order flows always ended in (the last one moves into the first place).
                let e = (!self.slab.is_empty()).then(|| {
                    let (k, f) = self.slab.swap_remove(0);
                    (k, f, EndReason::Eof)
                });
                // A large table gives its memory back as it empties (the records of the
                // flows ending take its place); a small one keeps it for a next pass.
                let (len, cap) = (self.slab.len(), self.slab.capacity());
                if cap > KEPT && len.is_multiple_of(KEPT) && cap >= 2 * len {
                    self.slab.shrink_to(len.max(KEPT));
                }
                return e;
            }
            while i < self.slab.len() {
                let (k, f) = &self.slab[i];
                let reason = if now.saturating_sub(f.state.last_ts) <= t.of(k, f) {
                    None
                } else if f.state.closed() {
                    Some(EndReason::Closed)
                } else {
                    Some(EndReason::Idle)
                };
                if let Some(reason) = reason {
                    let (k, f) = self.take(i);
                    return Some((k, f, reason));
                }
                i += 1;
            }
            None
        })
    }

    /// Takes out a sixteenth of the flows (at least one) to make room: the longest idle of
    /// those already decided, and flows still being classified only when too few are decided
    /// (a flood of new 5-tuples then evicts itself rather than the flows it interrupts).
    #[cold]
    pub fn evict(&mut self) -> impl Iterator<Item = Ended> + '_ {
        let want = (self.slab.len() / 16).max(1);
        // A settling flow is decided, as one engine reading the whole stream has it.
        let decided = |f: &Flow| !matches!(f.class.stage, Stage::Probing(_));
        let s = &mut self.scratch;
        s.clear();
        s.extend(
            self.slab
                .iter()
                .filter(|e| decided(&e.1))
                .map(|e| e.1.state.last_ts),
        );
        // Flows idle since these times or longer go: decided ones, then probing ones.
        let (decided_cut, probing_cut) = if s.len() >= want {
            (*s.select_nth_unstable(want - 1).1, i64::MIN)
        } else {
            let rest = want - s.len();
            s.clear();
            s.extend(
                self.slab
                    .iter()
                    .filter(|e| !decided(&e.1))
                    .map(|e| e.1.state.last_ts),
            );
            let cut = if s.len() >= rest {
                *s.select_nth_unstable(rest - 1).1
            } else {
                i64::MAX
            };
            (i64::MAX, cut)
        };
        self.take_where(move |_, f| {
            let cut = if decided(f) { decided_cut } else { probing_cut };
            (f.state.last_ts <= cut).then_some(EndReason::Evicted)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Evidence, Verdict};
    use crate::decode::IPPROTO_UDP;
    use crate::flow::{Classification, Direction, FlowState, Stage, FIN_FROM_DST, FIN_FROM_SRC};

    const T: Timeouts = Timeouts {
        tcp_idle_ns: 300,
        udp_idle_ns: 120,
        linger_ns: 5,
    };

    fn flow(last_ts: i64) -> Flow {
        Flow {
            state: FlowState {
                first_ts: last_ts,
                last_ts,
                packets: 1,
                bytes: 60,
                src_is_lo: true,
                dir_tag: [Direction::Unknown; 2],
                fins: 0,
                rst: false,
                udp: false,
                port_rule: 0,
                host_hash: [0; 2],
                hosts_minute: i64::MIN,
            },
            class: Classification {
                stage: Stage::Decided(Verdict::OTHER),
                evidence: false,
                proof: Evidence::None,
                correlated: None,
                sampled: false,
            },
        }
    }

    fn key(port: u16, proto: u8) -> FlowKey {
        FlowKey::of(1, port, 2, 80, proto).0
    }

    fn sorted(mut v: Vec<(u16, EndReason)>) -> Vec<(u16, EndReason)> {
        v.sort_by_key(|e| e.0);
        v
    }

    #[test]
    fn idle_flows_end_by_their_transports_timeout() {
        let mut t = FlowTable::new(100, T);
        t.insert(key(1, IPPROTO_TCP), flow(0));
        t.insert(key(2, IPPROTO_UDP), flow(0));
        t.insert(key(3, IPPROTO_TCP), flow(100));
        // At 200 only the UDP flow is past its 120.
        let ended: Vec<_> = t.expire(200, false).map(|e| (e.0.lo_port, e.2)).collect();
        assert_eq!(ended, vec![(2, EndReason::Idle)]);
        let ended: Vec<_> = t.expire(301, false).map(|e| (e.0.lo_port, e.2)).collect();
        assert_eq!(ended, vec![(1, EndReason::Idle)]);
        let ended: Vec<_> = t.expire(302, true).map(|e| (e.0.lo_port, e.2)).collect();
        assert_eq!(ended, vec![(3, EndReason::Eof)]);
        assert!(t.is_empty());
    }

    #[test]
    fn closed_flows_linger_then_end_or_are_reused() {
        let mut t = FlowTable::new(100, T);
        let mut fin = flow(0);
        fin.state.fins = FIN_FROM_SRC | FIN_FROM_DST;
        let mut rst = flow(0);
        rst.state.rst = true;
        t.insert(key(1, IPPROTO_TCP), fin);
        t.insert(key(2, IPPROTO_TCP), rst.clone());
        t.insert(key(3, IPPROTO_TCP), flow(0));
        assert_eq!(t.expire(5, false).count(), 0);
        let ended = sorted(t.expire(6, false).map(|e| (e.0.lo_port, e.2)).collect());
        assert_eq!(ended, vec![(1, EndReason::Closed), (2, EndReason::Closed)]);
        // An open flow is not reused; a closed one is.
        assert!(t.reuse(&key(3, IPPROTO_TCP)).is_none());
        t.insert(key(4, IPPROTO_TCP), rst);
        let r = t.reuse(&key(4, IPPROTO_TCP)).map(|e| e.2);
        assert_eq!(r, Some(EndReason::Reused));
        assert!(!t.contains(&key(4, IPPROTO_TCP)) && t.contains(&key(3, IPPROTO_TCP)));
    }

    #[test]
    fn eviction_prefers_decided_flows_to_those_being_classified() {
        let mut t = FlowTable::new(32, T);
        for p in 0..32u16 {
            let mut f = flow(i64::from(p) + 100);
            // The 16 oldest are still being classified; 4 of the newer ones too.
            if !(16..28).contains(&p) {
                f.class.stage = Stage::Probing(u32::from(p));
            }
            t.insert(key(p, IPPROTO_TCP), f);
        }
        // Two go: the longest idle of the decided ones (16 and 17), no probing one.
        let ended = sorted(t.evict().map(|e| (e.0.lo_port, e.2)).collect());
        assert_eq!(
            ended,
            vec![(16, EndReason::Evicted), (17, EndReason::Evicted)]
        );
        // With fewer decided flows than a sixteenth, all of them go, then the longest idle of
        // the rest.
        let mut t = FlowTable::new(64, T);
        for p in 0..64u16 {
            let mut f = flow(i64::from(p));
            if p != 40 {
                f.class.stage = Stage::Probing(u32::from(p));
            }
            t.insert(key(p, IPPROTO_TCP), f);
        }
        let ended = sorted(t.evict().map(|e| (e.0.lo_port, e.2)).collect());
        let ports: Vec<u16> = ended.iter().map(|e| e.0).collect();
        assert_eq!(ports, vec![0, 1, 2, 40]);
    }

    #[test]
    fn a_full_table_evicts_its_longest_idle_sixteenth() {
        let mut t = FlowTable::new(32, T);
        for p in 0..32u16 {
            t.insert(key(p, IPPROTO_TCP), flow(i64::from(p)));
        }
        assert!(t.is_full());
        let ended = sorted(t.evict().map(|e| (e.0.lo_port, e.2)).collect());
        assert_eq!(
            ended,
            vec![(0, EndReason::Evicted), (1, EndReason::Evicted)]
        );
        assert_eq!(t.len(), 30);
        assert!(!t.is_full());
        // A table of one evicts that one.
        let mut one = FlowTable::new(1, T);
        one.insert(key(9, IPPROTO_UDP), flow(5));
        assert_eq!(one.evict().count(), 1);
        assert_eq!(FlowTable::new(1, T).evict().count(), 0);
    }

    #[test]
    fn moved_flows_stay_found() {
        let mut t = FlowTable::new(1000, T);
        for p in 0..200u16 {
            t.insert(key(p, IPPROTO_UDP), flow(i64::from(p)));
        }
        // Every third flow goes; the last ones move into the holes.
        let gone: Vec<u16> = t
            .take_where(|k, _| (k.lo_port % 3 == 0).then_some(EndReason::Idle))
            .map(|e| e.0.lo_port)
            .collect();
        assert_eq!(gone.len(), 67);
        for p in 0..200u16 {
            let found = t.get_mut(&key(p, IPPROTO_UDP)).map(|f| f.state.last_ts);
            let want = (p % 3 != 0).then_some(i64::from(p));
            assert_eq!(found, want, "port {p}");
        }
        assert_eq!(t.len(), 133);
        assert_eq!(t.expire(0, true).count(), 133);
        assert!(t.is_empty() && !t.contains(&key(1, IPPROTO_UDP)));
    }

    #[test]
    fn a_table_entry_is_at_most_128_bytes() {
        // Key and flow; probe state and held packets live outside, while classifying only.
        let entry = std::mem::size_of::<(FlowKey, Flow)>();
        assert!(entry <= 128, "{entry} bytes");
    }
}
