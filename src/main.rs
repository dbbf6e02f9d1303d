//! The `bittap` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use bittap::aggregate::HomeNet;
use bittap::analyze;
use bittap::classify::Rules;
use bittap::pipeline::Config;

/// `bittap --version`: the package version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BITTAP_COMMIT"), ")");

/// Exit status: everything read and written.
const EXIT_OK: u8 = 0;
/// Exit status: a failure while running (an output could not be written).
const EXIT_FAILURE: u8 = 1;
/// Exit status: bad arguments, rules or inputs; nothing was counted.
const EXIT_USAGE: u8 = 2;
/// Exit status: some capture was corrupt part-way; what came before was counted and written.
const EXIT_INPUT_ERROR: u8 = 3;

#[derive(Parser)]
#[command(
    name = "bittap",
    version = VERSION,
    about = "Passive network monitor for BitTorrent traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse capture files (pcap, pcapng, gzip) as one stream in time order.
    Analyze(Box<AnalyzeArgs>),
    /// Capture live from network interfaces (libpcap); every minute is appended to the
    /// outputs a few seconds after it ends. SIGTERM/SIGINT flush and exit, SIGHUP reloads rules.
    Live(Box<LiveArgs>),
    /// Collect sFlow v5 datagrams from switches (UDP): each packet sample is counted by its
    /// sampling rate, with the same outputs as `live` and a 95 % interval per series row.
    /// SIGTERM/SIGINT flush and exit, SIGHUP reloads rules.
    Sflow(Box<SflowArgs>),
    /// Send a line-protocol file written earlier (`analyze --line-protocol`) to a database,
    /// e.g. from a machine that had no route to it.
    Send(Box<SendArgs>),
    /// Chart, summary and level shifts of series written by `analyze` (CSV) or read from
    /// InfluxDB 1.x.
    Report(Box<ReportArgs>),
    /// Rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Write the man page (roff) to stdout, generated from these definitions.
    #[command(hide = true)]
    Manpage,
    /// Write a shell completion script to stdout.
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files and list them.
    Check {
        /// Directory with ports.toml and signatures.toml (default: the built-in rules).
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct SendArgs {
    /// The line-protocol file (with --spool: optional; without a file, what the spool holds
    /// is sent).
    file: Option<PathBuf>,
    #[command(flatten)]
    influx: InfluxArgs,
}

#[derive(Args, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct InfluxArgs {
    /// Push the series to this database URL (http://host:port): InfluxDB 1.x `/write` with
    /// --influx-db, or the v2 write API with --influx-bucket.
    #[arg(long, value_name = "URL")]
    influx_url: Option<String>,
    /// InfluxDB 1.x database.
    #[arg(long)]
    influx_db: Option<String>,
    /// InfluxDB 1.x retention policy.
    #[arg(long)]
    influx_rp: Option<String>,
    /// InfluxDB 1.x user; the password comes from --influx-password-file or the
    /// BITTAP_INFLUX_PASSWORD environment variable.
    #[arg(long)]
    influx_user: Option<String>,
    #[arg(long, value_name = "FILE")]
    influx_password_file: Option<PathBuf>,
    /// v2 write API organisation and bucket; the token comes from --influx-token-file or the
    /// BITTAP_INFLUX_TOKEN environment variable.
    #[arg(long)]
    influx_org: Option<String>,
    #[arg(long)]
    influx_bucket: Option<String>,
    #[arg(long, value_name = "FILE")]
    influx_token_file: Option<PathBuf>,
    /// Seconds a request may take, connection included (default 30).
    #[arg(long, value_name = "SECS")]
    influx_timeout: Option<u64>,
    /// Send plain request bodies instead of gzip.
    #[arg(long)]
    #[serde(default)]
    influx_no_gzip: bool,
    /// PEM file of the CA(s) to trust for an https:// URL instead of the public web roots.
    #[arg(long, value_name = "FILE")]
    influx_ca: Option<PathBuf>,
    /// Spool directory: lines are kept on disk until the database has them; what a failure
    /// that can pass leaves is sent by the next run or `bittap send --spool DIR`.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Most megabytes the spool holds (default 256); beyond it the oldest batches are dropped.
    #[arg(long, value_name = "MB")]
    spool_max_mb: Option<u64>,
}

#[derive(Args)]
struct ReportArgs {
    /// Series CSV written by `analyze --series`.
    #[arg(long, value_name = "FILE")]
    series: Option<PathBuf>,
    /// Port view CSV written by `analyze --port-series`.
    #[arg(long, value_name = "FILE")]
    port_series: Option<PathBuf>,
    /// Distinct-host CSV written by `analyze --hosts`.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// SVG chart to write.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Markdown summary to write (default: stdout).
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    #[command(flatten)]
    influx: InfluxArgs,
    /// The probe whose series are read from the database.
    #[arg(long)]
    probe: Option<String>,
    /// Start of the period read from the database (RFC 3339, included).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the period read from the database (RFC 3339, excluded).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Capture files or directories of capture files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Per-minute series (CSV; NDJSON for .json/.ndjson/.jsonl).
    #[arg(long, value_name = "FILE")]
    series: Option<PathBuf>,
    /// Per-flow verdicts (CSV or NDJSON). Holds addresses: keep it local.
    #[arg(long, value_name = "FILE")]
    flows: Option<PathBuf>,
    /// Port view: bytes on classic BitTorrent ports per minute, whatever the verdict.
    #[arg(long, value_name = "FILE")]
    port_series: Option<PathBuf>,
    /// Capture health per minute.
    #[arg(long, value_name = "FILE")]
    health: Option<PathBuf>,
    /// InfluxDB line protocol of the series, port view and health (measurements bittap,
    /// bittap_port, bittap_health), timestamped at each minute's start.
    #[arg(long, value_name = "FILE")]
    line_protocol: Option<PathBuf>,
    #[command(flatten)]
    influx: InfluxArgs,
    /// Value of the `probe` tag (default: the host name).
    #[arg(long)]
    probe: Option<String>,
    /// Home network CIDRs, comma-separated, for the up/down direction tag.
    #[arg(long, value_name = "CIDR,...")]
    home_net: Option<String>,
    /// Rule directory with ports.toml and signatures.toml (default: built-in rules).
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Idle timeout of TCP flows, in seconds.
    #[arg(long, default_value_t = 300)]
    tcp_timeout: u32,
    /// Idle timeout of UDP flows, in seconds.
    #[arg(long, default_value_t = 120)]
    udp_timeout: u32,
    /// Most flows tracked at once.
    #[arg(long, default_value_t = 1 << 20)]
    max_flows: usize,
    /// Read the input twice: a first pass learns BitTorrent endpoints, so flows that began
    /// before their peer was identified are found by correlation too.
    #[arg(long)]
    look_ahead: bool,
    /// Minutes a learned BitTorrent endpoint is trusted.
    #[arg(long, default_value_t = 30)]
    endpoint_ttl: u32,
    /// Worker threads (flows spread by address pair). 1 gives reproducible output; more is
    /// faster, with flow records in end order rather than sorted.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Estimated distinct BitTorrent hosts per minute (CSV `time,bittorrent_hosts`; a
    /// sketch's estimate, no address is kept).
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// SVG chart of the run (as `bittap report --chart`).
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// The inputs are captures of sFlow v5 datagrams (UDP to --sflow-port); each sample is
    /// timed by its datagram's capture time and counted by its sampling rate.
    #[arg(long)]
    sflow: bool,
    /// sFlow: UDP port of the datagrams in the captures.
    #[arg(long, default_value_t = bittap::sflow::DEFAULT_PORT)]
    sflow_port: u16,
    #[command(flatten)]
    sflow_opts: SflowOpts,
    /// No summary on stdout.
    #[arg(short, long)]
    quiet: bool,
    /// Never show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// sFlow settings shared by `analyze --sflow` and `sflow`.
#[derive(Args, Default)]
struct SflowOpts {
    /// sFlow: read only datagrams of agents (agent address) in these networks; others are
    /// counted as rejected.
    #[arg(long, value_name = "CIDR,...")]
    agents: Option<String>,
    /// sFlow: link load per agent and interface and minute, from counter samples (CSV;
    /// holds agent addresses).
    #[arg(long, value_name = "FILE")]
    sflow_counters: Option<PathBuf>,
    /// sFlow: health per agent and minute (CSV; holds agent addresses).
    #[arg(long, value_name = "FILE")]
    sflow_agents: Option<PathBuf>,
}

impl SflowOpts {
    fn options(&self, port: u16) -> Result<bittap::sflow::Options, String> {
        let agents = self
            .agents
            .as_deref()
            .map(HomeNet::parse)
            .transpose()
            .map_err(|e| format!("--agents: {e}"))?;
        Ok(bittap::sflow::Options {
            port,
            agents,
            counters: self.sflow_counters.clone(),
            agent_health: self.sflow_agents.clone(),
        })
    }
}

/// `bittap sflow` flags.
#[derive(Args)]
struct SflowArgs {
    /// Where to listen: PORT or ADDR:PORT ([::]:PORT for IPv6).
    #[arg(long, default_value = "6343", value_name = "[ADDR:]PORT")]
    listen: String,
    #[command(flatten)]
    sflow_opts: SflowOpts,
    /// Seconds after a minute ends before it is flushed.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    flush_delay: u32,
    /// Switch to this user once the socket and outputs are open.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Per-minute series with samples and intervals, appended.
    #[arg(long, value_name = "FILE")]
    series: Option<PathBuf>,
    /// Per-flow verdicts (estimated counts), appended. Holds addresses: keep it local.
    #[arg(long, value_name = "FILE")]
    flows: Option<PathBuf>,
    /// Port view per minute, appended.
    #[arg(long, value_name = "FILE")]
    port_series: Option<PathBuf>,
    /// Health per minute with sFlow's fields, appended.
    #[arg(long, value_name = "FILE")]
    health: Option<PathBuf>,
    /// InfluxDB line protocol, appended.
    #[arg(long, value_name = "FILE")]
    line_protocol: Option<PathBuf>,
    /// Estimated distinct BitTorrent hosts per minute, appended.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// Value of the `probe` tag (default: the host name).
    #[arg(long)]
    probe: Option<String>,
    /// Home network CIDRs, comma-separated, for the up/down direction tag.
    #[arg(long, value_name = "CIDR,...")]
    home_net: Option<String>,
    /// Rule directory (default: built-in rules); SIGHUP reloads it.
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Idle timeout of TCP flows, in seconds.
    #[arg(long, default_value_t = 300)]
    tcp_timeout: u32,
    /// Idle timeout of UDP flows, in seconds.
    #[arg(long, default_value_t = 120)]
    udp_timeout: u32,
    /// Most flows tracked at once.
    #[arg(long, default_value_t = 1 << 20)]
    max_flows: usize,
    /// Minutes a learned BitTorrent endpoint is trusted.
    #[arg(long, default_value_t = 30)]
    endpoint_ttl: u32,
    /// No line per minute on stdout.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    influx: InfluxArgs,
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([0, 0, 0, 0], port)));
    }
    s.parse()
        .map_err(|_| format!("--listen {s}: expected PORT or ADDR:PORT"))
}

fn sflow_cmd(a: SflowArgs) -> ExitCode {
    let setup = run_setup(&a.influx, a.rules.as_ref(), a.home_net.as_deref()).and_then(|x| {
        let listen = parse_listen(&a.listen)?;
        Ok((x, a.sflow_opts.options(listen.port())?, listen))
    });
    let ((influx, rules, home_net), sf, listen) = match setup {
        Ok(x) => x,
        Err(e) => {
            eprintln!("bittap: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let cfg = Config {
        home_net,
        tcp_idle_ns: i64::from(a.tcp_timeout) * 1_000_000_000,
        udp_idle_ns: i64::from(a.udp_timeout) * 1_000_000_000,
        max_flows: a.max_flows.max(1),
        endpoint_ttl_ns: i64::from(a.endpoint_ttl) * 60_000_000_000,
        ..Config::default()
    };
    let opts = bittap::live::Options {
        capture: bittap::capture::live::LiveOptions {
            interfaces: Vec::new(),
            snaplen: 0,
            buffer_bytes: 0,
            promisc: false,
            filter: None,
        },
        threads: 1,
        series: a.series,
        port_series: a.port_series,
        health: a.health,
        hosts: a.hosts,
        spool: live_spool(&a.influx),
        line_protocol: a.line_protocol,
        flows: a.flows,
        probe: a.probe.unwrap_or_else(default_probe),
        influx,
        user: a.user,
        rules_dir: a.rules,
        flush_delay_secs: a.flush_delay,
        quiet: a.quiet,
        // sflow has no --metrics-listen yet (issue 19 asks for it there too).
        metrics: None,
    };
    let signals = match bittap::live::Signals::register() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bittap: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match bittap::sflow::listen::run(&opts, listen, &sf, cfg, rules, &signals) {
        Ok(o) => {
            eprintln!(
                "bittap: stopped: {} datagrams, {} packets estimated, {} minute(s) written",
                o.datagrams, o.packets, o.minutes
            );
            if o.errors.is_empty() {
                ExitCode::from(EXIT_OK)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(e) => {
            eprintln!("bittap: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `bittap live` flags; each may also come from the `--config` file (flags win).
#[derive(Args, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LiveArgs {
    /// TOML file with any of these settings (keys as the flags without `--`, e.g.
    /// `interface = ["eth1"]`, `buffer-size = 134217728`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Interface to capture on (repeat for several).
    #[arg(short, long = "interface", value_name = "IFACE")]
    #[serde(default)]
    interface: Vec<String>,
    /// Bytes captured per frame (default 262144: whole frames, even GRO super-frames).
    #[arg(long)]
    snaplen: Option<u32>,
    /// Kernel capture buffer per interface, in bytes (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    buffer_size: Option<u32>,
    /// BPF filter expression (tcpdump syntax), applied in the kernel.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// Do not put the interfaces in promiscuous mode.
    #[arg(long)]
    #[serde(default)]
    no_promisc: bool,
    /// Worker threads (default: one per core, less one).
    #[arg(long)]
    threads: Option<usize>,
    /// Capture backend: afpacket (the kernel spreads flows over the workers) or pcap
    /// (libpcap). Default: afpacket where it opens, else pcap.
    #[arg(long, value_parser = ["afpacket", "pcap"])]
    capture: Option<String>,
    /// Seconds after a minute ends before it is flushed (default 5).
    #[arg(long, value_name = "SECS")]
    flush_delay: Option<u32>,
    /// Switch to this user once the interfaces and outputs are open.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Per-minute series, appended (CSV; NDJSON for .json/.ndjson/.jsonl).
    #[arg(long, value_name = "FILE")]
    series: Option<PathBuf>,
    /// Per-flow verdicts, appended. Holds addresses: keep it local.
    #[arg(long, value_name = "FILE")]
    flows: Option<PathBuf>,
    /// Port view per minute, appended.
    #[arg(long, value_name = "FILE")]
    port_series: Option<PathBuf>,
    /// Capture health per minute (with kernel, interface and queue drops), appended.
    #[arg(long, value_name = "FILE")]
    health: Option<PathBuf>,
    /// InfluxDB line protocol, appended.
    #[arg(long, value_name = "FILE")]
    line_protocol: Option<PathBuf>,
    /// Estimated distinct BitTorrent hosts per minute (a sketch; no address is kept), appended.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// Value of the `probe` tag (default: the host name).
    #[arg(long)]
    probe: Option<String>,
    /// Home network CIDRs, comma-separated, for the up/down direction tag.
    #[arg(long, value_name = "CIDR,...")]
    home_net: Option<String>,
    /// Rule directory (default: built-in rules); SIGHUP reloads it.
    #[arg(long, value_name = "DIR")]
    rules: Option<PathBuf>,
    /// Idle timeout of TCP flows, in seconds (default 300).
    #[arg(long)]
    tcp_timeout: Option<u32>,
    /// Idle timeout of UDP flows, in seconds (default 120).
    #[arg(long)]
    udp_timeout: Option<u32>,
    /// Most flows tracked at once, over all workers.
    #[arg(long)]
    max_flows: Option<usize>,
    /// Minutes a learned BitTorrent endpoint is trusted (default 30).
    #[arg(long)]
    endpoint_ttl: Option<u32>,
    /// No line per minute on stdout.
    #[arg(short, long)]
    #[serde(default)]
    quiet: bool,
    /// Serve Prometheus metrics at /metrics and a health check at /healthz on this address
    /// (e.g. 127.0.0.1:9108).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds database writes may keep failing before /healthz answers 503 (default 300).
    #[arg(long, value_name = "SECS")]
    health_db_grace: Option<u64>,
    #[command(flatten)]
    #[serde(flatten)]
    influx: InfluxArgs,
}

impl LiveArgs {
    /// Fills what the flags left unset from the config file.
    fn merge(mut self, f: LiveArgs) -> LiveArgs {
        if self.interface.is_empty() {
            self.interface = f.interface;
        }
        macro_rules! or {
            ($($x:ident).+) => { if self.$($x).+.is_none() { self.$($x).+ = f.$($x).+; } };
        }
        or!(snaplen);
        or!(buffer_size);
        or!(filter);
        or!(threads);
        or!(capture);
        or!(flush_delay);
        or!(user);
        or!(series);
        or!(flows);
        or!(port_series);
        or!(health);
        or!(line_protocol);
        or!(hosts);
        or!(probe);
        or!(home_net);
        or!(rules);
        or!(tcp_timeout);
        or!(udp_timeout);
        or!(max_flows);
        or!(endpoint_ttl);
        or!(metrics_listen);
        or!(health_db_grace);
        or!(influx.influx_url);
        or!(influx.influx_db);
        or!(influx.influx_rp);
        or!(influx.influx_user);
        or!(influx.influx_password_file);
        or!(influx.influx_org);
        or!(influx.influx_bucket);
        or!(influx.influx_token_file);
        or!(influx.influx_timeout);
        or!(influx.influx_ca);
        or!(influx.spool);
        or!(influx.spool_max_mb);
        self.influx.influx_no_gzip |= f.influx.influx_no_gzip;
        self.no_promisc |= f.no_promisc;
        self.quiet |= f.quiet;
        self
    }
}

fn live_cmd(a: LiveArgs) -> ExitCode {
    let a = match &a.config {
        Some(path) => {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<LiveArgs>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(f) => a.merge(f),
                Err(e) => {
                    eprintln!("bittap: {}: {e}", path.display());
                    return ExitCode::from(EXIT_USAGE);
                }
            }
        }
        None => a,
    };
    if a.interface.is_empty() {
        eprintln!("bittap: live needs at least one --interface (or `interface` in --config)");
        return ExitCode::from(EXIT_USAGE);
    }
    let (influx, rules, home_net) =
        match run_setup(&a.influx, a.rules.as_ref(), a.home_net.as_deref()) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("bittap: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
    let defaults = Config::default();
    let cfg = Config {
        home_net,
        tcp_idle_ns: a
            .tcp_timeout
            .map_or(defaults.tcp_idle_ns, |s| i64::from(s) * 1_000_000_000),
        udp_idle_ns: a
            .udp_timeout
            .map_or(defaults.udp_idle_ns, |s| i64::from(s) * 1_000_000_000),
        max_flows: a.max_flows.unwrap_or(defaults.max_flows).max(1),
        endpoint_ttl_ns: a
            .endpoint_ttl
            .map_or(defaults.endpoint_ttl_ns, |m| i64::from(m) * 60_000_000_000),
        ..defaults
    };
    use bittap::capture::live::{LiveOptions, DEFAULT_BUFFER_BYTES, DEFAULT_SNAPLEN};
    let capture = a.capture.clone();
    let opts = bittap::live::Options {
        capture: LiveOptions {
            interfaces: a.interface,
            snaplen: a.snaplen.unwrap_or(DEFAULT_SNAPLEN).max(64),
            buffer_bytes: a.buffer_size.unwrap_or(DEFAULT_BUFFER_BYTES),
            promisc: !a.no_promisc,
            filter: a.filter,
        },
        threads: a
            .threads
            .unwrap_or_else(bittap::workers::default_threads)
            .max(1),
        series: a.series,
        port_series: a.port_series,
        health: a.health,
        hosts: a.hosts,
        spool: live_spool(&a.influx),
        line_protocol: a.line_protocol,
        flows: a.flows,
        probe: a.probe.unwrap_or_else(default_probe),
        influx,
        user: a.user,
        rules_dir: a.rules,
        flush_delay_secs: a.flush_delay.unwrap_or(5),
        quiet: a.quiet,
        metrics: a
            .metrics_listen
            .map(|listen| bittap::metrics::MetricsOptions {
                listen,
                db_grace: std::time::Duration::from_secs(a.health_db_grace.unwrap_or(300)),
                commit: env!("BITTAP_COMMIT").to_string(),
            }),
    };
    let signals = match bittap::live::Signals::register() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bittap: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match bittap::fanout::run_live(capture.as_deref(), &opts, cfg, rules, &signals) {
        Ok(o) => {
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
                ExitCode::from(EXIT_OK)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(e) => {
            eprintln!("bittap: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// What `analyze` and `live` both need from their arguments: the database, the rules and the
/// home network; an error says which argument is wrong.
fn run_setup(
    influx: &InfluxArgs,
    rules: Option<&PathBuf>,
    home_net: Option<&str>,
) -> Result<(Option<bittap::sink::influx::Target>, Arc<Rules>, HomeNet), String> {
    let influx = influx_target(influx)?;
    let rules = load_rules(rules).map_err(|e| format!("invalid rules: {e}"))?;
    let home_net = home_net
        .map(HomeNet::parse)
        .transpose()
        .map_err(|e| format!("--home-net: {e}"))?
        .unwrap_or_default();
    Ok((influx, Arc::new(rules), home_net))
}

fn load_rules(dir: Option<&PathBuf>) -> Result<Rules, bittap::classify::RuleError> {
    match dir {
        Some(d) => Rules::load_dir(d),
        None => Rules::builtin(),
    }
}

/// A secret from a file (first line) or an environment variable; never from the command line.
fn secret(file: Option<&PathBuf>, var: &str) -> Result<Option<String>, String> {
    match file {
        Some(f) => std::fs::read_to_string(f)
            .map(|s| Some(s.lines().next().unwrap_or_default().to_string()))
            .map_err(|e| format!("{}: {e}", f.display())),
        None => Ok(std::env::var(var).ok()),
    }
}

fn influx_target(a: &InfluxArgs) -> Result<Option<bittap::sink::influx::Target>, String> {
    use bittap::sink::influx::Target;
    let Some(url) = a.influx_url.clone() else {
        if a.spool.is_some() {
            return Err("--spool needs --influx-url".into());
        }
        return Ok(None);
    };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!(
            "--influx-url {url}: must start with http:// or https://"
        ));
    }
    let target: Result<Option<Target>, String> = match (&a.influx_bucket, &a.influx_db) {
        (Some(bucket), None) => Ok(Some(Target::V2 {
            url,
            org: a.influx_org.clone().unwrap_or_default(),
            bucket: bucket.clone(),
            token: secret(a.influx_token_file.as_ref(), "BITTAP_INFLUX_TOKEN")?,
        })),
        (None, Some(db)) => Ok(Some(Target::V1 {
            url,
            db: db.clone(),
            rp: a.influx_rp.clone(),
            user: a.influx_user.clone(),
            password: secret(a.influx_password_file.as_ref(), "BITTAP_INFLUX_PASSWORD")?,
        })),
        _ => Err(
            "--influx-url needs exactly one of --influx-db (1.x) or --influx-bucket (v2)".into(),
        ),
    };
    let target = target?;
    // A bad CA file or URL is an argument error, found before anything is counted.
    if let Some(t) = &target {
        bittap::sink::influx::Client::new(t, &http_options(a)).map_err(|e| e.to_string())?;
    }
    Ok(target)
}

fn http_options(a: &InfluxArgs) -> bittap::sink::influx::HttpOptions {
    bittap::sink::influx::HttpOptions {
        timeout: std::time::Duration::from_secs(a.influx_timeout.unwrap_or(30).max(1)),
        gzip: !a.influx_no_gzip,
        ca_file: a.influx_ca.clone(),
    }
}

fn spool_config(a: &InfluxArgs) -> bittap::sink::spool::SpoolConfig {
    bittap::sink::spool::SpoolConfig {
        max_bytes: a.spool_max_mb.unwrap_or(256).saturating_mul(1 << 20),
        http: http_options(a),
        ..Default::default()
    }
}

fn spool_options(a: &InfluxArgs) -> Option<(PathBuf, bittap::sink::spool::SpoolConfig)> {
    a.spool.clone().map(|d| (d, spool_config(a)))
}

/// Live always writes the database through a spool: `--spool`, or `bittap-spool` in the
/// working directory (the state directory under the systemd unit).
fn live_spool(a: &InfluxArgs) -> (PathBuf, bittap::sink::spool::SpoolConfig) {
    let dir = a
        .spool
        .clone()
        .unwrap_or_else(|| PathBuf::from("bittap-spool"));
    (dir, spool_config(a))
}

/// Exit status after a one-shot run through the spool; the sender already reported errors.
fn spool_exit(dir: &std::path::Path, st: &bittap::sink::spool::SpoolStats) -> u8 {
    if st.pending_batches > 0 {
        eprintln!(
            "bittap: {} batches ({} bytes) not yet in the database are kept in the spool {}: `bittap send --spool {}` sends them",
            st.pending_batches,
            st.pending_bytes,
            dir.display(),
            dir.display()
        );
    }
    if st.dropped_batches > 0 {
        eprintln!(
            "bittap: {} batches were dropped: the spool was full",
            st.dropped_batches
        );
    }
    if st.pending_batches > 0 || st.rejected_batches > 0 || st.dropped_batches > 0 {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}

fn analyze_cmd(a: AnalyzeArgs) -> ExitCode {
    let (influx, rules, home_net) =
        match run_setup(&a.influx, a.rules.as_ref(), a.home_net.as_deref()) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("bittap: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
    if a.max_flows == 0 {
        eprintln!("bittap: --max-flows must be at least 1");
        return ExitCode::from(EXIT_USAGE);
    }
    let sflow = match a.sflow_opts.options(a.sflow_port) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bittap: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let cfg = Config {
        home_net,
        tcp_idle_ns: i64::from(a.tcp_timeout) * 1_000_000_000,
        udp_idle_ns: i64::from(a.udp_timeout) * 1_000_000_000,
        max_flows: a.max_flows,
        endpoint_ttl_ns: i64::from(a.endpoint_ttl) * 60_000_000_000,
        ..Config::default()
    };
    let opts = analyze::Options {
        inputs: a.inputs,
        series: a.series,
        flows: a.flows,
        port_series: a.port_series,
        health: a.health,
        progress: !a.no_progress && std::io::stderr().is_terminal(),
        look_ahead: a.look_ahead,
        line_protocol: a.line_protocol,
        probe: a.probe.unwrap_or_else(default_probe),
        http: http_options(&a.influx),
        spool: spool_options(&a.influx),
        influx,
        threads: a.threads,
        hosts: a.hosts,
        chart: a.chart,
        sflow: if a.sflow { Some(sflow) } else { None },
    };
    let outcome = match analyze::run(&opts, cfg, rules) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bittap: {e:#}");
            return ExitCode::from(if e.downcast_ref::<std::io::Error>().is_some() {
                EXIT_FAILURE
            } else {
                EXIT_USAGE
            });
        }
    };
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
        eprintln!("bittap: database write failed: {e}; the output files were written");
        return ExitCode::from(EXIT_FAILURE);
    }
    if let (Some(st), Some(dir)) = (&outcome.spool, &a.influx.spool) {
        if spool_exit(dir, st) != EXIT_OK {
            return ExitCode::from(EXIT_FAILURE);
        }
    }
    if outcome.errors.is_empty() {
        ExitCode::from(EXIT_OK)
    } else {
        eprintln!(
            "bittap: INCOMPLETE: {} capture file(s) were corrupt; their packets before the error were counted and written",
            outcome.errors.len()
        );
        ExitCode::from(EXIT_INPUT_ERROR)
    }
}

fn default_probe() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "bittap".to_string())
}

fn send_cmd(file: Option<PathBuf>, influx: InfluxArgs) -> ExitCode {
    let target = match influx_target(&influx) {
        Ok(Some(t)) => t,
        Ok(None) => {
            eprintln!("bittap: send needs --influx-url");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("bittap: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let text = match &file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("bittap: {}: {e}", f.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => None,
    };
    let http = http_options(&influx);
    if let Some((dir, cfg)) = spool_options(&influx) {
        let spool = match bittap::sink::spool::Spooler::start(target.clone(), dir.clone(), cfg) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("bittap: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        };
        if let Some(t) = &text {
            if let Err(e) = spool.submit_text(t) {
                eprintln!("bittap: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
        let st = spool.close(http.timeout);
        println!(
            "sent {} batches ({} lines) to {target:?}",
            st.sent_batches, st.sent_lines
        );
        return ExitCode::from(spool_exit(&dir, &st));
    }
    let Some(text) = text else {
        eprintln!("bittap: send needs a FILE or --spool DIR");
        return ExitCode::from(EXIT_USAGE);
    };
    let sent = bittap::sink::influx::Client::new(&target, &http).and_then(|c| c.write(&text));
    match sent {
        Ok(n) => {
            println!("sent {n} lines to {target:?}");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("bittap: database write failed: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn report_cmd(a: ReportArgs) -> ExitCode {
    let influx = match &a.influx.influx_url {
        None => None,
        Some(url) => {
            let (Some(db), Some(probe), Some(from), Some(to)) =
                (&a.influx.influx_db, &a.probe, &a.from, &a.to)
            else {
                eprintln!(
                    "bittap: report from a database needs --influx-db, --probe, --from and --to (InfluxDB 1.x /query)"
                );
                return ExitCode::from(EXIT_USAGE);
            };
            let password = match secret(
                a.influx.influx_password_file.as_ref(),
                "BITTAP_INFLUX_PASSWORD",
            ) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("bittap: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            Some(bittap::report::input::Influx {
                url: url.clone(),
                db: db.clone(),
                user: a.influx.influx_user.clone(),
                password,
                probe: probe.clone(),
                from: from.clone(),
                to: to.clone(),
                timeout: std::time::Duration::from_secs(
                    a.influx.influx_timeout.unwrap_or(30).max(1),
                ),
            })
        }
    };
    let opts = bittap::report::Options {
        series: a.series,
        port_series: a.port_series,
        hosts: a.hosts,
        influx,
        chart: a.chart,
        summary: a.summary.clone(),
        params: Default::default(),
    };
    match bittap::report::run(&opts) {
        Ok(r) => {
            if a.summary.is_none() {
                print!("{}", r.summary);
            }
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("bittap: {e}");
            ExitCode::from(match e {
                bittap::report::Error::Input(bittap::report::input::InputError::Database(_))
                | bittap::report::Error::Write(_) => EXIT_FAILURE,
                _ => EXIT_USAGE,
            })
        }
    }
}

fn rules_check(dir: Option<PathBuf>) -> ExitCode {
    match load_rules(dir.as_ref()) {
        Ok(r) => {
            println!(
                "{} port rules, {} signatures: valid",
                r.ports.len(),
                r.signatures.len()
            );
            for p in &r.ports {
                let ranges: Vec<String> = p
                    .ranges
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                println!(
                    "  port  {:<28} {} {:<12} {}",
                    p.id,
                    p.transport.name(),
                    p.proto.name(),
                    ranges.join(",")
                );
            }
            for s in &r.signatures {
                println!(
                    "  sig   {:<28} {} {:<12} offset {} ({} bytes)",
                    s.id,
                    s.transport.name(),
                    if s.class == bittap::classify::Class::Other {
                        "other"
                    } else {
                        s.proto.name()
                    },
                    s.offset,
                    s.bytes.len()
                );
            }
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("bittap: invalid rules: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analyze(a) => analyze_cmd(*a),
        Command::Live(a) => live_cmd(*a),
        Command::Sflow(a) => sflow_cmd(*a),
        Command::Send(a) => send_cmd(a.file, a.influx),
        Command::Report(a) => report_cmd(*a),
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => rules_check(dir),
        Command::Manpage => manpage(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "bittap", &mut std::io::stdout());
            ExitCode::from(EXIT_OK)
        }
    }
}

/// The man page: bittap(1) with every subcommand's options in it.
fn manpage() -> ExitCode {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut out = Vec::new();
    let mut r = clap_mangen::Man::new(cmd.clone()).render(&mut out);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if r.is_err() {
            break;
        }
        let name = sub.get_name().to_string();
        let man = clap_mangen::Man::new(sub.clone().bin_name(format!("bittap {name}")));
        out.extend_from_slice(format!(".SH \"BITTAP {}\"\n", name.to_uppercase()).as_bytes());
        r = man
            .render_synopsis_section(&mut out)
            .and_then(|()| man.render_description_section(&mut out))
            .and_then(|()| man.render_options_section(&mut out));
        if sub.has_subcommands() {
            r = r.and_then(|()| man.render_subcommands_section(&mut out));
        }
    }
    match r.and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &out)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("bittap: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
