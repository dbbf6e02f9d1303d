//! One contract for packet sources: capture files ([`super::MergedReader`]), live interfaces
//! ([`super::live::LiveCapture`]) and packets held in memory ([`MemorySource`], for tests of
//! the front doors without files or privileges).

use std::convert::Infallible;

use super::live::{Drops, LiveCapture, LiveError};
use super::{MergedReader, RawPacket};

/// A stream of packets in arrival order.
pub trait Source {
    /// A failure of the source itself (an interface gone); a file's corruption is not one: it
    /// ends the file and is kept as a problem by the reader.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Hands up to `budget` packets (live capture: per interface) to `f`; how many, or
    /// `None` once the source has ended.
    fn read<F: FnMut(&RawPacket<'_>)>(
        &mut self,
        budget: usize,
        f: F,
    ) -> Result<Option<usize>, Self::Error>;

    /// [`read`](Self::read), also handing `f` the link type and bytes of the packet that
    /// comes next when the source already has them in memory (to prefetch for it).
    fn read_ahead<F: FnMut(&RawPacket<'_>, Option<(u32, &[u8])>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Option<usize>, Self::Error> {
        self.read(budget, |p| f(p, None))
    }

    /// Waits up to `timeout_ms` for packets; a source that never waits returns at once.
    fn wait(&mut self, _timeout_ms: i32) {}

    /// Cumulative drop counters (of the kernel and the interfaces); files drop nothing.
    fn drops(&mut self) -> Drops {
        Drops::default()
    }

    /// Each interface's cumulative drops as of the last [`Source::drops`].
    fn drops_by_interface(&self) -> Vec<(String, Drops)> {
        Vec::new()
    }

    /// The interfaces read, for messages and metrics.
    fn interface_names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Source for MergedReader {
    type Error = Infallible;

    fn read<F: FnMut(&RawPacket<'_>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Option<usize>, Infallible> {
        self.read_ahead(budget, |p, _| f(p))
    }

    fn read_ahead<F: FnMut(&RawPacket<'_>, Option<(u32, &[u8])>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Option<usize>, Infallible> {
        let mut n = 0;
        while n < budget {
            if !self.advance() {
                return Ok((n > 0).then_some(n));
            }
            if let Some(pkt) = self.packet() {
                f(&pkt, self.peek());
            }
            n += 1;
        }
        Ok(Some(n))
    }
}

impl Source for LiveCapture {
    type Error = LiveError;

    fn read<F: FnMut(&RawPacket<'_>)>(
        &mut self,
        budget: usize,
        f: F,
    ) -> Result<Option<usize>, LiveError> {
        LiveCapture::read(self, budget, f).map(Some)
    }

    fn wait(&mut self, timeout_ms: i32) {
        LiveCapture::wait(self, timeout_ms);
    }

    fn drops(&mut self) -> Drops {
        LiveCapture::drops(self)
    }

    fn drops_by_interface(&self) -> Vec<(String, Drops)> {
        LiveCapture::drops_by_interface(self)
    }

    fn interface_names(&self) -> Vec<String> {
        self.interfaces().map(str::to_string).collect()
    }
}

/// A packet owned by a [`MemorySource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPacket {
    pub ts_ns: i64,
    pub wire_len: u32,
    pub linktype: u32,
    pub data: Vec<u8>,
}

impl OwnedPacket {
    /// An Ethernet frame captured whole at `ts_ns`.
    pub fn ethernet(ts_ns: i64, data: Vec<u8>) -> OwnedPacket {
        OwnedPacket {
            ts_ns,
            wire_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            linktype: 1,
            data,
        }
    }
}

/// Packets in memory, handed out `per_read` at a time; then `idle_reads` reads that find
/// nothing (a quiet link), then the end. Its drop counters are whatever a test sets.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    packets: std::collections::VecDeque<OwnedPacket>,
    /// Most packets one read hands out (0: as many as the budget allows).
    pub per_read: usize,
    /// Reads that find nothing once the packets are out, before the source ends.
    pub idle_reads: usize,
    /// Cumulative drops, as a capture would report them.
    pub drops: Drops,
    /// Added to `drops` at each read (drops that grow while the source is read).
    pub drops_per_read: Drops,
    /// How many reads were made.
    pub reads: usize,
}

impl MemorySource {
    pub fn new(packets: Vec<OwnedPacket>) -> MemorySource {
        MemorySource {
            packets: packets.into(),
            ..MemorySource::default()
        }
    }

    /// Packets not yet handed out.
    pub fn remaining(&self) -> usize {
        self.packets.len()
    }
}

impl Source for MemorySource {
    type Error = Infallible;

    fn read<F: FnMut(&RawPacket<'_>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Option<usize>, Infallible> {
        self.reads += 1;
        self.drops.received += self.drops_per_read.received;
        self.drops.kernel += self.drops_per_read.kernel;
        self.drops.interface += self.drops_per_read.interface;
        if self.packets.is_empty() {
            if self.idle_reads == 0 {
                return Ok(None);
            }
            self.idle_reads -= 1;
            return Ok(Some(0));
        }
        let most = if self.per_read == 0 {
            budget
        } else {
            self.per_read.min(budget)
        };
        let mut n = 0;
        while n < most {
            let Some(p) = self.packets.pop_front() else {
                break;
            };
            f(&RawPacket {
                ts_ns: p.ts_ns,
                wire_len: p.wire_len,
                linktype: p.linktype,
                data: &p.data,
            });
            n += 1;
        }
        Ok(Some(n))
    }

    fn drops(&mut self) -> Drops {
        self.drops
    }

    fn drops_by_interface(&self) -> Vec<(String, Drops)> {
        vec![("memory".to_string(), self.drops)]
    }

    fn interface_names(&self) -> Vec<String> {
        vec!["memory".to_string()]
    }
}

/// Reads `src` to its end, handing every packet to `f` and the running count to `tick` after
/// each one: the offline loop of every front door.
pub fn drain<S: Source>(
    src: &mut S,
    mut f: impl FnMut(&RawPacket<'_>),
    tick: impl FnMut(u64),
) -> Result<u64, S::Error> {
    drain_ahead(src, |p, _| f(p), tick)
}

/// [`drain`], also handing `f` the link type and bytes of the next packet when the source
/// has them ([`Source::read_ahead`]).
pub fn drain_ahead<S: Source>(
    src: &mut S,
    mut f: impl FnMut(&RawPacket<'_>, Option<(u32, &[u8])>),
    mut tick: impl FnMut(u64),
) -> Result<u64, S::Error> {
    let mut n = 0u64;
    while src
        .read_ahead(4096, |p, next| {
            f(p, next);
            n += 1;
            tick(n);
        })?
        .is_some()
    {}
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ts: i64) -> OwnedPacket {
        OwnedPacket::ethernet(ts, vec![0u8; 60])
    }

    #[test]
    fn memory_source_hands_out_in_order_then_idles_then_ends() {
        let mut s = MemorySource::new(vec![pkt(1), pkt(2), pkt(3)]);
        s.per_read = 2;
        s.idle_reads = 1;
        let mut seen = Vec::new();
        assert_eq!(s.read(10, |p| seen.push(p.ts_ns)).ok(), Some(Some(2)));
        assert_eq!(s.read(10, |p| seen.push(p.ts_ns)).ok(), Some(Some(1)));
        assert_eq!(s.read(10, |p| seen.push(p.ts_ns)).ok(), Some(Some(0)));
        assert_eq!(s.read(10, |p| seen.push(p.ts_ns)).ok(), Some(None));
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(s.reads, 4);
    }

    #[test]
    fn drain_counts_every_packet_once() {
        let mut s = MemorySource::new((0..5).map(pkt).collect());
        let (mut seen, mut ticks) = (Vec::new(), Vec::new());
        let n = drain(&mut s, |p| seen.push(p.ts_ns), |n| ticks.push(n));
        assert_eq!(n.ok(), Some(5));
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert_eq!(ticks, [1, 2, 3, 4, 5]);
        assert_eq!(s.remaining(), 0);
    }

    /// The look ahead names exactly the packet that comes next, in classic pcap and pcapng
    /// (sections and interfaces changing between packets), or nothing.
    #[test]
    fn read_ahead_hands_the_next_packet() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
        for name in [
            "crafted/two_sections.pcapng",
            "crafted/two_interfaces.pcapng",
            "lab/bt-mixed.pcap",
        ] {
            let file = dir.join(name);
            if !file.exists() {
                continue;
            }
            let mut r = MergedReader::new(std::slice::from_ref(&file)).expect("open");
            let mut seen: Vec<(u32, Vec<u8>)> = Vec::new();
            let mut hints: Vec<Option<(u32, Vec<u8>)>> = Vec::new();
            let n = drain_ahead(
                &mut r,
                |p, next| {
                    seen.push((p.linktype, p.data.to_vec()));
                    hints.push(next.map(|(lt, d)| (lt, d.to_vec())));
                },
                |_| {},
            );
            assert!(n.is_ok_and(|n| n > 1), "{name}");
            let named = hints.iter().filter(|h| h.is_some()).count();
            assert!(named * 2 >= seen.len(), "{name}: {named} of {}", seen.len());
            for (i, h) in hints.iter().enumerate() {
                if let Some(h) = h {
                    assert_eq!(Some(h), seen.get(i + 1), "{name}: after packet {i}");
                }
            }
            assert_eq!(hints.last(), Some(&None), "{name}");
        }
    }

    #[test]
    fn capture_files_are_a_source() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
        let Some(file) = std::fs::read_dir(&dir).ok().and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
                .min()
        }) else {
            return;
        };
        let mut r = MergedReader::new(std::slice::from_ref(&file)).expect("open");
        let mut last = i64::MIN;
        let n = drain(
            &mut r,
            |p| {
                assert!(p.ts_ns >= last);
                last = p.ts_ns;
            },
            |_| {},
        );
        assert!(n.is_ok_and(|n| n > 0), "{}", file.display());
        assert_eq!(r.read(8, |_| {}).ok(), Some(None));
    }
}
