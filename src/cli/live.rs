//! `bittap live`.

use std::path::PathBuf;

use clap::Args;

use bittap::capture::live::{LiveOptions, DEFAULT_BUFFER_BYTES, DEFAULT_SNAPLEN};

use super::args::{fill, ClassifyArgs, DaemonArgs, FlowArgs, InfluxArgs, OutputArgs};
use super::exit::Error;
use super::settings::{self, Common};

/// Fewest bytes captured per frame (`--snaplen` below it is raised to it).
const MIN_SNAPLEN: u32 = 64;

/// `bittap live` flags; each may also come from the `--config` file (flags win).
#[derive(Args, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LiveArgs {
    /// TOML file with any of these settings (keys as the flags without `--`, e.g.
    /// `interface = ["eth1"]`, `buffer-size = 134217728`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Interface to capture on (repeat for several).
    #[arg(short, long = "interface", value_name = "IFACE")]
    #[serde(default)]
    pub interface: Vec<String>,
    /// Bytes captured per frame (default 262144: whole frames, even GRO super-frames).
    #[arg(long)]
    pub snaplen: Option<u32>,
    /// Kernel capture buffer per interface, in bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    pub buffer_size: Option<u32>,
    /// BPF filter expression (tcpdump syntax), applied in the kernel.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Do not put the interfaces in promiscuous mode.
    #[arg(long)]
    #[serde(default)]
    pub no_promisc: bool,
    /// Worker threads (default: one per core, less one).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Capture backend: afpacket (the kernel spreads flows over the workers) or pcap
    /// (libpcap). Default: afpacket where it opens, else pcap.
    #[arg(long, value_parser = ["afpacket", "pcap"])]
    pub capture: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub classify: ClassifyArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub flow: FlowArgs,
    /// No line per minute on stdout.
    #[arg(short, long)]
    #[serde(default)]
    pub quiet: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub influx: InfluxArgs,
}

impl LiveArgs {
    /// Fills what the flags left unset from the config file.
    pub fn merge(mut self, f: LiveArgs) -> LiveArgs {
        if self.interface.is_empty() {
            self.interface = f.interface;
        }
        fill!(self, f; opt: snaplen, buffer_size, filter, threads, capture; flag: no_promisc, quiet);
        self.daemon.fill_from(f.daemon);
        self.out.fill_from(f.out);
        self.classify.fill_from(f.classify);
        self.flow.fill_from(f.flow);
        self.influx.fill_from(f.influx);
        self
    }

    /// The flags with the `--config` file's settings under them.
    fn with_config(self) -> Result<LiveArgs, Error> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let f = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<LiveArgs>(&t).map_err(|e| e.to_string()))
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        Ok(self.merge(f))
    }
}

pub fn run(a: LiveArgs) -> Result<(), Error> {
    let a = a.with_config()?;
    if a.interface.is_empty() {
        return Err(Error::Usage(
            "live needs at least one --interface (or `interface` in --config)".into(),
        ));
    }
    let common = Common::new(&a.classify, &a.flow, &a.influx)?;
    let capture = a.capture.clone();
    let opts = bittap::live::Options {
        capture: LiveOptions {
            interfaces: a.interface,
            snaplen: a.snaplen.unwrap_or(DEFAULT_SNAPLEN).max(MIN_SNAPLEN),
            buffer_bytes: a.buffer_size.unwrap_or(DEFAULT_BUFFER_BYTES),
            promisc: !a.no_promisc,
            filter: a.filter,
        },
        threads: a
            .threads
            .unwrap_or_else(bittap::engine::workers::default_threads)
            .max(1),
        series: a.out.series,
        port_series: a.out.port_series,
        health: a.out.health,
        hosts: a.out.hosts,
        spool: settings::live_spool(&a.influx),
        line_protocol: a.out.line_protocol,
        flows: a.out.flows,
        probe: common.probe,
        influx: common.influx,
        flush_delay_secs: settings::flush_delay_secs(&a.daemon),
        metrics: settings::metrics_options(&a.daemon),
        user: a.daemon.user,
        rules_dir: a.classify.rules,
        quiet: a.quiet,
    };
    let signals = bittap::live::Signals::register()
        .map_err(|e| Error::Failure(format!("cannot install signal handlers: {e}")))?;
    let o = bittap::fanout::run_live(
        capture.as_deref(),
        &opts,
        common.cfg,
        common.rules,
        &signals,
    )
    .map_err(|e| Error::Failure(format!("{e:#}")))?;
    eprintln!(
        "bittap: stopped: read {} packets, counted {} in {} minute(s) ({} in the series written); dropped: kernel {}, interface {}, queue {}; pcap received {}",
        o.read, o.counted, o.minutes, o.in_series, o.drops.kernel, o.drops.interface, o.queue_drops, o.drops.received
    );
    if let Some(st) = &o.spool {
        if st.pending_batches > 0 {
            eprintln!(
                "bittap: {} batches ({} bytes) not yet in the database stay in the spool; the next start (or `bittap send --spool DIR`) sends them",
                st.pending_batches, st.pending_bytes
            );
        }
    }
    if o.errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config file fills what the flags left unset, in every block; flags win.
    #[test]
    fn config_file_fills_every_block_and_flags_win() {
        let f: LiveArgs = toml::from_str(
            "interface = [\"eth1\"]\nsnaplen = 128\nflush-delay = 7\nseries = \"s.csv\"\n\
             home-net = \"10.0.0.0/8\"\nmax-flows = 9\ninflux-url = \"http://x:1\"\n\
             influx-no-gzip = true\nmetrics-listen = \"127.0.0.1:9108\"\n",
        )
        .expect("config");
        let flags = LiveArgs {
            snaplen: Some(256),
            flow: FlowArgs {
                max_flows: Some(3),
                ..FlowArgs::default()
            },
            ..LiveArgs::default()
        };
        let a = flags.merge(f);
        assert_eq!(a.interface, ["eth1"]);
        assert_eq!(a.snaplen, Some(256));
        assert_eq!(a.daemon.flush_delay, Some(7));
        assert_eq!(a.out.series, Some(PathBuf::from("s.csv")));
        assert_eq!(a.classify.home_net.as_deref(), Some("10.0.0.0/8"));
        assert_eq!(a.flow.max_flows, Some(3));
        assert_eq!(a.influx.influx_url.as_deref(), Some("http://x:1"));
        assert!(a.influx.influx_no_gzip);
        assert!(a.daemon.metrics_listen.is_some());
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        assert!(toml::from_str::<LiveArgs>("interfaces = [\"eth1\"]\n").is_err());
        assert!(toml::from_str::<LiveArgs>("max_flows = 3\n").is_err());
    }

    /// `--max-flows 0` is the same error in `live` as in `analyze` (it was clamped to 1).
    #[test]
    fn zero_flows_is_an_error_before_capture() {
        let a = LiveArgs {
            interface: vec!["lo".into()],
            flow: FlowArgs {
                max_flows: Some(0),
                ..FlowArgs::default()
            },
            ..LiveArgs::default()
        };
        assert!(matches!(run(a), Err(Error::Usage(m)) if m.contains("--max-flows")));
    }
}
