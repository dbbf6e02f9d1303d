//! `bittap analyze`: capture files in, per-minute series and per-flow verdicts out.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::aggregate::Aggregator;
use crate::capture::{expand_inputs, CaptureError, MergedReader};
use crate::classify::{Class, Rules};
use crate::pipeline::{Config, FlowRecord, FlowSink, Pipeline};
use crate::sink::influx::Client;
use crate::sink::spool::Spooler;
use crate::sink::{self, FlowWriter};
use crate::workers::Workers;

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
    counts: Arc<std::sync::Mutex<(u64, u64)>>,
}

impl FlowSink for CountingSink {
    fn write(&mut self, r: &FlowRecord) -> std::io::Result<()> {
        if let Ok(mut c) = self.counts.lock() {
            c.0 += 1;
            if r.verdict.class() == Class::Bittorrent {
                c.1 += 1;
            }
        }
        match &mut self.inner {
            Some(s) => s.write(r),
            None => Ok(()),
        }
    }
}

/// Runs the offline pipeline. Errors before any packet is read (missing files, files that are
/// not captures, unwritable outputs) are returned as `Err`; a capture that turns out corrupt
/// part-way is reported in `Outcome::errors` after everything counted was written.
pub fn run(opts: &Options, cfg: Config, rules: Arc<Rules>) -> anyhow::Result<Outcome> {
    let files = expand_inputs(&opts.inputs)?;
    if files.is_empty() {
        anyhow::bail!("no capture files given");
    }
    // Started first: leftovers of an earlier run are replayed while this one is analysed.
    let spooler = match (&opts.influx, &opts.spool) {
        (Some(t), Some((dir, cfg))) => Some(Spooler::start(t.clone(), dir.clone(), cfg.clone())?),
        _ => None,
    };
    let learned = if opts.look_ahead {
        let mut reader = MergedReader::new(&files)?;
        let mut first = Pipeline::new(cfg.clone(), rules.clone());
        while reader.advance() {
            if let Some(pkt) = reader.packet() {
                first.process(&pkt);
            }
        }
        first.finish()?;
        Some(first.take_endpoints())
    } else {
        None
    };
    let mut reader = MergedReader::new(&files)?;
    let counts = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
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
    let mut n: u64 = 0;
    let tick = |n: u64| {
        if n & 0xffff == 0 {
            if let Some(bar) = &bar {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                bar.set_position(counter.load(Ordering::Relaxed));
                bar.set_message(format!("{:.2} Mpkt/s", n as f64 / secs / 1e6));
            }
        }
    };
    let (mut agg, totals, mut warnings) = if opts.threads <= 1 {
        let mut pipeline = Pipeline::new(cfg, rules.clone());
        if let Some(t) = learned {
            pipeline.set_endpoints(t);
        }
        pipeline.set_flow_sink(flow_sink);
        while reader.advance() {
            if let Some(pkt) = reader.packet() {
                pipeline.process(&pkt);
            }
            n += 1;
            tick(n);
        }
        pipeline.finish()?;
        let mut agg = Aggregator::new(rules.ports.len());
        for (m, b) in pipeline.aggregator().take_all() {
            agg.absorb(m, &b);
        }
        (agg, pipeline.totals(), pipeline.warnings.clone())
    } else {
        let mut workers = Workers::start(
            opts.threads,
            &cfg,
            rules.clone(),
            learned,
            Some(flow_sink),
            true,
        )?;
        while reader.advance() {
            if let Some(pkt) = reader.packet() {
                workers.dispatch(&pkt);
            }
            n += 1;
            tick(n);
        }
        let done = workers.finish();
        if let Some(e) = done.error {
            return Err(e.into());
        }
        (done.agg, done.totals, done.warnings)
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let agg = &mut agg;
    let series = agg.series_rows();
    let ports = agg.port_rows();
    if let Some(p) = &opts.series {
        sink::write_series(p, &series)?;
    }
    if let Some(p) = &opts.port_series {
        sink::write_port_series(p, &ports, &rules)?;
    }
    if let Some(p) = &opts.health {
        sink::write_health(p, &agg.health_rows())?;
    }
    let hosts = agg.hosts_rows();
    if let Some(p) = &opts.hosts {
        sink::write_hosts(p, &hosts)?;
    }
    if let Some(p) = &opts.chart {
        let data = crate::report::Series::from_rows(&series, &ports, &hosts)
            .map_err(|e| anyhow::anyhow!("{}: no chart: {e}", p.display()))?;
        crate::report::chart::write(p, &data)?;
    }
    let (mut influx, mut spool) = (None, None);
    if opts.line_protocol.is_some() || opts.influx.is_some() {
        let mut text = sink::line::render(&opts.probe, &series, &ports, &agg.health_rows(), &rules);
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
    let flow_counts = counts.lock().map(|c| *c).unwrap_or((0, 0));
    let mut errors = Vec::new();
    for p in reader.problems.drain(..) {
        if p.is_warning() {
            warnings.push(p.to_string());
        } else {
            errors.push(p);
        }
    }
    Ok(Outcome {
        summary: sink::summary(&series, &ports, Some(flow_counts)),
        packets: totals.packets,
        bytes: totals.bytes,
        errors,
        warnings,
        influx,
        spool,
    })
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
