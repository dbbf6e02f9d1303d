//! Offline `--threads` with one reader: this thread frames every record, hashes its address
//! pair ([`pair_hash`]) and processes its own share of the flows in an engine of its own; the
//! other workers get the offsets of their packets in the mapped file, in batches, never a copy
//! (a packet of a file that is not mapped is copied into the batch). Framing is done once, so
//! adding a worker adds its whole core to processing.
//!
//! The reader frames and hashes every packet, so it keeps a smaller share of the flows than
//! the others ([`reader_share`]): with 2 threads both end their work at about the same time.
//!
//! Every worker sweeps idle flows at the very packets one engine reading the whole input
//! would: the reader keeps that engine's sweep clock ([`SweepClock`]) and puts its ticks into
//! the batches of the workers a packet does not go to, in stream order. Minutes are packed
//! the same way. The endpoint table is shared in stream order without waiting
//! ([`StreamOrder::no_wait`]): a worker's lookup sees only what the reader learned before
//! that packet, and a lookup made before every other worker has passed its position (the
//! reader's, which runs ahead; with 3 threads or more a worker's too) is answered again as of
//! that position once they have ([`super::settle`]): the flow holds its packets meanwhile.
//! So the series and the flow records equal one engine's while the tables are not full
//! (their bounds are split between the workers, so eviction comes at other moments).
//! Waiting for the workers to catch up instead (in packet time, 100 ms behind at most) made
//! the bench capture 2.8× slower, since its packets are sparse in time and every batch
//! became a rendezvous.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::workers::{merge, pair_hash, Done, Flushed, SharedSink};
use super::{Config, Engine, PacketSink};
use crate::aggregate::{Aggregator, Counts, Packer};
use crate::capture::{CaptureError, MergedReader, RawPacket, SharedMap};
use crate::classify::endpoints::{SharedEndpoints, StreamOrder};
use crate::classify::Rules;
use crate::flow::record::FlowSink;

/// Items a batch holds before it is sent.
const BATCH_ITEMS: usize = 256;
/// Batches per worker: the queue between the reader and a worker, about 8 200 packets. Long
/// enough to absorb stretches of the input where one side's share is busier (with 8 batches
/// the reader blocked on a full queue about 1 500 times on the bench capture and two threads
/// took 0.73 s, with 32 0.62 s, median of 7 alternating runs), short enough that the reader's
/// lookups ([`super::settle`]) are answered soon.
const BATCHES: usize = 32;
/// Most packets a worker's last batch may be behind the reader before it is sent a batch
/// saying how far the stream is read (so the reader's late lookups are answered).
const LAG: u64 = (8 * BATCH_ITEMS) as u64;
/// The reader's per-packet cost (framing, hashing, handing the packet over) against that of
/// processing one: what the reader's share is computed from. Measured on a 100 MiB bench
/// capture with `valgrind --tool=callgrind --separate-threads=yes` (instructions, whatever the
/// load; README "Speed"): with a share of 0.25 the reader ran 328 M instructions and the worker
/// 344 M, and perf's per-thread CPU time balanced at 0.2–0.3 too.
const FRAME_COST: f64 = 0.5;

/// The share of the flows the reader keeps, of `n` threads: what leaves it as busy as each
/// of the others, framing included (0 from 3 threads on: then it only reads).
pub fn reader_share(n: usize) -> f64 {
    if n <= 1 {
        return 1.0;
    }
    let others = (n - 1) as f64;
    ((1.0 - others * FRAME_COST) / n as f64).max(0.0)
}

/// Where a packet's bytes are: `map` indexes the batch's maps, or [`COPIED`] the batch's own
/// bytes.
#[derive(Clone, Copy)]
enum Item {
    Packet {
        /// Its index in the stream.
        at: u64,
        ts_ns: i64,
        wire_len: u32,
        linktype: u32,
        map: u16,
        start: usize,
        len: u32,
    },
    /// Packet time has reached this point at this stream index (one engine's sweep, or the
    /// first packet).
    Clock(i64, u64),
    /// Every packet before this stream index is read.
    End(u64),
    /// Pack every minute before this one.
    Pack(i64),
}

const COPIED: u16 = u16::MAX;
/// How many items ahead a worker asks for a packet's first lines.
const PREFETCH_AHEAD: usize = 6;

struct Batch {
    items: Vec<Item>,
    maps: Vec<SharedMap>,
    data: Vec<u8>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            items: Vec::with_capacity(BATCH_ITEMS),
            maps: Vec::new(),
            data: Vec::new(),
        }
    }

    /// The item of packet `i` (its bytes copied here when they are not in a map).
    fn packet_item(
        &mut self,
        i: u64,
        pkt: &RawPacket<'_>,
        at: Option<(&SharedMap, usize)>,
    ) -> Item {
        let (map, start) = match at {
            Some((m, start)) => {
                if !self.maps.last().is_some_and(|l| l.same(m)) {
                    self.maps.push(m.clone());
                }
                (self.maps.len() as u16 - 1, start)
            }
            None => {
                let start = self.data.len();
                self.data.extend_from_slice(pkt.data);
                (COPIED, start)
            }
        };
        Item::Packet {
            at: i,
            ts_ns: pkt.ts_ns,
            wire_len: pkt.wire_len,
            linktype: pkt.linktype,
            map,
            start,
            len: pkt.data.len() as u32,
        }
    }

    /// The bytes an item's `map` names.
    fn bytes(&self, map: u16) -> &[u8] {
        match map {
            COPIED => &self.data,
            m => self.maps[usize::from(m)].bytes(),
        }
    }

    /// A packet item's bytes (offsets the reader framed: always inside what it read).
    fn packet(&self, map: u16, start: usize, len: u32) -> Option<&[u8]> {
        self.bytes(map).get(start..start.checked_add(len as usize)?)
    }

    fn clear(&mut self) {
        self.items.clear();
        self.maps.clear();
        self.data.clear();
    }
}

/// One engine's sweep clock ([`Engine::process`], [`Engine::advance_clock`]): packet time
/// is the latest seen, and a sweep comes once it is an interval past the last one.
struct SweepClock {
    now: i64,
    last: i64,
    every: i64,
}

impl SweepClock {
    /// Packet time `ts` is read: whether an engine that saw every packet so far would have
    /// swept after it, or just started its clock.
    fn step(&mut self, ts: i64) -> bool {
        let mut tick = false;
        if ts > self.now {
            self.now = ts;
            if self.last == i64::MIN {
                self.last = ts;
                tick = true;
            }
        }
        if self.now.saturating_sub(self.last) >= self.every {
            self.last = self.now;
            tick = true;
        }
        tick
    }
}

struct Remote {
    tx: Option<SyncSender<Batch>>,
    free: Receiver<Batch>,
    cur: Batch,
    /// The stream index of the last packet, clock step or end in a batch sent.
    sent_upto: u64,
    handle: Option<JoinHandle<Flushed>>,
}

impl Remote {
    /// Puts an item in the current batch (sending the batch when full).
    fn push(&mut self, item: Item) {
        self.room();
        self.cur.items.push(item);
    }

    /// Puts packet `i` in the current batch.
    fn packet(&mut self, i: u64, pkt: &RawPacket<'_>, at: Option<(&SharedMap, usize)>) {
        self.room();
        let item = self.cur.packet_item(i, pkt, at);
        self.cur.items.push(item);
    }

    /// Room in the current batch for one more item.
    fn room(&mut self) {
        if self.cur.items.len() >= BATCH_ITEMS || self.cur.data.len() >= 256 << 10 {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.cur.items.is_empty() {
            return;
        }
        // A worker that stopped (it panicked: its join says so) gives no batch back.
        let Ok(next) = self.free.recv() else {
            self.cur.clear();
            return;
        };
        let full = std::mem::replace(&mut self.cur, next);
        if let Some(at) = full.items.iter().rev().find_map(|it| match *it {
            Item::Packet { at, .. } | Item::Clock(_, at) | Item::End(at) => Some(at),
            Item::Pack(_) => None,
        }) {
            self.sent_upto = at;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(full);
        }
    }
}

/// Runs `n` workers over `reader` (see the module's notes): this thread reads, calling `tick`
/// with the packets read so far, and processes its share; the others process theirs. Flow
/// tables are bounded in proportion to the shares.
#[allow(clippy::too_many_arguments)]
pub fn run(
    reader: &mut MergedReader,
    n: usize,
    cfg: &Config,
    rules: Arc<Rules>,
    endpoints: SharedEndpoints,
    flows: Option<Box<dyn FlowSink + Send>>,
    tick: &mut dyn FnMut(u64),
) -> Result<Flushed, CaptureError> {
    let n = n.max(2);
    let share = reader_share(n);
    let flows = flows.map(|f| SharedSink(Arc::new(Mutex::new(f))));
    let order = StreamOrder::no_wait(n);
    let engine = |w: usize, fraction: f64| {
        let mut c = cfg.clone();
        c.max_flows = ((cfg.max_flows as f64 * fraction).ceil() as usize).max(1);
        let mut p = Engine::new(c, rules.clone());
        p.set_endpoints(endpoints.ordered(order.clone(), w));
        if let Some(f) = &flows {
            p.set_flow_sink(Box::new(f.clone()));
        }
        p
    };
    let mut remotes = Vec::with_capacity(n - 1);
    for w in 1..n {
        let (tx, rx) = sync_channel::<Batch>(BATCHES);
        let (free_tx, free) = sync_channel::<Batch>(BATCHES + 1);
        for _ in 0..BATCHES {
            let _ = free_tx.send(Batch::new());
        }
        let p = engine(w, (1.0 - share) / (n - 1) as f64);
        let handle = std::thread::Builder::new()
            .name(format!("bittap-worker-{w}"))
            .spawn(move || work(p, rx, free_tx))
            .map_err(|e| {
                CaptureError::new(
                    std::path::Path::new("threads"),
                    0,
                    crate::capture::ErrorKind::Io(e.to_string()),
                )
            })?;
        remotes.push(Remote {
            tx: Some(tx),
            free,
            cur: Batch::new(),
            sent_upto: 0,
            handle: Some(handle),
        });
    }
    let mut local = engine(0, share);
    let eps = local.endpoints().clone();
    let _done = Done(&eps);
    // The reader's share: hashes below `cut` stay here, the rest spread over the others.
    let cut = (share * 2f64.powi(64)).min(u64::MAX as f64) as u64;
    let mut clock = SweepClock {
        now: i64::MIN,
        last: i64::MIN,
        every: cfg.sweep_interval_ns,
    };
    let mut packer = Packer::default();
    let others = (n - 1) as u64;
    let mut i = 0u64;
    while reader.advance() {
        let Some((pkt, at)) = reader.packet_in_map() else {
            break;
        };
        let to = match pair_hash(pkt.linktype, pkt.data) {
            // The high bits chose the reader or not, the low ones choose among the others.
            Some(h) if h >= cut => 1 + ((u64::from(h as u32) * others) >> 32) as usize,
            _ => 0,
        };
        let swept = clock.step(pkt.ts_ns);
        if to == 0 {
            eps.set_position(2 * i);
            local.process(&pkt);
        } else {
            eps.set_position(2 * i + 1);
            let r = &mut remotes[to - 1];
            r.packet(i, &pkt, at);
        }
        if swept {
            if to != 0 {
                local.advance_clock(clock.now);
            }
            for (w, r) in remotes.iter_mut().enumerate() {
                if w + 1 != to {
                    r.push(Item::Clock(clock.now, i));
                }
            }
        }
        // As `analyze` packs one engine's minutes.
        if let Some(before) = packer.due(pkt.ts_ns) {
            local.aggregator().pack_before(before);
            for r in &mut remotes {
                r.push(Item::Pack(before));
            }
        }
        i += 1;
        // A worker that gets few packets is told how far the stream is read, so what is
        // learned is not kept aside for long ([`StreamOrder`]).
        if i.is_multiple_of(64) {
            for r in &mut remotes {
                if i - r.sent_upto > LAG {
                    r.push(Item::End(i));
                    r.send();
                }
            }
        }
        tick(i);
    }
    // Every engine's clock at the last packet time, as one engine's, and at the end of the
    // stream.
    if clock.now != i64::MIN {
        local.advance_clock(clock.now);
    }
    eps.set_position(2 * i);
    for r in &mut remotes {
        if clock.now != i64::MIN {
            r.push(Item::Clock(clock.now, i));
        }
        r.push(Item::End(i));
        r.send();
        r.tx = None;
    }
    let mut out = Flushed {
        agg: Aggregator::new(rules.ports.len()),
        error: None,
        warnings: Vec::new(),
        totals: Counts::default(),
    };
    merge(&mut out, local.finish_all());
    for r in &mut remotes {
        if let Some(h) = r.handle.take() {
            match h.join() {
                Ok(f) => merge(&mut out, f),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    }
    Ok(out)
}

/// A worker: processes the batches it is sent, in order, gives them back, and hands over
/// everything when the reader is done.
fn work(mut p: Engine, rx: Receiver<Batch>, free: SyncSender<Batch>) -> Flushed {
    let eps = p.endpoints().clone();
    let _done = Done(&eps);
    for mut b in rx {
        for (k, item) in b.items.iter().enumerate() {
            // The packets' bytes were last touched on the reader's core: asked for ahead.
            if let Some(Item::Packet { map, start, .. }) = b.items.get(k + PREFETCH_AHEAD) {
                if let Some(p) = b.bytes(*map).get(*start..) {
                    crate::capture::prefetch(p.as_ptr());
                    crate::capture::prefetch(p.as_ptr().wrapping_add(64));
                }
            }
            // And for the next packet, the flow table's line it will look up.
            if let Some(Item::Packet {
                map,
                start,
                len,
                linktype,
                ..
            }) = b.items.get(k + 1)
            {
                if let Some(data) = b.packet(*map, *start, *len) {
                    p.prefetch(*linktype, data);
                }
            }
            match *item {
                Item::Packet {
                    at,
                    ts_ns,
                    wire_len,
                    linktype,
                    map,
                    start,
                    len,
                } => {
                    let Some(data) = b.packet(map, start, len) else {
                        debug_assert!(false, "a packet outside its batch or map");
                        continue;
                    };
                    eps.set_position(2 * at);
                    p.process(&RawPacket {
                        ts_ns,
                        wire_len,
                        linktype,
                        data,
                    });
                }
                Item::Clock(ts, at) => {
                    eps.set_position(2 * at + 1);
                    p.advance_clock(ts);
                }
                Item::End(at) => {
                    eps.set_position(2 * at);
                    // A worker given few packets answers its late lookups here too.
                    p.settle_due();
                }
                Item::Pack(minute) => p.aggregator().pack_before(minute),
            }
        }
        b.clear();
        let _ = free.send(b);
    }
    p.finish_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_keeps_less_the_more_workers_there_are() {
        assert_eq!(reader_share(1), 1.0);
        let two = reader_share(2);
        assert!(two > 0.1 && two < 0.5, "{two}");
        assert!(reader_share(3) < two);
        assert_eq!(reader_share(16), 0.0);
    }

    #[test]
    fn the_sweep_clock_ticks_as_one_engine_sweeps() {
        let mut c = SweepClock {
            now: i64::MIN,
            last: i64::MIN,
            every: 10,
        };
        // Started at the first packet; then a sweep once packet time is 10 past the last one,
        // never for a packet older than the latest.
        let ticks: Vec<bool> = [5, 9, 3, 15, 16, 14, 24, 25, 40]
            .iter()
            .map(|&t| c.step(t))
            .collect();
        assert_eq!(
            ticks,
            [true, false, false, true, false, false, false, true, true]
        );
        assert_eq!((c.now, c.last), (40, 40));
    }
}
