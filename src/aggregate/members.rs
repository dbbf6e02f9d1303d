//! Per-member counts (sFlow `--members`): what a packet adds to the series and the port view
//! is also added under its member, sparsely (only the member and tag sets that have traffic),
//! so the member rows of a minute add up to its totals. Without `--members` nothing is kept
//! here and the outputs are those of a probe without members.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use super::{Amount, Counts, Direction, Sampled};

/// Member index of a packet whose members are not tracked (no `--members`).
pub const MEMBER_NONE: u16 = 0;
/// Member index of a sample no entry of the members file matched.
pub const MEMBER_UNKNOWN: u16 = 1;
/// Member index of the first member of the file.
pub const MEMBER_FIRST: u16 = 2;
/// Highest member index: 13 bits beside the direction's 3 in a [`Tag`].
pub const MAX_MEMBER: u16 = (1 << 13) - 1;

/// A packet's tags beyond its verdict: its direction and its member, in 16 bits (held
/// counts keep one per minute and tag, so they stay 24 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tag(u16);

impl Tag {
    #[inline]
    pub fn new(dir: Direction, member: u16) -> Tag {
        Tag((member.min(MAX_MEMBER) << 3) | dir as u16)
    }

    #[inline]
    pub fn dir(self) -> Direction {
        Direction::ALL
            .get(usize::from(self.0 & 7))
            .copied()
            .unwrap_or(Direction::Unknown)
    }

    #[inline]
    pub fn member(self) -> u16 {
        self.0 >> 3
    }
}

impl From<Direction> for Tag {
    #[inline]
    fn from(d: Direction) -> Tag {
        Tag::new(d, MEMBER_NONE)
    }
}

/// Bit of a [`MemberCounts`] key that marks a port-view counter.
const PORT_BIT: u32 = 1 << 16;

/// Counters by member: key `member << 17 | port bit | index` (the series slot, or the port
/// view's index).
#[derive(Debug, Clone, Default)]
pub struct MemberCounts {
    map: HashMap<u32, (Counts, Sampled), FixedState>,
}

impl MemberCounts {
    #[inline]
    fn key(member: u16, port: bool, index: usize) -> u32 {
        (u32::from(member) << 17) | if port { PORT_BIT } else { 0 } | (index as u32 & 0xffff)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[inline]
    pub fn add_series(&mut self, member: u16, slot: usize, a: Amount) {
        self.add(Self::key(member, false, slot), a);
    }

    #[inline]
    pub fn add_port(&mut self, member: u16, index: usize, a: Amount) {
        self.add(Self::key(member, true, index), a);
    }

    #[inline]
    fn add(&mut self, key: u32, a: Amount) {
        let e = self.map.entry(key).or_default();
        e.0.add(u64::from(a.packets), a.bytes);
        e.1.add(a.est);
    }

    pub fn merge(&mut self, o: &MemberCounts) {
        for (&k, (c, e)) in &o.map {
            let d = self.map.entry(k).or_default();
            d.0.add(c.packets, c.bytes);
            d.1.add(*e);
        }
    }

    /// The members with series counts, in order.
    pub fn members(&self) -> Vec<u16> {
        let mut m: Vec<u16> = self
            .map
            .keys()
            .filter(|k| *k & PORT_BIT == 0)
            .map(|k| (k >> 17) as u16)
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    /// The members with port-view counts, in order.
    pub fn port_members(&self) -> Vec<u16> {
        let mut m: Vec<u16> = self
            .map
            .keys()
            .filter(|k| *k & PORT_BIT != 0)
            .map(|k| (k >> 17) as u16)
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    pub fn series(&self, member: u16, slot: usize) -> Option<&(Counts, Sampled)> {
        self.map.get(&Self::key(member, false, slot))
    }

    pub fn port(&self, member: u16, index: usize) -> Option<&(Counts, Sampled)> {
        self.map.get(&Self::key(member, true, index))
    }

    /// Moves the port-view counters to a new rule set (see
    /// [`super::MinuteBucket::remap_ports`]); `n_dir` counters per rule.
    pub fn remap_ports(&mut self, map: &[Option<usize>], n_dir: usize) {
        let old: Vec<(u32, (Counts, Sampled))> = self
            .map
            .iter()
            .filter(|(k, _)| *k & PORT_BIT != 0)
            .map(|(k, v)| (*k, *v))
            .collect();
        self.map.retain(|k, _| k & PORT_BIT == 0);
        for (k, (c, e)) in old {
            let i = (k & 0xffff) as usize;
            if let Some(Some(n)) = map.get(i / n_dir) {
                let key = Self::key((k >> 17) as u16, true, n * n_dir + i % n_dir);
                let d = self.map.entry(key).or_default();
                d.0.add(c.packets, c.bytes);
                d.1.add(e);
            }
        }
    }

    /// Every counter, sorted by key (for packing).
    pub fn pack(&self) -> Vec<(u32, Counts, Sampled)> {
        let mut v: Vec<_> = self.map.iter().map(|(k, (c, e))| (*k, *c, *e)).collect();
        v.sort_unstable_by_key(|x| x.0);
        v
    }

    pub fn unpack(v: &[(u32, Counts, Sampled)]) -> MemberCounts {
        MemberCounts {
            map: v.iter().map(|&(k, c, e)| (k, (c, e))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_holds_direction_and_member() {
        for d in Direction::ALL {
            for m in [MEMBER_NONE, MEMBER_UNKNOWN, MEMBER_FIRST, MAX_MEMBER] {
                let t = Tag::new(d, m);
                assert_eq!((t.dir(), t.member()), (d, m));
            }
        }
        assert_eq!(Tag::from(Direction::Down), Tag::new(Direction::Down, 0));
    }

    #[test]
    fn member_rows_add_up_to_the_totals_and_survive_packing() {
        use crate::aggregate::Aggregator;
        use crate::classify::{Method, Proto};
        let mut agg = Aggregator::new(1);
        for (m, member) in [(5, MEMBER_UNKNOWN), (5, 3), (5, 2), (6, 2), (5, 3)] {
            let b = agg.bucket(m);
            let tag = Tag::new(Direction::Up, member);
            b.add_tagged(Proto::Dht, Method::Signature, tag, Amount::sample(100, 10));
            b.add_port_tagged(0, tag, Amount::sample(100, 10));
        }
        agg.pack_before(7);
        let rows = agg.series_rows();
        let got: Vec<(i64, u16, u64)> = rows
            .iter()
            .map(|r| (r.minute, r.member, r.counts.bytes))
            .collect();
        assert_eq!(
            got,
            [
                (5, MEMBER_UNKNOWN, 1000),
                (5, 2, 1000),
                (5, 3, 2000),
                (6, 2, 1000)
            ]
        );
        let ports: Vec<(i64, u16, u64)> = agg
            .port_rows()
            .iter()
            .map(|r| (r.minute, r.member, r.counts.bytes))
            .collect();
        assert_eq!(ports, got);
        // The totals are still kept: the bucket's own series is the sum.
        let total: u64 = agg.minutes().map(|(_, b)| b.series_total().bytes).sum();
        assert_eq!(total, 5000);
    }

    #[test]
    fn counts_by_member_merge_pack_and_remap() {
        let mut a = MemberCounts::default();
        a.add_series(2, 7, Amount::sample(100, 10));
        a.add_series(3, 7, Amount::sample(50, 1));
        a.add_port(3, 6, Amount::sample(50, 1));
        let mut b = MemberCounts::default();
        b.add_series(2, 7, Amount::sample(100, 1));
        b.merge(&a);
        assert_eq!(b.members(), [2, 3]);
        assert_eq!(b.port_members(), [3]);
        let s = b.series(2, 7).expect("counted");
        assert_eq!((s.0.packets, s.0.bytes, s.1.samples), (11, 1100, 2));
        let p = MemberCounts::unpack(&b.pack());
        assert_eq!(p.pack(), b.pack());
        // Rule 1 (index 6 with 5 directions) becomes rule 0; rule 0 goes.
        b.remap_ports(&[None, Some(0)], 5);
        assert!(b.port(3, 6).is_none());
        assert_eq!(b.port(3, 1).map(|x| x.0.bytes), Some(50));
    }
}
