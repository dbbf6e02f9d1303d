//! The pipeline behind both front doors: decode → flow table → classify → per-minute counters.
//!
//! Every packet lands in exactly one series counter: at once when its flow has a verdict, or
//! when the verdict is reached (packets seen before it are held per flow, per minute), or when
//! the flow ends. Time is packet time throughout.

use std::io;
use std::sync::Arc;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::aggregate::{hll, minute_of, Aggregator, Amount, Counts, Direction, HomeNet};
use crate::capture::RawPacket;
use crate::classify::endpoints::{self, Endpoint, EndpointTable, Provenance, SharedEndpoints};
use crate::classify::{
    peers, peerwire, tracker_http, tracker_udp, Answer, Class, Evidence, Method, ProbePool, Proto,
    Rules, Transport, Verdict,
};
use crate::decode::{self, Addr, Decoded, Fragment, IpPacket, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::flow::{
    EndReason, Flow, FlowKey, FragEntry, FragKey, PendingCount, FIN_FROM_DST, FIN_FROM_SRC,
    MAX_PENDING,
};

const NS: i64 = 1_000_000_000;
/// A flow is classified on what its first packets show; after this many it takes the
/// verdict it has (a handshake sent one byte per segment still fits).
const MAX_PROBE_PACKETS: u64 = 192;

/// Pipeline settings; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub home_net: HomeNet,
    /// Idle timeout of TCP flows.
    pub tcp_idle_ns: i64,
    /// Idle timeout of UDP and other flows.
    pub udp_idle_ns: i64,
    /// How long a TCP flow stays after FIN both ways or RST (late retransmissions).
    pub linger_ns: i64,
    /// Most flows in the table; when full, the longest-idle sixteenth is evicted.
    pub max_flows: usize,
    /// How long a fragmented datagram is remembered.
    pub frag_timeout_ns: i64,
    pub max_frags: usize,
    /// How often (in packet time) expired flows are swept out.
    pub sweep_interval_ns: i64,
    /// How long a learned BitTorrent endpoint is trusted (packet time).
    pub endpoint_ttl_ns: i64,
    /// Most learned endpoints kept.
    pub max_endpoints: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            home_net: HomeNet::default(),
            tcp_idle_ns: 300 * NS,
            udp_idle_ns: 120 * NS,
            linger_ns: 5 * NS,
            max_flows: 1 << 20,
            frag_timeout_ns: 30 * NS,
            max_frags: 1 << 16,
            sweep_interval_ns: 5 * NS,
            endpoint_ttl_ns: endpoints::DEFAULT_TTL_NS,
            max_endpoints: endpoints::DEFAULT_MAX,
        }
    }
}

/// A finished flow, as written to `--flows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    pub first_ts: i64,
    pub last_ts: i64,
    pub l4: &'static str,
    pub src: Addr,
    pub src_port: u16,
    pub dst: Addr,
    pub dst_port: u16,
    pub verdict: Verdict,
    pub packets: u64,
    pub bytes: u64,
    pub end: EndReason,
    /// What proved the verdict.
    pub evidence: Evidence,
}

/// Where finished flows go.
pub trait FlowSink {
    fn write(&mut self, r: &FlowRecord) -> io::Result<()>;
}

impl FlowSink for Vec<FlowRecord> {
    fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        self.push(r.clone());
        Ok(())
    }
}

/// A flow sink that can be read while the pipeline still owns it (tests, benches).
#[derive(Clone, Default)]
pub struct SharedFlows(pub Arc<std::sync::Mutex<Vec<FlowRecord>>>);

impl FlowSink for SharedFlows {
    fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("flow list poisoned"))?
            .push(r.clone());
        Ok(())
    }
}

impl SharedFlows {
    pub fn take(&self) -> Vec<FlowRecord> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

type Map<K, V> = HashMap<K, V, FixedState>;

pub struct Pipeline {
    cfg: Config,
    rules: Arc<Rules>,
    flows: Map<FlowKey, Flow>,
    frags: Map<FragKey, FragEntry>,
    probes: ProbePool,
    agg: Aggregator,
    now: i64,
    last_sweep: i64,
    ended: Vec<FlowRecord>,
    evict_scratch: Vec<i64>,
    flow_sink: Option<Box<dyn FlowSink + Send>>,
    sink_error: Option<io::Error>,
    warned_links: Vec<u32>,
    endpoints: SharedEndpoints,
    /// Warnings met while processing (each kind once).
    pub warnings: Vec<String>,
    totals: Counts,
}

impl Pipeline {
    pub fn new(cfg: Config, rules: Arc<Rules>) -> Self {
        let agg = Aggregator::new(rules.ports.len());
        let endpoints =
            SharedEndpoints::from_table(EndpointTable::new(cfg.endpoint_ttl_ns, cfg.max_endpoints));
        Pipeline {
            flows: Map::with_capacity_and_hasher(cfg.max_flows.min(1 << 16), FixedState::default()),
            frags: Map::with_capacity_and_hasher(1024, FixedState::default()),
            cfg,
            rules,
            probes: ProbePool::default(),
            agg,
            now: i64::MIN,
            last_sweep: i64::MIN,
            ended: Vec::new(),
            evict_scratch: Vec::new(),
            flow_sink: None,
            sink_error: None,
            warned_links: Vec::new(),
            endpoints,
            warnings: Vec::new(),
            totals: Counts::default(),
        }
    }

    /// Finished flows go to `sink` (`--flows`); without one, flow records are not built.
    pub fn set_flow_sink(&mut self, sink: Box<dyn FlowSink + Send>) {
        self.flow_sink = Some(sink);
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replaces the learned endpoints, e.g. with those of a look-ahead pass over the same
    /// input, or with a table shared by several workers.
    pub fn set_endpoints(&mut self, table: SharedEndpoints) {
        self.endpoints = table;
    }

    /// The learned endpoints.
    pub fn endpoints(&self) -> &SharedEndpoints {
        &self.endpoints
    }

    /// Takes the learned endpoints out (leaving an empty table).
    pub fn take_endpoints(&mut self) -> SharedEndpoints {
        let empty = SharedEndpoints::from_table(EndpointTable::new(
            self.cfg.endpoint_ttl_ns,
            self.cfg.max_endpoints,
        ));
        std::mem::replace(&mut self.endpoints, empty)
    }

    /// Switches to a reloaded rule set between packets. Flows keep their verdicts; a flow's
    /// port rule and the open minutes' port view follow the rule id into the new set (a rule
    /// that is gone drops out of the port view).
    pub fn set_rules(&mut self, rules: Arc<Rules>) {
        let map: Vec<Option<usize>> = self
            .rules
            .ports
            .iter()
            .map(|old| rules.ports.iter().position(|n| n.id == old.id))
            .collect();
        for f in self.flows.values_mut() {
            f.port_rule = f
                .port_rule
                .checked_sub(1)
                .and_then(|i| map.get(usize::from(i)).copied().flatten())
                .and_then(|n| u8::try_from(n + 1).ok())
                .unwrap_or(0);
        }
        self.agg.remap_ports(&map, rules.ports.len());
        self.rules = rules;
    }

    /// Packets and wire bytes fed in so far.
    pub fn totals(&self) -> Counts {
        self.totals
    }

    /// Flows in the table now.
    pub fn flows_tracked(&self) -> usize {
        self.flows.len()
    }

    /// Probe states in use (flows still being classified).
    pub fn probes_in_use(&self) -> usize {
        self.probes.in_use()
    }

    pub fn aggregator(&mut self) -> &mut Aggregator {
        &mut self.agg
    }

    /// Moves packet time forward without a packet (a worker whose share of the link is quiet
    /// hears the time from the dispatcher), ending flows idle past their timeout.
    pub fn advance_clock(&mut self, ts: i64) {
        if ts <= self.now {
            return;
        }
        self.now = ts;
        if self.last_sweep == i64::MIN {
            self.last_sweep = ts;
        }
        if self.now.saturating_sub(self.last_sweep) >= self.cfg.sweep_interval_ns {
            self.sweep(false);
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
                    || matches!(ip.frag, decode::Fragment::First { .. });
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

    #[cold]
    fn warn_link(&mut self, linktype: u32) {
        if !self.warned_links.contains(&linktype) {
            self.warned_links.push(linktype);
            self.warnings.push(format!(
                "link type {linktype} has no decoder: its frames are counted as undecodable"
            ));
        }
    }

    fn ip_packet(&mut self, ts: i64, minute: i64, a: Amount, mut ip: IpPacket<'_>, cut: bool) {
        let mut early = None;
        match ip.frag {
            Fragment::Whole => {}
            Fragment::First { id } => {
                let key = FragKey {
                    src: ip.src,
                    dst: ip.dst,
                    proto: ip.proto,
                    id,
                };
                self.make_frag_room();
                let e = self.frags.entry(key).or_insert(FragEntry {
                    last_ts: ts,
                    ports: None,
                    early: PendingCount::default(),
                });
                e.last_ts = ts;
                e.ports = Some((ip.sport, ip.dport));
                if e.early.packets > 0 {
                    early = Some(std::mem::take(&mut e.early));
                }
            }
            Fragment::Later { id } => {
                let key = FragKey {
                    src: ip.src,
                    dst: ip.dst,
                    proto: ip.proto,
                    id,
                };
                if let Some(e) = self.frags.get_mut(&key) {
                    e.last_ts = ts;
                    match e.ports {
                        Some((sp, dp)) => {
                            ip.sport = sp;
                            ip.dport = dp;
                        }
                        None => {
                            // Still waiting for the first fragment.
                            e.early.packets = e.early.packets.saturating_add(a.packets);
                            e.early.bytes += a.bytes;
                            e.early.samples = e.early.samples.saturating_add(1);
                            return;
                        }
                    }
                } else {
                    self.make_frag_room();
                    let dir = self.cfg.home_net.direction(ip.src, ip.dst);
                    self.frags.insert(
                        key,
                        FragEntry {
                            last_ts: ts,
                            ports: None,
                            early: PendingCount {
                                minute,
                                dir: dir as u8,
                                packets: a.packets,
                                bytes: a.bytes,
                                samples: 1,
                            },
                        },
                    );
                    return;
                }
            }
        }

        let (key, sender_lo) = FlowKey::of(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
        let transport = match ip.proto {
            decode::IPPROTO_TCP => Some(Transport::Tcp),
            decode::IPPROTO_UDP => Some(Transport::Udp),
            _ => None,
        };
        let flags = ip.tcp.map(|t| t.flags).unwrap_or(0);
        let new_connection = flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        if new_connection {
            if let Some(f) = self.flows.get(&key) {
                if f.closed() {
                    self.end_flow(&key, EndReason::Reused);
                }
            }
        }
        if !self.flows.contains_key(&key) {
            self.create_flow(key, sender_lo, ts, minute, &ip, transport);
        }
        let Pipeline {
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
        let dir = usize::from(sender_lo != flow.src_is_lo);
        let dir_tag = flow.dir_tag[dir];
        flow.last_ts = flow.last_ts.max(ts);
        flow.packets += u64::from(a.packets);
        flow.bytes += a.bytes;
        if flags & TCP_FIN != 0 {
            flow.fins |= if dir == 0 { FIN_FROM_SRC } else { FIN_FROM_DST };
        }
        if flags & TCP_RST != 0 {
            flow.rst = true;
        }
        if let Some(t) = transport {
            if let Some(rule) = rules.port_rule_for(t, ip.sport, ip.dport) {
                agg.bucket(minute).add_port_amount(rule, dir_tag, a);
            }
        }
        if flow.verdict.is_none() {
            if let (Some(t), Some(pi)) = (transport, flow.probe) {
                let probe = probes.get(pi);
                let answer =
                    probe.on_packet(rules, t, dir, ip.tcp, (ip.sport, ip.dport), ip.payload, cut);
                let decided = match answer {
                    Answer::Verdict(v, evidence) => {
                        flow.evidence = true;
                        flow.proof = evidence;
                        Some(v)
                    }
                    Answer::NotThis => {
                        refresh_correlation(flow, &key, endpoints, ts);
                        Some(fallback(rules, flow))
                    }
                    Answer::Undecided
                        if flow.packets >= MAX_PROBE_PACKETS
                            || (flow.packets >= 24 && probe.any_done()) =>
                    {
                        refresh_correlation(flow, &key, endpoints, ts);
                        Some(fallback(rules, flow))
                    }
                    Answer::Undecided => None,
                };
                if let Some(v) = decided {
                    set_verdict(flow, v, probes, agg);
                    // Only strong evidence teaches: a shape, framing alone, a port or a
                    // learned endpoint never spreads to other flows.
                    if v.class() == Class::Bittorrent && flow.proof.strong() {
                        learn_flow(endpoints, rules, &ip, dir == 0, ts);
                    }
                }
            }
        }
        if let Some(v) = flow.verdict {
            if !ip.payload.is_empty() && flow.proof.strong() {
                learn_advertised(endpoints, rules, v.proto, &ip, ts);
            }
        }
        if let Some(e) = early {
            flow.packets += u64::from(e.packets);
            flow.bytes += e.bytes;
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
        if self.flows.len() >= self.cfg.max_flows {
            self.evict();
        }
        let home = &self.cfg.home_net;
        let port_rule = transport
            .and_then(|t| self.rules.port_rule_for(t, ip.sport, ip.dport))
            .map(|i| (i + 1) as u8)
            .unwrap_or(0);
        let correlated = transport.and_then(|_| {
            let e = |addr, port| Endpoint {
                addr,
                port,
                proto: ip.proto,
            };
            let (a, b) = (
                self.endpoints.lookup(&e(ip.dst, ip.dport), ts),
                self.endpoints.lookup(&e(ip.src, ip.sport), ts),
            );
            a.into_iter().chain(b).min()
        });
        let (verdict, probe) = match transport {
            Some(_) => (None, Some(self.probes.alloc())),
            // Nothing to probe in ICMP, ESP and the like.
            None => (Some(Verdict::OTHER), None),
        };
        self.flows.insert(
            key,
            Flow {
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
                verdict,
                probe,
                port_rule,
                evidence: false,
                proof: Evidence::None,
                correlated,
                udp: ip.proto == decode::IPPROTO_UDP,
                pending: [PendingCount::default(); MAX_PENDING],
                n_pending: 0,
                host_hash: [hll::hash_addr(key.lo), hll::hash_addr(key.hi)],
                hosts_minute: i64::MIN,
            },
        );
        self.agg.bucket(minute).health.flows_created += 1;
    }

    fn end_flow(&mut self, key: &FlowKey, reason: EndReason) {
        if let Some(mut f) = self.flows.remove(key) {
            let Pipeline {
                probes,
                agg,
                rules,
                ended,
                flow_sink,
                endpoints,
                ..
            } = self;
            finish_flow(
                key,
                &mut f,
                reason,
                rules,
                endpoints,
                probes,
                agg,
                flow_sink.is_some().then_some(ended),
            );
            self.write_ended();
        }
    }

    /// Ends flows idle past their timeout (all of them at the end of input), and forgets
    /// stale fragment state.
    fn sweep(&mut self, eof: bool) {
        let now = self.now;
        self.last_sweep = now;
        let Pipeline {
            cfg,
            flows,
            frags,
            probes,
            agg,
            rules,
            ended,
            flow_sink,
            endpoints,
            ..
        } = self;
        let want_records = flow_sink.is_some();
        flows.retain(|key, f| {
            let timeout = if f.closed() {
                cfg.linger_ns
            } else if key.proto == decode::IPPROTO_TCP {
                cfg.tcp_idle_ns
            } else {
                cfg.udp_idle_ns
            };
            let reason = if eof {
                EndReason::Eof
            } else if now.saturating_sub(f.last_ts) > timeout {
                if f.closed() {
                    EndReason::Closed
                } else {
                    EndReason::Idle
                }
            } else {
                return true;
            };
            finish_flow(
                key,
                f,
                reason,
                rules,
                endpoints,
                probes,
                agg,
                want_records.then_some(&mut *ended),
            );
            false
        });
        frags.retain(|_, e| {
            if eof || now.saturating_sub(e.last_ts) > cfg.frag_timeout_ns {
                orphan_fragments(agg, &e.early);
                false
            } else {
                true
            }
        });
        self.write_ended();
    }

    /// Makes room in a full flow table by ending the longest-idle sixteenth of its flows.
    #[cold]
    fn evict(&mut self) {
        self.sweep(false);
        if self.flows.len() < self.cfg.max_flows {
            return;
        }
        self.evict_scratch.clear();
        self.evict_scratch
            .extend(self.flows.values().map(|f| f.last_ts));
        let k = (self.evict_scratch.len() / 16).max(1) - 1;
        let (_, &mut threshold, _) = self.evict_scratch.select_nth_unstable(k);
        let minute = minute_of(self.now);
        let Pipeline {
            flows,
            probes,
            agg,
            rules,
            ended,
            flow_sink,
            endpoints,
            ..
        } = self;
        let want_records = flow_sink.is_some();
        let mut evicted = 0;
        flows.retain(|key, f| {
            if f.last_ts > threshold {
                return true;
            }
            finish_flow(
                key,
                f,
                EndReason::Evicted,
                rules,
                endpoints,
                probes,
                agg,
                want_records.then_some(&mut *ended),
            );
            evicted += 1;
            false
        });
        agg.bucket(minute).health.flows_evicted += evicted;
        self.write_ended();
    }

    #[cold]
    fn make_frag_room(&mut self) {
        if self.frags.len() < self.cfg.max_frags {
            return;
        }
        let oldest = self
            .frags
            .values()
            .map(|e| e.last_ts)
            .min()
            .unwrap_or(i64::MIN);
        let agg = &mut self.agg;
        self.frags.retain(|_, e| {
            if e.last_ts <= oldest {
                orphan_fragments(agg, &e.early);
                false
            } else {
                true
            }
        });
    }

    fn write_ended(&mut self) {
        if self.ended.is_empty() {
            return;
        }
        // Flows ending in one sweep leave the table in hash order: sort for stable output.
        self.ended.sort_by(|a, b| {
            (a.first_ts, a.src, a.src_port, a.dst, a.dst_port, a.l4)
                .cmp(&(b.first_ts, b.src, b.src_port, b.dst, b.dst_port, b.l4))
        });
        if let Some(sink) = &mut self.flow_sink {
            for r in &self.ended {
                if self.sink_error.is_none() {
                    if let Err(e) = sink.write(r) {
                        self.sink_error = Some(e);
                    }
                }
            }
        }
        self.ended.clear();
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

/// Looks the flow's ends up again when it is decided without evidence: a peer identified
/// after the flow began (in the same flow's lifetime) correlates it too. Matters most for
/// sampled input, where a flow's first sample rarely shows the evidence that names its peer.
fn refresh_correlation(flow: &mut Flow, key: &FlowKey, endpoints: &SharedEndpoints, ts: i64) {
    if flow.correlated.is_some() || flow.evidence {
        return;
    }
    let e = |addr, port| Endpoint {
        addr,
        port,
        proto: key.proto,
    };
    let (a, b) = (
        endpoints.lookup(&e(key.lo, key.lo_port), ts),
        endpoints.lookup(&e(key.hi, key.hi_port), ts),
    );
    flow.correlated = a.into_iter().chain(b).min();
}

/// The verdict of a flow whose payload said nothing either way: BitTorrent by correlation
/// when an end of it is a learned BitTorrent endpoint, else its port rule, if any. Records
/// what it rests on in `flow.proof`.
fn fallback(rules: &Rules, flow: &mut Flow) -> Verdict {
    if flow.evidence {
        return Verdict::OTHER;
    }
    if let Some(how) = flow.correlated {
        flow.proof = match how {
            Provenance::Observed => Evidence::ObservedPeer,
            Provenance::Advertised => Evidence::AdvertisedPeer,
            Provenance::DhtNode => Evidence::DhtNode,
        };
        return Verdict {
            proto: if flow.udp {
                Proto::Utp
            } else {
                Proto::PeerwireMse
            },
            method: Method::Correlation,
        };
    }
    match flow
        .port_rule
        .checked_sub(1)
        .and_then(|i| rules.ports.get(usize::from(i)))
    {
        Some(rule) => {
            flow.proof = Evidence::Port;
            Verdict {
                proto: rule.proto,
                method: Method::Port,
            }
        }
        None => Verdict::OTHER,
    }
}

fn set_verdict(flow: &mut Flow, v: Verdict, probes: &mut ProbePool, agg: &mut Aggregator) {
    flow.verdict = Some(v);
    if let Some(pi) = flow.probe.take() {
        probes.release(pi);
    }
    let bt = v.class() == Class::Bittorrent;
    for p in &flow.pending[..usize::from(flow.n_pending)] {
        let b = agg.bucket(p.minute);
        let held = Amount::held(p.packets, p.bytes, p.samples);
        b.add_amount(v.proto, v.method, Direction::ALL[usize::from(p.dir)], held);
        if bt {
            // Held packets are BitTorrent in their own minute: so are their hosts.
            b.hosts.insert_hash(flow.host_hash[0]);
            b.hosts.insert_hash(flow.host_hash[1]);
        }
    }
    flow.n_pending = 0;
}

/// Counts packets of a flow: in the series if it has a verdict, else held in the flow.
fn account(
    flow: &mut Flow,
    rules: &Rules,
    probes: &mut ProbePool,
    agg: &mut Aggregator,
    minute: i64,
    dir: Direction,
    a: Amount,
) {
    let samples = u16::try_from(a.est.samples).unwrap_or(u16::MAX);
    if flow.verdict.is_none() && !flow.add_pending(minute, dir, a.packets, a.bytes, samples) {
        // No room to hold more: decide on what is known.
        let v = fallback(rules, flow);
        set_verdict(flow, v, probes, agg);
    }
    if let Some(v) = flow.verdict {
        if flow.n_pending == 0 {
            let b = agg.bucket(minute);
            b.add_amount(v.proto, v.method, dir, a);
            if flow.hosts_minute != minute && v.class() == Class::Bittorrent {
                flow.hosts_minute = minute;
                b.hosts.insert_hash(flow.host_hash[0]);
                b.hosts.insert_hash(flow.host_hash[1]);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finish_flow(
    key: &FlowKey,
    f: &mut Flow,
    reason: EndReason,
    rules: &Rules,
    endpoints: &SharedEndpoints,
    probes: &mut ProbePool,
    agg: &mut Aggregator,
    records: Option<&mut Vec<FlowRecord>>,
) {
    if f.verdict.is_none() {
        refresh_correlation(f, key, endpoints, f.last_ts);
        let v = fallback(rules, f);
        set_verdict(f, v, probes, agg);
    }
    let v = f.verdict.unwrap_or(Verdict::OTHER);
    let h = &mut agg.bucket(minute_of(f.last_ts)).health;
    h.flows_ended += 1;
    if v == Verdict::OTHER && !f.evidence {
        h.flows_unclassified += 1;
    }
    if let Some(out) = records {
        let (src, sp, dst, dp) = if f.src_is_lo {
            (key.lo, key.lo_port, key.hi, key.hi_port)
        } else {
            (key.hi, key.hi_port, key.lo, key.lo_port)
        };
        out.push(FlowRecord {
            first_ts: f.first_ts,
            last_ts: f.last_ts,
            l4: key.l4_name(),
            src,
            src_port: sp,
            dst,
            dst_port: dp,
            verdict: v,
            packets: f.packets,
            bytes: f.bytes,
            end: reason,
            evidence: f.proof,
        });
    }
}

fn orphan_fragments(agg: &mut Aggregator, early: &PendingCount) {
    if early.packets == 0 {
        return;
    }
    let b = agg.bucket(early.minute);
    let held = Amount::held(early.packets, early.bytes, early.samples);
    b.add_amount(
        Proto::Other,
        Method::None,
        Direction::ALL[usize::from(early.dir)],
        held,
    );
    b.health.fragments_orphaned += u64::from(early.packets);
}

/// Whether an endpoint may be learned: not a well-known service's port (a poisoned peer list
/// naming a web or DNS server must not turn its traffic into BitTorrent). Addresses that
/// cannot be a peer's are refused by the table itself.
fn learnable(rules: &Rules, port: u16) -> bool {
    !rules.is_service(Transport::Tcp, port) && !rules.is_service(Transport::Udp, port)
}

/// Learns the endpoints of a flow just identified with strong evidence. A TCP flow's
/// initiator speaks from an ephemeral port, so only the side it connected to is learned (for
/// TCP and UDP: clients take uTP and DHT on their TCP listen port); both ends of a UDP flow
/// are listening sockets.
fn learn_flow(
    endpoints: &SharedEndpoints,
    rules: &Rules,
    ip: &IpPacket<'_>,
    from_src: bool,
    ts: i64,
) {
    let (responder, initiator) = if from_src {
        ((ip.dst, ip.dport), (ip.src, ip.sport))
    } else {
        ((ip.src, ip.sport), (ip.dst, ip.dport))
    };
    let learn = |(addr, port): (u128, u16)| {
        if learnable(rules, port) {
            endpoints.learn_peer(addr, port, Provenance::Observed, ts);
        }
    };
    learn(responder);
    if ip.proto == decode::IPPROTO_UDP {
        learn(initiator);
    }
}

/// Learns the peers and nodes advertised in DHT messages, tracker replies and PEX messages of
/// a flow identified with strong evidence: peers for both transports, DHT nodes for UDP only.
fn learn_advertised(
    endpoints: &SharedEndpoints,
    rules: &Rules,
    proto: Proto,
    ip: &IpPacket<'_>,
    ts: i64,
) {
    let mut learn = |addr: [u8; 16], port: u16, node: bool| {
        if !learnable(rules, port) {
            return;
        }
        let addr = u128::from_be_bytes(addr);
        if node {
            let e = Endpoint {
                addr,
                port,
                proto: decode::IPPROTO_UDP,
            };
            endpoints.learn(e, Provenance::DhtNode, ts);
        } else {
            endpoints.learn_peer(addr, port, Provenance::Advertised, ts);
        }
    };
    let p = ip.payload;
    match proto {
        Proto::Dht => peers::for_each_advertised_peer(p, &mut learn),
        Proto::TrackerHttp => tracker_http::for_each_tracker_reply_peer(p, &mut learn),
        // BEP 11 PEX in plaintext peer wire: `added` and `added6` of a ut_pex message.
        Proto::Peerwire => peerwire::for_each_pex_peer(p, &mut |a, port| learn(a, port, false)),
        // BEP 15 announce response.
        Proto::TrackerUdp => {
            tracker_udp::for_each_announce_peer(p, ip.v6, &mut |a, port| learn(a, port, false))
        }
        _ => {}
    }
}
