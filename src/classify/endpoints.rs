//! Learned BitTorrent endpoints: (address, port, transport) of peers seen in positively
//! identified flows or advertised in DHT and tracker replies. A new flow to or from one of
//! them is BitTorrent by correlation unless its payload says otherwise.
//!
//! Keys always include the port and transport — never an address alone, which would label
//! every host behind the same NAT or carrier-grade NAT — and entries expire on packet time.
//! The table is consulted when a flow starts, never per packet.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::fast::RandomState;
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

/// How an endpoint came to be known, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provenance {
    /// An end of a flow identified with strong evidence (handshake, validated KRPC, confirmed
    /// uTP, tied tracker exchange, confirmed MSE, …).
    Observed,
    /// Named as a peer by someone else: DHT `values`, a tracker's peer list, PEX. Anyone can
    /// send such a list, so it labels flows but never spreads further.
    Advertised,
    /// Named as a DHT node (`nodes`, `nodes6`): a UDP endpoint only.
    DhtNode,
}

/// When an endpoint was learned: first and last packet time, so a look-ahead table covers
/// every flow a single pass would have correlated.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first: i64,
    last: i64,
    how: Provenance,
}

/// Keyed per process (a random seed), so crafted endpoints cannot collide the table; nothing
/// is written in its order.
type Map = HashMap<Endpoint, Seen, RandomState>;

/// Bounded table of endpoints. Observed endpoints and advertised ones have separate shares of
/// the bound, so a flood of advertisements cannot evict what was observed.
pub struct EndpointTable {
    observed: Map,
    advertised: Map,
    ttl_ns: i64,
    max_observed: usize,
    max_advertised: usize,
    scratch: Vec<i64>,
    /// Learned by workers of an ordered run ([`StreamOrder`]) at positions some worker has not
    /// passed yet: kept aside until every worker has passed them, one queue per worker in the
    /// order met (a worker's position only grows, so each queue is in stream order).
    pending: Vec<VecDeque<Learned>>,
    /// How many pending learnings each endpoint has: a lookup of one with none is a plain
    /// lookup, however many are pending.
    pending_keys: HashMap<Endpoint, u32, RandomState>,
    /// Entries dropped to stay within the bound.
    pub evicted: u64,
}

/// One learning not yet folded into the table, at its position in the packet stream.
#[derive(Debug, Clone, Copy)]
struct Learned {
    at: u64,
    e: Endpoint,
    how: Provenance,
    now: i64,
}

/// Default lifetime of a learned endpoint: peers re-announce and DHT nodes refresh within
/// about 30 minutes.
pub const DEFAULT_TTL_NS: i64 = 30 * 60 * 1_000_000_000;
pub const DEFAULT_MAX: usize = 1 << 20;

/// Whether an address can be a peer: not unspecified, loopback, multicast or broadcast.
/// IPv4 addresses are IPv4-mapped (`::ffff:a.b.c.d`).
pub fn unicast(addr: Addr) -> bool {
    let v4 = addr >> 32 == 0xffff;
    if v4 {
        let a = addr as u32;
        let first = a >> 24;
        !(a == 0 || first == 0 || first == 127 || (224..=239).contains(&first) || a == u32::MAX)
    } else {
        !(addr == 0 || addr == 1 || addr >> 120 == 0xff)
    }
}

impl EndpointTable {
    pub fn new(ttl_ns: i64, max: usize) -> Self {
        let max = max.max(16);
        let max_observed = (max / 4).max(8);
        EndpointTable {
            observed: HashMap::with_capacity_and_hasher(
                max_observed.min(1 << 10),
                RandomState::default(),
            ),
            advertised: HashMap::with_capacity_and_hasher(max.min(1 << 12), RandomState::default()),
            ttl_ns,
            max_observed,
            max_advertised: max - max_observed,
            scratch: Vec::new(),
            pending: Vec::new(),
            pending_keys: HashMap::default(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.observed.len() + self.advertised.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most entries the table will hold.
    pub fn capacity_bound(&self) -> usize {
        self.max_observed + self.max_advertised
    }

    /// Remembers an endpoint at packet time `now`. Port 0 and addresses that cannot be a
    /// peer's are not learned.
    pub fn learn(&mut self, e: Endpoint, how: Provenance, now: i64) {
        if e.port == 0 || !unicast(e.addr) {
            return;
        }
        let (map, max) = if how == Provenance::Observed {
            (&mut self.observed, self.max_observed)
        } else {
            (&mut self.advertised, self.max_advertised)
        };
        if let Some(t) = map.get_mut(&e) {
            t.first = t.first.min(now);
            t.last = t.last.max(now);
            t.how = t.how.min(how);
            return;
        }
        if map.len() >= max {
            self.evicted += make_room(map, max, self.ttl_ns, now, &mut self.scratch);
        }
        let map = if how == Provenance::Observed {
            &mut self.observed
        } else {
            &mut self.advertised
        };
        map.insert(
            e,
            Seen {
                first: now,
                last: now,
                how,
            },
        );
    }

    /// Remembers a BitTorrent peer's port for both transports: clients take uTP and DHT on
    /// their TCP listen port, and an advertised peer may be reached either way.
    pub fn learn_peer(&mut self, addr: Addr, port: u16, how: Provenance, now: i64) {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            self.learn(Endpoint { addr, port, proto }, how, now);
        }
    }

    /// How an endpoint was learned, if it was within the lifetime of `now` (either side of
    /// the time it was learned, so a table filled by a look-ahead pass serves earlier packets).
    pub fn lookup(&self, e: &Endpoint, now: i64) -> Option<Provenance> {
        answer(
            self.observed.get(e),
            self.advertised.get(e),
            now,
            self.ttl_ns,
        )
    }

    /// Keeps a learning of worker `who` at stream position `at` aside (see [`StreamOrder`]);
    /// port 0 and addresses that cannot be a peer's are not learned.
    fn learn_at(&mut self, who: usize, at: u64, e: Endpoint, how: Provenance, now: i64) {
        if e.port == 0 || !unicast(e.addr) {
            return;
        }
        if self.pending.len() <= who {
            self.pending.resize_with(who + 1, VecDeque::new);
        }
        self.pending[who].push_back(Learned { at, e, how, now });
        *self.pending_keys.entry(e).or_insert(0) += 1;
    }

    /// Folds into the table, in stream order, what was learned before position `passed`
    /// (which every worker has passed: no lookup can come from before it any more). Learnings
    /// at one position from several workers (sweeps at one clock step) go in worker order.
    fn fold_before(&mut self, passed: u64) {
        loop {
            let mut first: Option<(u64, usize)> = None;
            for (w, q) in self.pending.iter().enumerate() {
                if let Some(l) = q.front() {
                    if l.at < passed && first.is_none_or(|(at, _)| l.at < at) {
                        first = Some((l.at, w));
                    }
                }
            }
            let Some(l) = first.and_then(|(_, w)| self.pending[w].pop_front()) else {
                return;
            };
            if let Some(k) = self.pending_keys.get_mut(&l.e) {
                *k -= 1;
                if *k == 0 {
                    self.pending_keys.remove(&l.e);
                }
            }
            self.learn(l.e, l.how, l.now);
        }
    }

    /// [`lookup`](Self::lookup) as the table stood after every learning at a stream position
    /// up to `upto`, no later one.
    fn lookup_upto(&self, e: &Endpoint, now: i64, upto: u64) -> Option<Provenance> {
        if !self.pending_keys.contains_key(e) {
            return self.lookup(e, now);
        }
        let (mut obs, mut adv) = (
            self.observed.get(e).copied(),
            self.advertised.get(e).copied(),
        );
        for l in self
            .pending
            .iter()
            .flatten()
            .filter(|l| l.e == *e && l.at <= upto)
        {
            let slot = if l.how == Provenance::Observed {
                &mut obs
            } else {
                &mut adv
            };
            *slot = Some(match *slot {
                Some(t) => Seen {
                    first: t.first.min(l.now),
                    last: t.last.max(l.now),
                    how: t.how.min(l.how),
                },
                None => Seen {
                    first: l.now,
                    last: l.now,
                    how: l.how,
                },
            });
        }
        answer(obs.as_ref(), adv.as_ref(), now, self.ttl_ns)
    }

    pub fn knows(&self, e: &Endpoint, now: i64) -> bool {
        self.lookup(e, now).is_some()
    }
}

/// The answer of a lookup from an endpoint's observed and advertised entries.
fn answer(obs: Option<&Seen>, adv: Option<&Seen>, now: i64, ttl: i64) -> Option<Provenance> {
    let fresh = |t: &Seen| now >= t.first.saturating_sub(ttl) && now <= t.last.saturating_add(ttl);
    match obs {
        Some(t) if fresh(t) => Some(Provenance::Observed),
        _ => adv.filter(|t| fresh(t)).map(|t| t.how),
    }
}

/// Makes room in a full map: drops what expired, then the eighth learned least recently.
/// Returns the number dropped.
#[cold]
fn make_room(map: &mut Map, max: usize, ttl: i64, now: i64, scratch: &mut Vec<i64>) -> u64 {
    let before = map.len();
    map.retain(|_, t| now <= t.last.saturating_add(ttl) && now >= t.first.saturating_sub(ttl));
    if map.len() >= max {
        scratch.clear();
        scratch.extend(map.values().map(|t| t.last));
        let k = scratch.len() / 8;
        let (_, &mut cut, _) = scratch.select_nth_unstable(k);
        map.retain(|_, t| t.last > cut);
    }
    (before - map.len()) as u64
}

/// The endpoint table shared by the workers of one run, so a peer identified in one worker
/// correlates flows in another. It is consulted when a flow starts and updated on verdicts
/// and DHT/tracker payloads, never on every packet; sharding by endpoint keeps the workers
/// from waiting on each other. One shard behaves exactly like a lone [`EndpointTable`].
#[derive(Clone)]
pub struct SharedEndpoints {
    shards: Arc<[Mutex<EndpointTable>]>,
    /// Workers reading one packet stream in step, and which of them this handle is.
    order: Option<(Arc<StreamOrder>, usize)>,
}

/// The positions of N workers that all read the same packet stream (each processing its own
/// share of it), so that the endpoint table they share answers every lookup exactly as one
/// engine reading the whole stream would: a lookup at position `p` waits until every other
/// worker has passed `p`, then sees exactly the learnings made at positions up to `p` (later
/// ones, from a worker that is ahead, are kept aside until every worker has passed them).
///
/// A worker's position only grows; it is that of the packet it is working on (packet `i` at
/// `2i`, the clock step that a packet of another worker makes at `2i + 1`): everything it
/// does at a lower position is done. The worker furthest behind never waits (every other is
/// at or past it), so the workers cannot deadlock.
pub struct StreamOrder {
    pos: Box<[Slot]>,
    /// Workers parked in a wait.
    waiting: AtomicU64,
    /// Whether lookups wait for the other workers ([`StreamOrder::no_wait`]: they do not).
    waits: bool,
}

/// One worker's position on a cache line of its own, the earliest position it still has a
/// lookup to answer at ([`SharedEndpoints::hold`]; `u64::MAX`: none), the position it waits
/// for (`u64::MAX`: none) and its thread, to be woken.
#[repr(align(128))]
struct Slot {
    pos: AtomicU64,
    hold: AtomicU64,
    want: AtomicU64,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

/// Spins before a waiting worker parks: two workers running at once are usually a few
/// packets apart, while one whose thread is not running (a busy machine) would be kept from
/// its core by a spinning one.
const SPINS: u32 = 200;

impl StreamOrder {
    pub fn new(workers: usize) -> Arc<StreamOrder> {
        StreamOrder::with(workers, true)
    }

    fn with(workers: usize, waits: bool) -> Arc<StreamOrder> {
        Arc::new(StreamOrder {
            pos: (0..workers.max(1))
                .map(|_| Slot {
                    pos: AtomicU64::new(0),
                    hold: AtomicU64::new(u64::MAX),
                    want: AtomicU64::new(u64::MAX),
                    thread: std::sync::OnceLock::new(),
                })
                .collect(),
            waiting: AtomicU64::new(0),
            waits,
        })
    }

    /// Positions whose lookups do not wait: a lookup sees what every worker learned before
    /// its position as far as each has got, missing what a worker behind it has yet to learn;
    /// it never sees what a worker ahead of it learned later in the stream. (Offline
    /// `--threads`, where the reader runs ahead and keeps the workers close behind.) Nobody
    /// parks, so a position is a plain store.
    pub fn no_wait(workers: usize) -> Arc<StreamOrder> {
        StreamOrder::with(workers, false)
    }

    fn get(&self, me: usize) -> u64 {
        self.pos
            .get(me)
            .map_or(u64::MAX, |p| p.pos.load(Ordering::Relaxed))
    }

    /// Worker `me` has done everything before position `p`; wakes a worker waiting for it.
    pub fn set(&self, me: usize, p: u64) {
        let Some(s) = self.pos.get(me) else {
            return;
        };
        if !self.waits {
            s.pos.store(p, Ordering::Release);
            return;
        }
        s.pos.store(p, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            for (i, w) in self.pos.iter().enumerate() {
                if i != me && w.want.load(Ordering::SeqCst) <= p {
                    if let Some(t) = w.thread.get() {
                        t.unpark();
                    }
                }
            }
        }
    }

    /// The lowest position of any worker, or of a lookup one holds back: every worker has
    /// done everything before it, and no lookup is still to be answered before it.
    fn passed(&self) -> u64 {
        self.pos
            .iter()
            .map(|p| {
                // The position first: a hold is set before the position moves past it.
                let pos = p.pos.load(Ordering::Acquire);
                pos.min(p.hold.load(Ordering::Acquire))
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    fn others_at(&self, me: usize, p: u64) -> bool {
        self.pos
            .iter()
            .enumerate()
            .all(|(i, q)| i == me || q.pos.load(Ordering::SeqCst) >= p)
    }

    /// Whether a lookup of worker `me` at position `p` sees what one engine's would: every
    /// other worker is at `p` or past it, or lookups wait until they are.
    fn settled(&self, me: usize, p: u64) -> bool {
        self.waits
            || self
                .pos
                .iter()
                .enumerate()
                .all(|(i, q)| i == me || q.pos.load(Ordering::Acquire) >= p)
    }

    /// Waits until every worker but `me` is at position `p` or past it (not at all if
    /// lookups do not wait).
    fn wait_others(&self, me: usize, p: u64) {
        if !self.waits {
            return;
        }
        for _ in 0..SPINS {
            if self.others_at(me, p) {
                return;
            }
            std::hint::spin_loop();
        }
        let Some(s) = self.pos.get(me) else {
            return;
        };
        let _ = s.thread.set(std::thread::current());
        // Announced before the positions are read again, and each mover stores its position
        // before it reads the announcements (all SeqCst): one of the two sees the other.
        s.want.store(p, Ordering::SeqCst);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        while !self.others_at(me, p) {
            std::thread::park_timeout(std::time::Duration::from_millis(1));
        }
        s.want.store(u64::MAX, Ordering::SeqCst);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
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
            order: None,
        }
    }

    /// The same table as seen by worker `me` of workers reading one stream in step
    /// ([`StreamOrder`]): its learnings and lookups happen at its position in the stream.
    pub fn ordered(&self, order: Arc<StreamOrder>, me: usize) -> SharedEndpoints {
        SharedEndpoints {
            shards: self.shards.clone(),
            order: Some((order, me)),
        }
    }

    /// Sets this worker's position in the stream (see [`StreamOrder`]); no-op unordered.
    pub fn set_position(&self, p: u64) {
        if let Some((o, me)) = &self.order {
            o.set(*me, p);
        }
    }

    /// This worker's position in the stream (0 unordered).
    pub fn position(&self) -> u64 {
        self.order.as_ref().map_or(0, |(o, me)| o.get(*me))
    }

    /// Whether a lookup made at position `at` (this worker's, or an earlier one it holds,
    /// see [`hold`](Self::hold)) answers as one engine reading the whole stream would: always
    /// unordered or when lookups wait; with [`StreamOrder::no_wait`], once every other worker
    /// has passed `at`, so nothing learned before it can still come.
    pub fn settled(&self, at: u64) -> bool {
        self.order.as_ref().is_none_or(|(o, me)| o.settled(*me, at))
    }

    /// Keeps every learning after position `at` aside (`u64::MAX`: none), so that a lookup at
    /// `at` this worker answers later ([`lookup_at`](Self::lookup_at)) sees the table as it
    /// stood there. Set it at or before this worker's position, before the position moves on.
    pub fn hold(&self, at: u64) {
        if let Some((o, me)) = &self.order {
            if let Some(s) = o.pos.get(*me) {
                s.hold.store(at, Ordering::Release);
            }
        }
    }

    /// [`lookup`](Self::lookup) as one engine would have answered at position `at`: once
    /// [`settled`](Self::settled) at `at`, with learnings after `at` held back
    /// ([`hold`](Self::hold)).
    pub fn lookup_at(&self, e: &Endpoint, now: i64, at: u64) -> Option<Provenance> {
        match &self.order {
            None => self.shard(e).lookup(e, now),
            Some((o, _)) => {
                debug_assert!(o.passed() <= at || o.waits, "learnings after {at} folded");
                let mut t = self.shard(e);
                t.fold_before(o.passed());
                t.lookup_upto(e, now, at)
            }
        }
    }

    /// One shard holding `table`.
    pub fn from_table(table: EndpointTable) -> Self {
        SharedEndpoints {
            shards: Arc::from(vec![Mutex::new(table)]),
            order: None,
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

    pub fn learn(&self, e: Endpoint, how: Provenance, now: i64) {
        match &self.order {
            None => self.shard(&e).learn(e, how, now),
            Some((o, me)) => {
                let at = o.get(*me);
                let mut t = self.shard(&e);
                t.learn_at(*me, at, e, how, now);
                t.fold_before(o.passed());
            }
        }
    }

    /// See [`EndpointTable::learn_peer`].
    pub fn learn_peer(&self, addr: Addr, port: u16, how: Provenance, now: i64) {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            self.learn(Endpoint { addr, port, proto }, how, now);
        }
    }

    /// See [`EndpointTable::lookup`].
    pub fn lookup(&self, e: &Endpoint, now: i64) -> Option<Provenance> {
        match &self.order {
            None => self.shard(e).lookup(e, now),
            Some((o, me)) => {
                let at = o.get(*me);
                o.wait_others(*me, at);
                let mut t = self.shard(e);
                t.fold_before(o.passed());
                t.lookup_upto(e, now, at)
            }
        }
    }

    pub fn knows(&self, e: &Endpoint, now: i64) -> bool {
        self.lookup(e, now).is_some()
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
        t.learn(
            ep(0xffff_0a00_0001, 51413, 6),
            Provenance::Observed,
            1000 * S,
        );
        assert!(t.knows(&ep(0xffff_0a00_0001, 51413, 6), 1030 * S));
        // Look-ahead: learned later than the packet asking.
        assert!(t.knows(&ep(0xffff_0a00_0001, 51413, 6), 990 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0001, 51413, 17), 1030 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0001, 51414, 6), 1030 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0002, 51413, 6), 1030 * S));
        assert!(!t.knows(&ep(0xffff_0a00_0001, 51413, 6), 1061 * S));
        t.learn(ep(0xffff_0a00_0001, 0, 6), Provenance::Observed, 0);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn shared_shards_see_each_others_entries_and_stay_bounded() {
        let t = SharedEndpoints::new(1800 * S, 16_000, 4);
        let other = t.clone();
        for i in 1..=100_000u32 {
            other.learn(
                ep(0xffff_0a00_0000 | u128::from(i), 6881, 6),
                Provenance::Advertised,
                i64::from(i),
            );
        }
        assert!(t.len() <= t.capacity_bound());
        assert!(t.len() > 10_000, "{}", t.len());
        assert!(t.knows(&ep(0xffff_0a00_0000 | 100_000, 6881, 6), 100_000));
        assert!(!t.knows(&ep(0xffff_0a00_0000 | 100_000, 6881, 17), 100_000));
        assert_eq!(t.len() as u64 + t.evicted(), 100_000);
    }

    #[test]
    fn flooding_stays_within_the_bound() {
        let mut t = EndpointTable::new(1800 * S, 10_000);
        for i in 0..1_000_000u32 {
            // A peer list flood: distinct addresses, all fresh.
            t.learn(
                ep(0xffff_0a00_0000 | u128::from(i), 6881, 6),
                Provenance::Advertised,
                i64::from(i),
            );
            assert!(t.len() <= t.capacity_bound());
        }
        assert!(t.evicted >= 990_000, "{}", t.evicted);
        // The newest are kept.
        assert!(t.knows(&ep(0xffff_0a00_0000 | 999_999, 6881, 6), 1_000_000));
    }

    #[test]
    fn entry_size_behind_the_readme_figure() {
        // README: (2^19 + 2^20) buckets of a 64-byte entry and a control byte at the bound.
        assert_eq!(std::mem::size_of::<(Endpoint, Seen)>(), 64);
        let t = EndpointTable::new(1, DEFAULT_MAX);
        assert_eq!((t.max_observed, t.max_advertised), (1 << 18, 3 << 18));
    }

    #[test]
    fn first_and_last_times_cover_the_gap() {
        let mut t = EndpointTable::new(60 * S, 100);
        let e = ep(0xffff_0a00_0001, 51413, 6);
        t.learn(e, Provenance::Observed, 1000 * S);
        t.learn(e, Provenance::Observed, 5000 * S);
        // Between two sightings far apart, and within the lifetime on either side.
        assert!(t.knows(&e, 3000 * S));
        assert!(t.knows(&e, 941 * S) && t.knows(&e, 5059 * S));
        assert!(!t.knows(&e, 939 * S) && !t.knows(&e, 5061 * S));
        // Extreme packet times do not wrap into freshness.
        assert!(!t.knows(&e, i64::MIN) && !t.knows(&e, i64::MAX));
    }

    #[test]
    fn advertisements_cannot_evict_observed_endpoints() {
        let mut t = EndpointTable::new(1800 * S, 1000);
        let seen = ep(0xffff_0a00_0001, 51413, 6);
        t.learn(seen, Provenance::Observed, 0);
        for i in 0..100_000u32 {
            t.learn(
                ep(0xffff_0b00_0000 | u128::from(i), 6881, 6),
                Provenance::Advertised,
                i64::from(i),
            );
        }
        assert_eq!(t.lookup(&seen, 100_000), Some(Provenance::Observed));
        assert!(t.len() <= t.capacity_bound());
        // An observation outranks an advertisement of the same endpoint.
        let both = ep(0xffff_0a00_0002, 6881, 17);
        t.learn(both, Provenance::DhtNode, 5);
        assert_eq!(t.lookup(&both, 5), Some(Provenance::DhtNode));
        t.learn(both, Provenance::Observed, 6);
        assert_eq!(t.lookup(&both, 6), Some(Provenance::Observed));
    }

    #[test]
    fn ordered_lookups_see_exactly_what_was_learned_before_them() {
        let order = StreamOrder::new(2);
        let t = SharedEndpoints::new(1800 * S, 1000, 2);
        let (a, b) = (t.ordered(order.clone(), 0), t.ordered(order.clone(), 1));
        let e = ep(0xffff_0a00_0001, 51413, 6);
        // Worker b is ahead and learns at position 10; a asks at 4 and at 12.
        b.set_position(10);
        b.learn(e, Provenance::Observed, 100 * S);
        a.set_position(4);
        assert_eq!(a.lookup(&e, 100 * S), None);
        b.set_position(12);
        a.set_position(12);
        assert_eq!(a.lookup(&e, 100 * S), Some(Provenance::Observed));
        // Both past 10: folded into the table, seen unordered too.
        assert_eq!(t.lookup(&e, 100 * S), Some(Provenance::Observed));
        // A lookup waits for a worker behind it: b learns at 14, then moves on to 30.
        let f = ep(0xffff_0a00_0002, 6881, 17);
        a.set_position(20);
        let mover = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            b.set_position(14);
            b.learn(f, Provenance::DhtNode, 101 * S);
            b.set_position(30);
        });
        assert_eq!(a.lookup(&f, 101 * S), Some(Provenance::DhtNode));
        mover.join().expect("mover");
        // Learned later than the asking position: not seen, even once learned.
        a.set_position(22);
        let g = ep(0xffff_0a00_0003, 6881, 6);
        let c = t.ordered(order.clone(), 1);
        c.set_position(40);
        c.learn(g, Provenance::Advertised, 102 * S);
        assert_eq!(a.lookup(&g, 102 * S), None);
    }

    #[test]
    fn pending_learnings_of_several_workers_fold_once_all_have_passed() {
        let order = StreamOrder::no_wait(3);
        let t = SharedEndpoints::new(1800 * S, 1000, 1);
        let w: Vec<_> = (0..3).map(|i| t.ordered(order.clone(), i)).collect();
        let e = ep(0xffff_0a00_0001, 51413, 6);
        let f = ep(0xffff_0a00_0002, 6881, 17);
        // Worker 2 learns e at 9, worker 1 learns f at 5 and e at 7; worker 0 is still at 2.
        w[2].set_position(9);
        w[2].learn(e, Provenance::Advertised, 10 * S);
        w[1].set_position(5);
        w[1].learn(f, Provenance::DhtNode, 10 * S);
        w[1].set_position(7);
        w[1].learn(e, Provenance::Observed, 10 * S);
        let pending = |t: &SharedEndpoints| {
            let s = t.shards[0].lock().expect("shard");
            (
                s.pending.iter().map(VecDeque::len).sum::<usize>(),
                s.pending_keys.len(),
            )
        };
        assert_eq!(pending(&t), (3, 2));
        // Lookups never wait here: worker 0 at 6 sees f (5), not e (7 and 9).
        w[0].set_position(6);
        assert_eq!(w[0].lookup(&f, 10 * S), Some(Provenance::DhtNode));
        assert_eq!(w[0].lookup(&e, 10 * S), None);
        // At 8 it sees e as observed (7), the advertisement at 9 not yet.
        w[0].set_position(8);
        assert_eq!(w[0].lookup(&e, 10 * S), Some(Provenance::Observed));
        // Everyone past 9: all folded, nothing kept aside.
        for x in &w {
            x.set_position(20);
        }
        assert_eq!(w[0].lookup(&e, 10 * S), Some(Provenance::Observed));
        assert_eq!(pending(&t), (0, 0));
        assert_eq!(t.lookup(&f, 10 * S), Some(Provenance::DhtNode));
    }

    #[test]
    fn only_unicast_addresses_are_learned() {
        let v4 = |a: u32| 0xffff_0000_0000u128 | u128::from(a);
        for a in [
            v4(0),
            v4(0x7f00_0001),
            v4(0xe000_00fb),
            v4(0xefc0_988f),
            v4(u32::MAX),
            0,
            1,
            0xff02u128 << 112 | 0xfb,
        ] {
            assert!(!unicast(a), "{a:x}");
        }
        for a in [v4(0x0a4d_000b), v4(0xc000_0207), 0x2001_0db8u128 << 96 | 1] {
            assert!(unicast(a), "{a:x}");
        }
        let mut t = EndpointTable::new(60 * S, 100);
        t.learn(ep(v4(0xe000_00fb), 5353, 17), Provenance::Observed, 0);
        assert!(t.is_empty());
    }
}
