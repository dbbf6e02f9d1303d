//! `bittap sflow`: a live sFlow collector. Datagrams are read from a UDP socket and timed by
//! their arrival; minutes are flushed a few seconds after they end and written by `live`'s
//! sink thread (the same files, line protocol and database spool).

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::{minute_of, Aggregator};
use crate::classify::Rules;
use crate::live::{self, open_out, Outputs, Ready, Signals};
use crate::pipeline::{Config, FlowSink, Pipeline};
use crate::sink::FlowWriter;

use super::Collector;

const NS: i64 = 1_000_000_000;
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
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let rcvbuf = grow_receive_buffer(&sock, RECEIVE_BUFFER);
    let mut outputs = Outputs::open(opts)?;
    outputs.sampled = true;
    outputs.links = open_out(&sf.counters)?;
    outputs.agents = open_out(&sf.agent_health)?;
    let flows: Option<Box<dyn FlowSink + Send>> = match &opts.flows {
        Some(p) => Some(Box::new(FlowWriter::append(p)?)),
        None => None,
    };
    if let Some(u) = &opts.user {
        live::drop_privileges(u)?;
    }
    let mut p = Pipeline::new(cfg, rules.clone());
    if let Some(f) = flows {
        p.set_flow_sink(f);
    }
    let mut col = Collector::new(sf.agents.clone());
    let (tx, rx) = sync_channel::<Ready>(64);
    let sink = std::thread::Builder::new()
        .name("bittap-sink".into())
        .spawn(move || live::run_sink(outputs, rx))?;
    eprintln!(
        "bittap: collecting sFlow on udp {} (receive buffer {} KiB)",
        sock.local_addr().unwrap_or(listen),
        rcvbuf / 1024
    );

    let delay = i64::from(opts.flush_delay_secs) * NS;
    let mut rules = rules;
    let mut out = Outcome::default();
    let mut open = minute_of(live::wall_ns() - delay);
    let mut buf = vec![0u8; 65536];
    let mut warned = 0;
    let mut recv_error = None;
    loop {
        let stopping = signals.stop.load(Ordering::Relaxed);
        if signals.reload.swap(false, Ordering::Relaxed) {
            match live::load_rules(&opts.rules_dir) {
                Ok(r) => {
                    let r = Arc::new(r);
                    p.set_rules(r.clone());
                    rules = r;
                    eprintln!("bittap: rules reloaded: {} port rules", rules.ports.len());
                }
                Err(e) => eprintln!("bittap: SIGHUP: invalid rules, keeping the old ones: {e}"),
            }
        }
        if stopping {
            // What the socket already holds is read too (bounded).
            sock.set_nonblocking(true)?;
            for _ in 0..(1 << 16) {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        out.datagrams += 1;
                        col.datagram(live::wall_ns(), &buf[..n], &mut p);
                    }
                    Err(_) => break,
                }
            }
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                out.datagrams += 1;
                col.datagram(live::wall_ns(), &buf[..n], &mut p);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                recv_error = Some(e);
                break;
            }
        }
        let now = live::wall_ns();
        p.advance_clock(now);
        for w in &p.warnings[warned..] {
            eprintln!("bittap: warning: {w}");
        }
        warned = p.warnings.len();
        let due = minute_of(now - delay);
        if due > open {
            let mut agg = Aggregator::new(rules.ports.len());
            for (m, b) in p.aggregator().take_before(due) {
                agg.absorb(m, &b);
            }
            // A quiet minute still gets its health row.
            agg.bucket(due - 1);
            let _ = tx.send(Ready {
                agg,
                rules: rules.clone(),
                agent_rows: Some(col.take_rows_before(due)),
            });
            open = due;
        }
    }

    if let Err(e) = p.finish() {
        out.errors.push(format!("flows: {e}"));
    }
    out.packets = p.totals().packets;
    let mut agg = Aggregator::new(rules.ports.len());
    for (m, b) in p.aggregator().take_all() {
        agg.absorb(m, &b);
    }
    let _ = tx.send(Ready {
        agg,
        rules,
        agent_rows: Some(col.take_rows()),
    });
    drop(tx);
    let rep = sink
        .join()
        .map_err(|_| anyhow::anyhow!("the sink thread panicked"))?;
    out.minutes = rep.minutes;
    out.errors.extend(rep.errors);
    out.spool = rep.spool;
    if let Some(e) = recv_error {
        return Err(e.into());
    }
    Ok(out)
}
