//! The ledger: where a flow's packets are credited. A decided flow's packet goes to its
//! verdict's series counter at once; an undecided flow's packets are held in the flow and
//! credited, each in its own minute, when the verdict comes. Every packet on a port rule's
//! ports also goes to the port view, and both ends of a BitTorrent flow go to the minute's
//! host sketch.

use super::members::MEMBER_NONE;
use super::{Aggregator, Amount, Counts, Direction, MinuteBucket, Sampled, Tag, N_DIR};
use crate::classify::{Class, Method, Proto, Verdict};
use crate::flow::{FlowState, Held, PendingCount};

/// Counts a packet of a decided flow in its minute; its ends go to the minute's host sketch
/// once per flow and minute when it is BitTorrent.
#[inline]
pub fn credit(
    agg: &mut Aggregator,
    v: Verdict,
    flow: &mut FlowState,
    minute: i64,
    tag: Tag,
    a: Amount,
) {
    let b = agg.bucket(minute);
    b.add_tagged(v.proto, v.method, tag, a);
    if flow.hosts_minute != minute && v.class() == Class::Bittorrent {
        flow.hosts_minute = minute;
        b.hosts.insert_hash(flow.host_hash[0]);
        b.hosts.insert_hash(flow.host_hash[1]);
    }
}

/// Credits the packets a flow held until its verdict `v`, each in its own minute, and
/// empties the hold.
pub fn credit_held(agg: &mut Aggregator, v: Verdict, held: &mut Held, host_hash: [u64; 2]) {
    credit_counts(agg, v, held.counts(), host_hash);
    held.clear();
}

/// Credits held counts to verdict `v`, each in its own minute.
pub fn credit_counts(
    agg: &mut Aggregator,
    v: Verdict,
    counts: &[PendingCount],
    host_hash: [u64; 2],
) {
    let bt = v.class() == Class::Bittorrent;
    for p in counts {
        let b = agg.bucket(p.minute);
        let amount = Amount::held(p.packets, p.bytes, p.samples);
        b.add_tagged(v.proto, v.method, p.tag, amount);
        if bt {
            // Held packets are BitTorrent in their own minute: so are their hosts.
            b.hosts.insert_hash(host_hash[0]);
            b.hosts.insert_hash(host_hash[1]);
        }
    }
}

/// Counts a packet on a port rule's ports in the port view (whatever its flow turns out to
/// be: the view is not a partition).
#[inline]
pub fn credit_port(agg: &mut Aggregator, minute: i64, rule: usize, tag: Tag, a: Amount) {
    agg.bucket(minute).add_port_tagged(rule, tag, a);
}

/// Counts later fragments whose first fragment never came, as other traffic.
pub fn orphan_fragments(agg: &mut Aggregator, early: &PendingCount) {
    if early.packets == 0 {
        return;
    }
    let b = agg.bucket(early.minute);
    let held = Amount::held(early.packets, early.bytes, early.samples);
    b.add_tagged(Proto::Other, Method::None, early.tag, held);
    b.health.fragments_orphaned += u64::from(early.packets);
}

/// Counts an ended flow in the health of its last minute.
pub fn flow_ended(agg: &mut Aggregator, last_ts: i64, v: Verdict, evidence: bool) {
    let h = &mut agg.bucket(super::minute_of(last_ts)).health;
    h.flows_ended += 1;
    if v == Verdict::OTHER && !evidence {
        h.flows_unclassified += 1;
    }
}

/// One row of the port view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRow {
    pub minute: i64,
    pub rule: usize,
    pub direction: Direction,
    pub counts: Counts,
    pub samples: u64,
    pub bytes_err: u64,
    /// Member index (sFlow `--members`; 0 without).
    pub member: u16,
}

impl MinuteBucket {
    /// Moves the port view to a new rule set: `map[old]` is the new index of old rule `old`
    /// (None when the rule is gone; its counts are dropped from the port view, which is a
    /// view, not a partition).
    pub fn remap_ports(&mut self, map: &[Option<usize>], new_rules: usize) {
        let mut port = vec![Counts::default(); new_rules * N_DIR];
        let mut port_est = vec![Sampled::default(); new_rules * N_DIR];
        for (i, (c, e)) in self.port.iter().zip(&self.port_est).enumerate() {
            if let Some(Some(n)) = map.get(i / N_DIR) {
                let j = n * N_DIR + i % N_DIR;
                if let (Some(dst), Some(de)) = (port.get_mut(j), port_est.get_mut(j)) {
                    dst.add(c.packets, c.bytes);
                    de.add(*e);
                }
            }
        }
        self.port = port;
        self.port_est = port_est;
        self.members.remap_ports(map, N_DIR);
    }

    #[inline]
    pub fn add_port(&mut self, rule: usize, dir: Direction, packets: u64, bytes: u64) {
        let est = Sampled {
            samples: packets,
            var: 0.0,
        };
        self.add_port_sampled(rule, dir, packets, bytes, est);
    }

    #[inline]
    pub fn add_port_amount(&mut self, rule: usize, dir: Direction, a: Amount) {
        self.add_port_sampled(rule, dir, u64::from(a.packets), a.bytes, a.est);
    }

    /// [`MinuteBucket::add_port_amount`] for a packet's [`Tag`]: by member too, if it has one.
    #[inline]
    pub fn add_port_tagged(&mut self, rule: usize, tag: Tag, a: Amount) {
        let dir = tag.dir();
        self.add_port_amount(rule, dir, a);
        if tag.member() != MEMBER_NONE && rule * N_DIR < self.port.len() {
            self.members
                .add_port(tag.member(), rule * N_DIR + dir as usize, a);
        }
    }

    #[inline]
    pub fn add_port_sampled(
        &mut self,
        rule: usize,
        dir: Direction,
        packets: u64,
        bytes: u64,
        est: Sampled,
    ) {
        let i = rule * N_DIR + dir as usize;
        if let (Some(c), Some(e)) = (self.port.get_mut(i), self.port_est.get_mut(i)) {
            c.add(packets, bytes);
            e.add(est);
        }
    }
}

impl Aggregator {
    /// Moves every open minute's port view to a new rule set (see [`MinuteBucket::remap_ports`]).
    pub fn remap_ports(&mut self, map: &[Option<usize>], new_rules: usize) {
        let old = self.port_rules;
        for (_, e) in &mut self.minutes {
            e.open(old).remap_ports(map, new_rules);
        }
        self.port_rules = new_rules;
        self.packed_upto = 0;
    }

    /// Port view rows with packets, ordered by minute, (with members) member, rule and
    /// direction.
    pub fn port_rows(&self) -> Vec<PortRow> {
        let mut out = Vec::new();
        let width = self.port_rules * N_DIR;
        for (minute, e) in &self.minutes {
            let mut push = |member: u16, i: usize, counts: Counts, est: Sampled| {
                if counts.packets > 0 {
                    out.push(PortRow {
                        minute: *minute,
                        rule: i / N_DIR,
                        direction: Direction::ALL[i % N_DIR],
                        counts,
                        samples: est.samples,
                        bytes_err: est.half_width(),
                        member,
                    });
                }
            };
            // A packed minute without members gives its rows as it is.
            if let super::Entry::Packed(p) = e {
                if !p.has_members() {
                    for &(i, counts, est) in p.ports() {
                        if (i as usize) < width {
                            push(MEMBER_NONE, i as usize, counts, est);
                        }
                    }
                    continue;
                }
            }
            let b = e.view(self.port_rules);
            let by_member = b.members.port_members();
            if by_member.is_empty() {
                for (i, (counts, est)) in b.port.iter().zip(&b.port_est).enumerate() {
                    push(MEMBER_NONE, i, *counts, *est);
                }
            }
            for m in by_member {
                for i in 0..b.port.len() {
                    if let Some((counts, est)) = b.members.port(m, i) {
                        push(m, i, *counts, *est);
                    }
                }
            }
        }
        out
    }

    /// Estimated distinct BitTorrent hosts per minute, in order (every minute, 0 included).
    pub fn hosts_rows(&self) -> Vec<(i64, u64)> {
        self.minutes
            .iter()
            .map(|(m, e)| (*m, e.hosts_count()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FlowState {
        FlowState {
            first_ts: 0,
            last_ts: 0,
            packets: 0,
            bytes: 0,
            src_is_lo: true,
            dir_tag: [Direction::Up, Direction::Down],
            fins: 0,
            rst: false,
            udp: true,
            port_rule: 0,
            host_hash: [
                crate::aggregate::hll::hash_addr(1),
                crate::aggregate::hll::hash_addr(2),
            ],
            hosts_minute: i64::MIN,
        }
    }

    const DHT: Verdict = Verdict {
        proto: Proto::Dht,
        method: Method::Signature,
    };

    #[test]
    fn held_packets_are_credited_in_their_own_minutes() {
        let mut agg = Aggregator::new(0);
        let mut held = Held::default();
        assert!(held.add(3, Direction::Up, 2, 200, 2));
        assert!(held.add(4, Direction::Down, 1, 50, 1));
        assert!(held.add(3, Direction::Up, 1, 100, 1));
        let f = state();
        credit_held(&mut agg, DHT, &mut held, f.host_hash);
        assert!(held.is_empty());
        let rows = agg.series_rows();
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.minute,
                    r.proto,
                    r.direction,
                    r.counts.packets,
                    r.counts.bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (3, Proto::Dht, Direction::Up, 3, 300),
                (4, Proto::Dht, Direction::Down, 1, 50)
            ]
        );
        // Both ends are BitTorrent hosts in both minutes.
        assert_eq!(agg.hosts_rows(), vec![(3, 2), (4, 2)]);
    }

    #[test]
    fn credits_add_up_and_hosts_count_once_per_minute() {
        let mut agg = Aggregator::new(1);
        let mut f = state();
        let a = Amount::sample(100, 1);
        for _ in 0..3 {
            credit(&mut agg, DHT, &mut f, 7, Direction::Up.into(), a);
        }
        credit(
            &mut agg,
            Verdict::OTHER,
            &mut f,
            8,
            Direction::Down.into(),
            a,
        );
        credit_port(&mut agg, 7, 0, Direction::Up.into(), a);
        let b = agg.minutes().next().expect("minute 7").1;
        assert_eq!(
            b.series_total(),
            Counts {
                packets: 3,
                bytes: 300
            }
        );
        assert_eq!(f.hosts_minute, 7);
        assert_eq!(agg.hosts_rows(), vec![(7, 2), (8, 0)]);
        let ports = agg.port_rows();
        assert_eq!((ports.len(), ports[0].counts.bytes), (1, 100));
        // A sampled packet counts its weight.
        credit(
            &mut agg,
            DHT,
            &mut f,
            8,
            Direction::Up.into(),
            Amount::sample(100, 10),
        );
        let total: u64 = agg.series_rows().iter().map(|r| r.counts.packets).sum();
        assert_eq!(total, 14);
    }

    #[test]
    fn orphans_and_ended_flows_are_counted_in_health() {
        let mut agg = Aggregator::new(0);
        let early = PendingCount {
            minute: 2,
            tag: Direction::Transit.into(),
            packets: 3,
            bytes: 90,
            samples: 3,
        };
        orphan_fragments(&mut agg, &early);
        orphan_fragments(&mut agg, &PendingCount::default());
        flow_ended(
            &mut agg,
            2 * super::super::NS_PER_MIN,
            Verdict::OTHER,
            false,
        );
        flow_ended(&mut agg, 2 * super::super::NS_PER_MIN, DHT, true);
        let h = agg.health_rows();
        assert_eq!(h.len(), 1);
        let (m, h) = h[0];
        assert_eq!(
            (m, h.fragments_orphaned, h.flows_ended, h.flows_unclassified),
            (2, 3, 2, 1)
        );
        let r = agg.series_rows();
        assert_eq!(
            (r[0].proto, r[0].direction, r[0].counts.bytes),
            (Proto::Other, Direction::Transit, 90)
        );
    }
}
