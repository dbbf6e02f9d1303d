//! `bittap live`: interfaces in, the same pipeline as `analyze` spread over worker threads,
//! and every minute appended to the outputs a few seconds after it ends.
//!
//! Threads: this one reads the captures and dispatches packets; N workers count; one sink
//! thread writes files and the database, so a slow disk or database never stalls capture.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::aggregate::{Aggregator, MinuteStart};
use crate::capture::live::{Drops, LiveCapture, LiveOptions};
use crate::capture::Source;
use crate::classify::{Class, Rules};
use crate::engine::workers::Workers;
use crate::engine::Config;
use crate::flow::record::FlowSink;
use crate::metrics::{Metrics, MetricsOptions};
use crate::sink::spool::{SpoolConfig, SpoolStats, Spooler};
use crate::sink::{self, influx, FlowWriter, Format};
use crate::time::{Nanos, WallClock};

mod minutes;
pub(crate) use minutes::{capture_minutes, Flush, MinuteEngine, Minutes};

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
    /// sFlow `--members`: series and port-view rows carry the member.
    pub(crate) members: Option<Arc<crate::sflow::members::Members>>,
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
            members: None,
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
        let names = o.members.as_deref().map(|m| m.names());
        let shape = sink::rows::Shape {
            sampled: o.sampled,
            members: names,
        };
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
            let r = sink::write_series_to(&mut out.w, out.fmt, &series, out.header, shape)
                .and_then(|_| out.w.flush());
            out.header = false;
            if let Err(e) = r {
                fail(out, e);
            }
        }
        if let Some(out) = &mut o.ports {
            let r =
                sink::write_port_series_to(&mut out.w, out.fmt, &ports, &rules, out.header, shape)
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
                sink::line::render_with(&o.probe, &series, &ports, &health, sflow, names, &rules);
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
                        "{t} packets={} bytes={} bittorrent_bytes={bt} ({pct:.2}%) bittorrent_range={}-{} flows={} datagrams={} lost={} samples={} agent_drops={} malformed={} rejected={}",
                        h.packets,
                        h.bytes,
                        sf.bittorrent_low,
                        sf.bittorrent_high,
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

    let (out, read_error) = capture_minutes(
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
    finish(sink, out, read_error)
}

/// Waits for the sink thread to write the last minute, adds what it wrote to `out`, and
/// returns the capture's read error if there was one (after everything read was written).
pub(crate) fn finish<E>(
    sink: std::thread::JoinHandle<SinkReport>,
    mut out: Outcome,
    read_error: Option<E>,
) -> anyhow::Result<Outcome>
where
    anyhow::Error: From<E>,
{
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
