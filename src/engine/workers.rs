//! Several pipelines side by side: one dispatcher spreads packets over N worker threads by a
//! symmetric hash of the address pair, so both directions of a flow and every fragment of a
//! datagram meet in one worker. Each worker owns its flow table, probes and counters; only
//! the learned-endpoint table is shared (it is off the per-packet path). Packets travel in
//! pre-allocated batches over bounded channels and come back empty for reuse: no lock and no
//! allocation per packet. Workers meet only when minutes are flushed.
//!
//! Hashing the address pair alone (not the ports) is what keeps a fragmented datagram, whose
//! later fragments carry no ports, in the worker of its flow. The dispatcher reads the pair
//! straight from the frame's bytes for plain IP over Ethernet (VLAN tags included), raw IP and
//! Linux cooked capture; only other frames, and tunnels, are decoded to find it. Each packet
//! is then decoded once, by its worker.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{Config, Engine, PacketSink};
use crate::aggregate::{Aggregator, Counts, Packer};
use crate::capture::{CaptureError, MergedReader, RawPacket};
use crate::classify::endpoints::{SharedEndpoints, StreamOrder};
use crate::classify::Rules;
use crate::decode::{self, linktype as link, v4_addr, Addr, Decoded, VXLAN_PORT};
use crate::flow::record::{FlowRecord, FlowSink};
use crate::flow::FlowKey;

/// Bytes of packet data a batch holds before it is sent.
const BATCH_BYTES: usize = 256 * 1024;
/// Packets a batch holds before it is sent.
const BATCH_PACKETS: usize = 256;
/// Batches per worker: the queue between the dispatcher and a worker.
const BATCHES_PER_WORKER: usize = 64;

#[derive(Clone, Copy)]
struct Meta {
    ts_ns: i64,
    wire_len: u32,
    linktype: u32,
    start: u32,
    len: u32,
}

struct Batch {
    data: Vec<u8>,
    meta: Vec<Meta>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES * 2),
            meta: Vec::with_capacity(BATCH_PACKETS),
        }
    }

    fn fits(&self, len: usize) -> bool {
        self.meta.len() < BATCH_PACKETS && self.data.len() + len <= self.data.capacity()
    }

    fn full(&self) -> bool {
        self.meta.len() >= BATCH_PACKETS || self.data.len() >= BATCH_BYTES
    }
}

enum Msg {
    Packets(Batch),
    /// Hand over every minute before this one.
    Flush(i64),
    Rules(Arc<Rules>),
    /// Pack every minute before this one (offline: memory grows with traffic, not time).
    Pack(i64),
    /// Packet time has reached this point (ends idle flows in a quiet worker).
    Clock(i64),
    /// End every flow and hand over everything.
    Finish,
}

struct Worker {
    tx: SyncSender<Msg>,
    free: Receiver<Batch>,
    cur: Option<Batch>,
    handle: Option<JoinHandle<()>>,
}

/// A flow sink shared by the workers (flows end rarely compared with packets).
#[derive(Clone)]
pub struct SharedSink(pub Arc<Mutex<Box<dyn FlowSink + Send>>>);

impl FlowSink for SharedSink {
    fn write(&mut self, r: &FlowRecord) -> std::io::Result<()> {
        let mut s = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("flow sink poisoned"))?;
        s.write(r)
    }

    fn ordered(&self) -> bool {
        self.0.lock().map_or(true, |s| s.ordered())
    }
}

/// Minutes handed over by an engine, or by all workers merged.
pub struct Flushed {
    pub agg: Aggregator,
    /// The first flow-sink error of any worker.
    pub error: Option<std::io::Error>,
    pub warnings: Vec<String>,
    /// Packets and bytes the workers were given in all (at `finish`).
    pub totals: Counts,
}

/// The dispatcher's side of N workers.
pub struct Workers {
    workers: Vec<Worker>,
    replies: Receiver<(usize, Flushed)>,
    port_rules: usize,
    /// Wait for a free batch instead of dropping (offline input).
    block: bool,
    /// Packets dropped because a worker's queue was full, since the last `take_queue_drops`.
    queue_drops: u64,
    /// Latest packet time dispatched, and when the workers last heard it.
    watermark: i64,
    last_clock: i64,
    clock_every: i64,
}

/// Default worker count: one per core, less one for the dispatcher, at least one.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// The worker a packet belongs to: a hash of the unordered address pair (IPv4 and IPv6,
/// after tunnels and VLANs as the decoder sees them); frames with no addresses go to worker 0.
pub fn worker_of(linktype: u32, data: &[u8], n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    match address_pair(linktype, data) {
        Some(pair) => spread(pair, n),
        None => 0,
    }
}

/// The source and destination addresses the decoder finds in a frame, if it finds any:
/// read from the bytes for plain IP, else decoded.
pub fn address_pair(linktype: u32, data: &[u8]) -> Option<(Addr, Addr)> {
    raw_pair(linktype, data).or_else(|| match decode::decode(linktype, data) {
        Decoded::Ip(ip) => Some((ip.src, ip.dst)),
        _ => None,
    })
}

/// Which of `n` workers an address pair goes to, whichever way round it is.
fn spread(pair: (Addr, Addr), n: usize) -> usize {
    ((u128::from(hash_pair(pair)) * n as u128) >> 64) as usize
}

/// A hash of an address pair, the same whichever way round it is, spread over all 64 bits.
fn hash_pair((a, b): (Addr, Addr)) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let fold = |a: u128| (a as u64) ^ ((a >> 64) as u64).rotate_left(29);
    let h =
        fold(lo).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ fold(hi).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let h = h ^ (h >> 31);
    h.wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// The hash of a frame's address pair ([`address_pair`]), if it has one: what picks its
/// worker.
pub(super) fn pair_hash(linktype: u32, data: &[u8]) -> Option<u64> {
    address_pair(linktype, data).map(hash_pair)
}

fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// The address pair of a frame read from its bytes, when it is plain IP the decoder would
/// give the same addresses for (no tunnel inside); `None` means "ask the decoder".
fn raw_pair(linktype: u32, data: &[u8]) -> Option<(Addr, Addr)> {
    raw_ip(linktype, data).map(|r| (r.src, r.dst))
}

/// The flow key of a plain TCP or UDP packet read from its bytes (as [`raw_pair`], and not a
/// fragment): a hint of the flow the decoder will find, to prefetch its table slot.
pub(crate) fn raw_flow_key(linktype: u32, data: &[u8]) -> Option<FlowKey> {
    let r = raw_ip(linktype, data)?;
    let l4 = r.l4?;
    if !matches!(r.proto, decode::IPPROTO_TCP | decode::IPPROTO_UDP) {
        return None;
    }
    let (sport, dport) = (be16(l4.get(0..2)?)?, be16(l4.get(2..4)?)?);
    Some(FlowKey::of(r.src, sport, r.dst, dport, r.proto).0)
}

/// What [`raw_ip`] reads of a plain IP frame.
struct RawIp<'a> {
    src: Addr,
    dst: Addr,
    proto: u8,
    /// What follows the IP header, when the packet is not a fragment.
    l4: Option<&'a [u8]>,
}

/// A frame's IP header read from its bytes, when it is plain IP the decoder would give the
/// same addresses for (no tunnel inside).
fn raw_ip(linktype: u32, data: &[u8]) -> Option<RawIp<'_>> {
    let (ip, version) = match linktype {
        link::ETHERNET => {
            let mut et = be16(data.get(12..14)?)?;
            let mut rest = data.get(14..)?;
            while matches!(et, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
                et = be16(rest.get(2..4)?)?;
                rest = rest.get(4..)?;
            }
            if !matches!(et, 0x0800 | 0x86dd) {
                return None;
            }
            (rest, None)
        }
        link::RAW | link::DLT_RAW_12 | link::DLT_RAW_14 => (data, None),
        link::IPV4 => (data, Some(4)),
        link::IPV6 => (data, Some(6)),
        link::LINUX_SLL => match be16(data.get(14..16)?)? {
            0x0800 | 0x86dd => (data.get(16..)?, None),
            _ => return None,
        },
        _ => return None,
    };
    let v = ip.first()? >> 4;
    if version.is_some_and(|want| want != v) {
        return None;
    }
    // A UDP datagram to the VXLAN port may carry a tunnel.
    let vxlan = |udp: Option<&[u8]>| udp.and_then(be16) != Some(VXLAN_PORT);
    match v {
        4 => {
            let ihl = usize::from(ip[0] & 15) * 4;
            if ihl < 20 || ip.len() < ihl || usize::from(be16(&ip[2..4])?) < ihl {
                return None;
            }
            let whole = be16(&ip[6..8])? & 0x3fff == 0;
            let proto = ip[9];
            let clear = match proto {
                // IP in IP and GRE.
                4 | 41 | 47 => !whole,
                17 if whole => vxlan(ip.get(ihl + 2..ihl + 4)),
                _ => true,
            };
            let a = |i: usize| ip.get(i..i + 4).map(|b| v4_addr([b[0], b[1], b[2], b[3]]));
            clear.then_some(RawIp {
                src: a(12)?,
                dst: a(16)?,
                proto,
                l4: if whole { ip.get(ihl..) } else { None },
            })
        }
        6 if ip.len() >= 40 => {
            // Extension headers are left to the decoder.
            let proto = ip[6];
            let clear = match proto {
                6 => true,
                17 => vxlan(ip.get(42..44)),
                _ => false,
            };
            let a = |i: usize| ip.get(i..i + 16)?.try_into().ok().map(u128::from_be_bytes);
            clear.then_some(RawIp {
                src: a(8)?,
                dst: a(24)?,
                proto,
                l4: ip.get(40..),
            })
        }
        _ => None,
    }
}

impl Workers {
    /// Starts `n` workers with the same settings and a shared endpoint table. Finished flows
    /// go to `flows` if given. `block`: wait for a busy worker (files) rather than drop (live).
    pub fn start(
        n: usize,
        cfg: &Config,
        rules: Arc<Rules>,
        endpoints: Option<SharedEndpoints>,
        flows: Option<Box<dyn FlowSink + Send>>,
        block: bool,
    ) -> std::io::Result<Workers> {
        let n = n.max(1);
        let endpoints = endpoints.unwrap_or_else(|| {
            SharedEndpoints::new(cfg.endpoint_ttl_ns, cfg.max_endpoints, 16.min(4 * n))
        });
        let flows = flows.map(|f| SharedSink(Arc::new(Mutex::new(f))));
        let (reply_tx, replies) = sync_channel(n * 2);
        let mut cfg = cfg.clone();
        // Each worker holds its share of the flows.
        cfg.max_flows = cfg.max_flows.div_ceil(n).max(1);
        let mut workers = Vec::with_capacity(n);
        for w in 0..n {
            let (tx, rx) = sync_channel::<Msg>(BATCHES_PER_WORKER + 4);
            let (free_tx, free) = sync_channel::<Batch>(BATCHES_PER_WORKER);
            for _ in 0..BATCHES_PER_WORKER {
                let _ = free_tx.send(Batch::new());
            }
            let mut p = Engine::new(cfg.clone(), rules.clone());
            p.set_endpoints(endpoints.clone());
            if let Some(f) = &flows {
                p.set_flow_sink(Box::new(f.clone()));
            }
            let reply = reply_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("bittap-worker-{w}"))
                .spawn(move || run_worker(w, p, rx, free_tx, reply))?;
            workers.push(Worker {
                tx,
                free,
                cur: None,
                handle: Some(handle),
            });
        }
        Ok(Workers {
            workers,
            replies,
            port_rules: rules.ports.len(),
            block,
            queue_drops: 0,
            watermark: i64::MIN,
            last_clock: i64::MIN,
            clock_every: cfg.sweep_interval_ns,
        })
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Hands a packet to its worker. Returns false when it was dropped (live: the worker's
    /// queue was full).
    pub fn dispatch(&mut self, pkt: &RawPacket<'_>) -> bool {
        if pkt.ts_ns > self.watermark {
            self.watermark = pkt.ts_ns;
            if self.last_clock == i64::MIN {
                self.last_clock = pkt.ts_ns;
            } else if pkt.ts_ns.saturating_sub(self.last_clock) >= self.clock_every {
                self.clock(pkt.ts_ns);
            }
        }
        let n = self.workers.len();
        let w = worker_of(pkt.linktype, pkt.data, n);
        let block = self.block;
        let worker = &mut self.workers[w];
        if worker.cur.as_ref().is_some_and(|b| !b.fits(pkt.data.len())) {
            send_current(worker);
        }
        if worker.cur.is_none() {
            worker.cur = if block {
                worker.free.recv().ok()
            } else {
                worker.free.try_recv().ok()
            };
        }
        let Some(b) = worker.cur.as_mut() else {
            self.queue_drops += 1;
            return false;
        };
        let start = b.data.len();
        b.data.extend_from_slice(pkt.data);
        b.meta.push(Meta {
            ts_ns: pkt.ts_ns,
            wire_len: pkt.wire_len,
            linktype: pkt.linktype,
            start: start as u32,
            len: pkt.data.len() as u32,
        });
        if b.full() {
            send_current(worker);
        }
        true
    }

    /// Tells every worker that packet time has reached `ts` (after the packets before it).
    pub fn clock(&mut self, ts: i64) {
        self.last_clock = ts;
        self.send_pending();
        for w in &self.workers {
            let _ = w.tx.send(Msg::Clock(ts));
        }
    }

    /// Has every worker pack its minutes before `minute` ([`Aggregator::pack_before`]),
    /// after the packets dispatched so far.
    pub fn pack_before(&mut self, minute: i64) {
        self.send_pending();
        for w in &self.workers {
            let _ = w.tx.send(Msg::Pack(minute));
        }
    }

    /// Latest packet time dispatched.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Packets dropped for full queues since the last call.
    pub fn take_queue_drops(&mut self) -> u64 {
        std::mem::take(&mut self.queue_drops)
    }

    /// Sends what is batched so far (a quiet link still gets its packets counted).
    pub fn send_pending(&mut self) {
        for w in &mut self.workers {
            send_current(w);
        }
    }

    fn gather(&mut self, msg: impl Fn() -> Msg) -> Flushed {
        self.send_pending();
        let mut sent = 0;
        for w in &self.workers {
            if w.tx.send(msg()).is_ok() {
                sent += 1;
            }
        }
        let mut out = Flushed {
            agg: Aggregator::new(self.port_rules),
            error: None,
            warnings: Vec::new(),
            totals: Counts::default(),
        };
        for _ in 0..sent {
            let Ok((_, h)) = self.replies.recv() else {
                break;
            };
            merge(&mut out, h);
        }
        out
    }

    /// Every minute before `minute`, from all workers, merged. Later counts for those minutes
    /// go to the oldest minute still open in each worker.
    pub fn flush(&mut self, minute: i64) -> Flushed {
        self.gather(|| Msg::Flush(minute))
    }

    /// Gives every worker a reloaded rule set (call right after a flush, so the rule set
    /// changes at a minute boundary).
    pub fn set_rules(&mut self, rules: Arc<Rules>) {
        self.send_pending();
        self.port_rules = rules.ports.len();
        for w in &self.workers {
            let _ = w.tx.send(Msg::Rules(rules.clone()));
        }
    }

    /// Ends every flow and returns everything not yet flushed; the workers stop.
    pub fn finish(mut self) -> Flushed {
        self.finish_all()
    }
}

impl PacketSink for Workers {
    fn packet(&mut self, pkt: &RawPacket<'_>) -> bool {
        self.dispatch(pkt)
    }

    fn clock(&mut self, ts: i64) {
        Workers::clock(self, ts);
    }

    fn flush_minutes(&mut self, minute: i64) -> Flushed {
        self.flush(minute)
    }

    /// Ends every flow and returns everything not yet flushed; the workers stop (later calls
    /// hand over nothing).
    fn finish_all(&mut self) -> Flushed {
        let out = self.gather(|| Msg::Finish);
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
        out
    }
}

fn send_current(w: &mut Worker) {
    if let Some(b) = w.cur.take() {
        if b.meta.is_empty() {
            w.cur = Some(b);
        } else {
            let _ = w.tx.send(Msg::Packets(b));
        }
    }
}

fn run_worker(
    id: usize,
    mut p: Engine,
    rx: Receiver<Msg>,
    free: SyncSender<Batch>,
    reply: SyncSender<(usize, Flushed)>,
) {
    for msg in rx {
        match msg {
            Msg::Packets(mut b) => {
                for m in &b.meta {
                    let (s, e) = (m.start as usize, (m.start + m.len) as usize);
                    p.process(&RawPacket {
                        ts_ns: m.ts_ns,
                        wire_len: m.wire_len,
                        linktype: m.linktype,
                        data: &b.data[s..e],
                    });
                }
                b.data.clear();
                b.meta.clear();
                let _ = free.send(b);
            }
            Msg::Flush(minute) => {
                let _ = reply.send((id, p.flush_minutes(minute)));
            }
            Msg::Rules(r) => p.set_rules(r),
            Msg::Clock(ts) => p.advance_clock(ts),
            Msg::Pack(minute) => p.aggregator().pack_before(minute),
            Msg::Finish => {
                let _ = reply.send((id, p.finish_all()));
                return;
            }
        }
    }
}
/// Offline `--threads`: `n` engines process the input, each the flows whose address pair
/// picks it, and their hand-overs are merged. By default one reader, on this thread, frames
/// every record for all of them ([`super::split`]). `ordered`: each worker reads the whole
/// input itself instead (worker 0 `reader`, the others `files` opened again, gzip decompressed
/// by each) and processes only its own packets ([`worker_of`]); the others' packets still move
/// its clock and its packing of minutes, and the endpoint table is shared in stream order
/// ([`StreamOrder`]): each lookup waits until it can answer as one engine's would, so the
/// series equal one engine's (while neither the endpoint nor the flow table is full: their
/// bounds are split between workers), at the price of workers waiting for each other at every
/// new flow. Either way this thread's reader's problems are the run's, and `tick` is called
/// with the packets read so far.
#[allow(clippy::too_many_arguments)]
pub fn run_offline(
    reader: &mut MergedReader,
    files: &[PathBuf],
    n: usize,
    ordered: bool,
    cfg: &Config,
    rules: Arc<Rules>,
    endpoints: Option<SharedEndpoints>,
    flows: Option<Box<dyn FlowSink + Send>>,
    tick: &mut dyn FnMut(u64),
) -> Result<Flushed, CaptureError> {
    let n = n.max(1);
    let endpoints = endpoints.unwrap_or_else(|| {
        SharedEndpoints::new(cfg.endpoint_ttl_ns, cfg.max_endpoints, 16.min(4 * n))
    });
    if !ordered && n > 1 {
        return super::split::run(reader, n, cfg, rules, endpoints, flows, tick);
    }
    let order = StreamOrder::new(n);
    let flows = flows.map(|f| SharedSink(Arc::new(Mutex::new(f))));
    let mut cfg = cfg.clone();
    cfg.max_flows = cfg.max_flows.div_ceil(n).max(1);
    let engine = |w: usize| {
        let mut p = Engine::new(cfg.clone(), rules.clone());
        p.set_endpoints(endpoints.ordered(order.clone(), w));
        if let Some(f) = &flows {
            p.set_flow_sink(Box::new(f.clone()));
        }
        p
    };
    // Every reader first: a worker started waits for the others to move.
    let readers = (1..n)
        .map(|_| MergedReader::new(files))
        .collect::<Result<Vec<_>, _>>()?;
    let mut others = Vec::with_capacity(n - 1);
    for (w, mut r) in (1..n).zip(readers) {
        let p = engine(w);
        match std::thread::Builder::new()
            .name(format!("bittap-worker-{w}"))
            .spawn(move || read_share(w, n, p, &mut r, &mut |_| {}))
        {
            Ok(h) => others.push(h),
            Err(e) => {
                // The workers already started would wait for the missing ones forever.
                for w in w..n {
                    order.set(w, u64::MAX);
                }
                for h in others {
                    let _ = h.join();
                }
                return Err(CaptureError::new(
                    std::path::Path::new("threads"),
                    0,
                    crate::capture::ErrorKind::Io(e.to_string()),
                ));
            }
        }
    }
    let mut parts = vec![read_share(0, n, engine(0), reader, tick)];
    for h in others {
        match h.join() {
            Ok(f) => parts.push(f),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    let mut out = Flushed {
        agg: Aggregator::new(rules.ports.len()),
        error: None,
        warnings: Vec::new(),
        totals: Counts::default(),
    };
    for h in parts {
        merge(&mut out, h);
    }
    Ok(out)
}

/// Marks a worker as finished when it is dropped, panicking or not, so no other waits on it.
pub(super) struct Done<'a>(pub(super) &'a SharedEndpoints);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.hold(u64::MAX);
        self.0.set_position(u64::MAX);
    }
}

/// One worker of [`run_offline`]: reads every packet, processes its own.
fn read_share(
    me: usize,
    n: usize,
    mut p: Engine,
    reader: &mut MergedReader,
    tick: &mut dyn FnMut(u64),
) -> Flushed {
    let eps = p.endpoints().clone();
    let _done = Done(&eps);
    let mut packer = Packer::default();
    let mut i = 0u64;
    while reader.advance() {
        let Some(pkt) = reader.packet() else {
            break;
        };
        if worker_of(pkt.linktype, pkt.data, n) == me {
            eps.set_position(2 * i);
            p.process(&pkt);
        } else {
            eps.set_position(2 * i + 1);
            p.advance_clock(pkt.ts_ns);
        }
        // As `analyze` packs one engine's minutes.
        if let Some(before) = packer.due(pkt.ts_ns) {
            p.aggregator().pack_before(before);
        }
        i += 1;
        tick(i);
    }
    eps.set_position(2 * i);
    p.finish_all()
}

/// Adds one engine's hand-over to `out`.
pub(super) fn merge(out: &mut Flushed, h: Flushed) {
    // Packed as they are merged: a long input's minutes are never all whole buckets at once.
    for (m, b) in h.agg.minutes() {
        out.agg.absorb(m, &b);
        out.agg.pack_before(m);
    }
    out.agg.pack_before(i64::MAX);
    if out.error.is_none() {
        out.error = h.error;
    }
    for w in h.warnings {
        if !out.warnings.contains(&w) {
            out.warnings.push(w);
        }
    }
    out.totals.add(h.totals.packets, h.totals.bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header from 10.0.0.1 to 192.0.2.1 (protocol, fragment field) and `l4`.
    fn ipv4(proto: u8, frag: [u8; 2], l4: &[u8]) -> Vec<u8> {
        let mut ip = vec![
            0x45,
            0,
            0,
            20 + l4.len() as u8,
            0,
            0,
            frag[0],
            frag[1],
            64,
            proto,
        ];
        ip.extend_from_slice(&[0, 0, 10, 0, 0, 1, 192, 0, 2, 1]);
        ip.extend_from_slice(l4);
        ip
    }

    /// An Ethernet frame of ethertype `et` around `ip`.
    fn eth(et: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn both_directions_meet_in_one_worker() {
        // Ethernet + IPv4 + UDP, addresses swapped.
        let frame = |src: [u8; 4], dst: [u8; 4]| {
            let mut f = vec![0u8; 14];
            f[12] = 0x08;
            let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
            ip.extend_from_slice(&src);
            ip.extend_from_slice(&dst);
            f.extend_from_slice(&ip);
            f.extend_from_slice(&[0x1a, 0xe1, 0x1a, 0xe2, 0, 8, 0, 0]);
            f
        };
        let mut spread = [0usize; 4];
        for i in 0..200u8 {
            let a = [10, 0, i, 1];
            let b = [192, 0, 2, i];
            let w = worker_of(1, &frame(a, b), 4);
            assert_eq!(w, worker_of(1, &frame(b, a), 4));
            spread[w] += 1;
        }
        assert!(spread.iter().all(|&c| c > 20), "{spread:?}");
        assert_eq!(worker_of(1, &frame([1, 1, 1, 1], [2, 2, 2, 2]), 1), 0);
    }

    #[test]
    fn raw_flow_key_is_the_decoders_key_or_none() {
        let v4 = ipv4;
        let mut v6 = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        v6.extend_from_slice(&[0x20, 1, 0x0d, 0xb8].repeat(4));
        v6.extend_from_slice(&[0xfe, 0x80, 0, 1].repeat(4));
        v6.extend_from_slice(&[
            0xc8, 0xd5, 0x1a, 0xe1, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 2, 0, 0,
        ]);
        v6.extend_from_slice(&[0; 4]);
        let tcp = [
            0xc8, 0xd5, 0x1a, 0xe1, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 2, 0, 0, 0, 0, 0, 0,
        ];
        let udp = [0x1a, 0xe1, 0x1a, 0xe2, 0, 8, 0, 0];
        let decoded = |lt: u32, f: &[u8]| match decode::decode(lt, f) {
            Decoded::Ip(ip) => Some(FlowKey::of(ip.src, ip.sport, ip.dst, ip.dport, ip.proto).0),
            _ => None,
        };
        for (lt, f) in [
            (link::ETHERNET, eth(0x0800, &v4(6, [0, 0], &tcp))),
            (link::RAW, v4(17, [0, 0], &udp)),
            (link::ETHERNET, eth(0x86dd, &v6)),
        ] {
            let key = raw_flow_key(lt, &f);
            assert!(key.is_some_and(|k| k.lo_port != 0 && k.hi_port != 0));
            assert_eq!(key, decoded(lt, &f));
        }
        // Fragments, ICMP, tunnels and cut headers give no key.
        assert_eq!(raw_flow_key(link::RAW, &v4(17, [0x20, 0], &udp)), None);
        assert_eq!(raw_flow_key(link::RAW, &v4(1, [0, 0], &[8, 0, 0, 0])), None);
        assert_eq!(raw_flow_key(link::RAW, &v4(47, [0, 0], &[0; 8])), None);
        assert_eq!(raw_flow_key(link::RAW, &v4(17, [0, 0], &udp)[..22]), None);
    }

    #[test]
    fn raw_pair_leaves_tunnels_and_odd_frames_to_the_decoder() {
        let v4 = ipv4;
        let udp = |dport: u16| {
            let mut u = vec![0x1a, 0xe1];
            u.extend_from_slice(&dport.to_be_bytes());
            u.extend_from_slice(&[0, 8, 0, 0]);
            u
        };
        let pair = Some((v4_addr([10, 0, 0, 1]), v4_addr([192, 0, 2, 1])));
        let plain = v4(17, [0, 0], &udp(6881));
        assert_eq!(raw_pair(link::ETHERNET, &eth(0x0800, &plain)), pair);
        assert_eq!(raw_pair(link::RAW, &plain), pair);
        assert_eq!(raw_pair(link::IPV6, &plain), None);
        let mut vlan = vec![0, 5, 0x08, 0x00];
        vlan.extend_from_slice(&plain);
        assert_eq!(raw_pair(link::ETHERNET, &eth(0x8100, &vlan)), pair);
        // VXLAN, GRE and IP in IP may carry other addresses inside: the decoder decides.
        let vx = v4(17, [0, 0], &udp(VXLAN_PORT));
        assert_eq!(raw_pair(link::RAW, &vx), None);
        assert_eq!(raw_pair(link::RAW, &v4(47, [0, 0], &[0; 8])), None);
        assert_eq!(raw_pair(link::RAW, &v4(4, [0, 0], &[0; 20])), None);
        // A later fragment of GRE is not unwrapped by the decoder either.
        assert_eq!(raw_pair(link::RAW, &v4(47, [0, 9], &[0; 8])), pair);
        // MPLS, PPPoE, unknown link types, garbage.
        assert_eq!(raw_pair(link::ETHERNET, &eth(0x8847, &plain)), None);
        assert_eq!(raw_pair(147, &plain), None);
        assert_eq!(raw_pair(link::RAW, &plain[..12]), None);
        for f in [eth(0x0800, &plain), eth(0x8100, &vlan), vx.clone()] {
            let lt = if f.len() == vx.len() {
                link::RAW
            } else {
                link::ETHERNET
            };
            let decoded = match decode::decode(lt, &f) {
                Decoded::Ip(ip) => Some((ip.src, ip.dst)),
                _ => None,
            };
            assert_eq!(address_pair(lt, &f), decoded);
        }
    }
}
