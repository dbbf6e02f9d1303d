//! The engine behind every front door: one pass down per packet, decode → fragments → flow
//! table → probes → correlation → ledger.
//!
//! Every packet lands in exactly one series counter: at once when its flow has a verdict, or
//! when the verdict is reached (packets seen before it are held per flow, per minute), or when
//! the flow ends. Time is packet time throughout. [`workers::Workers`] runs N engines side by
//! side; both implement [`PacketSink`], which is what a front door drives.

mod config;
mod control;
mod decide;
mod ending;
mod settle;
mod split;
pub mod workers;

use std::io;
use std::sync::Arc;

pub use config::Config;
pub use workers::{Flushed, Workers};

use crate::aggregate::members::MEMBER_NONE;
use crate::aggregate::{ledger, minute_of, Aggregator, Amount, Counts, Direction, Tag};
use crate::capture::RawPacket;
use crate::classify::endpoints::{EndpointTable, SharedEndpoints};
use crate::classify::{correlate, Answer, Class, Method, Proto, Rules, Transport};
use crate::classify::{Evidence, Verdict};
use crate::decode::{self, Decoded, Fragment, IpPacket, TCP_ACK, TCP_SYN};
use crate::flow::frag::{Frags, Track};
use crate::flow::record::{FlowRecord, FlowSink};
use crate::flow::table::FlowTable;
use crate::flow::{Classification, Flow, FlowKey, FlowState, PendingCount, Stage};
use decide::{account, decide, fallback, Probing};

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
    probing: Probing,
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
    /// Flows evicted while still being classified (a flood of new 5-tuples filling the
    /// table with undecided flows); counted here, not yet in the health series.
    evicted_probing: u64,
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
            probing: Probing::default(),
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
            evicted_probing: 0,
        }
    }

    /// Counts and classifies one captured frame.
    pub fn process(&mut self, pkt: &RawPacket<'_>) {
        self.process_weighted(pkt, 1);
    }

    /// Asks for the flow table's line the next packet (`linktype`, `data`) will look up, when
    /// its bytes say at once which flow it is (plain TCP or UDP): a hint, called before
    /// [`process`](Self::process) of the packet before it, so that cache miss overlaps that
    /// packet's work. A flood of new flows misses the index on nearly every packet.
    #[inline]
    pub fn prefetch(&self, linktype: u32, data: &[u8]) {
        if let Some(key) = workers::raw_flow_key(linktype, data) {
            self.flows.prefetch(&key);
        }
    }

    /// [`process`](Self::process), first asking for the line the next packet (from
    /// [`crate::capture::Source::read_ahead`]) will look up ([`prefetch`](Self::prefetch)).
    #[inline]
    pub fn process_ahead(&mut self, pkt: &RawPacket<'_>, next: Option<(u32, &[u8])>) {
        if let Some((linktype, data)) = next {
            self.prefetch(linktype, data);
        }
        self.process(pkt);
    }

    /// Counts and classifies one frame standing for `weight` frames (a packet sample taken
    /// at 1 in `weight`, e.g. from sFlow): its packets and wire bytes count `weight` times.
    pub fn process_weighted(&mut self, pkt: &RawPacket<'_>, weight: u32) {
        self.process_sample(pkt, weight, MEMBER_NONE);
    }

    /// [`Engine::process_weighted`] for a sample of an exchange member (sFlow `--members`:
    /// its member index, see [`Tag`]): its series and port-view counts are also kept by
    /// member.
    pub fn process_sample(&mut self, pkt: &RawPacket<'_>, weight: u32, member: u16) {
        let ts = pkt.ts_ns;
        let minute = minute_of(ts);
        let a = Amount::sample(u64::from(pkt.wire_len), weight.max(1));
        self.settle_due();
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
                self.ip_packet(ts, minute, a, ip, cut, member)
            }
            Decoded::NonIp => {
                let tag = Tag::new(Direction::Unknown, member);
                bucket.add_tagged(Proto::NonIp, Method::None, tag, a);
                bucket.health.non_ip += u64::from(a.packets);
            }
            Decoded::Undecodable | Decoded::UnknownLink => {
                let tag = Tag::new(Direction::Unknown, member);
                bucket.add_tagged(Proto::Undecodable, Method::None, tag, a);
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
    #[allow(clippy::too_many_arguments)]
    fn ip_packet(
        &mut self,
        ts: i64,
        minute: i64,
        a: Amount,
        mut ip: IpPacket<'_>,
        cut: bool,
        member: u16,
    ) {
        // Fragments: a later fragment gets its datagram's ports, or waits for them.
        let Engine {
            frags, agg, cfg, ..
        } = self;
        let orphaned = |e: &PendingCount| ledger::orphan_fragments(agg, e);
        let track = frags.track(
            &mut ip,
            ts,
            minute,
            &cfg.home_net,
            member,
            a.packets,
            a.bytes,
            orphaned,
        );
        let Track::Go(early) = track else {
            return;
        };

        // Flow table: the packet's flow, new if need be.
        let (key, sender_lo) = FlowKey::of(ip.src, ip.sport, ip.dst, ip.dport, ip.proto);
        let transport = match ip.proto {
            decode::IPPROTO_TCP => Some(Transport::Tcp),
            decode::IPPROTO_UDP => Some(Transport::Udp),
            _ => None,
        };
        let flags = ip.tcp.map(|t| t.flags).unwrap_or(0);
        let at = self.open_flow(key, sender_lo, ts, minute, &ip, transport, flags);
        let Engine {
            flows,
            probing,
            agg,
            rules,
            endpoints,
            ..
        } = self;
        let Some(flow) = flows.at_mut(at) else {
            return;
        };
        let dir = usize::from(sender_lo != flow.state.src_is_lo);
        let dir_tag = flow.state.touch(ts, a.packets, a.bytes, flags, dir);
        flow.class.sampled |= a.packets > 1;
        let tag = Tag::new(dir_tag, member);

        // Probes, while the flow is undecided; a flow decided on strong evidence teaches
        // its ends.
        if let (Some(t), Stage::Probing(pi)) = (transport, flow.class.stage) {
            let (tcp, ports) = (ip.tcp, (ip.sport, ip.dport));
            let probed = probing.probe(pi, rules, t, dir, tcp, ports, ip.payload, cut);
            let (answer, any_done) = (probed.answer, probed.any_done);
            if probed.malformed > 0 {
                agg.bucket(minute).health.bt_malformed += u64::from(probed.malformed);
            }
            let decided = match answer {
                Answer::Verdict(v, evidence) => {
                    flow.class.evidence = true;
                    flow.class.proof = evidence;
                    Some(v)
                }
                Answer::NotThis => fallback(flow, &key, rules, endpoints, probing, ts, true),
                Answer::Undecided
                    if flow.state.packets >= MAX_PROBE_PACKETS
                        || (flow.state.packets >= 24 && any_done) =>
                {
                    fallback(flow, &key, rules, endpoints, probing, ts, true)
                }
                Answer::Undecided => None,
            };
            if let Some(v) = decided {
                decide(flow, v, probing, agg);
                // Only strong evidence teaches: a shape, framing alone, a port or a
                // learned endpoint never spreads to other flows.
                if v.class() == Class::Bittorrent && flow.class.proof.strong() {
                    correlate::learn_flow(endpoints, rules, &ip, dir == 0, ts);
                }
            }
        }

        // Correlation: the peers and nodes a strongly identified flow advertises.
        if let Some(v) = flow.class.verdict() {
            if !ip.payload.is_empty() && flow.class.proof.strong() {
                correlate::learn_advertised(endpoints, rules, v.proto, &ip, ts);
            }
        }

        // Ledger: the port view, then the series (or held until the verdict).
        if let Some(rule) = transport.and_then(|t| rules.port_rule_for(t, ip.sport, ip.dport)) {
            ledger::credit_port(agg, minute, rule, tag, a);
        }
        if let Some(e) = early {
            flow.state.packets += u64::from(e.packets);
            flow.state.bytes += e.bytes;
            let held = Amount::held(e.packets, e.bytes, e.samples);
            account(
                flow, &key, rules, endpoints, probing, agg, e.minute, e.tag, held,
            );
        }
        account(flow, &key, rules, endpoints, probing, agg, minute, tag, a);
    }

    /// Makes sure the packet's flow is in the table, and returns its position: a SYN ends
    /// the closed flow whose 5-tuple it reuses, and a new flow is created (making room in a
    /// full table first). The key is hashed once.
    #[allow(clippy::too_many_arguments)]
    fn open_flow(
        &mut self,
        key: FlowKey,
        sender_lo: bool,
        ts: i64,
        minute: i64,
        ip: &IpPacket<'_>,
        transport: Option<Transport>,
        flags: u8,
    ) -> usize {
        let h = self.flows.hash(&key);
        if let Some(i) = self.flows.find(h, &key) {
            if flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
                return i;
            }
            match self.flows.reuse_at(i) {
                Some(e) => {
                    self.ending().end(e);
                    self.write_ended();
                }
                None => return i,
            }
        }
        if self.flows.is_full() {
            self.make_flow_room();
        }
        let port_rule = transport
            .and_then(|t| self.rules.port_rule_for(t, ip.sport, ip.dport))
            .map(|i| (i + 1) as u8)
            .unwrap_or(0);
        let (dst, src) = ((ip.dst, ip.dport), (ip.src, ip.sport));
        // A lookup that may not see what one engine's would (asked before it looks) is made
        // once it can, as of this position.
        let at = self.endpoints.position();
        let settled = self.endpoints.settled(at);
        let correlated = transport
            .filter(|_| settled)
            .and_then(|_| correlate::lookup_ends(&self.endpoints, ip.proto, dst, src, ts));
        let stage = match transport {
            Some(_) => {
                let pi = self.probing.alloc();
                if !settled {
                    self.probing.wait_open(pi, at, ts, key, &self.endpoints);
                }
                Stage::Probing(pi)
            }
            // Nothing to probe in ICMP, ESP and the like.
            None => Stage::Decided(Verdict::OTHER),
        };
        let flow = Flow {
            state: FlowState::new(&key, sender_lo, ts, ip, &self.cfg.home_net, port_rule),
            class: Classification {
                stage,
                evidence: false,
                proof: Evidence::None,
                correlated,
                sampled: false,
            },
        };
        self.agg.bucket(minute).health.flows_created += 1;
        self.flows.insert_hashed(h, key, flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet, IPv4 10.0.0.1:40000 -> 10.0.0.2:51413, TCP with `payload`.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (40 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&51413u16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// Ethernet, IPv4 10.0.0.`src`:`sport` -> 10.0.0.`dst`:`dport`, TCP ACK|PSH (seq 1) with
    /// `payload`.
    fn tcp_frame(src: u8, sport: u16, dst: u8, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = frame(payload);
        f[14 + 15] = src;
        f[14 + 19] = dst;
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    /// A flow of one engine of an offline `--threads` run (workers sharing the endpoint table
    /// without waiting, `split`) whose verdict rests on an endpoint another worker learns from
    /// an earlier packet, but processes later: its open lookup and its verdict wait, it holds
    /// its packets (more minutes than the held counts have room for), and once the other
    /// worker has passed, the series are those of one engine reading the stream in order.
    #[test]
    fn lookups_settle_once_the_other_workers_have_passed() {
        use crate::classify::endpoints::StreamOrder;
        let rules = Arc::new(Rules::builtin().expect("built-in rules"));
        let t0 = 28_000_000 * 60_000_000_000i64;
        let s = 1_000_000_000i64;
        let mut hs = b"\x13BitTorrent protocol\0\0\0\0\0\x10\0\x05".to_vec();
        hs.extend_from_slice(&[7u8; 20]);
        hs.extend_from_slice(b"-TR3000-bbbbbbbbbbbb");
        // Stream packets 0 and 1: a handshake both ways with 10.0.0.2:51413, which teaches it.
        let taught = [
            tcp_frame(3, 40001, 2, 51413, &hs),
            tcp_frame(2, 51413, 3, 40001, &hs),
        ];
        // Packets 2..12: a payload-free flow with it, one every 50 s.
        let silent: Vec<Vec<u8>> = (0..10)
            .map(|_| tcp_frame(1, 40000, 2, 51413, &[]))
            .collect();
        fn pkt(f: &[u8], ts: i64) -> RawPacket<'_> {
            RawPacket {
                ts_ns: ts,
                wire_len: f.len() as u32,
                linktype: 1,
                data: f,
            }
        }
        let silent_ts = |k: usize| t0 + s + k as i64 * 50 * s;
        let mut one = Engine::new(Config::default(), rules.clone());
        for f in &taught {
            one.process(&pkt(f, t0));
        }
        for (k, f) in silent.iter().enumerate() {
            one.process(&pkt(f, silent_ts(k)));
        }
        let want = one.finish_all().agg.series_rows();
        assert!(want.iter().any(|r| r.method == Method::Correlation));

        let order = StreamOrder::no_wait(2);
        let table = SharedEndpoints::new(Config::default().endpoint_ttl_ns, 1 << 10, 1);
        let mut late = Engine::new(Config::default(), rules.clone());
        late.set_endpoints(table.ordered(order.clone(), 0));
        let mut teacher = Engine::new(Config::default(), rules);
        teacher.set_endpoints(table.ordered(order, 1));
        for (k, f) in silent.iter().enumerate() {
            late.endpoints().set_position(2 * (k as u64 + 2));
            late.process(&pkt(f, silent_ts(k)));
        }
        // The teacher has not passed packet 0: the flow's lookups wait, and so does its
        // verdict once it has held packets of as many minutes as there is room for.
        assert!(!late.probing.settling.is_empty());
        let held = late.flows.flows_mut().next().map(|f| f.class.stage);
        assert!(matches!(held, Some(Stage::Settling(_))), "{held:?}");
        // It ends (the input does) before the answer: it waits with its end.
        late.sweep(true);
        assert_eq!(late.flows.len(), 0);
        assert!(!late.probing.settling.is_empty());
        let mut got = late.flush_minutes(i64::MIN);
        let teaching = std::thread::spawn(move || {
            for (k, f) in taught.iter().enumerate() {
                teacher.endpoints().set_position(2 * k as u64);
                teacher.process(&pkt(f, t0));
            }
            let eps = teacher.endpoints().clone();
            let _done = workers::Done(&eps);
            teacher.finish_all()
        });
        workers::merge(&mut got, late.finish_all());
        workers::merge(&mut got, teaching.join().expect("teacher"));
        assert!(late.probing.settling.is_empty());
        assert_eq!(got.agg.series_rows(), want);
    }

    #[test]
    fn malformed_handshakes_are_counted_in_their_minute() {
        let rules = Rules::builtin().expect("built-in rules");
        let mut e = Engine::new(Config::default(), Arc::new(rules));
        // The handshake's first byte and the start of its name, then a wrong name.
        let mut bad = b"\x13BitTorrent protocoX".to_vec();
        bad.extend_from_slice(&[0u8; 48]);
        let f = frame(&bad);
        let t0 = 28_000_000 * 60_000_000_000;
        e.process(&RawPacket {
            ts_ns: t0,
            wire_len: f.len() as u32,
            linktype: 1,
            data: &f,
        });
        let mut good = b"\x13BitTorrent protocol".to_vec();
        good.extend_from_slice(&[0u8; 48]);
        let g = frame(&good);
        e.process(&RawPacket {
            ts_ns: t0 + 61_000_000_000,
            wire_len: g.len() as u32,
            linktype: 1,
            data: &g,
        });
        e.finish().expect("finish");
        let health = e.aggregator().health_rows();
        let bad_per_minute: Vec<u64> = health.iter().map(|(_, h)| h.bt_malformed).collect();
        assert_eq!(bad_per_minute, [1, 0]);
    }
}
