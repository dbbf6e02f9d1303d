//! A checked sFlow v5 decoder over `&[u8]` (InMon, sflow_version_5.txt): datagram header,
//! flow samples and counter samples (compact and expanded), raw packet headers, sampled
//! IPv4/IPv6 records and generic interface counters. Views borrow the datagram; nothing is
//! allocated. Every length is checked against what is left; unknown formats are skipped by
//! their length; a datagram that does not add up is an [`Error`], never a panic.

use std::fmt;

use crate::decode::{v4_addr, Addr};

/// Why a datagram (or a sample in it) could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than a field or a declared length needs.
    Truncated,
    /// Not sFlow version 5.
    Version(u32),
    /// An agent address type other than IPv4 (1) or IPv6 (2).
    AgentType(u32),
    /// A declared length that does not fit its contents (e.g. a record longer than its sample).
    Length,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated"),
            Error::Version(v) => write!(f, "not sFlow v5 (version {v})"),
            Error::AgentType(t) => write!(f, "unknown agent address type {t}"),
            Error::Length => f.write_str("inconsistent length"),
        }
    }
}

/// A bounds-checked big-endian reader.
#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u32(&mut self) -> Result<u32, Error> {
        let (head, rest) = self.buf.split_first_chunk::<4>().ok_or(Error::Truncated)?;
        self.buf = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let (head, rest) = self.buf.split_first_chunk::<8>().ok_or(Error::Truncated)?;
        self.buf = rest;
        Ok(u64::from_be_bytes(*head))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let (head, rest) = self.buf.split_first_chunk::<N>().ok_or(Error::Truncated)?;
        self.buf = rest;
        Ok(*head)
    }

    /// An XDR opaque of `n` bytes, padded to a multiple of four.
    fn opaque(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let padded = n.checked_add(3).ok_or(Error::Length)? & !3;
        if padded > self.buf.len() {
            return Err(Error::Truncated);
        }
        let data = &self.buf[..n];
        self.buf = &self.buf[padded..];
        Ok(data)
    }

    /// A `data_format`, `length`, body triple: the format and the body.
    fn tlv(&mut self) -> Result<(u32, &'a [u8]), Error> {
        let format = self.u32()?;
        let len = self.u32()? as usize;
        let body = self.take(len).map_err(|_| Error::Length)?;
        Ok((format, body))
    }

    fn addr(&mut self) -> Result<(Addr, bool), Error> {
        match self.u32()? {
            1 => Ok((v4_addr(self.array::<4>()?), false)),
            2 => Ok((u128::from_be_bytes(self.array::<16>()?), true)),
            t => Err(Error::AgentType(t)),
        }
    }
}

/// An sFlow v5 datagram: its header, and its samples to iterate.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// The agent's address (IPv4 as ::ffff:a.b.c.d, as everywhere in bittap).
    pub agent: Addr,
    pub agent_v6: bool,
    pub sub_agent: u32,
    /// Datagram sequence number, per agent and sub-agent: a gap is datagrams lost.
    pub sequence: u32,
    /// Milliseconds since the agent booted: going backwards is a restart.
    pub uptime_ms: u32,
    pub n_samples: u32,
    samples: &'a [u8],
}

/// Reads the datagram header; the samples are read as they are iterated.
pub fn parse(buf: &[u8]) -> Result<Datagram<'_>, Error> {
    let mut c = Cursor { buf };
    let version = c.u32()?;
    if version != 5 {
        return Err(Error::Version(version));
    }
    let (agent, agent_v6) = c.addr()?;
    let sub_agent = c.u32()?;
    let sequence = c.u32()?;
    let uptime_ms = c.u32()?;
    let n_samples = c.u32()?;
    Ok(Datagram {
        agent,
        agent_v6,
        sub_agent,
        sequence,
        uptime_ms,
        n_samples,
        samples: c.buf,
    })
}

impl<'a> Datagram<'a> {
    /// The samples, in order; an error ends the iteration (the rest cannot be trusted).
    pub fn samples(&self) -> Samples<'a> {
        Samples {
            c: Cursor { buf: self.samples },
            left: self.n_samples,
        }
    }
}

/// Where a sample was taken: `source_id` type (0 = ifIndex, 1 = VLAN, 2 = entity) and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub kind: u32,
    pub index: u32,
}

impl Source {
    fn compact(v: u32) -> Source {
        Source {
            kind: v >> 24,
            index: v & 0x00ff_ffff,
        }
    }
}

/// One sample of a datagram.
#[derive(Debug, Clone, Copy)]
pub enum Sample<'a> {
    Flow(FlowSample<'a>),
    Counters(CounterSample<'a>),
    /// Another format (or another enterprise's), skipped by its length.
    Unknown {
        format: u32,
    },
}

/// A flow sample (format 1) or expanded flow sample (format 3).
#[derive(Debug, Clone, Copy)]
pub struct FlowSample<'a> {
    pub expanded: bool,
    pub sequence: u32,
    pub source: Source,
    /// One packet in `sampling_rate` was sampled: each sample stands for that many.
    pub sampling_rate: u32,
    /// Packets that could have been sampled (total seen by the source).
    pub sample_pool: u32,
    /// Samples the agent dropped for lack of resources, cumulative per source.
    pub drops: u32,
    /// Input and output interfaces (ifIndex; formats folded into the value as sent).
    pub input: u32,
    pub output: u32,
    n_records: u32,
    records: &'a [u8],
}

/// A counter sample (format 2) or expanded counter sample (format 4).
#[derive(Debug, Clone, Copy)]
pub struct CounterSample<'a> {
    pub expanded: bool,
    pub sequence: u32,
    pub source: Source,
    n_records: u32,
    records: &'a [u8],
}

/// Iterator over a datagram's samples.
pub struct Samples<'a> {
    c: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for Samples<'a> {
    type Item = Result<Sample<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.c.tlv().and_then(|(format, body)| sample(format, body));
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

fn sample(format: u32, body: &[u8]) -> Result<Sample<'_>, Error> {
    let mut c = Cursor { buf: body };
    match format {
        1 | 3 => {
            let expanded = format == 3;
            let sequence = c.u32()?;
            let source = if expanded {
                Source {
                    kind: c.u32()?,
                    index: c.u32()?,
                }
            } else {
                Source::compact(c.u32()?)
            };
            let sampling_rate = c.u32()?;
            let sample_pool = c.u32()?;
            let drops = c.u32()?;
            let (input, output) = if expanded {
                let (_fi, i, _fo, o) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
                (i, o)
            } else {
                (c.u32()?, c.u32()?)
            };
            let n_records = c.u32()?;
            Ok(Sample::Flow(FlowSample {
                expanded,
                sequence,
                source,
                sampling_rate,
                sample_pool,
                drops,
                input,
                output,
                n_records,
                records: c.buf,
            }))
        }
        2 | 4 => {
            let expanded = format == 4;
            let sequence = c.u32()?;
            let source = if expanded {
                Source {
                    kind: c.u32()?,
                    index: c.u32()?,
                }
            } else {
                Source::compact(c.u32()?)
            };
            let n_records = c.u32()?;
            Ok(Sample::Counters(CounterSample {
                expanded,
                sequence,
                source,
                n_records,
                records: c.buf,
            }))
        }
        _ => Ok(Sample::Unknown { format }),
    }
}

/// Header protocols of a raw packet header record.
pub const HEADER_ETHERNET: u32 = 1;
pub const HEADER_IPV4: u32 = 11;
pub const HEADER_IPV6: u32 = 12;

/// A raw packet header record (flow record format 1): the first bytes of a sampled frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'a> {
    pub protocol: u32,
    /// The frame's length on the wire before sampling (for Ethernet, FCS included).
    pub frame_length: u32,
    /// Bytes removed from the end of the frame before the header was taken (e.g. the FCS).
    pub stripped: u32,
    pub header: &'a [u8],
}

/// A sampled IPv4 (format 3) or IPv6 (format 4) record: addresses and ports, no payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledIp {
    pub v6: bool,
    /// Length of the IP packet (lower layers excluded).
    pub length: u32,
    /// IP protocol number.
    pub protocol: u32,
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u32,
    pub dst_port: u32,
    pub tcp_flags: u32,
    pub tos: u32,
}

/// A record of a flow sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowRecord<'a> {
    RawHeader(RawHeader<'a>),
    Ip(SampledIp),
    /// Another format (switch, router, extended records, …), skipped by its length.
    Unknown {
        format: u32,
    },
}

/// Generic interface counters (counter record format 1, RFC 2233 ifTable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfCounters {
    pub if_index: u32,
    pub if_type: u32,
    pub if_speed: u64,
    pub if_direction: u32,
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast: u32,
    pub in_mcast: u32,
    pub in_bcast: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast: u32,
    pub out_mcast: u32,
    pub out_bcast: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous: u32,
}

/// A record of a counter sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterRecord {
    Generic(IfCounters),
    /// Ethernet, VLAN, processor and other counter blocks, skipped by their length.
    Unknown {
        format: u32,
    },
}

/// Iterator over the records of a sample; an error ends it.
pub struct Records<'a, T> {
    c: Cursor<'a>,
    left: u32,
    parse: fn(u32, &'a [u8]) -> Result<T, Error>,
}

impl<'a, T> Iterator for Records<'a, T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.c.tlv().and_then(|(f, body)| (self.parse)(f, body));
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

impl<'a> FlowSample<'a> {
    pub fn records(&self) -> Records<'a, FlowRecord<'a>> {
        Records {
            c: Cursor { buf: self.records },
            left: self.n_records,
            parse: flow_record,
        }
    }
}

impl<'a> CounterSample<'a> {
    pub fn records(&self) -> Records<'a, CounterRecord> {
        Records {
            c: Cursor { buf: self.records },
            left: self.n_records,
            parse: counter_record,
        }
    }
}

fn flow_record(format: u32, body: &[u8]) -> Result<FlowRecord<'_>, Error> {
    let mut c = Cursor { buf: body };
    match format {
        1 => {
            let protocol = c.u32()?;
            let frame_length = c.u32()?;
            let stripped = c.u32()?;
            let n = c.u32()? as usize;
            let header = c.opaque(n).map_err(|_| Error::Length)?;
            Ok(FlowRecord::RawHeader(RawHeader {
                protocol,
                frame_length,
                stripped,
                header,
            }))
        }
        3 | 4 => {
            let v6 = format == 4;
            let length = c.u32()?;
            let protocol = c.u32()?;
            let (src, dst) = if v6 {
                (
                    u128::from_be_bytes(c.array::<16>()?),
                    u128::from_be_bytes(c.array::<16>()?),
                )
            } else {
                (v4_addr(c.array::<4>()?), v4_addr(c.array::<4>()?))
            };
            Ok(FlowRecord::Ip(SampledIp {
                v6,
                length,
                protocol,
                src,
                dst,
                src_port: c.u32()?,
                dst_port: c.u32()?,
                tcp_flags: c.u32()?,
                tos: c.u32()?,
            }))
        }
        _ => Ok(FlowRecord::Unknown { format }),
    }
}

fn counter_record(format: u32, body: &[u8]) -> Result<CounterRecord, Error> {
    let mut c = Cursor { buf: body };
    match format {
        1 => Ok(CounterRecord::Generic(IfCounters {
            if_index: c.u32()?,
            if_type: c.u32()?,
            if_speed: c.u64()?,
            if_direction: c.u32()?,
            if_status: c.u32()?,
            in_octets: c.u64()?,
            in_ucast: c.u32()?,
            in_mcast: c.u32()?,
            in_bcast: c.u32()?,
            in_discards: c.u32()?,
            in_errors: c.u32()?,
            in_unknown_protos: c.u32()?,
            out_octets: c.u64()?,
            out_ucast: c.u32()?,
            out_mcast: c.u32()?,
            out_bcast: c.u32()?,
            out_discards: c.u32()?,
            out_errors: c.u32()?,
            promiscuous: c.u32()?,
        })),
        _ => Ok(CounterRecord::Unknown { format }),
    }
}

/// Builds sFlow v5 datagrams, for tests and benches (and the crafted captures).
pub mod build {
    /// Appends a big-endian u32.
    pub fn u32(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian u64.
    pub fn u64(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// A datagram header for an IPv4 (4 bytes) or IPv6 (16 bytes) agent, then the samples
    /// (each already a format/length/body triple).
    pub fn datagram(agent: &[u8], sub: u32, seq: u32, uptime: u32, samples: &[Vec<u8>]) -> Vec<u8> {
        let mut d = Vec::new();
        u32(&mut d, 5);
        u32(&mut d, if agent.len() == 16 { 2 } else { 1 });
        d.extend_from_slice(agent);
        u32(&mut d, sub);
        u32(&mut d, seq);
        u32(&mut d, uptime);
        u32(&mut d, samples.len() as u32);
        for s in samples {
            d.extend_from_slice(s);
        }
        d
    }

    /// A format/length/body triple.
    pub fn tlv(format: u32, body: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        u32(&mut d, format);
        u32(&mut d, body.len() as u32);
        d.extend_from_slice(body);
        d
    }

    /// A flow sample (compact, or expanded) with the given records (triples).
    pub fn flow_sample(
        expanded: bool,
        seq: u32,
        if_index: u32,
        rate: u32,
        pool: u32,
        drops: u32,
        records: &[Vec<u8>],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        u32(&mut b, seq);
        if expanded {
            u32(&mut b, 0);
            u32(&mut b, if_index);
        } else {
            u32(&mut b, if_index & 0x00ff_ffff);
        }
        u32(&mut b, rate);
        u32(&mut b, pool);
        u32(&mut b, drops);
        if expanded {
            for v in [0, if_index, 0, 0] {
                u32(&mut b, v);
            }
        } else {
            u32(&mut b, if_index);
            u32(&mut b, 0);
        }
        u32(&mut b, records.len() as u32);
        for r in records {
            b.extend_from_slice(r);
        }
        tlv(if expanded { 3 } else { 1 }, &b)
    }

    /// A raw packet header record.
    pub fn raw_header(protocol: u32, frame_length: u32, stripped: u32, header: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        u32(&mut b, protocol);
        u32(&mut b, frame_length);
        u32(&mut b, stripped);
        u32(&mut b, header.len() as u32);
        b.extend_from_slice(header);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        tlv(1, &b)
    }

    /// A counter sample (compact or expanded) with one generic interface counter record.
    pub fn if_counters(
        expanded: bool,
        seq: u32,
        if_index: u32,
        in_octets: u64,
        out_octets: u64,
    ) -> Vec<u8> {
        let mut r = Vec::new();
        u32(&mut r, if_index);
        u32(&mut r, 6);
        u64(&mut r, 10_000_000_000);
        u32(&mut r, 1);
        u32(&mut r, 3);
        u64(&mut r, in_octets);
        for _ in 0..6 {
            u32(&mut r, 0);
        }
        u64(&mut r, out_octets);
        for _ in 0..6 {
            u32(&mut r, 0);
        }
        let rec = tlv(1, &r);
        let mut b = Vec::new();
        u32(&mut b, seq);
        if expanded {
            u32(&mut b, 0);
            u32(&mut b, if_index);
        } else {
            u32(&mut b, if_index & 0x00ff_ffff);
        }
        u32(&mut b, 1);
        b.extend_from_slice(&rec);
        tlv(if expanded { 4 } else { 2 }, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram with an IPv4 agent (192.0.2.1) and one flow sample at 1:10 whose raw
    /// header record holds 2 bytes of a 1518-byte Ethernet frame (FCS stripped).
    const ONE_FLOW: &[u8] = &[
        0, 0, 0, 5, // version
        0, 0, 0, 1, 192, 0, 2, 1, // agent
        0, 0, 0, 7, // sub-agent
        0, 0, 0, 42, // sequence
        0, 0, 0x27, 0x10, // uptime 10 000 ms
        0, 0, 0, 1, // samples
        0, 0, 0, 1, 0, 0, 0, 60, // flow sample, 60 bytes
        0, 0, 0, 9, // sequence
        0, 0, 0, 3, // source: ifIndex 3
        0, 0, 0, 10, // rate
        0, 0, 0, 100, // pool
        0, 0, 0, 2, // drops
        0, 0, 0, 3, 0, 0, 0, 4, // input, output
        0, 0, 0, 1, // records
        0, 0, 0, 1, 0, 0, 0, 20, // raw header record, 20 bytes
        0, 0, 0, 1, // ethernet
        0, 0, 5, 0xee, // frame length 1518
        0, 0, 0, 4, // stripped
        0, 0, 0, 2, // header length 2
        0xaa, 0xbb, 0, 0, // header, padded
    ];

    #[test]
    fn reads_a_flow_sample() {
        let d = parse(ONE_FLOW).expect("datagram");
        assert_eq!(d.agent, v4_addr([192, 0, 2, 1]));
        assert!(!d.agent_v6);
        assert_eq!((d.sub_agent, d.sequence, d.uptime_ms), (7, 42, 10_000));
        let samples: Vec<_> = d.samples().collect();
        assert_eq!(samples.len(), 1);
        let Ok(Sample::Flow(f)) = samples[0] else {
            panic!("not a flow sample: {:?}", samples[0]);
        };
        assert_eq!(
            (
                f.sequence,
                f.source,
                f.sampling_rate,
                f.sample_pool,
                f.drops
            ),
            (9, Source { kind: 0, index: 3 }, 10, 100, 2)
        );
        assert_eq!((f.input, f.output), (3, 4));
        let recs: Vec<_> = f.records().collect();
        assert_eq!(
            recs,
            vec![Ok(FlowRecord::RawHeader(RawHeader {
                protocol: HEADER_ETHERNET,
                frame_length: 1518,
                stripped: 4,
                header: &[0xaa, 0xbb],
            }))]
        );
    }

    #[test]
    fn every_cut_of_a_datagram_is_an_error_or_fewer_samples() {
        for n in 0..ONE_FLOW.len() {
            let cut = &ONE_FLOW[..n];
            let Ok(d) = parse(cut) else { continue };
            let r: Vec<_> = d.samples().collect();
            assert!(
                matches!(r.as_slice(), [Err(Error::Length | Error::Truncated)]),
                "cut at {n}: {r:?}"
            );
        }
        assert_eq!(parse(&ONE_FLOW[..27]).err(), Some(Error::Truncated));
    }

    #[test]
    fn rejects_bad_versions_and_agents() {
        let mut v4 = ONE_FLOW.to_vec();
        v4[3] = 4;
        assert_eq!(parse(&v4).err(), Some(Error::Version(4)));
        let mut a = ONE_FLOW.to_vec();
        a[7] = 3;
        assert_eq!(parse(&a).err(), Some(Error::AgentType(3)));
    }

    #[test]
    fn a_record_longer_than_its_sample_is_a_length_error() {
        let mut d = ONE_FLOW.to_vec();
        // The raw header record claims 200 bytes.
        d[28 + 8 + 32 + 7] = 200;
        let dg = parse(&d).expect("header");
        let Some(Ok(Sample::Flow(f))) = dg.samples().next() else {
            panic!("flow sample expected");
        };
        assert_eq!(f.records().next(), Some(Err(Error::Length)));
        // A header length beyond the record.
        let mut d = ONE_FLOW.to_vec();
        d[ONE_FLOW.len() - 5] = 9;
        let dg = parse(&d).expect("header");
        let Some(Ok(Sample::Flow(f))) = dg.samples().next() else {
            panic!("flow sample expected");
        };
        assert_eq!(f.records().next(), Some(Err(Error::Length)));
        // A sample count larger than what is there.
        let mut d = ONE_FLOW.to_vec();
        d[27] = 2;
        let r: Vec<_> = parse(&d).expect("header").samples().collect();
        assert_eq!(r.len(), 2);
        assert!(r[0].is_ok() && matches!(r[1], Err(Error::Truncated)));
    }

    #[test]
    fn ipv6_agents_expanded_samples_and_unknown_formats() {
        let agent: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let unknown_record = build::tlv(1001, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut sampled_v4 = Vec::new();
        for v in [1500u32, 6] {
            build::u32(&mut sampled_v4, v);
        }
        sampled_v4.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        for v in [51413u32, 6881, 0x18, 0] {
            build::u32(&mut sampled_v4, v);
        }
        let flow = build::flow_sample(
            true,
            5,
            1 << 25, // an ifIndex beyond 24 bits: only the expanded form carries it
            1000,
            5000,
            0,
            &[
                unknown_record,
                build::tlv(3, &sampled_v4),
                build::raw_header(HEADER_IPV6, 90, 0, &[0x60; 40]),
            ],
        );
        let counters = build::if_counters(true, 8, 1 << 25, 1 << 40, 77);
        let other_enterprise = build::tlv((4413 << 12) | 1, &[0; 12]);
        let d = build::datagram(&agent, 0, 1, 2, &[other_enterprise, flow, counters]);
        let dg = parse(&d).expect("datagram");
        assert!(dg.agent_v6);
        assert_eq!(dg.agent, u128::from_be_bytes(agent));
        let s: Vec<_> = dg.samples().collect::<Result<_, _>>().expect("samples");
        assert!(matches!(s[0], Sample::Unknown { format } if format == (4413 << 12) | 1));
        let Sample::Flow(f) = s[1] else {
            panic!("flow sample")
        };
        assert!(f.expanded);
        assert_eq!(
            (f.source.index, f.input, f.sampling_rate),
            (1 << 25, 1 << 25, 1000)
        );
        let recs: Vec<_> = f.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(recs[0], FlowRecord::Unknown { format: 1001 });
        let FlowRecord::Ip(ip) = recs[1] else {
            panic!("sampled ipv4")
        };
        assert_eq!(
            (ip.v6, ip.length, ip.protocol, ip.src_port, ip.dst_port),
            (false, 1500, 6, 51413, 6881)
        );
        assert_eq!(ip.dst, v4_addr([10, 0, 0, 2]));
        let FlowRecord::RawHeader(h) = recs[2] else {
            panic!("raw header")
        };
        assert_eq!((h.protocol, h.frame_length, h.header.len()), (12, 90, 40));
        let Sample::Counters(c) = s[2] else {
            panic!("counters")
        };
        assert!(c.expanded);
        let recs: Vec<_> = c.records().collect::<Result<_, _>>().expect("records");
        let CounterRecord::Generic(g) = recs[0] else {
            panic!("generic")
        };
        assert_eq!(
            (g.if_index, g.in_octets, g.out_octets),
            (1 << 25, 1 << 40, 77)
        );
        assert_eq!(g.if_speed, 10_000_000_000);
    }

    #[test]
    fn compact_counter_sample_source() {
        let c = build::if_counters(false, 1, 0x0102_0304, 5, 6);
        let d = build::datagram(&[127, 0, 0, 1], 0, 1, 2, &[c]);
        let dg = parse(&d).expect("datagram");
        let Some(Ok(Sample::Counters(c))) = dg.samples().next() else {
            panic!("counters")
        };
        assert_eq!(
            c.source,
            Source {
                kind: 0,
                index: 0x02_0304
            }
        );
    }
}
