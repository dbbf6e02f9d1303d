//! `bittap live`: interfaces in, the same pipeline as `analyze` spread over worker threads,
//! and every minute appended to the outputs a few seconds after it ends.
//!
//! Threads: this one reads the captures and dispatches packets; N workers count; one sink
//! thread writes files and the database, so a slow disk or database never stalls capture.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use crate::aggregate::{minute_of, Aggregator, MinuteStart};
use crate::capture::live::{Drops, LiveCapture, LiveOptions};
use crate::capture::Source;
use crate::classify::{Class, Rules};
use crate::metrics::{Metrics, MetricsOptions};
use crate::pipeline::{Config, FlowSink};
use crate::sink::spool::{SpoolConfig, SpoolStats, Spooler};
use crate::sink::{self, influx, FlowWriter, Format};
use crate::time::{Clock, Nanos, WallClock};
use crate::workers::Workers;

const NS: i64 = 1_000_000_000;

/// What to capture and where to write.
#[derive(Debug, Clone)]
pub struct Options {
    pub capture: LiveOptions,
    pub threads: usize,
    pub series: Option<PathBuf>,
    pub port_series: Option<PathBuf>,
    pub health: Option<PathBuf>,
    pub line_protocol: Option<PathBuf>,
    pub flows: Option<PathBuf>,
    pub probe: String,
    pub influx: Option<influx::Target>,
    /// The spool every database write goes through (directory, bound, retries), so an outage
    /// loses no minute: live always spools.
    pub spool: (PathBuf, SpoolConfig),
    /// Per-minute estimate of distinct BitTorrent hosts, appended.
    pub hosts: Option<PathBuf>,
    /// Switch to this user once the captures and outputs are open.
    pub user: Option<String>,
    /// Where SIGHUP reloads rules from (None: the built-in rules).
    pub rules_dir: Option<PathBuf>,
    /// Seconds after its end (packet time or wall clock, whichever is later) a minute is
    /// flushed; packets of a minute arriving later count in the next open minute.
    pub flush_delay_secs: u32,
    /// No per-minute line on stdout.
    pub quiet: bool,
    /// `/metrics` and `/healthz` over HTTP.
    pub metrics: Option<MetricsOptions>,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Packets read from the captures.
    pub read: u64,
    /// Packets handed to the workers (read less queue drops): all of them are in the series.
    pub counted: u64,
    pub queue_drops: u64,
    pub drops: Drops,
    /// Packets in the series written (equal to `counted`).
    pub in_series: u64,
    pub minutes: u64,
    /// Failures writing outputs (the run went on).
    pub errors: Vec<String>,
    /// The database spool after the last minute was handed to it and drained for a while.
    pub spool: Option<SpoolStats>,
}

/// Flags the signal handlers set.
#[derive(Clone, Default)]
pub struct Signals {
    /// SIGTERM or SIGINT: flush and stop.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP: reload rules.
    pub reload: Arc<AtomicBool>,
}

impl Signals {
    /// Registers SIGTERM, SIGINT and SIGHUP.
    pub fn register() -> std::io::Result<Signals> {
        let s = Signals::default();
        signal_hook::flag::register(signal_hook::consts::SIGTERM, s.stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, s.stop.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, s.reload.clone())?;
        Ok(s)
    }
}

/// Files appended minute by minute, opened before privileges are dropped.
pub(crate) struct Out {
    w: BufWriter<File>,
    fmt: Format,
    header: bool,
    path: PathBuf,
}

pub(crate) fn open_out(p: &Option<PathBuf>) -> anyhow::Result<Option<Out>> {
    let Some(p) = p else { return Ok(None) };
    let (w, empty) = sink::open_append(p)?;
    Ok(Some(Out {
        w,
        fmt: Format::for_path(p),
        header: empty,
        path: p.clone(),
    }))
}

pub(crate) struct Outputs {
    pub(crate) series: Option<Out>,
    pub(crate) ports: Option<Out>,
    pub(crate) health: Option<Out>,
    pub(crate) line: Option<Out>,
    pub(crate) hosts: Option<Out>,
    pub(crate) spool: Option<Spooler>,
    pub(crate) probe: String,
    pub(crate) quiet: bool,
    /// Sampled input (sFlow): series rows carry samples and intervals, health sFlow's fields.
    pub(crate) sampled: bool,
    /// sFlow: per-interface link load and per-agent health, appended.
    pub(crate) links: Option<Out>,
    pub(crate) agents: Option<Out>,
    /// `--metrics-listen`: updated as minutes are flushed.
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl Outputs {
    /// The outputs of `opts`, opened (and the spool started) before privileges are dropped.
    pub(crate) fn open(opts: &Options) -> anyhow::Result<Outputs> {
        Ok(Outputs {
            series: open_out(&opts.series)?,
            ports: open_out(&opts.port_series)?,
            health: open_out(&opts.health)?,
            line: open_out(&opts.line_protocol)?,
            hosts: open_out(&opts.hosts)?,
            // Started before privileges are dropped (the spool directory may be root's), and
            // replaying what an earlier run left.
            spool: match &opts.influx {
                Some(t) => Some(Spooler::start(
                    t.clone(),
                    opts.spool.0.clone(),
                    opts.spool.1.clone(),
                )?),
                None => None,
            },
            probe: opts.probe.clone(),
            quiet: opts.quiet,
            sampled: false,
            links: None,
            agents: None,
            metrics: None,
        })
    }
}

/// Minutes ready to be written, with the rule set they were counted under.
pub(crate) struct Ready {
    pub(crate) agg: Aggregator,
    pub(crate) rules: Arc<Rules>,
    /// sFlow: the per-agent rows of the same minutes.
    pub(crate) agent_rows: Option<crate::sflow::AgentRows>,
}

#[derive(Default)]
pub(crate) struct SinkReport {
    pub(crate) in_series: u64,
    pub(crate) minutes: u64,
    pub(crate) errors: Vec<String>,
    pub(crate) spool: Option<SpoolStats>,
}

pub(crate) fn run_sink(mut o: Outputs, rx: Receiver<Ready>) -> SinkReport {
    let mut rep = SinkReport::default();
    for Ready {
        mut agg,
        rules,
        agent_rows,
    } in rx
    {
        if let Some(sp) = &o.spool {
            // The spool as it stands when the minute is written.
            let st = sp.stats();
            let minutes: Vec<i64> = agg.minutes().map(|(m, _)| m).collect();
            for m in minutes {
                let h = &mut agg.bucket(m).health;
                h.spool_bytes = st.pending_bytes;
                h.spool_age_seconds = st.oldest_age_secs;
            }
        }
        let series = agg.series_rows();
        let ports = agg.port_rows();
        let health = agg.health_rows();
        let hosts = agg.hosts_rows();
        let sflow_rows = agg.sflow_rows();
        let sflow = o.sampled.then_some(sflow_rows.as_slice());
        rep.minutes += health.len() as u64;
        rep.in_series += series.iter().map(|r| r.counts.packets).sum::<u64>();
        // Before the files: once a minute is in them, it is in the metrics too.
        if let Some(m) = &o.metrics {
            m.record(&series, &health);
        }
        let metrics = o.metrics.clone();
        let mut fail = |what: &Out, e: std::io::Error| {
            if let Some(m) = &metrics {
                m.output_error();
            }
            let msg = format!("{}: {e}", what.path.display());
            eprintln!("bittap: write failed: {msg}");
            rep.errors.push(msg);
        };
        if let Some(out) = &mut o.series {
            let r = sink::write_series_to(&mut out.w, out.fmt, &series, out.header, o.sampled)
                .and_then(|_| out.w.flush());
            out.header = false;
            if let Err(e) = r {
                fail(out, e);
            }
        }
        if let Some(out) = &mut o.ports {
            let r = sink::write_port_series_to(
                &mut out.w, out.fmt, &ports, &rules, out.header, o.sampled,
            )
            .and_then(|_| out.w.flush());
            out.header = false;
            if let Err(e) = r {
                fail(out, e);
            }
        }
        if let Some(out) = &mut o.health {
            let r = sink::write_health_to(&mut out.w, out.fmt, &health, out.header, sflow)
                .and_then(|_| out.w.flush());
            out.header = false;
            if let Err(e) = r {
                fail(out, e);
            }
        }
        if let Some(rows) = &agent_rows {
            if let Some(out) = &mut o.links {
                let r = crate::sflow::write_link_rows_to(&mut out.w, rows, out.header)
                    .and_then(|_| out.w.flush());
                out.header = false;
                if let Err(e) = r {
                    fail(out, e);
                }
            }
            if let Some(out) = &mut o.agents {
                let r = crate::sflow::write_agent_rows_to(&mut out.w, rows, out.header)
                    .and_then(|_| out.w.flush());
                out.header = false;
                if let Err(e) = r {
                    fail(out, e);
                }
            }
        }
        if let Some(out) = &mut o.hosts {
            let r = sink::write_hosts_to(&mut out.w, out.fmt, &hosts, out.header)
                .and_then(|_| out.w.flush());
            out.header = false;
            if let Err(e) = r {
                fail(out, e);
            }
        }
        if o.line.is_some() || o.spool.is_some() {
            let mut text =
                sink::line::render_with(&o.probe, &series, &ports, &health, sflow, &rules);
            text.push_str(&sink::line::render_hosts(&o.probe, &hosts));
            if let Some(out) = &mut o.line {
                let r = out.w.write_all(text.as_bytes()).and_then(|_| out.w.flush());
                if let Err(e) = r {
                    fail(out, e);
                }
            }
            if let Some(sp) = &o.spool {
                // Durable on disk before this returns; the spool's own thread sends it.
                if let Err(e) = sp.submit_text(&text) {
                    let msg = format!("spool {}: {e}", sp.dir().display());
                    eprintln!("bittap: database spool write failed: {msg}");
                    rep.errors.push(msg);
                }
            }
        }
        if !o.quiet {
            for (minute, h) in &health {
                let (mut bt, mut all) = (0u64, 0u64);
                for r in series.iter().filter(|r| r.minute == *minute) {
                    all += r.counts.bytes;
                    if r.proto.class() == Class::Bittorrent {
                        bt += r.counts.bytes;
                    }
                }
                let pct = if all == 0 {
                    0.0
                } else {
                    100.0 * bt as f64 / all as f64
                };
                let t = MinuteStart(*minute);
                if let Some(sf) = sflow.and_then(|v| v.iter().find(|(m, _)| m == minute)) {
                    let sf = sf.1;
                    println!(
                        "{t} packets={} bytes={} bittorrent_bytes={bt} ({pct:.2}%) flows={} datagrams={} lost={} samples={} agent_drops={} malformed={} rejected={}",
                        h.packets,
                        h.bytes,
                        h.flows_tracked,
                        sf.datagrams,
                        sf.datagrams_lost,
                        sf.flow_samples,
                        sf.sample_drops,
                        sf.malformed,
                        sf.rejected
                    );
                    continue;
                }
                println!(
                    "{t} packets={} bytes={} bittorrent_bytes={bt} ({pct:.2}%) flows={} drops kernel={} interface={} queue={}",
                    h.packets,
                    h.bytes,
                    h.flows_tracked,
                    h.kernel_drops,
                    h.interface_drops,
                    h.queue_drops
                );
            }
            let _ = std::io::stdout().flush();
        }
    }
    if let Some(sp) = o.spool.take() {
        rep.spool = Some(sp.close(SPOOL_DRAIN));
    }
    rep
}

/// How long the last minutes may take to reach the database at exit; what is left stays in
/// the spool for the next start.
pub(crate) const SPOOL_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Switches to `user` (its uid, primary gid, no supplementary groups) for good.
pub fn drop_privileges(user: &str) -> anyhow::Result<()> {
    let name = std::ffi::CString::new(user)?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        anyhow::bail!("--user {user}: no such user");
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        if libc::setgroups(1, &gid) != 0 {
            anyhow::bail!(
                "--user {user}: setgroups: {}",
                std::io::Error::last_os_error()
            );
        }
        if libc::setgid(gid) != 0 {
            anyhow::bail!("--user {user}: setgid: {}", std::io::Error::last_os_error());
        }
        if libc::setuid(uid) != 0 {
            anyhow::bail!("--user {user}: setuid: {}", std::io::Error::last_os_error());
        }
        if uid != 0 && libc::setuid(0) == 0 {
            anyhow::bail!("--user {user}: root privileges could be regained");
        }
    }
    Ok(())
}

pub(crate) fn load_rules(dir: &Option<PathBuf>) -> Result<Rules, crate::classify::RuleError> {
    match dir {
        Some(d) => Rules::load_dir(d),
        None => Rules::builtin(),
    }
}

/// `--metrics-listen`: bound before privileges are dropped (a port below 1024 needs them),
/// served from a thread of its own, and updated by the sink as minutes are written.
pub(crate) fn serve_metrics(
    opts: &Options,
    interfaces: Vec<String>,
    outputs: &mut Outputs,
) -> anyhow::Result<Option<Arc<Metrics>>> {
    let Some(m) = &opts.metrics else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(m.listen)
        .map_err(|e| anyhow::anyhow!("--metrics-listen {}: {e}", m.listen))?;
    let metrics = Arc::new(Metrics::new(
        m.clone(),
        interfaces,
        outputs.spool.as_ref().map(Spooler::watch),
    ));
    crate::metrics::serve(listener, metrics.clone())?;
    outputs.metrics = Some(metrics.clone());
    Ok(Some(metrics))
}

/// Captures until a stop signal, then flushes the partial minute and returns.
pub fn run(
    opts: &Options,
    cfg: Config,
    rules: Arc<Rules>,
    signals: &Signals,
) -> anyhow::Result<Outcome> {
    // The interfaces first (an interface that cannot be opened leaves no empty files), then
    // the outputs, both before privileges are dropped.
    let mut cap = LiveCapture::open(&opts.capture)?;
    let mut outputs = Outputs::open(opts)?;
    let metrics = serve_metrics(opts, cap.interface_names(), &mut outputs)?;
    let flows: Option<Box<dyn FlowSink + Send>> = match &opts.flows {
        Some(p) => Some(Box::new(FlowWriter::append(p)?)),
        None => None,
    };
    if let Some(u) = &opts.user {
        drop_privileges(u)?;
    }
    let workers = Workers::start(opts.threads, &cfg, rules.clone(), None, flows, false)?;
    let (tx, rx) = sync_channel::<Ready>(64);
    let sink = std::thread::Builder::new()
        .name("bittap-sink".into())
        .spawn(move || run_sink(outputs, rx))?;
    eprintln!(
        "bittap: capturing on {} with {} worker(s)",
        cap.interfaces().collect::<Vec<_>>().join(", "),
        workers.len()
    );

    let (mut out, read_error) = capture_minutes(
        &mut cap,
        workers,
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
    out.in_series = rep.in_series;
    out.minutes = rep.minutes;
    out.errors.extend(rep.errors);
    out.spool = rep.spool;
    if let Some(e) = read_error {
        return Err(e.into());
    }
    Ok(out)
}

/// What the capture loop needs besides its source, workers and clock.
pub(crate) struct Minutes<'a> {
    pub(crate) signals: &'a Signals,
    /// Where SIGHUP reloads rules from (None: the built-in rules).
    pub(crate) rules_dir: &'a Option<PathBuf>,
    /// How long after its end a minute is flushed.
    pub(crate) delay: Nanos,
    pub(crate) metrics: Option<&'a Arc<Metrics>>,
    /// Where flushed minutes go (the sink thread).
    pub(crate) tx: SyncSender<Ready>,
}

/// Reads `cap` until a stop signal (or its end), flushing each minute `delay` after it ends
/// by `clock` (or by packet time, if later), reloading rules on SIGHUP and reporting drops in
/// the health of the minute they were noticed in. Returns the counts and the source's error.
/// Minutes handed over by a [`MinuteEngine`].
pub(crate) struct Flush {
    pub(crate) agg: Aggregator,
    /// Warnings since the last flush.
    pub(crate) warnings: Vec<String>,
    /// The first flow-sink error.
    pub(crate) error: Option<std::io::Error>,
    /// Packets counted in all (at the end).
    pub(crate) packets: u64,
    /// sFlow: the per-agent rows of the same minutes.
    pub(crate) agent_rows: Option<crate::sflow::AgentRows>,
}

impl From<crate::workers::Flushed> for Flush {
    fn from(f: crate::workers::Flushed) -> Flush {
        Flush {
            agg: f.agg,
            warnings: f.warnings,
            error: f.error,
            packets: f.totals.packets,
            agent_rows: None,
        }
    }
}

/// What the daemons' minute loop drives: the workers for `live`, a collector in front of one
/// pipeline for `sflow`.
pub(crate) trait MinuteEngine {
    fn packet(&mut self, pkt: &crate::capture::RawPacket<'_>);
    /// Nothing was read: what is batched goes to the workers.
    fn idle(&mut self) {}
    /// Time passes on a quiet link: idle flows end.
    fn clock(&mut self, now: i64);
    /// The newest packet time counted (the minute loop never flushes behind it).
    fn watermark(&self) -> i64;
    /// Packets dropped on the way to the workers since the last call.
    fn take_queue_drops(&mut self) -> u64 {
        0
    }
    fn set_rules(&mut self, rules: Arc<Rules>);
    /// The minutes before `due`.
    fn flush(&mut self, due: i64) -> Flush;
    /// Every minute left, flows ended.
    fn finish(self) -> Flush;
}

impl MinuteEngine for Workers {
    fn packet(&mut self, pkt: &crate::capture::RawPacket<'_>) {
        self.dispatch(pkt);
    }
    fn idle(&mut self) {
        self.send_pending();
    }
    fn clock(&mut self, now: i64) {
        Workers::clock(self, now);
    }
    fn watermark(&self) -> i64 {
        Workers::watermark(self)
    }
    fn take_queue_drops(&mut self) -> u64 {
        Workers::take_queue_drops(self)
    }
    fn set_rules(&mut self, rules: Arc<Rules>) {
        Workers::set_rules(self, rules);
    }
    fn flush(&mut self, due: i64) -> Flush {
        Workers::flush(self, due).into()
    }
    fn finish(self) -> Flush {
        Workers::finish(self).into()
    }
}

pub(crate) fn capture_minutes<S: Source, E: MinuteEngine, C: Clock>(
    cap: &mut S,
    mut workers: E,
    mut rules: Arc<Rules>,
    m: &Minutes<'_>,
    clock: &C,
) -> (Outcome, Option<S::Error>) {
    let delay = m.delay.get();
    let (signals, metrics, tx) = (m.signals, m.metrics, &m.tx);
    let mut out = Outcome::default();
    // Minutes before `open` are flushed.
    let mut open = minute_of(clock.now().get().saturating_sub(delay));
    let mut last = cap.drops();
    let mut dropping = false;
    let mut last_clock = clock.now().get();
    let mut read_error = None;
    loop {
        let stopping = signals.stop.load(Ordering::Relaxed);
        if signals.reload.swap(false, Ordering::Relaxed) {
            match load_rules(m.rules_dir) {
                Ok(r) => {
                    // At once, between packets: open minutes' port views follow rule ids into
                    // the new set; minutes already flushed keep the names they were counted under.
                    let r = Arc::new(r);
                    workers.set_rules(r.clone());
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
        if !stopping {
            cap.wait(100);
        }
        // On stop, what the kernel already holds is read too (bounded: the link may not pause).
        let budget = if stopping { 1 << 20 } else { 4096 };
        let mut read = 0u64;
        let r = cap.read(budget, |pkt| {
            read += 1;
            workers.packet(pkt);
        });
        out.read += read;
        let ended = matches!(r, Ok(None));
        if let Some(m) = metrics {
            m.beat();
        }
        if let Err(e) = r {
            if let Some(m) = metrics {
                m.capture_failed(e.to_string());
            }
            read_error = Some(e);
        }
        let now = clock.now().get().max(workers.watermark());
        if read == 0 {
            workers.idle();
            if now.saturating_sub(last_clock) >= NS {
                // A quiet link: idle flows still end on time.
                workers.clock(now);
                last_clock = now;
            }
        }
        if stopping || ended || read_error.is_some() {
            break;
        }
        let due = minute_of(now.saturating_sub(delay));
        if due > open {
            let mut f = workers.flush(due);
            let d = cap.drops();
            if let Some(m) = metrics {
                m.set_drops(cap.drops_by_interface());
            }
            let q = workers.take_queue_drops();
            out.queue_drops += q;
            let kernel = d.kernel - last.kernel;
            let iface = d.interface - last.interface;
            last = d;
            // Drops since the last flush are reported in the newest minute flushed; a quiet
            // minute still gets its health row.
            let h = &mut f.agg.bucket(due - 1).health;
            h.kernel_drops += kernel;
            h.interface_drops += iface;
            h.queue_drops += q;
            let now_dropping = kernel + iface + q > 0;
            if now_dropping && !dropping {
                eprintln!(
                    "bittap: warning: packets dropped in the minute to {}: kernel {kernel}, interface {iface}, queue {q}; counts are low by that much (raise --buffer-size or --threads, or narrow --filter)",
                    MinuteStart(due)
                );
            }
            dropping = now_dropping;
            for w in &f.warnings {
                eprintln!("bittap: warning: {w}");
            }
            if let Some(e) = f.error {
                out.errors.push(format!("flows: {e}"));
            }
            let _ = tx.send(Ready {
                agg: f.agg,
                rules: rules.clone(),
                agent_rows: f.agent_rows,
            });
            open = due;
        }
    }

    let q = workers.take_queue_drops();
    out.queue_drops += q;
    let mut f = workers.finish();
    let d = cap.drops();
    if let Some(m) = metrics {
        m.set_drops(cap.drops_by_interface());
    }
    let kernel = d.kernel - last.kernel;
    let iface = d.interface - last.interface;
    out.drops = d;
    out.counted = f.packets;
    let newest = f.agg.minutes().last().map(|(m, _)| m).unwrap_or(open);
    let h = &mut f.agg.bucket(newest).health;
    h.kernel_drops += kernel;
    h.interface_drops += iface;
    h.queue_drops += q;
    if let Some(e) = f.error {
        out.errors.push(format!("flows: {e}"));
    }
    let _ = tx.send(Ready {
        agg: f.agg,
        rules,
        agent_rows: f.agent_rows,
    });
    (out, read_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{MemorySource, OwnedPacket};
    use crate::time::{FakeClock, NS_PER_MIN};

    /// A minute well inside the packet times bittap represents.
    const MINUTE: i64 = 29_000_000;

    fn udp(ts: i64, sport: u16) -> OwnedPacket {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 48, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&53u16.to_be_bytes());
        f.extend_from_slice(&[0, 28, 0, 0]);
        f.extend_from_slice(&[0u8; 20]);
        OwnedPacket::ethernet(ts, f)
    }

    struct Run {
        out: Outcome,
        ready: Vec<Ready>,
        rules: Arc<Rules>,
    }

    /// Runs the capture loop over `src` with a clock that starts 10 s into the minute and
    /// moves a second per read, and collects what it flushed.
    fn run_loop(mut src: MemorySource, signals: &Signals) -> Run {
        let rules = Arc::new(Rules::builtin().expect("rules"));
        let workers = Workers::start(1, &Config::default(), rules.clone(), None, None, false)
            .expect("workers");
        let (tx, rx) = sync_channel::<Ready>(1024);
        let clock = FakeClock::new(Nanos(MINUTE * NS_PER_MIN + 10 * NS), Nanos::from_secs(1));
        let (out, err) = capture_minutes(
            &mut src,
            workers,
            rules.clone(),
            &Minutes {
                signals,
                rules_dir: &None,
                delay: Nanos::from_secs(5),
                metrics: None,
                tx,
            },
            &clock,
        );
        assert!(err.is_none());
        Run {
            out,
            ready: rx.into_iter().collect(),
            rules,
        }
    }

    fn packets(r: &mut Ready) -> u64 {
        r.agg.series_rows().iter().map(|r| r.counts.packets).sum()
    }

    /// A minute is flushed once the clock is `delay` past its end, with its packets; the
    /// partial minute follows at the end.
    #[test]
    fn minutes_are_flushed_a_delay_after_they_end() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let mut src = MemorySource::new(vec![udp(t, 4000), udp(t + NS, 4000), udp(t, 4001)]);
        src.idle_reads = 120;
        let mut r = run_loop(src, &Signals::default());
        assert_eq!(r.out.read, 3);
        assert_eq!(r.out.counted, 3);
        assert!(r.ready.len() >= 2, "{}", r.ready.len());
        let first = &mut r.ready[0];
        let minutes: Vec<i64> = first.agg.minutes().map(|(m, _)| m).collect();
        assert_eq!(minutes, [MINUTE]);
        assert_eq!(packets(first), 3);
        let rest: u64 = r.ready[1..].iter_mut().map(packets).sum();
        assert_eq!(rest, 0);
        assert!(r.ready.iter().all(|x| Arc::ptr_eq(&x.rules, &r.rules)));
    }

    /// SIGHUP: the rules are loaded again, the flag is cleared, and later minutes carry the
    /// new set.
    #[test]
    fn sighup_reloads_rules() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let signals = Signals::default();
        signals.reload.store(true, Ordering::Relaxed);
        let mut src = MemorySource::new(vec![udp(t, 4000)]);
        src.idle_reads = 3;
        let r = run_loop(src, &signals);
        assert!(!signals.reload.load(Ordering::Relaxed));
        let last = r.ready.last().expect("a minute");
        assert!(!Arc::ptr_eq(&last.rules, &r.rules));
        assert_eq!(r.out.counted, 1);
    }

    /// Drops growing while the capture is read land in the health rows, all of them once.
    #[test]
    fn drops_are_reported_in_the_health_rows() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let mut src = MemorySource::new(vec![udp(t, 4000), udp(t, 4001)]);
        src.idle_reads = 80;
        src.drops_per_read = Drops {
            received: 3,
            kernel: 2,
            interface: 1,
        };
        let mut r = run_loop(src, &Signals::default());
        let reads = r.out.drops.received / 3;
        assert!(reads > 60, "{reads}");
        assert_eq!(r.out.drops.kernel, 2 * reads);
        let (mut kernel, mut iface) = (0, 0);
        for x in &mut r.ready {
            for (_, h) in x.agg.health_rows() {
                kernel += h.kernel_drops;
                iface += h.interface_drops;
            }
        }
        assert_eq!(kernel, 2 * reads);
        assert_eq!(iface, reads);
    }

    /// A stop signal: what the source still holds is read (bounded) and counted.
    #[test]
    fn stop_reads_what_is_waiting_then_flushes() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let signals = Signals::default();
        signals.stop.store(true, Ordering::Relaxed);
        let mut src = MemorySource::new((0..50).map(|i| udp(t, 4000 + i)).collect());
        src.idle_reads = 1000;
        let mut r = run_loop(src, &signals);
        assert_eq!(r.out.read, 50);
        let all: u64 = r.ready.iter_mut().map(packets).sum();
        assert_eq!(all, 50);
    }
}
