//! `bittap live` over AF_PACKET fanout: N workers, each reading its own rings (one per
//! interface) and counting in its own [`Engine`]; the kernel spreads flows over them, so
//! there is no dispatcher thread and no copy. This thread only keeps time: it flushes minutes
//! (asking every worker for its share and merging them), reloads rules and stops; the minutes
//! go to the same sink thread and outputs as `live` over libpcap.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::aggregate::{minute_of, Aggregator, Counts, MinuteBucket, MinuteStart};
use crate::capture::afpacket::{self, Fanout, Ring};
use crate::capture::live::{Drops, LiveError};
use crate::classify::endpoints::SharedEndpoints;
use crate::classify::Rules;
use crate::engine::workers::SharedSink;
use crate::engine::{Config, Engine};
use crate::flow::record::FlowSink;
use crate::live::{self, load_rules, run_sink, Options, Outcome, Outputs, Ready, Signals};
use crate::metrics::Metrics;
use crate::sink::spool::Spooler;
use crate::sink::FlowWriter;
use crate::time::Nanos;

const NS: i64 = 1_000_000_000;
/// How long a worker waits on a quiet ring before it looks at the clock and its commands.
const POLL_MS: i32 = 50;
/// Blocks a worker walks per ring before it looks at its commands again.
const BLOCKS_PER_TURN: usize = 8;

/// The `--capture` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// AF_PACKET where it opens, libpcap otherwise.
    Auto,
    AfPacket,
    Pcap,
}

impl Backend {
    pub fn parse(s: Option<&str>) -> anyhow::Result<Backend> {
        match s {
            None => Ok(Backend::Auto),
            Some("afpacket") => Ok(Backend::AfPacket),
            Some("pcap") => Ok(Backend::Pcap),
            Some(o) => anyhow::bail!("--capture {o}: expected afpacket or pcap"),
        }
    }
}

/// `live` with the capture backend asked for (`--capture`, None: the default).
pub fn run_live(
    capture: Option<&str>,
    opts: &Options,
    cfg: Config,
    rules: Arc<Rules>,
    signals: &Signals,
) -> anyhow::Result<Outcome> {
    let backend = Backend::parse(capture)?;
    if backend == Backend::Pcap {
        return live::run(opts, cfg, rules, signals);
    }
    match afpacket::open(&opts.capture, opts.threads, Fanout::default()) {
        Ok(rings) => run(rings, opts, cfg, rules, signals),
        Err(e) if backend == Backend::Auto => {
            eprintln!("bittap: AF_PACKET: {e}; capturing through libpcap");
            live::run(opts, cfg, rules, signals)
        }
        Err(e) => Err(e.into()),
    }
}

/// Commands from the clock thread to a worker.
enum Cmd {
    /// Hand over every minute before this one.
    Flush(i64),
    Rules(Arc<Rules>),
    /// Read what the rings hold, end every flow and hand over everything.
    Finish,
}

/// What a worker hands over.
struct Handover {
    worker: usize,
    minutes: Vec<(i64, Box<MinuteBucket>)>,
    error: Option<std::io::Error>,
    warnings: Vec<String>,
    totals: Counts,
    /// Its rings' cumulative counters, with the interface and the frames read.
    rings: Vec<RingStats>,
}

#[derive(Clone)]
struct RingStats {
    interface: String,
    drops: Drops,
    read: u64,
}

struct Worker {
    tx: SyncSender<Cmd>,
    handle: std::thread::JoinHandle<()>,
}

/// State every worker shares with the clock thread.
struct Shared {
    /// Latest packet time any worker has seen.
    watermark: AtomicI64,
    /// The first ring that failed.
    error: Mutex<Option<LiveError>>,
}

struct WorkerCtx {
    id: usize,
    p: Engine,
    rings: Vec<Ring>,
    rx: Receiver<Cmd>,
    reply: SyncSender<Handover>,
    shared: Arc<Shared>,
    seen_warnings: usize,
}

impl WorkerCtx {
    fn ring_stats(&mut self) -> Vec<RingStats> {
        self.rings
            .iter_mut()
            .map(|r| RingStats {
                drops: r.drops(),
                interface: r.interface().to_string(),
                read: r.read,
            })
            .collect()
    }

    fn handover(&mut self, minutes: Vec<(i64, Box<MinuteBucket>)>, error: Option<std::io::Error>) {
        let warnings = self.p.warnings[self.seen_warnings..].to_vec();
        self.seen_warnings = self.p.warnings.len();
        let h = Handover {
            worker: self.id,
            minutes,
            error,
            warnings,
            totals: self.p.totals(),
            rings: self.ring_stats(),
        };
        let _ = self.reply.send(h);
    }

    /// Walks each ring's ready blocks once; returns the frames counted.
    fn turn(&mut self) -> usize {
        let mut n = 0;
        let mut newest = i64::MIN;
        let p = &mut self.p;
        for r in &mut self.rings {
            n += r.read(BLOCKS_PER_TURN, |pkt| {
                newest = newest.max(pkt.ts_ns);
                p.process(pkt);
            });
        }
        if n > 0 {
            self.shared.watermark.fetch_max(newest, Ordering::Relaxed);
        }
        n
    }

    fn run(mut self) {
        let mut idle = false;
        loop {
            while let Ok(cmd) = self.rx.try_recv() {
                match cmd {
                    Cmd::Flush(minute) => {
                        let m = self.p.aggregator().take_before(minute);
                        self.handover(m, None);
                    }
                    Cmd::Rules(r) => self.p.set_rules(r),
                    Cmd::Finish => return self.finish(),
                }
            }
            // Polled only once the rings are empty: a busy worker goes from block to block.
            if idle && afpacket::wait(&self.rings, POLL_MS) {
                if let Some(e) = self.rings.iter().find_map(Ring::error) {
                    let mut slot = self.shared.error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                }
            }
            idle = self.turn() == 0;
            if idle {
                // Caught up with its rings: the time any worker has seen (or the wall clock
                // on a quiet link) is past for this one too, so idle flows end on time.
                let now = Nanos::now()
                    .0
                    .max(self.shared.watermark.load(Ordering::Relaxed));
                self.p.advance_clock(now);
            }
        }
    }

    fn finish(mut self) {
        // What the kernel already holds, and the blocks it retires within its timeout
        // (bounded: the link may not pause).
        let mut budget = 1usize << 20;
        let mut waited = false;
        while budget > 0 {
            let n = self.turn();
            budget = budget.saturating_sub(n.max(1));
            if n == 0 {
                if waited {
                    break;
                }
                std::thread::sleep(Duration::from_millis(30));
                waited = true;
            }
        }
        let error = self.p.finish().err();
        let m = self.p.aggregator().take_all();
        self.handover(m, error);
    }
}

/// Per-ring counters as of the last handover, to turn cumulative counters into deltas.
#[derive(Default)]
struct RingBook {
    last: Vec<Vec<RingStats>>,
}

impl RingBook {
    /// Kernel drops and frames received since the last call, summed, and the rings that
    /// dropped (named `interface/worker`).
    fn delta(&mut self, rings: &[Vec<RingStats>]) -> (u64, Vec<String>) {
        let mut kernel = 0;
        let mut dropping = Vec::new();
        for (w, rs) in rings.iter().enumerate() {
            for (i, r) in rs.iter().enumerate() {
                let before = self
                    .last
                    .get(w)
                    .and_then(|l| l.get(i))
                    .map_or(0, |l| l.drops.kernel);
                let d = r.drops.kernel.saturating_sub(before);
                if d > 0 {
                    dropping.push(format!("{}/{w} {d}", r.interface));
                }
                kernel += d;
            }
        }
        self.last = rings.to_vec();
        (kernel, dropping)
    }

    fn totals(&self) -> Drops {
        let mut t = Drops::default();
        for r in self.last.iter().flatten() {
            t.received += r.drops.received;
            t.kernel += r.drops.kernel;
        }
        t
    }

    fn by_interface(&self) -> Vec<(String, Drops)> {
        let mut out: Vec<(String, Drops)> = Vec::new();
        for r in self.last.iter().flatten() {
            match out.iter_mut().find(|(n, _)| *n == r.interface) {
                Some((_, d)) => {
                    d.received += r.drops.received;
                    d.kernel += r.drops.kernel;
                }
                None => out.push((r.interface.clone(), r.drops)),
            }
        }
        out
    }
}

/// Everything the workers handed over for one command, merged.
struct Gathered {
    agg: Aggregator,
    error: Option<std::io::Error>,
    warnings: Vec<String>,
    totals: Counts,
    rings: Vec<Vec<RingStats>>,
}

fn gather(
    workers: &[Worker],
    replies: &Receiver<Handover>,
    port_rules: usize,
    cmd: impl Fn() -> Cmd,
) -> Gathered {
    let sent = workers.iter().filter(|w| w.tx.send(cmd()).is_ok()).count();
    let mut g = Gathered {
        agg: Aggregator::new(port_rules),
        error: None,
        warnings: Vec::new(),
        totals: Counts::default(),
        rings: vec![Vec::new(); workers.len()],
    };
    for _ in 0..sent {
        let Ok(h) = replies.recv() else { break };
        for (m, b) in &h.minutes {
            g.agg.absorb(*m, b);
        }
        if g.error.is_none() {
            g.error = h.error;
        }
        for w in h.warnings {
            if !g.warnings.contains(&w) {
                g.warnings.push(w);
            }
        }
        g.totals.add(h.totals.packets, h.totals.bytes);
        // Replies come in any order.
        if let Some(slot) = g.rings.get_mut(h.worker) {
            *slot = h.rings;
        }
    }
    g
}

/// Captures until a stop signal over already opened rings (one `Vec` per worker), then
/// flushes the partial minute and returns.
pub fn run(
    rings: Vec<Vec<Ring>>,
    opts: &Options,
    cfg: Config,
    rules: Arc<Rules>,
    signals: &Signals,
) -> anyhow::Result<Outcome> {
    let interfaces: Vec<String> = opts.capture.interfaces.clone();
    let mut outputs = Outputs::open(opts)?;
    let metrics = match &opts.metrics {
        Some(m) => {
            let listener = std::net::TcpListener::bind(m.listen)
                .map_err(|e| anyhow::anyhow!("--metrics-listen {}: {e}", m.listen))?;
            let metrics = Arc::new(Metrics::new(
                m.clone(),
                interfaces.clone(),
                outputs.spool.as_ref().map(Spooler::watch),
            ));
            crate::metrics::serve(listener, metrics.clone())?;
            outputs.metrics = Some(metrics.clone());
            Some(metrics)
        }
        None => None,
    };
    let flows: Option<SharedSink> = match &opts.flows {
        Some(p) => Some(SharedSink(Arc::new(Mutex::new(
            Box::new(FlowWriter::append(p)?) as Box<dyn FlowSink + Send>,
        )))),
        None => None,
    };
    if let Some(u) = &opts.user {
        live::drop_privileges(u)?;
    }

    let n = rings.len();
    let endpoints = SharedEndpoints::new(cfg.endpoint_ttl_ns, cfg.max_endpoints, 16.min(4 * n));
    let mut wcfg = cfg.clone();
    // Each worker holds its share of the flows.
    wcfg.max_flows = cfg.max_flows.div_ceil(n).max(1);
    let shared = Arc::new(Shared {
        watermark: AtomicI64::new(i64::MIN),
        error: Mutex::new(None),
    });
    let (reply_tx, replies) = sync_channel::<Handover>(n * 2);
    let mut workers = Vec::with_capacity(n);
    for (w, rs) in rings.into_iter().enumerate() {
        let (tx, rx) = sync_channel::<Cmd>(4);
        let mut p = Engine::new(wcfg.clone(), rules.clone());
        p.set_endpoints(endpoints.clone());
        if let Some(f) = &flows {
            p.set_flow_sink(Box::new(f.clone()));
        }
        let ctx = WorkerCtx {
            id: w,
            p,
            rings: rs,
            rx,
            reply: reply_tx.clone(),
            shared: shared.clone(),
            seen_warnings: 0,
        };
        let handle = std::thread::Builder::new()
            .name(format!("bittap-ring-{w}"))
            .spawn(move || ctx.run())?;
        workers.push(Worker { tx, handle });
    }
    let (tx, rx) = sync_channel::<Ready>(64);
    let sink = std::thread::Builder::new()
        .name("bittap-sink".into())
        .spawn(move || run_sink(outputs, rx))?;
    eprintln!(
        "bittap: capturing on {} with {n} worker(s) (AF_PACKET fanout)",
        interfaces.join(", ")
    );

    let delay = i64::from(opts.flush_delay_secs) * NS;
    let mut rules = rules;
    let mut out = Outcome::default();
    let mut open = minute_of(Nanos::now().0.saturating_sub(delay));
    let mut book = RingBook::default();
    let mut dropping = false;
    let mut read_error = None;
    loop {
        let stopping = signals.stop.load(Ordering::Relaxed);
        if signals.reload.swap(false, Ordering::Relaxed) {
            match load_rules(&opts.rules_dir) {
                Ok(r) => {
                    let r = Arc::new(r);
                    for w in &workers {
                        let _ = w.tx.send(Cmd::Rules(r.clone()));
                    }
                    rules = r;
                    eprintln!(
                        "bittap: rules reloaded: {} port rules, {} signatures",
                        rules.ports.len(),
                        rules.signatures.len()
                    );
                }
                Err(e) => eprintln!("bittap: SIGHUP: invalid rules, keeping the old ones: {e}"),
            }
        }
        if let Some(m) = &metrics {
            m.beat();
        }
        if let Some(e) = shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            if let Some(m) = &metrics {
                m.capture_failed(e.to_string());
            }
            read_error = Some(e);
        }
        if stopping || read_error.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let now = Nanos::now().0.max(shared.watermark.load(Ordering::Relaxed));
        let due = minute_of(now.saturating_sub(delay));
        if due > open {
            let mut g = gather(&workers, &replies, rules.ports.len(), || Cmd::Flush(due));
            let (kernel, rings) = book.delta(&g.rings);
            if let Some(m) = &metrics {
                m.set_drops(book.by_interface());
            }
            // Drops since the last flush are reported in the newest minute flushed; a quiet
            // minute still gets its health row.
            g.agg.bucket(due - 1).health.kernel_drops += kernel;
            let now_dropping = kernel > 0;
            if now_dropping && !dropping {
                eprintln!(
                    "bittap: warning: packets dropped in the minute to {}: kernel {kernel} (ring {}); counts are low by that much (raise --buffer-size or --threads, or narrow --filter)",
                    MinuteStart(due),
                    rings.join(", ")
                );
            }
            dropping = now_dropping;
            for w in &g.warnings {
                eprintln!("bittap: warning: {w}");
            }
            if let Some(e) = g.error {
                out.errors.push(format!("flows: {e}"));
            }
            let _ = tx.send(Ready {
                agg: g.agg,
                rules: rules.clone(),
                agent_rows: None,
            });
            open = due;
        }
    }

    let mut g = gather(&workers, &replies, rules.ports.len(), || Cmd::Finish);
    for w in workers {
        let _ = w.handle.join();
    }
    let (kernel, _) = book.delta(&g.rings);
    if let Some(m) = &metrics {
        m.set_drops(book.by_interface());
    }
    out.drops = book.totals();
    out.read = g.rings.iter().flatten().map(|r| r.read).sum();
    out.counted = g.totals.packets;
    let newest = g.agg.minutes().last().map(|(m, _)| m).unwrap_or(open);
    g.agg.bucket(newest).health.kernel_drops += kernel;
    for w in &g.warnings {
        eprintln!("bittap: warning: {w}");
    }
    if let Some(e) = g.error {
        out.errors.push(format!("flows: {e}"));
    }
    let mut per_ring: Vec<String> = Vec::new();
    for (w, rs) in g.rings.iter().enumerate() {
        for r in rs {
            per_ring.push(format!(
                "{}/{w} read {} kernel drops {}",
                r.interface, r.read, r.drops.kernel
            ));
        }
    }
    per_ring.sort();
    eprintln!("bittap: rings: {}", per_ring.join("; "));
    let _ = tx.send(Ready {
        agg: g.agg,
        rules,
        agent_rows: None,
    });
    drop(tx);
    live::finish(sink, out, read_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(interface: &str, received: u64, kernel: u64, read: u64) -> RingStats {
        RingStats {
            interface: interface.into(),
            drops: Drops {
                received,
                kernel,
                interface: 0,
            },
            read,
        }
    }

    #[test]
    fn ring_book_turns_cumulative_ring_counters_into_deltas() {
        let mut book = RingBook::default();
        let first = vec![
            vec![ring("eth1", 100, 0, 100), ring("eth2", 10, 2, 8)],
            vec![ring("eth1", 50, 5, 45), ring("eth2", 0, 0, 0)],
        ];
        assert_eq!(
            book.delta(&first),
            (7, vec!["eth2/0 2".to_string(), "eth1/1 5".to_string()])
        );
        let second = vec![
            vec![ring("eth1", 300, 0, 300), ring("eth2", 10, 2, 8)],
            vec![ring("eth1", 90, 9, 81), ring("eth2", 1, 0, 1)],
        ];
        assert_eq!(book.delta(&second), (4, vec!["eth1/1 4".to_string()]));
        assert_eq!(book.delta(&second), (0, vec![]));
        assert_eq!(
            book.totals(),
            Drops {
                received: 401,
                kernel: 11,
                interface: 0
            }
        );
        let by = book.by_interface();
        assert_eq!(by.len(), 2);
        assert_eq!(
            (by[0].0.as_str(), by[0].1.received, by[0].1.kernel),
            ("eth1", 390, 9)
        );
        assert_eq!(
            (by[1].0.as_str(), by[1].1.received, by[1].1.kernel),
            ("eth2", 11, 2)
        );
    }

    #[test]
    fn backend_names() {
        assert_eq!(Backend::parse(None).ok(), Some(Backend::Auto));
        assert_eq!(
            Backend::parse(Some("afpacket")).ok(),
            Some(Backend::AfPacket)
        );
        assert_eq!(Backend::parse(Some("pcap")).ok(), Some(Backend::Pcap));
        assert!(Backend::parse(Some("dpdk")).is_err());
    }
}
