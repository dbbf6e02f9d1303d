//! `bittap sflow`: a live sFlow collector. Datagrams are read from a UDP socket and timed by
//! their arrival; minutes are flushed a few seconds after they end and written by `live`'s
//! sink thread (the same files, line protocol and database spool).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use crate::aggregate::Aggregator;
use crate::capture::{RawPacket, Source};
use crate::classify::Rules;
use crate::engine::{Config, Engine};
use crate::flow::record::FlowSink;
use crate::live::{self, open_out, Flush, MinuteEngine, Minutes, Outputs, Ready, Signals};
use crate::sink::FlowWriter;
use crate::time::{Nanos, WallClock};

use super::Collector;

/// A datagram's "link type" as a [`RawPacket`] of a [`Datagrams`] source: the bytes are an
/// sFlow datagram, not a frame.
pub const LINKTYPE_SFLOW_DATAGRAM: u32 = u32::MAX;
/// Socket receive buffer asked for: agents send in bursts (a counter export of every port at
/// once), and a datagram the kernel drops is a sequence gap.
const RECEIVE_BUFFER: usize = 32 << 20;

/// Asks for a receive buffer of `bytes` (beyond `net.core.rmem_max` when privileged) and
/// returns what the kernel granted.
pub fn grow_receive_buffer(sock: &UdpSocket, bytes: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on a valid socket with a pointer to a c_int of the given length.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                len,
            )
        };
        if r == 0 {
            break;
        }
    }
    let mut got: libc::c_int = 0;
    let mut got_len = len;
    // SAFETY: getsockopt into a c_int of the given length.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut got_len,
        )
    };
    if r == 0 {
        usize::try_from(got).unwrap_or(0)
    } else {
        0
    }
}

/// How a collector run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Datagrams received (all, rejected and malformed ones included).
    pub datagrams: u64,
    /// Packets estimated from the samples (the series' packets).
    pub packets: u64,
    pub minutes: u64,
    pub errors: Vec<String>,
    pub spool: Option<crate::sink::spool::SpoolStats>,
}

/// Datagrams from a UDP socket as a packet source, each timed by its arrival.
pub struct Datagrams {
    sock: UdpSocket,
    buf: Vec<u8>,
}

impl Datagrams {
    /// Non-blocking reads of `sock`.
    pub fn new(sock: UdpSocket) -> std::io::Result<Datagrams> {
        sock.set_nonblocking(true)?;
        Ok(Datagrams {
            sock,
            buf: vec![0u8; 65536],
        })
    }
}

impl Source for Datagrams {
    type Error = std::io::Error;

    fn read<F: FnMut(&RawPacket<'_>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Option<usize>, std::io::Error> {
        let mut n = 0;
        while n < budget {
            match self.sock.recv_from(&mut self.buf) {
                Ok((len, _)) => {
                    let data = &self.buf[..len];
                    f(&RawPacket {
                        ts_ns: Nanos::now().get(),
                        wire_len: u32::try_from(len).unwrap_or(u32::MAX),
                        linktype: LINKTYPE_SFLOW_DATAGRAM,
                        data,
                    });
                    n += 1;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(n))
    }

    fn wait(&mut self, timeout_ms: i32) {
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(&mut fd, 1, timeout_ms);
        }
    }
}

/// The collector in front of one pipeline: each datagram's samples are packets weighted by
/// their sampling rate.
pub(crate) struct Collecting {
    pub(crate) pipeline: Engine,
    pub(crate) collector: Collector,
    /// Engine warnings already handed over.
    warned: usize,
}

impl Collecting {
    pub(crate) fn new(pipeline: Engine, collector: Collector) -> Collecting {
        Collecting {
            pipeline,
            collector,
            warned: 0,
        }
    }

    fn new_warnings(&mut self) -> Vec<String> {
        let w = self.pipeline.warnings[self.warned..].to_vec();
        self.warned = self.pipeline.warnings.len();
        w
    }

    fn aggregate(&mut self, before: Option<i64>) -> Aggregator {
        let mut agg = Aggregator::new(self.pipeline.rules().ports.len());
        let taken = match before {
            Some(due) => self.pipeline.aggregator().take_before(due),
            None => self.pipeline.aggregator().take_all(),
        };
        for (m, b) in taken {
            agg.absorb(m, &b);
        }
        agg
    }
}

impl MinuteEngine for Collecting {
    fn packet(&mut self, pkt: &RawPacket<'_>) {
        self.collector
            .datagram(pkt.ts_ns, pkt.data, &mut self.pipeline);
    }
    fn clock(&mut self, now: i64) {
        self.pipeline.advance_clock(now);
    }
    /// Datagrams are timed by the clock itself.
    fn watermark(&self) -> i64 {
        i64::MIN
    }
    fn set_rules(&mut self, rules: Arc<Rules>) {
        self.pipeline.set_rules(rules);
    }
    fn flush(&mut self, due: i64) -> Flush {
        Flush {
            agg: self.aggregate(Some(due)),
            warnings: self.new_warnings(),
            error: None,
            packets: self.pipeline.totals().packets,
            agent_rows: Some(self.collector.take_rows_before(due)),
        }
    }
    fn finish(mut self) -> Flush {
        let error = self.pipeline.finish().err();
        Flush {
            agg: self.aggregate(None),
            warnings: self.new_warnings(),
            error,
            packets: self.pipeline.totals().packets,
            agent_rows: Some(self.collector.take_rows()),
        }
    }
}

/// Collects until a stop signal, then flushes the open minutes and returns. `opts` gives the
/// outputs as for `live` (its capture settings are not used).
pub fn run(
    opts: &live::Options,
    listen: SocketAddr,
    sf: &super::Options,
    cfg: Config,
    rules: Arc<Rules>,
    signals: &Signals,
) -> anyhow::Result<Outcome> {
    let sock = UdpSocket::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on UDP {listen}: {e}"))?;
    let rcvbuf = grow_receive_buffer(&sock, RECEIVE_BUFFER);
    let local = sock.local_addr().unwrap_or(listen);
    let mut src = Datagrams::new(sock)?;
    let mut outputs = Outputs::open(opts)?;
    outputs.sampled = true;
    outputs.members = sf.members.clone();
    outputs.links = open_out(&sf.counters)?;
    outputs.agents = open_out(&sf.agent_health)?;
    // No interface of its own to watch: /healthz follows the socket and the database.
    let metrics = live::serve_metrics(opts, Vec::new(), &mut outputs)?;
    let flows: Option<Box<dyn FlowSink + Send>> = match &opts.flows {
        Some(p) => Some(Box::new(FlowWriter::append(p)?)),
        None => None,
    };
    if let Some(u) = &opts.user {
        live::drop_privileges(u)?;
    }
    let mut p = Engine::new(cfg, rules.clone());
    if let Some(f) = flows {
        p.set_flow_sink(f);
    }
    let mut collector = Collector::new(sf.agents.clone());
    collector.set_members(sf.members.clone());
    let engine = Collecting::new(p, collector);
    let (tx, rx) = sync_channel::<Ready>(64);
    let sink = std::thread::Builder::new()
        .name("bittap-sink".into())
        .spawn(move || live::run_sink(outputs, rx))?;
    eprintln!(
        "bittap: collecting sFlow on udp {local} (receive buffer {} KiB)",
        rcvbuf / 1024
    );
    let (o, recv_error) = live::capture_minutes(
        &mut src,
        engine,
        rules,
        &Minutes {
            signals,
            rules_dir: &opts.rules_dir,
            delay: Nanos::from_secs(opts.flush_delay_secs),
            metrics: metrics.as_ref(),
            tx,
        },
        &WallClock,
    );
    let rep = sink
        .join()
        .map_err(|_| anyhow::anyhow!("the sink thread panicked"))?;
    let mut errors = o.errors;
    errors.extend(rep.errors);
    if let Some(e) = recv_error {
        return Err(e.into());
    }
    Ok(Outcome {
        datagrams: o.read,
        packets: o.counted,
        minutes: rep.minutes,
        errors,
        spool: rep.spool,
    })
}
