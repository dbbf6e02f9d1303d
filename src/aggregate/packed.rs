//! A finished minute packed for keeping until the end of an offline run: only its non-zero
//! counters, and its host sketch only if some host was seen. A bucket is about 14 kB (every
//! counter of every tag set, the port view, a 4 kB sketch); a minute of sparse traffic packs
//! into a few hundred bytes, so what `analyze` keeps grows with the traffic, not with the
//! time the input spans. Packing is lossless: [`PackedBucket::unpack`] gives back the same
//! bucket, so a minute credited again after it was packed (a late verdict, time going
//! backwards) is unpacked, counted and packed again, and the outputs stay exact.

use super::{hll, Counts, Health, MinuteBucket, Sampled, SflowHealth};

#[derive(Debug, Clone)]
pub struct PackedBucket {
    /// (slot, counts, estimate) of the series counters that are not zero.
    series: Vec<(u16, Counts, Sampled)>,
    /// (index, counts, estimate) of the port view counters that are not zero.
    port: Vec<(u32, Counts, Sampled)>,
    health: Health,
    sflow: SflowHealth,
    hosts: Option<Box<hll::Hll>>,
    /// Counters by member (sFlow `--members`), sorted by key.
    members: Vec<(u32, Counts, Sampled)>,
}

fn is_zero(c: &Counts, e: &Sampled) -> bool {
    *c == Counts::default() && e.samples == 0 && e.var == 0.0
}

impl PackedBucket {
    pub fn pack(b: &MinuteBucket) -> PackedBucket {
        let series = (b.series.iter().zip(b.series_est.iter()))
            .enumerate()
            .filter(|(_, (c, e))| !is_zero(c, e))
            .map(|(i, (c, e))| (i as u16, *c, *e))
            .collect();
        let port = (b.port.iter().zip(b.port_est.iter()))
            .enumerate()
            .filter(|(_, (c, e))| !is_zero(c, e))
            .map(|(i, (c, e))| (i as u32, *c, *e))
            .collect();
        PackedBucket {
            series,
            port,
            health: b.health,
            sflow: b.sflow,
            hosts: (!b.hosts.is_empty()).then(|| Box::new(b.hosts.clone())),
            members: b.members.pack(),
        }
    }

    /// Whether the minute has counters by member (sFlow `--members`).
    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// The series counter of one slot (zero when it is not kept).
    pub fn series_at(&self, slot: usize) -> (Counts, Sampled) {
        self.series
            .binary_search_by_key(&slot, |x| usize::from(x.0))
            .map_or_else(
                |_| Default::default(),
                |k| (self.series[k].1, self.series[k].2),
            )
    }

    /// The port view counters that are not zero: (index, counts, estimate), by index.
    pub fn ports(&self) -> &[(u32, Counts, Sampled)] {
        &self.port
    }

    pub fn sflow(&self) -> SflowHealth {
        self.sflow
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// The minute's distinct-host estimate (0 with no sketch), as [`hll::Hll::count`].
    pub fn hosts_count(&self) -> u64 {
        self.hosts.as_ref().map_or(0, |h| h.count())
    }

    pub fn unpack(&self, port_rules: usize) -> Box<MinuteBucket> {
        let mut b = MinuteBucket::new(port_rules);
        for &(i, c, e) in &self.series {
            b.series[usize::from(i)] = c;
            b.series_est[usize::from(i)] = e;
        }
        for &(i, c, e) in &self.port {
            if let (Some(pc), Some(pe)) =
                (b.port.get_mut(i as usize), b.port_est.get_mut(i as usize))
            {
                *pc = c;
                *pe = e;
            }
        }
        b.health = self.health;
        b.sflow = self.sflow;
        if let Some(h) = &self.hosts {
            b.hosts = (**h).clone();
        }
        if !self.members.is_empty() {
            b.members = super::members::MemberCounts::unpack(&self.members);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Direction;
    use crate::classify::{Method, Proto};

    #[test]
    fn packing_is_lossless_and_small() {
        let mut b = MinuteBucket::new(3);
        b.add(Proto::Dht, Method::Signature, Direction::Up, 3, 300);
        b.add_sampled(
            Proto::Other,
            Method::None,
            Direction::Unknown,
            10,
            9000,
            Sampled {
                samples: 1,
                var: 2.5,
            },
        );
        b.add_port(1, Direction::Down, 2, 120);
        b.health.packets = 15;
        b.health.flows_tracked = 4;
        b.sflow.datagrams = 2;
        let p = PackedBucket::pack(&b);
        assert_eq!((p.series.len(), p.port.len()), (2, 1));
        assert!(p.hosts.is_none(), "no host seen: no sketch kept");
        let u = p.unpack(3);
        assert_eq!(u.series, b.series);
        assert_eq!(u.series_est, b.series_est);
        assert_eq!(
            (u.port.clone(), u.port_est.clone()),
            (b.port.clone(), b.port_est.clone())
        );
        assert_eq!((u.health, u.sflow), (b.health, b.sflow));

        b.hosts.insert_hash(42);
        let with_host = PackedBucket::pack(&b).unpack(3);
        assert_eq!(with_host.hosts, b.hosts);
        // Health and sFlow health are kept whole (248 bytes with the BitTorrent range's
        // fields), and the per-member counts' vector: a few hundred bytes a minute.
        assert!(std::mem::size_of::<PackedBucket>() <= 360);
    }
}
