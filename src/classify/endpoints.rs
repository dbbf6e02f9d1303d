//! Learned BitTorrent endpoints: (address, port, transport) of peers seen in positively
//! identified flows or advertised in DHT and tracker replies. A new flow to or from one of
//! them is BitTorrent by correlation unless its payload says otherwise.
//!
//! Keys always include the port and transport — never an address alone, which would label
//! every host behind the same NAT or carrier-grade NAT — and entries expire on packet time.
//! The table is consulted when a flow starts, never per packet.

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
            .is_some_and(|&t| now.saturating_sub(t).abs() <= self.ttl_ns)
    }

    #[cold]
    fn make_room(&mut self, now: i64) {
        let ttl = self.ttl_ns;
        let before = self.map.len();
        self.map.retain(|_, t| now.saturating_sub(*t).abs() <= ttl);
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
