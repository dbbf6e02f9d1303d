//! Learned BitTorrent endpoints: (address, port, transport) of peers seen in positively
//! identified flows or advertised in DHT and tracker replies. A new flow to or from one of
//! them is BitTorrent by correlation unless its payload says otherwise.
//!
//! Keys always include the port and transport — never an address alone, which would label
//! every host behind the same NAT or carrier-grade NAT — and entries expire on packet time.
//! The table is consulted when a flow starts, never per packet.

use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::decode::{Addr, IPPROTO_TCP, IPPROTO_UDP};

/// One endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
    /// IP protocol number: 6 (TCP) or 17 (UDP).
    pub proto: u8,
}

/// Bounded table of endpoints with the packet time they were last learned.
pub struct EndpointTable {
    map: HashMap<Endpoint, i64, FixedState>,
    ttl_ns: i64,
    max: usize,
    scratch: Vec<i64>,
    /// Entries dropped to stay within the bound.
    pub evicted: u64,
}

/// Default lifetime of a learned endpoint: peers re-announce and DHT nodes refresh within
/// about 30 minutes.
pub const DEFAULT_TTL_NS: i64 = 30 * 60 * 1_000_000_000;
pub const DEFAULT_MAX: usize = 1 << 20;

impl EndpointTable {
    pub fn new(ttl_ns: i64, max: usize) -> Self {
        EndpointTable {
            map: HashMap::with_capacity_and_hasher(max.min(1 << 12), FixedState::default()),
            ttl_ns,
            max: max.max(16),
            scratch: Vec::new(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Most entries the table will hold.
    pub fn capacity_bound(&self) -> usize {
        self.max
    }

    /// Remembers an endpoint at packet time `now`. Port 0 and unspecified addresses are not
    /// endpoints.
    pub fn learn(&mut self, e: Endpoint, now: i64) {
        if e.port == 0 || e.addr == 0 || e.addr == 0xffff_0000_0000 {
            return;
        }
        if let Some(t) = self.map.get_mut(&e) {
            *t = (*t).max(now);
            return;
        }
        if self.map.len() >= self.max {
            self.make_room(now);
        }
        self.map.insert(e, now);
    }

    /// Remembers a BitTorrent peer's port for both transports: clients take uTP and DHT on
    /// their TCP listen port, and an advertised peer may be reached either way.
    pub fn learn_peer(&mut self, addr: Addr, port: u16, now: i64) {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            self.learn(Endpoint { addr, port, proto }, now);
        }
    }

    /// Whether an endpoint was learned within the lifetime of `now` (either side of it, so a
    /// table filled by a look-ahead pass serves earlier packets too).
    pub fn knows(&self, e: &Endpoint, now: i64) -> bool {
        self.map
            .get(e)
            .is_some_and(|&t| now.abs_diff(t) <= self.ttl_ns.unsigned_abs())
    }

    #[cold]
    fn make_room(&mut self, now: i64) {
        let ttl = self.ttl_ns;
        let before = self.map.len();
        self.map
            .retain(|_, t| now.abs_diff(*t) <= ttl.unsigned_abs());
        if self.map.len() >= self.max {
            // Still full: drop the oldest eighth.
            self.scratch.clear();
            self.scratch.extend(self.map.values().copied());
            let k = self.scratch.len() / 8;
            let (_, &mut cut, _) = self.scratch.select_nth_unstable(k);
            self.map.retain(|_, t| *t > cut);
        }
        self.evicted += (before - self.map.len()) as u64;
    }
}

/// The endpoint table shared by the workers of one run, so a peer identified in one worker
/// correlates flows in another. It is consulted when a flow starts and updated on verdicts
/// and DHT/tracker payloads, never on every packet; sharding by endpoint keeps the workers
/// from waiting on each other. One shard behaves exactly like a lone [`EndpointTable`].
#[derive(Clone)]
pub struct SharedEndpoints {
    shards: Arc<[Mutex<EndpointTable>]>,
}

impl SharedEndpoints {
    /// `shards` tables, each bounded to its share of `max`.
    pub fn new(ttl_ns: i64, max: usize, shards: usize) -> Self {
        let n = shards.max(1);
        let per = max.div_ceil(n);
        SharedEndpoints {
            shards: (0..n)
                .map(|_| Mutex::new(EndpointTable::new(ttl_ns, per)))
                .collect(),
        }
    }

    /// One shard holding `table`.
    pub fn from_table(table: EndpointTable) -> Self {
        SharedEndpoints {
            shards: Arc::from(vec![Mutex::new(table)]),
        }
    }

    fn shard(&self, e: &Endpoint) -> MutexGuard<'_, EndpointTable> {
        let i = if self.shards.len() == 1 {
            0
        } else {
            let h = ((e.addr as u64) ^ ((e.addr >> 64) as u64) ^ u64::from(e.port))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
            ((u128::from(h) * self.shards.len() as u128) >> 64) as usize
        };
        // A worker that panicked leaves the table usable: entries are plain values.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn learn(&self, e: Endpoint, now: i64) {
        self.shard(&e).learn(e, now);
    }

    /// See [`EndpointTable::learn_peer`].
    pub fn learn_peer(&self, addr: Addr, port: u16, now: i64) {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            self.learn(Endpoint { addr, port, proto }, now);
        }
    }

    pub fn knows(&self, e: &Endpoint, now: i64) -> bool {
        self.shard(e).knows(e, now)
    }

    fn sum(&self, f: impl Fn(&EndpointTable) -> usize) -> usize {
        self.shards
            .iter()
            .map(|s| f(&s.lock().unwrap_or_else(|p| p.into_inner())))
            .sum()
    }

    pub fn len(&self) -> usize {
        self.sum(EndpointTable::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries dropped to stay within the bound.
    pub fn evicted(&self) -> u64 {
        self.sum(|t| t.evicted as usize) as u64
    }

    /// Most entries the table will hold.
    pub fn capacity_bound(&self) -> usize {
        self.sum(EndpointTable::capacity_bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ep(a: u128, port: u16, proto: u8) -> Endpoint {
        Endpoint {
            addr: a,
            port,
            proto,
        }
    }

    #[test]
    fn keyed_on_address_port_and_transport_with_expiry() {
        let mut t = EndpointTable::new(60 * S, 100);
        t.learn(ep(0xffff_0a00_0001, 51413, 6), 1000 * S);
        assert!(t.knows(&ep(0xffff_0a00_0001, 51413, 6), 1030 * S));
        // Look-ahead: learned later than the packet asking.
        assert!(t.knows(&ep(0xffff_0a00_0001, 51413, 6), 990 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0001, 51413, 17), 1030 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0001, 51414, 6), 1030 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0002, 51413, 6), 1030 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0001, 51413, 6), 1061 * S));
        t.learn(ep(0xffff_0a00_0001, 0, 6), 0);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn shared_shards_see_each_others_entries_and_stay_bounded() {
        let t = SharedEndpoints::new(1800 * S, 16_000, 4);
        let other = t.clone();
        for i in 1..=100_000u32 {
            other.learn(ep(0xffff_0000_0000 | u128::from(i), 6881, 6), i64::from(i));
        }
        assert!(t.len() <= t.capacity_bound());
        assert!(t.len() > 14_000, "{}", t.len());
        assert!(t.knows(&ep(0xffff_0000_0000 | 100_000, 6881, 6), 100_000));
        assert!(!t.knows(&ep(0xffff_0000_0000 | 100_000, 6881, 17), 100_000));
        assert_eq!(t.len() as u64 + t.evicted(), 100_000);
    }

    #[test]
    fn flooding_stays_within_the_bound() {
        let mut t = EndpointTable::new(1800 * S, 10_000);
        for i in 0..1_000_000u32 {
            // A peer list flood: distinct addresses, all fresh.
            t.learn(ep(0xffff_0000_0000 | u128::from(i), 6881, 6), i64::from(i));
            assert!(t.len() <= t.capacity_bound());
        }
        assert!(t.evicted >= 990_000);
        // The newest are kept.
        assert!(t.knows(&ep(0xffff_0000_0000 | 999_999, 6881, 6), 1_000_000));
    }
}
