//! `bittap analyze`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use bittap::analyze;

use super::args::{ClassifyArgs, FlowArgs, InfluxArgs, OutputArgs, SflowOpts};
use super::exit::Error;
use super::settings::{self, Common};

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Capture files or directories of capture files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub influx: InfluxArgs,
    #[command(flatten)]
    pub classify: ClassifyArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Read the input twice: a first pass learns BitTorrent endpoints, so flows that began
    /// before their peer was identified are found by correlation too.
    #[arg(long)]
    pub look_ahead: bool,
    /// Worker threads (flows spread by address pair; this thread reads and frames for all).
    /// More is faster, with flow records in end order rather than sorted; the series and
    /// the records equal one thread's.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// SVG chart of the run (as `bittap report --chart`).
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// The inputs are captures of sFlow v5 datagrams (UDP to --sflow-port); each sample is
    /// timed by its datagram's capture time and counted by its sampling rate.
    #[arg(long)]
    pub sflow: bool,
    /// sFlow: UDP port of the datagrams in the captures.
    #[arg(long, default_value_t = bittap::sflow::DEFAULT_PORT)]
    pub sflow_port: u16,
    #[command(flatten)]
    pub sflow_opts: SflowOpts,
    /// No summary on stdout.
    #[arg(short, long)]
    pub quiet: bool,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

pub fn run(a: AnalyzeArgs) -> Result<(), Error> {
    let common = Common::new(&a.classify, &a.flow, &a.influx)?;
    if a.sflow_opts.members.is_some() && !a.sflow {
        return Err(Error::Usage(
            "--members is for sFlow input: give --sflow too".into(),
        ));
    }
    let sflow = settings::sflow_options(&a.sflow_opts, a.sflow_port)?;
    let opts = analyze::Options {
        inputs: a.inputs,
        series: a.out.series,
        flows: a.out.flows,
        port_series: a.out.port_series,
        health: a.out.health,
        progress: !a.no_progress && std::io::stderr().is_terminal(),
        look_ahead: a.look_ahead,
        line_protocol: a.out.line_protocol,
        probe: common.probe,
        http: settings::http_options(&a.influx),
        spool: settings::spool_options(&a.influx),
        influx: common.influx,
        threads: a.threads,
        hosts: a.out.hosts,
        chart: a.chart,
        sflow: a.sflow.then_some(sflow),
    };
    let outcome = analyze::run(&opts, common.cfg, common.rules).map_err(|e| match e {
        analyze::Error::Input(_) => Error::Usage(e.to_string()),
        analyze::Error::Output(_) => Error::Failure(e.to_string()),
    })?;
    for w in &outcome.warnings {
        eprintln!("bittap: warning: {w}");
    }
    for e in &outcome.errors {
        eprintln!("bittap: error: {e}");
    }
    if !a.quiet {
        print!("{}", outcome.summary);
    }
    if let Some(Err(e)) = &outcome.influx {
        return Err(Error::Failure(format!(
            "database write failed: {e}; the output files were written"
        )));
    }
    if let (Some(st), Some(dir)) = (&outcome.spool, &a.influx.spool) {
        super::send::spool_exit(dir, st)?;
    }
    if outcome.errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Incomplete(format!(
            "INCOMPLETE: {} capture file(s) were corrupt; their packets before the error were counted and written",
            outcome.errors.len()
        )))
    }
}
