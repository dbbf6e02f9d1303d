//! Argument blocks shared by the front doors, each declared once and flattened into
//! `analyze`, `live` and `sflow` (and `send`, `report` for the database). Every field is
//! also a key of `live --config` (the flag without `--`); defaults are applied in one place,
//! [`super::settings`], so a flag the user left unset can be filled from the config file.

use std::path::PathBuf;

use clap::Args;

/// The per-minute and per-flow outputs (`live` and `sflow` append to them).
#[derive(Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutputArgs {
    /// Per-minute series (CSV; NDJSON for .json/.ndjson/.jsonl); from sFlow with samples and
    /// intervals.
    #[arg(long, value_name = "FILE")]
    pub series: Option<PathBuf>,
    /// Per-flow verdicts (CSV or NDJSON). Holds addresses: keep it local.
    #[arg(long, value_name = "FILE")]
    pub flows: Option<PathBuf>,
    /// Port view: bytes on classic BitTorrent ports per minute, whatever the verdict.
    #[arg(long, value_name = "FILE")]
    pub port_series: Option<PathBuf>,
    /// Capture health per minute (live: with kernel, interface and queue drops; sflow: with
    /// sFlow's fields).
    #[arg(long, value_name = "FILE")]
    pub health: Option<PathBuf>,
    /// InfluxDB line protocol of the series, port view and health (measurements bittap,
    /// bittap_port, bittap_health), timestamped at each minute's start.
    #[arg(long, value_name = "FILE")]
    pub line_protocol: Option<PathBuf>,
    /// Estimated distinct BitTorrent hosts per minute (CSV `time,bittorrent_hosts`; a
    /// sketch's estimate, no address is kept).
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
}

/// Rules, home network and the `probe` tag.
#[derive(Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClassifyArgs {
    /// Value of the `probe` tag (default: the host name).
    #[arg(long)]
    pub probe: Option<String>,
    /// Home network CIDRs, comma-separated, for the up/down direction tag.
    #[arg(long, value_name = "CIDR,...")]
    pub home_net: Option<String>,
    /// Rule directory with ports.toml and signatures.toml (default: built-in rules); live and
    /// sflow reload it on SIGHUP.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// The flow table's bounds and timeouts.
#[derive(Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FlowArgs {
    /// Idle timeout of TCP flows, in seconds (default 300).
    #[arg(long, value_name = "SECS")]
    pub tcp_timeout: Option<u32>,
    /// Idle timeout of UDP flows, in seconds (default 120).
    #[arg(long, value_name = "SECS")]
    pub udp_timeout: Option<u32>,
    /// Most flows tracked at once, over all workers (default 1048576).
    #[arg(long)]
    pub max_flows: Option<usize>,
    /// Minutes a learned BitTorrent endpoint is trusted (default 30).
    #[arg(long, value_name = "MINUTES")]
    pub endpoint_ttl: Option<u32>,
}

/// The database and its spool.
#[derive(Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InfluxArgs {
    /// Push the series to this database URL (http://host:port): InfluxDB 1.x `/write` with
    /// --influx-db, or the v2 write API with --influx-bucket.
    #[arg(long, value_name = "URL")]
    pub influx_url: Option<String>,
    /// InfluxDB 1.x database.
    #[arg(long)]
    pub influx_db: Option<String>,
    /// InfluxDB 1.x retention policy.
    #[arg(long)]
    pub influx_rp: Option<String>,
    /// InfluxDB 1.x user; the password comes from --influx-password-file or the
    /// BITTAP_INFLUX_PASSWORD environment variable.
    #[arg(long)]
    pub influx_user: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub influx_password_file: Option<PathBuf>,
    /// v2 write API organisation and bucket; the token comes from --influx-token-file or the
    /// BITTAP_INFLUX_TOKEN environment variable.
    #[arg(long)]
    pub influx_org: Option<String>,
    #[arg(long)]
    pub influx_bucket: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub influx_token_file: Option<PathBuf>,
    /// Seconds a request may take, connection included (default 30).
    #[arg(long, value_name = "SECS")]
    pub influx_timeout: Option<u64>,
    /// Send plain request bodies instead of gzip.
    #[arg(long)]
    #[serde(default)]
    pub influx_no_gzip: bool,
    /// PEM file of the CA(s) to trust for an https:// URL instead of the public web roots.
    #[arg(long, value_name = "FILE")]
    pub influx_ca: Option<PathBuf>,
    /// Spool directory: lines are kept on disk until the database has them; what a failure
    /// that can pass leaves is sent by the next run or `bittap send --spool DIR`.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Most megabytes the spool holds (default 256); beyond it the oldest batches are dropped.
    #[arg(long, value_name = "MB")]
    pub spool_max_mb: Option<u64>,
}

/// What the daemons (`live`, `sflow`) add: when minutes are flushed, who they run as, and
/// the metrics endpoint.
#[derive(Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DaemonArgs {
    /// Seconds after a minute ends before it is flushed (default 5).
    #[arg(long, value_name = "SECS")]
    pub flush_delay: Option<u32>,
    /// Switch to this user once the captures, sockets and outputs are open.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Serve Prometheus metrics at /metrics and a health check at /healthz on this address
    /// (e.g. 127.0.0.1:9108).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds database writes may keep failing before /healthz answers 503 (default 300).
    #[arg(long, value_name = "SECS")]
    pub health_db_grace: Option<u64>,
}

/// sFlow settings shared by `analyze --sflow` and `sflow`.
#[derive(Args, Debug, Default)]
pub struct SflowOpts {
    /// sFlow: read only datagrams of agents (agent address) in these networks; others are
    /// counted as rejected.
    #[arg(long, value_name = "CIDR,...")]
    pub agents: Option<String>,
    /// sFlow: link load per agent and interface and minute, from counter samples (CSV;
    /// holds agent addresses).
    #[arg(long, value_name = "FILE")]
    pub sflow_counters: Option<PathBuf>,
    /// sFlow: health per agent and minute (CSV; holds agent addresses).
    #[arg(long, value_name = "FILE")]
    pub sflow_agents: Option<PathBuf>,
    /// sFlow: exchange members (TOML: agent and ingress ifIndex, or source MAC, to member
    /// name); series and port-view rows get a `member` tag (`unknown` for samples of no
    /// member). Only the names leave the process.
    #[arg(long, value_name = "FILE")]
    pub members: Option<PathBuf>,
}

/// Fills what `$a` left unset from `$b`, field by field (`Option`s: `$a` wins; flags: either).
macro_rules! fill {
    ($a:ident, $b:ident; opt: $($o:ident),*; flag: $($f:ident),*) => {
        $( if $a.$o.is_none() { $a.$o = $b.$o; } )*
        $( $a.$f |= $b.$f; )*
    };
}
pub(crate) use fill;

impl OutputArgs {
    pub fn fill_from(&mut self, f: OutputArgs) {
        fill!(self, f; opt: series, flows, port_series, health, line_protocol, hosts; flag:);
    }
}

impl ClassifyArgs {
    pub fn fill_from(&mut self, f: ClassifyArgs) {
        fill!(self, f; opt: probe, home_net, rules; flag:);
    }
}

impl FlowArgs {
    pub fn fill_from(&mut self, f: FlowArgs) {
        fill!(self, f; opt: tcp_timeout, udp_timeout, max_flows, endpoint_ttl; flag:);
    }
}

impl InfluxArgs {
    pub fn fill_from(&mut self, f: InfluxArgs) {
        fill!(self, f;
            opt: influx_url, influx_db, influx_rp, influx_user, influx_password_file, influx_org,
                influx_bucket, influx_token_file, influx_timeout, influx_ca, spool, spool_max_mb;
            flag: influx_no_gzip);
    }
}

impl DaemonArgs {
    pub fn fill_from(&mut self, f: DaemonArgs) {
        fill!(self, f; opt: flush_delay, user, metrics_listen, health_db_grace; flag:);
    }
}
