//! sFlow v5 input: datagrams from switches' agents become weighted packet samples for the
//! same pipeline as captured packets (a raw header sampled at 1 in N is a packet cut at the
//! header size, of its frame's length, counted N times), plus the agents' own health
//! (sequence gaps, dropped samples, restarts) and the link load of their interface counters.
//!
//! All state is bounded: at most [`MAX_AGENTS`] agents and [`MAX_KEYED`] sources and
//! interfaces are tracked (idle ones are forgotten first); datagrams beyond still count.

pub mod decode;
pub mod listen;
pub mod members;

use std::collections::BTreeMap;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::aggregate::members::MEMBER_NONE;
use crate::aggregate::{minute_of, HomeNet, SflowHealth, NS_PER_MIN};
use crate::capture::RawPacket;
use crate::decode::{linktype, Addr, IPPROTO_TCP, IPPROTO_UDP};
use crate::engine::Engine;
use decode::{CounterRecord, CounterSample, FlowRecord, FlowSample, IfCounters, Sample, Source};

/// The collector port IANA assigned to sFlow.
pub const DEFAULT_PORT: u16 = 6343;
/// Highest sampling rate accepted (1 in 16 M); a larger one is counted as malformed.
pub const MAX_RATE: u32 = 1 << 24;
/// Longest frame accepted from a sample, in bytes.
pub const MAX_FRAME: u32 = 1 << 17;
/// Agents (address and sub-agent) tracked at once.
pub const MAX_AGENTS: usize = 4096;
/// Sample sources and interfaces tracked at once (each).
pub const MAX_KEYED: usize = 1 << 16;
/// State of an agent not heard from for this long may be forgotten when room is needed.
const IDLE_NS: i64 = 3600 * 1_000_000_000;
/// A sequence number this far behind the last one is a restart, not a late datagram.
const LATE_WINDOW: u32 = 64;
/// Link type given to raw headers of protocols without a decoder (counted as undecodable).
const UNKNOWN_HEADER_LINK: u32 = 0x7fff_0000;

/// An agent: its address and sub-agent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentKey {
    pub addr: Addr,
    pub sub_agent: u32,
}

#[derive(Debug, Clone, Copy)]
struct AgentState {
    last_seq: u32,
    last_uptime: u32,
    /// Bumped at each restart: counters and drop totals are measured again from there.
    epoch: u32,
    last_seen: i64,
}

#[derive(Debug, Clone, Copy)]
struct DropState {
    epoch: u32,
    drops: u32,
    last_seen: i64,
}

#[derive(Debug, Clone, Copy)]
struct IfState {
    epoch: u32,
    in_octets: u64,
    out_octets: u64,
    last_seen: i64,
}

/// Link load of one interface in one minute, from its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkLoad {
    pub in_octets: u64,
    pub out_octets: u64,
    pub counter_samples: u64,
    /// ifSpeed in bit/s, as last reported.
    pub if_speed: u64,
}

/// Per-agent and per-interface rows, per minute.
#[derive(Debug, Default)]
pub struct AgentRows {
    pub agents: Vec<(i64, AgentKey, SflowHealth)>,
    pub links: Vec<(i64, AgentKey, u32, LinkLoad)>,
}

/// Options of the sFlow front doors.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// UDP port of the datagrams in captures (`analyze --sflow`).
    pub port: u16,
    /// Only datagrams whose agent address is in these networks are read.
    pub agents: Option<HomeNet>,
    /// Per agent and interface link load from counters, per minute (CSV).
    pub counters: Option<std::path::PathBuf>,
    /// Per agent health per minute (CSV).
    pub agent_health: Option<std::path::PathBuf>,
    /// `--members`: samples are counted by exchange member too.
    pub members: Option<std::sync::Arc<members::Members>>,
}

type Map<K, V> = HashMap<K, V, FixedState>;

/// Turns datagrams into weighted packets for a pipeline, and keeps the agents' state.
pub struct Collector {
    filter: Option<HomeNet>,
    members: Option<std::sync::Arc<members::Members>>,
    agents: Map<AgentKey, AgentState>,
    drops: Map<(AgentKey, Source), DropState>,
    ifs: Map<(AgentKey, u32), IfState>,
    agent_rows: BTreeMap<(i64, AgentKey), SflowHealth>,
    link_rows: BTreeMap<(i64, AgentKey, u32), LinkLoad>,
    scratch: [u8; 64],
}

impl Collector {
    pub fn new(filter: Option<HomeNet>) -> Collector {
        Collector {
            filter,
            members: None,
            agents: Map::default(),
            drops: Map::default(),
            ifs: Map::default(),
            agent_rows: BTreeMap::new(),
            link_rows: BTreeMap::new(),
            scratch: [0; 64],
        }
    }

    /// Counts each sample by its member too (`--members`).
    pub fn set_members(&mut self, members: Option<std::sync::Arc<members::Members>>) {
        self.members = members;
    }

    /// Agents, sources and interfaces tracked now.
    pub fn tracked(&self) -> (usize, usize, usize) {
        (self.agents.len(), self.drops.len(), self.ifs.len())
    }

    /// Reads one datagram received (or captured) at `ts_ns`: its samples go to `p`, its
    /// health to the minute's bucket of `p`.
    pub fn datagram(&mut self, ts_ns: i64, buf: &[u8], p: &mut Engine) {
        let minute = minute_of(ts_ns);
        let mut h = SflowHealth::default();
        let d = match decode::parse(buf) {
            Ok(d) => d,
            Err(_) => {
                h.malformed = 1;
                p.aggregator().bucket(minute).sflow.merge(&h);
                return;
            }
        };
        if let Some(f) = &self.filter {
            if !f.contains(d.agent) {
                h.rejected = 1;
                p.aggregator().bucket(minute).sflow.merge(&h);
                return;
            }
        }
        let key = AgentKey {
            addr: d.agent,
            sub_agent: d.sub_agent,
        };
        h.datagrams = 1;
        let epoch = self.agent_seen(ts_ns, key, d.sequence, d.uptime_ms, &mut h);
        for s in d.samples() {
            match s {
                Ok(Sample::Flow(f)) => self.flow_sample(ts_ns, key, epoch, &f, p, &mut h),
                Ok(Sample::Counters(c)) => self.counter_sample(ts_ns, key, epoch, &c, &mut h),
                Ok(Sample::Unknown { .. }) => h.unknown += 1,
                Err(_) => {
                    h.malformed += 1;
                    break;
                }
            }
        }
        p.aggregator().bucket(minute).sflow.merge(&h);
        if epoch.is_some() {
            self.agent_rows.entry((minute, key)).or_default().merge(&h);
        }
    }

    /// Sequence gaps and restarts of an agent; its epoch, or None when it is not tracked.
    fn agent_seen(
        &mut self,
        ts: i64,
        key: AgentKey,
        seq: u32,
        uptime: u32,
        h: &mut SflowHealth,
    ) -> Option<u32> {
        if !self.agents.contains_key(&key) {
            if self.agents.len() >= MAX_AGENTS {
                self.forget_idle(ts);
                if self.agents.len() >= MAX_AGENTS {
                    return None;
                }
            }
            self.agents.insert(
                key,
                AgentState {
                    last_seq: seq,
                    last_uptime: uptime,
                    epoch: 0,
                    last_seen: ts,
                },
            );
            return Some(0);
        }
        let a = self.agents.get_mut(&key)?;
        a.last_seen = ts;
        let ahead = seq.wrapping_sub(a.last_seq);
        if uptime < a.last_uptime && ahead != 1 {
            // Booted again: sequence numbers and counters start over.
            a.epoch = a.epoch.wrapping_add(1);
            h.restarts += 1;
            a.last_seq = seq;
        } else if ahead != 0 && ahead < 1 << 31 {
            h.datagrams_lost += u64::from(ahead - 1);
            a.last_seq = seq;
        } else if a.last_seq.wrapping_sub(seq) > LATE_WINDOW {
            a.epoch = a.epoch.wrapping_add(1);
            h.restarts += 1;
            a.last_seq = seq;
        }
        // Otherwise a late or repeated datagram: its gap was already counted.
        a.last_uptime = uptime;
        Some(a.epoch)
    }

    #[cold]
    fn forget_idle(&mut self, ts: i64) {
        let cut = ts.saturating_sub(IDLE_NS);
        self.agents.retain(|_, a| a.last_seen > cut);
        self.drops.retain(|_, d| d.last_seen > cut);
        self.ifs.retain(|_, i| i.last_seen > cut);
    }

    fn flow_sample(
        &mut self,
        ts: i64,
        key: AgentKey,
        epoch: Option<u32>,
        f: &FlowSample<'_>,
        p: &mut Engine,
        h: &mut SflowHealth,
    ) {
        h.flow_samples += 1;
        if f.sampling_rate == 0 || f.sampling_rate > MAX_RATE {
            h.malformed += 1;
            return;
        }
        if let Some(epoch) = epoch {
            self.sample_drops(ts, key, epoch, f.source, f.drops, h);
        }
        // One sample is one packet: its raw header if it has one, else its IP record.
        let (mut raw, mut ip) = (None, None);
        for r in f.records() {
            match r {
                Ok(FlowRecord::RawHeader(x)) => {
                    raw.get_or_insert(x);
                }
                Ok(FlowRecord::Ip(x)) => {
                    ip.get_or_insert(x);
                }
                Ok(FlowRecord::Unknown { .. }) => {}
                Err(_) => {
                    h.malformed += 1;
                    return;
                }
            }
        }
        let rate = f.sampling_rate;
        // The member: by the agent's ingress port, else by the frame's source MAC.
        let member = match &self.members {
            Some(m) => {
                let mac = raw
                    .as_ref()
                    .filter(|x| x.protocol == decode::HEADER_ETHERNET)
                    .and_then(|x| x.header.get(6..12))
                    .and_then(members::mac_value);
                m.lookup(key.addr, key.sub_agent, f.input, mac)
            }
            None => MEMBER_NONE,
        };
        if let Some(x) = raw {
            let wire = x.frame_length.saturating_sub(x.stripped);
            if wire == 0 || wire > MAX_FRAME {
                h.malformed += 1;
                return;
            }
            let lt = match x.protocol {
                decode::HEADER_ETHERNET => linktype::ETHERNET,
                decode::HEADER_IPV4 => linktype::IPV4,
                decode::HEADER_IPV6 => linktype::IPV6,
                _ => {
                    h.unknown += 1;
                    UNKNOWN_HEADER_LINK
                }
            };
            let data = &x.header[..x.header.len().min(wire as usize)];
            let pkt = RawPacket {
                ts_ns: ts,
                wire_len: wire,
                linktype: lt,
                data,
            };
            p.process_sample(&pkt, rate, member);
        } else if let Some(x) = ip {
            if x.length == 0 || x.length > MAX_FRAME {
                h.malformed += 1;
                return;
            }
            let (lt, n) = synthesize(&mut self.scratch, &x);
            let pkt = RawPacket {
                ts_ns: ts,
                wire_len: x.length,
                linktype: lt,
                data: &self.scratch[..n],
            };
            p.process_sample(&pkt, rate, member);
        } else {
            h.unknown += 1;
        }
    }

    fn sample_drops(
        &mut self,
        ts: i64,
        key: AgentKey,
        epoch: u32,
        source: Source,
        drops: u32,
        h: &mut SflowHealth,
    ) {
        let now = DropState {
            epoch,
            drops,
            last_seen: ts,
        };
        if let Some(d) = self.drops.get_mut(&(key, source)) {
            if d.epoch == epoch {
                h.sample_drops += u64::from(drops.wrapping_sub(d.drops));
            }
            *d = now;
        } else if self.drops.len() < MAX_KEYED {
            // The first sample of a source sets the baseline.
            self.drops.insert((key, source), now);
        }
    }

    fn counter_sample(
        &mut self,
        ts: i64,
        key: AgentKey,
        epoch: Option<u32>,
        c: &CounterSample<'_>,
        h: &mut SflowHealth,
    ) {
        h.counter_samples += 1;
        for r in c.records() {
            match r {
                Ok(CounterRecord::Generic(g)) => {
                    if let Some(epoch) = epoch {
                        self.if_counters(ts, key, epoch, &g, h);
                    }
                }
                // Ethernet, VLAN, processor and other blocks: not needed here.
                Ok(CounterRecord::Unknown { .. }) => {}
                Err(_) => {
                    h.malformed += 1;
                    return;
                }
            }
        }
    }

    fn if_counters(
        &mut self,
        ts: i64,
        key: AgentKey,
        epoch: u32,
        g: &IfCounters,
        h: &mut SflowHealth,
    ) {
        let k = (key, g.if_index);
        let now = IfState {
            epoch,
            in_octets: g.in_octets,
            out_octets: g.out_octets,
            last_seen: ts,
        };
        let (din, dout) = if let Some(st) = self.ifs.get_mut(&k) {
            // A new epoch (restart) or a reset counter starts a new baseline.
            let d = if st.epoch == epoch {
                (
                    octet_delta(st.in_octets, g.in_octets).unwrap_or(0),
                    octet_delta(st.out_octets, g.out_octets).unwrap_or(0),
                )
            } else {
                (0, 0)
            };
            *st = now;
            d
        } else if self.ifs.len() < MAX_KEYED {
            self.ifs.insert(k, now);
            (0, 0)
        } else {
            return;
        };
        h.if_in_octets += din;
        h.if_out_octets += dout;
        let row = self
            .link_rows
            .entry((minute_of(ts), key, g.if_index))
            .or_default();
        row.in_octets += din;
        row.out_octets += dout;
        row.counter_samples += 1;
        row.if_speed = g.if_speed;
    }

    /// Takes out the per-agent and per-interface rows of minutes before `minute`.
    pub fn take_rows_before(&mut self, minute: i64) -> AgentRows {
        let agents_keep = self.agent_rows.split_off(&(
            minute,
            AgentKey {
                addr: 0,
                sub_agent: 0,
            },
        ));
        let links_keep = self.link_rows.split_off(&(
            minute,
            AgentKey {
                addr: 0,
                sub_agent: 0,
            },
            0,
        ));
        let agents = std::mem::replace(&mut self.agent_rows, agents_keep);
        let links = std::mem::replace(&mut self.link_rows, links_keep);
        AgentRows {
            agents: agents.into_iter().map(|((m, k), h)| (m, k, h)).collect(),
            links: links
                .into_iter()
                .map(|((m, k, i), l)| (m, k, i, l))
                .collect(),
        }
    }

    /// Takes out every row.
    pub fn take_rows(&mut self) -> AgentRows {
        self.take_rows_before(i64::MAX)
    }
}

/// What a counter grew by: a 32-bit counter (both values below 2³²) wraps; a 64-bit one
/// going back was reset (no delta, a new baseline).
fn octet_delta(prev: u64, cur: u64) -> Option<u64> {
    if cur >= prev {
        Some(cur - prev)
    } else if prev <= u64::from(u32::MAX) {
        Some((1u64 << 32) - prev + cur)
    } else {
        None
    }
}

/// Builds the IP and TCP/UDP headers a sampled IPv4/IPv6 record describes (no payload), so
/// it goes through the pipeline like a header cut after the transport header.
fn synthesize(buf: &mut [u8; 64], ip: &decode::SampledIp) -> (u32, usize) {
    buf.fill(0);
    let proto = (ip.protocol & 0xff) as u8;
    let (lt, mut n) = if ip.v6 {
        buf[0] = 0x60;
        let payload = ip.length.saturating_sub(40).min(0xffff) as u16;
        buf[4..6].copy_from_slice(&payload.to_be_bytes());
        buf[6] = proto;
        buf[7] = 64;
        buf[8..24].copy_from_slice(&ip.src.to_be_bytes());
        buf[24..40].copy_from_slice(&ip.dst.to_be_bytes());
        (linktype::IPV6, 40)
    } else {
        buf[0] = 0x45;
        buf[1] = (ip.tos & 0xff) as u8;
        buf[2..4].copy_from_slice(&(ip.length.min(0xffff) as u16).to_be_bytes());
        buf[8] = 64;
        buf[9] = proto;
        buf[12..16].copy_from_slice(&ip.src.to_be_bytes()[12..]);
        buf[16..20].copy_from_slice(&ip.dst.to_be_bytes()[12..]);
        (linktype::IPV4, 20)
    };
    let sport = (ip.src_port & 0xffff) as u16;
    let dport = (ip.dst_port & 0xffff) as u16;
    match proto {
        IPPROTO_TCP => {
            buf[n..n + 2].copy_from_slice(&sport.to_be_bytes());
            buf[n + 2..n + 4].copy_from_slice(&dport.to_be_bytes());
            buf[n + 12] = 0x50;
            buf[n + 13] = (ip.tcp_flags & 0xff) as u8;
            n += 20;
        }
        IPPROTO_UDP => {
            buf[n..n + 2].copy_from_slice(&sport.to_be_bytes());
            buf[n + 2..n + 4].copy_from_slice(&dport.to_be_bytes());
            let len = ip.length.saturating_sub(n as u32).min(0xffff) as u16;
            buf[n + 4..n + 6].copy_from_slice(&len.to_be_bytes());
            n += 8;
        }
        _ => {}
    }
    (lt, n)
}

/// Feeds one captured frame: an sFlow datagram when it is UDP to `port` (a whole datagram,
/// not a fragment); anything else in the capture is ignored.
pub fn captured(c: &mut Collector, p: &mut Engine, pkt: &RawPacket<'_>, port: u16) -> bool {
    match crate::decode::decode(pkt.linktype, pkt.data) {
        crate::decode::Decoded::Ip(ip)
            if ip.proto == IPPROTO_UDP
                && ip.dport == port
                && ip.frag == crate::decode::Fragment::Whole =>
        {
            c.datagram(pkt.ts_ns, ip.payload, p);
            true
        }
        _ => false,
    }
}

fn agent_name(k: &AgentKey) -> std::net::IpAddr {
    crate::decode::addr_to_ip(k.addr)
}

/// Writes per-agent health rows (CSV): `time,agent,sub_agent,` then sFlow's health fields
/// (the link-load fields are the sums over the agent's interfaces).
pub fn write_agent_rows_to<W: std::io::Write>(
    w: &mut W,
    rows: &AgentRows,
    header: bool,
) -> std::io::Result<()> {
    if header {
        writeln!(w, "time,agent,sub_agent,{}", SflowHealth::FIELDS.join(","))?;
    }
    for (m, k, h) in &rows.agents {
        let t = crate::aggregate::Rfc3339 {
            ts_ns: m * NS_PER_MIN,
            frac_digits: 0,
        };
        let mut line = format!("{t},{},{}", agent_name(k), k.sub_agent);
        for v in h.values() {
            line.push(',');
            line.push_str(&v.to_string());
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}

/// Writes per-interface link load rows (CSV):
/// `time,agent,sub_agent,if_index,in_octets,out_octets,counter_samples,if_speed`.
pub fn write_link_rows_to<W: std::io::Write>(
    w: &mut W,
    rows: &AgentRows,
    header: bool,
) -> std::io::Result<()> {
    if header {
        writeln!(
            w,
            "time,agent,sub_agent,if_index,in_octets,out_octets,counter_samples,if_speed"
        )?;
    }
    for (m, k, i, l) in &rows.links {
        let t = crate::aggregate::Rfc3339 {
            ts_ns: m * NS_PER_MIN,
            frac_digits: 0,
        };
        writeln!(
            w,
            "{t},{},{},{i},{},{},{},{}",
            agent_name(k),
            k.sub_agent,
            l.in_octets,
            l.out_octets,
            l.counter_samples,
            l.if_speed
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::decode::build;
    use super::*;
    use crate::classify::Rules;
    use crate::engine::Config;
    use std::sync::Arc;

    fn pipeline() -> Engine {
        Engine::new(
            Config::default(),
            Arc::new(Rules::builtin().expect("rules")),
        )
    }

    fn eth_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        f.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    const MIN: i64 = 28_000_000 * NS_PER_MIN;

    #[test]
    fn samples_count_their_rate_and_agents_their_rates() {
        let mut p = pipeline();
        let mut c = Collector::new(None);
        let frame = eth_udp(5000, 53, &[0; 40]);
        let s1 = build::flow_sample(
            false,
            1,
            3,
            10,
            10,
            0,
            &[build::raw_header(1, 1000, 4, &frame)],
        );
        let s2 = build::flow_sample(
            true,
            1,
            4,
            100,
            100,
            0,
            &[build::raw_header(1, 204, 4, &frame)],
        );
        c.datagram(
            MIN,
            &build::datagram(&[192, 0, 2, 1], 0, 1, 10, &[s1]),
            &mut p,
        );
        let agent6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        c.datagram(MIN + 1, &build::datagram(&agent6, 0, 1, 10, &[s2]), &mut p);
        p.finish().expect("finish");
        let rows = p.aggregator().series_rows();
        let packets: u64 = rows.iter().map(|r| r.counts.packets).sum();
        let bytes: u64 = rows.iter().map(|r| r.counts.bytes).sum();
        let samples: u64 = rows.iter().map(|r| r.samples).sum();
        assert_eq!((packets, bytes, samples), (110, 10 * 996 + 100 * 200, 2));
        assert_eq!(p.totals().packets, 110);
        let h = p.aggregator().sflow_rows();
        assert_eq!((h[0].1.datagrams, h[0].1.flow_samples), (2, 2));
        let rows = c.take_rows();
        assert_eq!(rows.agents.len(), 2);
        assert!(rows
            .agents
            .iter()
            .any(|(_, k, _)| k.addr == u128::from_be_bytes(agent6)));
    }

    #[test]
    fn sequence_gaps_restarts_and_drops() {
        let mut p = pipeline();
        let mut c = Collector::new(None);
        let frame = eth_udp(5000, 53, &[0; 8]);
        let s = |drops| {
            build::flow_sample(
                false,
                1,
                3,
                2,
                10,
                drops,
                &[build::raw_header(1, 64, 0, &frame)],
            )
        };
        let a = [10, 0, 0, 1];
        c.datagram(MIN, &build::datagram(&a, 0, 100, 5000, &[s(7)]), &mut p);
        c.datagram(MIN, &build::datagram(&a, 0, 101, 5001, &[s(9)]), &mut p);
        // 102..104 lost.
        c.datagram(MIN, &build::datagram(&a, 0, 105, 5002, &[s(9)]), &mut p);
        // A late one: no new gap.
        c.datagram(MIN, &build::datagram(&a, 0, 104, 5002, &[s(12)]), &mut p);
        // Restart: uptime and sequence back; drops counted again from the new baseline.
        c.datagram(MIN, &build::datagram(&a, 0, 1, 10, &[s(1)]), &mut p);
        c.datagram(MIN, &build::datagram(&a, 0, 2, 20, &[s(4)]), &mut p);
        let h = p.aggregator().sflow_rows()[0].1;
        assert_eq!(h.datagrams, 6);
        assert_eq!(h.datagrams_lost, 3);
        assert_eq!(h.restarts, 1);
        assert_eq!(h.sample_drops, 2 + 3 + 3);
    }

    #[test]
    fn counters_wrap_and_restart() {
        let mut p = pipeline();
        let mut c = Collector::new(None);
        let a = [10, 0, 0, 1];
        let d = |seq, up, inn, out| {
            build::datagram(
                &a,
                0,
                seq,
                up,
                &[build::if_counters(seq % 2 == 0, seq, 7, inn, out)],
            )
        };
        c.datagram(MIN, &d(1, 1000, 4_294_967_000, 1 << 40), &mut p);
        // A 32-bit counter wraps: 296 + 704 octets in; 64-bit out grows by 5.
        c.datagram(MIN + 1, &d(2, 2000, 704, (1 << 40) + 5), &mut p);
        // A 64-bit counter going back is a reset: no delta.
        c.datagram(MIN + NS_PER_MIN, &d(3, 3000, 1704, 3), &mut p);
        c.datagram(MIN + NS_PER_MIN, &d(4, 4000, 1804, 13), &mut p);
        // The agent restarts: new baseline.
        c.datagram(MIN + NS_PER_MIN, &d(1, 10, 5, 5), &mut p);
        c.datagram(MIN + NS_PER_MIN, &d(2, 20, 10, 9), &mut p);
        let h = p.aggregator().sflow_rows();
        assert_eq!((h[0].1.if_in_octets, h[0].1.if_out_octets), (1000, 5));
        assert_eq!(
            (h[1].1.if_in_octets, h[1].1.if_out_octets),
            (1000 + 100 + 5, 10 + 4)
        );
        assert_eq!(h[1].1.restarts, 1);
        let rows = c.take_rows();
        assert_eq!(rows.links.len(), 2);
        assert_eq!(rows.links[0].2, 7);
        assert_eq!(rows.links[1].3.in_octets, 1105);
    }

    #[test]
    fn filter_malformed_and_sampled_ip_records() {
        let mut p = pipeline();
        let mut c = Collector::new(Some(HomeNet::parse("10.0.0.0/8").expect("cidr")));
        c.datagram(MIN, &[0, 0, 0, 5, 0, 0], &mut p);
        let frame = eth_udp(5000, 53, &[0; 8]);
        let s = build::flow_sample(
            false,
            1,
            3,
            2,
            10,
            0,
            &[build::raw_header(1, 64, 0, &frame)],
        );
        c.datagram(
            MIN,
            &build::datagram(&[192, 0, 2, 1], 0, 1, 1, std::slice::from_ref(&s)),
            &mut p,
        );
        // A sampled IPv4 record: TCP to 6881, 1500 bytes, 1 in 50.
        let mut r = Vec::new();
        for v in [1500u32, 6] {
            build::u32(&mut r, v);
        }
        r.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        for v in [40000u32, 6881, 0x10, 0] {
            build::u32(&mut r, v);
        }
        let s_ip = build::flow_sample(false, 2, 3, 50, 100, 0, &[build::tlv(3, &r)]);
        c.datagram(
            MIN,
            &build::datagram(&[10, 1, 1, 1], 0, 1, 1, &[s_ip]),
            &mut p,
        );
        // A rate of 0 is malformed.
        let s0 = build::flow_sample(
            false,
            3,
            3,
            0,
            100,
            0,
            &[build::raw_header(1, 64, 0, &frame)],
        );
        c.datagram(
            MIN,
            &build::datagram(&[10, 1, 1, 1], 0, 2, 2, &[s0]),
            &mut p,
        );
        p.finish().expect("finish");
        let h = p.aggregator().sflow_rows()[0].1;
        assert_eq!((h.malformed, h.rejected, h.datagrams), (2, 1, 2));
        let ports = p.aggregator().port_rows();
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (ports[0].counts.packets, ports[0].counts.bytes),
            (50, 75_000)
        );
        assert_eq!(p.totals().bytes, 75_000);
    }

    #[test]
    fn octet_deltas() {
        assert_eq!(octet_delta(10, 15), Some(5));
        assert_eq!(octet_delta(u64::from(u32::MAX), 0), Some(1));
        assert_eq!(octet_delta(1 << 33, 1), None);
    }
}
