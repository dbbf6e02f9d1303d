//! The engine behind every front door: one pass down per packet, decode → fragments → flow
//! table → probes → correlation → ledger.
//!
//! Every packet lands in exactly one series counter: at once when its flow has a verdict, or
//! when the verdict is reached (packets seen before it are held per flow, per minute), or when
//! the flow ends. Time is packet time throughout. [`workers::Workers`] runs N engines side by
//! side; both implement [`PacketSink`], which is what a front door drives.

mod config;
mod control;
mod ending;
pub mod workers;

use std::io;
use std::sync::Arc;

pub use config::Config;
pub use workers::{Flushed, Workers};

use crate::aggregate::{hll, ledger, minute_of, Aggregator, Amount, Counts, Direction};
use crate::capture::RawPacket;
use crate::classify::endpoints::{EndpointTable, SharedEndpoints};
use crate::classify::{correlate, Answer, Class, Method, ProbePool, Proto, Rules, Transport};
use crate::classify::{Evidence, Verdict};
use crate::decode::{self, Decoded, Fragment, IpPacket, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::flow::frag::{Frags, Track};
use crate::flow::record::{FlowRecord, FlowSink};
use crate::flow::table::FlowTable;
use crate::flow::{Classification, Flow, FlowKey, FlowState, Held, PendingCount, Stage};
use crate::flow::{FIN_FROM_DST, FIN_FROM_SRC};

/// A flow is classified on what its first packets show; after this many it takes the
/// verdict it has (a handshake sent one byte per segment still fits).
const MAX_PROBE_PACKETS: u64 = 192;

/// What a front door drives: one engine on its own thread, or N workers.
pub trait PacketSink {
    /// Counts one captured frame; `false` when it was dropped (a full worker queue).
    fn packet(&mut self, pkt: &RawPacket<'_>) -> bool;
    /// Packet time has reached `ts` without a packet.
    fn clock(&mut self, ts: i64);
    /// Hands over every minute before `minute`.
    fn flush_minutes(&mut self, minute: i64) -> Flushed;
    /// Ends every flow and hands over everything left.
    fn finish_all(&mut self) -> Flushed;
}

pub struct Engine {
    cfg: Config,
    rules: Arc<Rules>,
    flows: FlowTable,
    frags: Frags,
    probes: ProbePool,
    agg: Aggregator,
    now: i64,
    last_sweep: i64,
    ended: Vec<FlowRecord>,
    flow_sink: Option<Box<dyn FlowSink + Send>>,
    sink_error: Option<io::Error>,
    warned_links: Vec<u32>,
    endpoints: SharedEndpoints,
    /// Warnings met while processing (each kind once).
    pub warnings: Vec<String>,
    /// Warnings already handed over by [`PacketSink::flush_minutes`].
    warnings_handed: usize,
    totals: Counts,
}

impl Engine {
    pub fn new(cfg: Config, rules: Arc<Rules>) -> Self {
        let endpoints =
            SharedEndpoints::from_table(EndpointTable::new(cfg.endpoint_ttl_ns, cfg.max_endpoints));
        Engine {
            flows: FlowTable::new(cfg.max_flows, cfg.timeouts()),
            frags: Frags::new(cfg.max_frags, cfg.frag_timeout_ns),
            agg: Aggregator::new(rules.ports.len()),
            cfg,
            rules,
            probes: ProbePool::default(),
            now: i64::MIN,
            last_sweep: i64::MIN,
            ended: Vec::new(),
            flow_sink: None,
            sink_error: None,
            warned_links: Vec::new(),
            endpoints,
            warnings: Vec::new(),
            warnings_handed: 0,
            totals: Counts::default(),
        }
    }

    /// Counts and classifies one captured frame.
    pub fn process(&mut self, pkt: &RawPacket<'_>) {
        self.process_weighted(pkt, 1);
    }

    /// Counts and classifies one frame standing for `weight` frames (a packet sample taken
    /// at 1 in `weight`, e.g. from sFlow): its packets and wire bytes count `weight` times.
    pub fn process_weighted(&mut self, pkt: &RawPacket<'_>, weight: u32) {
        let ts = pkt.ts_ns;
        let minute = minute_of(ts);
        let a = Amount::sample(u64::from(pkt.wire_len), weight.max(1));
        if ts > self.now {
            self.now = ts;
            if self.last_sweep == i64::MIN {
                self.last_sweep = ts;
            }
        }
        self.totals.add(u64::from(a.packets), a.bytes);
        let tracked = self.flows.len() as u64;
        let bucket = self.agg.bucket(minute);
        bucket.health.packets += u64::from(a.packets);
        bucket.health.bytes += a.bytes;
        bucket.health.flows_tracked = bucket.health.flows_tracked.max(tracked);
        let decoded = decode::decode(pkt.linktype, pkt.data);
        match decoded {
            Decoded::Ip(ip) => {
                // The payload is incomplete when the snap length cut the frame, or in a first fragment.
                let cut = pkt.data.len() < pkt.wire_len as usize
                    || matches!(ip.frag, Fragment::First { .. });
                self.ip_packet(ts, minute, a, ip, cut)
            }
            Decoded::NonIp => {
                bucket.add_amount(Proto::NonIp, Method::None, Direction::Unknown, a);
                bucket.health.non_ip += u64::from(a.packets);
            }
            Decoded::Undecodable | Decoded::UnknownLink => {
                bucket.add_amount(Proto::Undecodable, Method::None, Direction::Unknown, a);
                bucket.health.undecodable += u64::from(a.packets);
                if matches!(decoded, Decoded::UnknownLink) {
                    bucket.health.unknown_link += u64::from(a.packets);
                    self.warn_link(pkt.linktype);
                }
            }
        }
        if self.now.saturating_sub(self.last_sweep) >= self.cfg.sweep_interval_ns {
            self.sweep(false);
        }
    }

    /// One IP packet: fragments → flow table → probes → correlation → ledger.
    fn ip_packet(&mut self, ts: i64, minute: i64, a: Amount, mut ip: IpPacket<'_>, cut: bool) {
        let Engine {
            frags, agg, cfg, ..
        } = self;
        let orphaned = |e: &PendingCount| ledger::orphan_fragments(agg, e);
        let track = frags.track(
            &mut ip,
            ts,
            minute,
            &cfg.home_net,
            a.packets,
            a.bytes,
            orphaned,
        );
        let Track::Go(early) = track else {
            return;
        };

        let (key, sender_lo) = FlowKey::of(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
        let transport = match ip.proto {
            decode::IPPROTO_TCP => Some(Transport::Tcp),
            decode::IPPROTO_UDP => Some(Transport::Udp),
            _ => None,
        };
        let flags = ip.tcp.map(|t| t.flags).unwrap_or(0);
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            if let Some(e) = self.flows.reuse(&key) {
                self.ending().end(e);
                self.write_ended();
            }
        }
        if !self.flows.contains(&key) {
            self.create_flow(key, sender_lo, ts, minute, &ip, transport);
        }
        let Engine {
            flows,
            probes,
            agg,
            rules,
            endpoints,
            ..
        } = self;
        let Some(flow) = flows.get_mut(&key) else {
            return;
        };
        let dir = usize::from(sender_lo != flow.state.src_is_lo);
        let dir_tag = flow.state.touch(ts, a, flags, dir);
        if let Some(rule) = transport.and_then(|t| rules.port_rule_for(t, ip.sport, ip.dport)) {
            ledger::credit_port(agg, minute, rule, dir_tag, a);
        }
        if let (Some(t), Stage::Probing(pi)) = (transport, flow.class.stage) {
            let probe = probes.get(pi);
            let answer =
                probe.on_packet(rules, t, dir, ip.tcp, (ip.sport, ip.dport), ip.payload, cut);
            let (evidence, any_done) = (probe.evidence(), probe.any_done());
            let decided = match answer {
                Answer::Certain(v) => {
                    flow.class.evidence = true;
                    flow.class.proof = evidence;
                    Some(v)
                }
                Answer::NotMine => Some(fallback(flow, &key, rules, endpoints, ts)),
                Answer::NotYet
                    if flow.state.packets >= MAX_PROBE_PACKETS
                        || (flow.state.packets >= 24 && any_done) =>
                {
                    Some(fallback(flow, &key, rules, endpoints, ts))
                }
                Answer::NotYet => None,
            };
            if let Some(v) = decided {
                decide(flow, v, probes, agg);
                // Only strong evidence teaches: a shape, framing alone, a port or a
                // learned endpoint never spreads to other flows.
                if v.class() == Class::Bittorrent && flow.class.proof.strong() {
                    correlate::learn_flow(endpoints, rules, &ip, dir == 0, ts);
                }
            }
        }
        if let Some(v) = flow.class.verdict() {
            if !ip.payload.is_empty() && flow.class.proof.strong() {
                correlate::learn_advertised(endpoints, rules, v.proto, &ip, ts);
            }
        }
        if let Some(e) = early {
            flow.state.packets += u64::from(e.packets);
            flow.state.bytes += e.bytes;
            let held = Amount::held(e.packets, e.bytes, e.samples);
            let dir = Direction::ALL[usize::from(e.dir)];
            account(flow, rules, probes, agg, e.minute, dir, held);
        }
        account(flow, rules, probes, agg, minute, dir_tag, a);
    }

    fn create_flow(
        &mut self,
        key: FlowKey,
        sender_lo: bool,
        ts: i64,
        minute: i64,
        ip: &IpPacket<'_>,
        transport: Option<Transport>,
    ) {
        if self.flows.is_full() {
            self.make_flow_room();
        }
        let home = &self.cfg.home_net;
        let port_rule = transport
            .and_then(|t| self.rules.port_rule_for(t, ip.sport, ip.dport))
            .map(|i| (i + 1) as u8)
            .unwrap_or(0);
        let (dst, src) = ((ip.dst, ip.dport), (ip.src, ip.sport));
        let correlated =
            transport.and_then(|_| correlate::lookup_ends(&self.endpoints, ip.proto, dst, src, ts));
        let stage = match transport {
            Some(_) => Stage::Probing(self.probes.alloc()),
            // Nothing to probe in ICMP, ESP and the like.
            None => Stage::Decided(Verdict::OTHER),
        };
        let state = FlowState {
            first_ts: ts,
            last_ts: ts,
            packets: 0,
            bytes: 0,
            src_is_lo: sender_lo,
            dir_tag: [
                home.direction(ip.src, ip.dst),
                home.direction(ip.dst, ip.src),
            ],
            fins: 0,
            rst: false,
            udp: ip.proto == decode::IPPROTO_UDP,
            port_rule,
            host_hash: [hll::hash_addr(key.lo), hll::hash_addr(key.hi)],
            hosts_minute: i64::MIN,
        };
        let class = Classification {
            stage,
            evidence: false,
            proof: Evidence::None,
            correlated,
        };
        let held = Held::default();
        self.flows.insert(key, Flow { state, class, held });
        self.agg.bucket(minute).health.flows_created += 1;
    }

    /// Ends flows idle past their timeout (all of them at the end of input), and forgets
    /// stale fragment state.
    fn sweep(&mut self, eof: bool) {
        let now = self.now;
        self.last_sweep = now;
        let (flows, frags, mut ending) = self.parts();
        for e in flows.expire(now, eof) {
            ending.end(e);
        }
        for early in frags.expire(now, eof) {
            ledger::orphan_fragments(ending.agg, &early);
        }
        self.write_ended();
    }

    /// Makes room in a full flow table: ends what expired, then the longest-idle sixteenth.
    #[cold]
    fn make_flow_room(&mut self) {
        self.sweep(false);
        if !self.flows.is_full() {
            return;
        }
        let minute = minute_of(self.now);
        let (flows, _, mut ending) = self.parts();
        let mut evicted = 0;
        for e in flows.evict() {
            ending.end(e);
            evicted += 1;
        }
        ending.agg.bucket(minute).health.flows_evicted += evicted;
        self.write_ended();
    }

    /// Ends every flow and forgets all fragment state: call once after the last packet.
    /// Returns the first error from the flow sink, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        self.sweep(true);
        match self.sink_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Decides a flow undecided by its payload (see [`correlate::fallback`]), looking its ends
/// up once more first.
fn fallback(
    flow: &mut Flow,
    key: &FlowKey,
    rules: &Rules,
    endpoints: &SharedEndpoints,
    ts: i64,
) -> Verdict {
    correlate::refresh(&mut flow.class, key, endpoints, ts);
    correlate::fallback(rules, &mut flow.class, &flow.state)
}

/// Gives a flow its verdict: its probe state goes back to the pool and its held packets are
/// credited.
fn decide(flow: &mut Flow, v: Verdict, probes: &mut ProbePool, agg: &mut Aggregator) {
    if let Stage::Probing(pi) = flow.class.stage {
        probes.release(pi);
    }
    flow.class.stage = Stage::Decided(v);
    ledger::credit_held(agg, v, &mut flow.held, flow.state.host_hash);
}

/// Counts packets of a flow: in the series if it has a verdict, else held in the flow (and
/// when there is no room to hold more, the flow is decided on what is known).
fn account(
    flow: &mut Flow,
    rules: &Rules,
    probes: &mut ProbePool,
    agg: &mut Aggregator,
    minute: i64,
    dir: Direction,
    a: Amount,
) {
    if let Stage::Probing(_) = flow.class.stage {
        let samples = u16::try_from(a.est.samples).unwrap_or(u16::MAX);
        if flow.held.add(minute, dir, a.packets, a.bytes, samples) {
            return;
        }
        let v = correlate::fallback(rules, &mut flow.class, &flow.state);
        decide(flow, v, probes, agg);
    }
    if let Stage::Decided(v) = flow.class.stage {
        ledger::credit(agg, v, &mut flow.state, minute, dir, a);
    }
}

impl FlowState {
    /// Counts a packet (`dir` 0 from the flow's src) into the flow; returns its direction tag.
    #[inline]
    fn touch(&mut self, ts: i64, a: Amount, flags: u8, dir: usize) -> Direction {
        self.last_ts = self.last_ts.max(ts);
        self.packets += u64::from(a.packets);
        self.bytes += a.bytes;
        if flags & TCP_FIN != 0 {
            self.fins |= if dir == 0 { FIN_FROM_SRC } else { FIN_FROM_DST };
        }
        if flags & TCP_RST != 0 {
            self.rst = true;
        }
        self.dir_tag[dir]
    }
}
