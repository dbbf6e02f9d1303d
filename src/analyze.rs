//! `bittap analyze`: capture files in, per-minute series and per-flow verdicts out.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::aggregate::{Aggregator, Packer};
use crate::capture::{drain, drain_ahead, expand_inputs, CaptureError, MergedReader};
use crate::classify::{Class, Rules};
use crate::engine::workers;
use crate::engine::{Config, Engine};
use crate::flow::record::{FlowRecord, FlowSink};
use crate::sflow::{self, Collector};
use crate::sink::influx::Client;
use crate::sink::spool::Spooler;
use crate::sink::{self, FlowWriter};
use std::io::Write as _;

/// What to read and where to write.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub inputs: Vec<PathBuf>,
    pub series: Option<PathBuf>,
    pub flows: Option<PathBuf>,
    pub port_series: Option<PathBuf>,
    pub health: Option<PathBuf>,
    pub progress: bool,
    /// Read the input twice: the first pass only learns BitTorrent endpoints, so flows that
    /// began before their peer was identified are found by correlation too.
    pub look_ahead: bool,
    /// InfluxDB line protocol of the series, port view and health.
    pub line_protocol: Option<PathBuf>,
    /// The `probe` tag of the line protocol.
    pub probe: String,
    /// A database to push the series to.
    pub influx: Option<crate::sink::influx::Target>,
    /// Timeout, gzip and CA of the database requests.
    pub http: crate::sink::influx::HttpOptions,
    /// Write through this spool directory (replaying what it holds), so lines a failure that
    /// can pass left are kept for later.
    pub spool: Option<(PathBuf, crate::sink::spool::SpoolConfig)>,
    /// Worker threads; 1 (or 0) runs the single pipeline on this thread.
    pub threads: usize,
    /// Estimated distinct BitTorrent hosts per minute.
    pub hosts: Option<PathBuf>,
    /// An SVG chart of the run (`--chart`).
    pub chart: Option<PathBuf>,
    /// The inputs are captures of sFlow datagrams (`--sflow`).
    pub sflow: Option<crate::sflow::Options>,
}

/// How a run went.
#[derive(Debug)]
pub struct Outcome {
    pub summary: String,
    pub packets: u64,
    pub bytes: u64,
    /// Corrupt captures: their packets up to the error were counted and written.
    pub errors: Vec<CaptureError>,
    /// Truncated last records and similar.
    pub warnings: Vec<String>,
    /// Lines written to the database, or why that failed (the files were written anyway).
    pub influx: Option<Result<usize, crate::sink::influx::WriteError>>,
    /// With a spool: what it holds and did, after draining for up to the request timeout.
    pub spool: Option<crate::sink::spool::SpoolStats>,
}

/// Counts BitTorrent flows on their way to the real sink.
struct CountingSink {
    inner: Option<Box<dyn FlowSink + Send>>,
    /// Flows, and BitTorrent flows, written.
    counts: Arc<[AtomicU64; 2]>,
}

impl FlowSink for CountingSink {
    fn write(&mut self, r: &FlowRecord) -> std::io::Result<()> {
        self.counts[0].fetch_add(1, Ordering::Relaxed);
        if r.verdict.class() == Class::Bittorrent {
            self.counts[1].fetch_add(1, Ordering::Relaxed);
        }
        match &mut self.inner {
            Some(s) => s.write(r),
            None => Ok(()),
        }
    }

    fn ordered(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.ordered())
    }
}

/// Why `analyze` stopped before its outcome.
#[derive(Debug)]
pub enum Error {
    /// The inputs: missing files, files that are not captures, no chart to draw. Nothing was
    /// counted.
    Input(anyhow::Error),
    /// An output could not be written.
    Output(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Input(e) => write!(f, "{e:#}"),
            Error::Output(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Output(e)
    }
}

impl From<CaptureError> for Error {
    fn from(e: CaptureError) -> Self {
        Error::Input(e.into())
    }
}

/// Runs the offline pipeline. Errors before any packet is read (missing files, files that are
/// not captures, unwritable outputs) are returned as `Err`; a capture that turns out corrupt
/// part-way is reported in `Outcome::errors` after everything counted was written.
pub fn run(opts: &Options, cfg: Config, rules: Arc<Rules>) -> Result<Outcome, Error> {
    let files = expand_inputs(&opts.inputs).map_err(Error::Input)?;
    if files.is_empty() {
        return Err(Error::Input(anyhow::anyhow!("no capture files given")));
    }
    // Started first: leftovers of an earlier run are replayed while this one is analysed.
    let spooler = match (&opts.influx, &opts.spool) {
        (Some(t), Some((dir, cfg))) => Some(Spooler::start(t.clone(), dir.clone(), cfg.clone())?),
        _ => None,
    };
    let learned = if opts.look_ahead {
        let mut reader = MergedReader::new(&files)?;
        let mut first = Engine::new(cfg.clone(), rules.clone());
        let mut col = opts
            .sflow
            .as_ref()
            .map(|s| Collector::new(s.agents.clone()));
        let mut packer = Packer::default();
        let Ok(_) = drain_ahead(
            &mut reader,
            |pkt, next| {
                match (&mut col, &opts.sflow) {
                    (Some(c), Some(s)) => {
                        sflow::captured(c, &mut first, pkt, s.port);
                    }
                    _ => first.process_ahead(pkt, next),
                }
                if let Some(m) = packer.due(pkt.ts_ns) {
                    first.aggregator().pack_before(m);
                }
            },
            |_| {},
        );
        first.finish()?;
        Some(first.take_endpoints())
    } else {
        None
    };
    let mut reader = MergedReader::new(&files)?;
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let inner: Option<Box<dyn FlowSink + Send>> = match &opts.flows {
        Some(p) => Some(Box::new(FlowWriter::create(p)?)),
        None => None,
    };
    let flow_sink = Box::new(CountingSink {
        inner,
        counts: counts.clone(),
    });
    let bar = progress_bar(opts.progress, reader.total_bytes());
    let counter = reader.progress_counter();
    let started = Instant::now();
    let mut tick = |n: u64| {
        if n & 0xffff == 0 {
            if let Some(bar) = &bar {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                bar.set_position(counter.load(Ordering::Relaxed));
                bar.set_message(format!("{:.2} Mpkt/s", n as f64 / secs / 1e6));
            }
        }
    };
    let mut agent_rows = None;
    let (mut agg, totals, mut warnings) = if let Some(sf) = &opts.sflow {
        // One pipeline: the datagrams' samples, in capture order.
        let mut pipeline = Engine::new(cfg, rules.clone());
        if let Some(t) = learned {
            pipeline.set_endpoints(t);
        }
        pipeline.set_flow_sink(flow_sink);
        let mut col = Collector::new(sf.agents.clone());
        col.set_members(sf.members.clone());
        let mut packer = Packer::default();
        let Ok(_) = drain(
            &mut reader,
            |pkt| {
                sflow::captured(&mut col, &mut pipeline, pkt, sf.port);
                if let Some(m) = packer.due(pkt.ts_ns) {
                    pipeline.aggregator().pack_before(m);
                }
            },
            &mut tick,
        );
        pipeline.finish()?;
        agent_rows = Some(col.take_rows());
        let agg = std::mem::replace(pipeline.aggregator(), Aggregator::new(rules.ports.len()));
        (agg, pipeline.totals(), pipeline.warnings.clone())
    } else if opts.threads <= 1 {
        let mut pipeline = Engine::new(cfg, rules.clone());
        if let Some(t) = learned {
            pipeline.set_endpoints(t);
        }
        pipeline.set_flow_sink(flow_sink);
        let mut packer = Packer::default();
        let Ok(_) = drain_ahead(
            &mut reader,
            |pkt, next| {
                pipeline.process_ahead(pkt, next);
                if let Some(m) = packer.due(pkt.ts_ns) {
                    pipeline.aggregator().pack_before(m);
                }
            },
            &mut tick,
        );
        pipeline.finish()?;
        let agg = std::mem::replace(pipeline.aggregator(), Aggregator::new(rules.ports.len()));
        (agg, pipeline.totals(), pipeline.warnings.clone())
    } else {
        // One reader frames for every worker (compressed input is decompressed once); with
        // `BITTAP_THREADS_ORDERED=1` each worker reads the input itself and the endpoint
        // table answers in stream order (README "Speed").
        let ordered = std::env::var_os("BITTAP_THREADS_ORDERED").is_some_and(|v| v == "1");
        let done = workers::run_offline(
            &mut reader,
            &files,
            opts.threads,
            ordered,
            &cfg,
            rules.clone(),
            learned,
            Some(flow_sink),
            &mut tick,
        )?;
        if let Some(e) = done.error {
            return Err(Error::Output(e));
        }
        (done.agg, done.totals, done.warnings)
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let agg = &mut agg;
    let series = agg.series_rows();
    let ports = agg.port_rows();
    let sampled = opts.sflow.is_some();
    let names = opts
        .sflow
        .as_ref()
        .and_then(|s| s.members.as_deref())
        .map(|m| m.names());
    let shape = sink::rows::Shape {
        sampled,
        members: names,
    };
    let sflow_rows = agg.sflow_rows();
    let sflow_health = sampled.then_some(sflow_rows.as_slice());
    if let Some(p) = &opts.series {
        sink::write_series(p, &series, shape)?;
    }
    if let Some(p) = &opts.port_series {
        sink::write_port_series(p, &ports, &rules, shape)?;
    }
    if let Some(p) = &opts.health {
        sink::write_health(p, &agg.health_rows(), sflow_health)?;
    }
    if let (Some(sf), Some(rows)) = (&opts.sflow, &agent_rows) {
        if let Some(p) = &sf.counters {
            let mut w = sink::create_file(p)?;
            sflow::write_link_rows_to(&mut w, rows, true)?;
            w.flush()?;
        }
        if let Some(p) = &sf.agent_health {
            let mut w = sink::create_file(p)?;
            sflow::write_agent_rows_to(&mut w, rows, true)?;
            w.flush()?;
        }
    }
    let hosts = agg.hosts_rows();
    if let Some(p) = &opts.hosts {
        sink::write_hosts(p, &hosts)?;
    }
    if let Some(p) = &opts.chart {
        let data = crate::report::Series::from_rows(&series, &ports, &hosts)
            .map_err(|e| Error::Input(anyhow::anyhow!("{}: no chart: {e}", p.display())))?;
        crate::report::chart::write(p, &data)?;
    }
    let (mut influx, mut spool) = (None, None);
    if opts.line_protocol.is_some() || opts.influx.is_some() {
        let health = agg.health_rows();
        let mut text = sink::line::render_with(
            &opts.probe,
            &series,
            &ports,
            &health,
            sflow_health,
            names,
            &rules,
        );
        text.push_str(&sink::line::render_hosts(&opts.probe, &hosts));
        if let Some(p) = &opts.line_protocol {
            sink::line::write_file(p, &text)?;
        }
        if let Some(s) = spooler {
            s.submit_text(&text)?;
            spool = Some(s.close(opts.http.timeout));
        } else if let Some(t) = &opts.influx {
            influx = Some(Client::new(t, &opts.http).and_then(|c| c.write(&text)));
        }
    }
    let flow_counts = (
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
    );
    let mut errors = Vec::new();
    for p in reader.problems.drain(..) {
        if p.is_warning() {
            warnings.push(p.to_string());
        } else {
            errors.push(p);
        }
    }
    let mut summary = sink::summary(&series, &ports, Some(flow_counts));
    if let (Some(rows), Some(sf)) = (&agent_rows, &opts.sflow) {
        summary.push_str(&sflow_summary(&series, &sflow_rows, rows));
        let seen: u64 = sflow_rows
            .iter()
            .map(|(_, h)| h.datagrams + h.malformed + h.rejected)
            .sum();
        if seen == 0 {
            warnings.push(format!(
                "no sFlow datagrams (UDP to port {}) in the input: give the collector's port with --sflow-port",
                sf.port
            ));
        }
    }
    Ok(Outcome {
        summary,
        packets: totals.packets,
        bytes: totals.bytes,
        errors,
        warnings,
        influx,
        spool,
    })
}

/// What the sFlow input held: datagrams, samples, losses, and the estimate's interval.
fn sflow_summary(
    series: &[crate::aggregate::SeriesRow],
    health: &[(i64, crate::aggregate::SflowHealth)],
    rows: &sflow::AgentRows,
) -> String {
    let mut h = crate::aggregate::SflowHealth::default();
    for (_, x) in health {
        h.merge(x);
    }
    let mut agents: Vec<_> = rows.agents.iter().map(|(_, k, _)| *k).collect();
    agents.sort_unstable();
    agents.dedup();
    let (mut samples, mut bt_samples) = (0u64, 0u64);
    let (mut var, mut bt_var) = (0f64, 0f64);
    let (mut bytes, mut bt_bytes) = (0u64, 0u64);
    for r in series {
        // Rows' half-widths back to variances, so intervals of sums can be given.
        let v = (r.bytes_err as f64 / 1.96).powi(2);
        samples += r.samples;
        var += v;
        bytes += r.counts.bytes;
        if r.proto.class() == Class::Bittorrent {
            bt_samples += r.samples;
            bt_var += v;
            bt_bytes += r.counts.bytes;
        }
    }
    let pm = |b: u64, v: f64| {
        if b == 0 {
            0.0
        } else {
            100.0 * 1.96 * v.sqrt() / b as f64
        }
    };
    let range = crate::aggregate::BtRange::of_rows(series);
    format!(
        "sflow: {} datagrams from {} agent(s), {} flow samples, {} counter samples; {} datagrams lost, {} samples dropped by agents, {} malformed, {} rejected, {} unknown\n\
         sflow: estimated bytes {bytes} ±{:.1}% ({samples} samples), BitTorrent {bt_bytes} ±{:.1}% ({bt_samples} samples), 95% intervals; interface counters: {} octets in, {} out\n\
         sflow: BitTorrent between {} and {} bytes (95%: the sampling error, plus {} bytes with no evidence either way: port rules alone and unresolved flows)\n",
        h.datagrams,
        agents.len(),
        h.flow_samples,
        h.counter_samples,
        h.datagrams_lost,
        h.sample_drops,
        h.malformed,
        h.rejected,
        h.unknown,
        pm(bytes, var),
        pm(bt_bytes, bt_var),
        h.if_in_octets,
        h.if_out_octets,
        range.low(),
        range.high(),
        range.open(),
    )
}

fn progress_bar(wanted: bool, total: u64) -> Option<ProgressBar> {
    if !wanted {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if bar.is_hidden() {
        return None;
    }
    let style = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    Some(bar)
}
