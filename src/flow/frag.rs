//! IP fragment tracking: later fragments carry no ports, so the first fragment's ports are
//! remembered per datagram and given to the fragments after it. Later fragments that come
//! before their first are held here and handed to the flow once the first arrives; those
//! whose first never comes are handed back as orphans when their datagram is forgotten.

use super::{new_map, HomeNet, Map, PendingCount};
use crate::aggregate::Tag;
use crate::decode::{Addr, Fragment, IpPacket};

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

/// What to do with a packet after fragment tracking.
#[derive(Debug, Clone, Copy)]
pub enum Track {
    /// On to its flow, with the ports it has now, and with the later fragments that came
    /// before it if it is a first fragment.
    Go(Option<PendingCount>),
    /// A later fragment whose first has not come: held here.
    Held,
}

/// The datagrams being fragmented, bounded in number and time.
pub struct Frags {
    map: Map<FragKey, FragEntry>,
    max: usize,
    timeout_ns: i64,
}

impl Frags {
    pub fn new(max: usize, timeout_ns: i64) -> Frags {
        Frags {
            map: new_map(1024),
            max,
            timeout_ns,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Tracks one packet of `packets` packets and `bytes` bytes (of `member`, see
    /// [`crate::aggregate::Tag`]): a later fragment gets its first fragment's ports.
    /// Datagrams forgotten to make room have their early fragments handed to `orphaned`.
    #[allow(clippy::too_many_arguments)]
    pub fn track(
        &mut self,
        ip: &mut IpPacket<'_>,
        ts: i64,
        minute: i64,
        home: &HomeNet,
        member: u16,
        packets: u32,
        bytes: u64,
        orphaned: impl FnMut(&PendingCount),
    ) -> Track {
        let (Fragment::First { id } | Fragment::Later { id }) = ip.frag else {
            return Track::Go(None);
        };
        let key = FragKey {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            id,
        };
        if matches!(ip.frag, Fragment::First { .. }) {
            self.make_room(orphaned);
            let e = self.map.entry(key).or_insert(FragEntry {
                last_ts: ts,
                ports: None,
                early: PendingCount::default(),
            });
            e.last_ts = ts;
            e.ports = Some((ip.sport, ip.dport));
            let early = (e.early.packets > 0).then(|| std::mem::take(&mut e.early));
            return Track::Go(early);
        }
        if let Some(e) = self.map.get_mut(&key) {
            e.last_ts = ts;
            return match e.ports {
                Some((sp, dp)) => {
                    ip.sport = sp;
                    ip.dport = dp;
                    Track::Go(None)
                }
                None => {
                    // Still waiting for the first fragment.
                    e.early.packets = e.early.packets.saturating_add(packets);
                    e.early.bytes += bytes;
                    e.early.samples = e.early.samples.saturating_add(1);
                    Track::Held
                }
            };
        }
        self.make_room(orphaned);
        let dir = home.direction(ip.src, ip.dst);
        self.map.insert(
            key,
            FragEntry {
                last_ts: ts,
                ports: None,
                early: PendingCount {
                    minute,
                    tag: Tag::new(dir, member),
                    packets,
                    bytes,
                    samples: 1,
                },
            },
        );
        Track::Held
    }

    /// Forgets datagrams not heard of for the timeout (all of them at the end of input),
    /// handing back their early fragments.
    pub fn expire(&mut self, now: i64, eof: bool) -> impl Iterator<Item = PendingCount> + '_ {
        let timeout = self.timeout_ns;
        self.map
            .extract_if(move |_, e| eof || now.saturating_sub(e.last_ts) > timeout)
            .map(|(_, e)| e.early)
    }

    /// Forgets the datagrams heard of longest ago when the tracker is full.
    #[cold]
    fn make_room(&mut self, mut orphaned: impl FnMut(&PendingCount)) {
        if self.map.len() < self.max {
            return;
        }
        let oldest = self
            .map
            .values()
            .map(|e| e.last_ts)
            .min()
            .unwrap_or(i64::MIN);
        self.map.retain(|_, e| {
            if e.last_ts <= oldest {
                orphaned(&e.early);
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::IPPROTO_UDP;

    fn packet(frag: Fragment, sport: u16, dport: u16) -> IpPacket<'static> {
        IpPacket {
            src: 1,
            dst: 2,
            v6: false,
            proto: IPPROTO_UDP,
            sport,
            dport,
            tcp: None,
            frag,
            payload: &[],
        }
    }

    #[test]
    fn later_fragments_get_the_first_ones_ports() {
        let mut f = Frags::new(16, 30);
        let home = HomeNet::default();
        let mut orphans = 0;
        let mut first = packet(Fragment::First { id: 7 }, 6881, 51413);
        let t = f.track(&mut first, 0, 0, &home, 0, 1, 100, |_| orphans += 1);
        assert!(matches!(t, Track::Go(None)));
        let mut later = packet(Fragment::Later { id: 7 }, 0, 0);
        let t = f.track(&mut later, 1, 0, &home, 0, 1, 50, |_| orphans += 1);
        assert!(matches!(t, Track::Go(None)));
        assert_eq!((later.sport, later.dport), (6881, 51413));
        let mut whole = packet(Fragment::Whole, 1, 2);
        assert!(matches!(
            f.track(&mut whole, 2, 0, &home, 0, 1, 10, |_| {}),
            Track::Go(None)
        ));
        assert_eq!((f.len(), orphans), (1, 0));
    }

    #[test]
    fn early_fragments_are_held_then_handed_over() {
        let mut f = Frags::new(16, 30);
        let home = HomeNet::default();
        for ts in 0..3 {
            let mut later = packet(Fragment::Later { id: 9 }, 0, 0);
            let t = f.track(&mut later, ts, 5, &home, 0, 2, 100, |_| {});
            assert!(matches!(t, Track::Held));
        }
        let mut first = packet(Fragment::First { id: 9 }, 1000, 2000);
        let Track::Go(Some(early)) = f.track(&mut first, 3, 5, &home, 0, 1, 10, |_| {}) else {
            panic!("the early fragments come with the first");
        };
        assert_eq!(
            (early.minute, early.packets, early.bytes, early.samples),
            (5, 6, 300, 3)
        );
        // Handed over once only.
        let mut again = packet(Fragment::First { id: 9 }, 1000, 2000);
        assert!(matches!(
            f.track(&mut again, 4, 5, &home, 0, 1, 10, |_| {}),
            Track::Go(None)
        ));
    }

    #[test]
    fn orphans_come_back_on_expiry_and_when_full() {
        let mut f = Frags::new(2, 30);
        let home = HomeNet::default();
        for id in 0..2 {
            let mut later = packet(Fragment::Later { id }, 0, 0);
            f.track(&mut later, i64::from(id), 0, &home, 0, 1, 10, |_| {});
        }
        // Full: the datagram heard of longest ago (id 0) makes room.
        let mut orphaned = Vec::new();
        let mut later = packet(Fragment::Later { id: 5 }, 0, 0);
        f.track(&mut later, 10, 0, &home, 0, 1, 10, |e| {
            orphaned.push(e.packets)
        });
        assert_eq!((orphaned, f.len()), (vec![1], 2));
        // Id 1 (ts 1) expires at 32; id 5 (ts 10) does not.
        let gone: Vec<_> = f.expire(32, false).map(|e| e.bytes).collect();
        assert_eq!((gone, f.len()), (vec![10], 1));
        assert_eq!(f.expire(33, true).count(), 1);
        assert!(f.is_empty());
    }
}
