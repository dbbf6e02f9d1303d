//! From argument blocks to settings: every default written once, every check made once, the
//! same for `analyze`, `live` and `sflow`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bittap::aggregate::HomeNet;
use bittap::classify::Rules;
use bittap::engine::Config;
use bittap::sink::influx::{Client, HttpOptions, Target};
use bittap::sink::spool::SpoolConfig;
use bittap::time::Nanos;

use super::args::{ClassifyArgs, DaemonArgs, FlowArgs, InfluxArgs, SflowOpts};
use super::exit::Error;

/// Seconds a database request may take (`--influx-timeout`).
pub const DEFAULT_INFLUX_TIMEOUT_SECS: u64 = 30;
/// Most megabytes the spool holds (`--spool-max-mb`).
pub const DEFAULT_SPOOL_MAX_MB: u64 = 256;
/// Seconds after a minute's end before `live` and `sflow` flush it (`--flush-delay`).
pub const DEFAULT_FLUSH_DELAY_SECS: u32 = 5;
/// Seconds of failing database writes before /healthz says 503 (`--health-db-grace`).
pub const DEFAULT_HEALTH_DB_GRACE_SECS: u64 = 300;
/// Where `live` and `sflow` spool without `--spool` (the state directory under systemd).
pub const DEFAULT_LIVE_SPOOL: &str = "bittap-spool";

/// What every counting front door needs: the engine's settings, the rules, the database and
/// the `probe` tag.
pub struct Common {
    pub cfg: Config,
    pub rules: Arc<Rules>,
    pub influx: Option<Target>,
    pub probe: String,
}

impl Common {
    /// The one conversion and validation of the shared blocks; an error names the argument.
    pub fn new(c: &ClassifyArgs, f: &FlowArgs, i: &InfluxArgs) -> Result<Common, Error> {
        let influx = influx_target(i)?;
        let rules = load_rules(c.rules.as_deref())
            .map_err(|e| Error::Usage(format!("invalid rules: {e}")))?;
        let home_net = c
            .home_net
            .as_deref()
            .map(HomeNet::parse)
            .transpose()
            .map_err(|e| Error::Usage(format!("--home-net: {e}")))?
            .unwrap_or_default();
        Ok(Common {
            cfg: engine_config(f, home_net)?,
            rules: Arc::new(rules),
            influx,
            probe: c.probe.clone().unwrap_or_else(default_probe),
        })
    }
}

/// The engine's settings from the flow-table flags; unset flags keep the engine's defaults.
pub fn engine_config(f: &FlowArgs, home_net: HomeNet) -> Result<Config, Error> {
    let d = Config::default();
    let max_flows = f.max_flows.unwrap_or(d.max_flows);
    if max_flows == 0 {
        return Err(Error::Usage("--max-flows must be at least 1".into()));
    }
    Ok(Config {
        home_net,
        tcp_idle_ns: f
            .tcp_timeout
            .map_or(d.tcp_idle_ns, |s| Nanos::from_secs(s).get()),
        udp_idle_ns: f
            .udp_timeout
            .map_or(d.udp_idle_ns, |s| Nanos::from_secs(s).get()),
        max_flows,
        endpoint_ttl_ns: f
            .endpoint_ttl
            .map_or(d.endpoint_ttl_ns, |m| Nanos::from_minutes(m).get()),
        ..d
    })
}

/// The sFlow options; `port` is the UDP port of the datagrams (captured or listened on).
pub fn sflow_options(s: &SflowOpts, port: u16) -> Result<bittap::sflow::Options, Error> {
    let agents = s
        .agents
        .as_deref()
        .map(HomeNet::parse)
        .transpose()
        .map_err(|e| Error::Usage(format!("--agents: {e}")))?;
    Ok(bittap::sflow::Options {
        port,
        agents,
        counters: s.sflow_counters.clone(),
        agent_health: s.sflow_agents.clone(),
        members: match &s.members {
            Some(p) => Some(std::sync::Arc::new(
                bittap::sflow::members::Members::load(p)
                    .map_err(|e| Error::Usage(format!("--members {e}")))?,
            )),
            None => None,
        },
    })
}

/// `/metrics` and `/healthz`, if `--metrics-listen` was given.
pub fn metrics_options(d: &DaemonArgs) -> Option<bittap::metrics::MetricsOptions> {
    d.metrics_listen
        .map(|listen| bittap::metrics::MetricsOptions {
            listen,
            db_grace: Duration::from_secs(
                d.health_db_grace.unwrap_or(DEFAULT_HEALTH_DB_GRACE_SECS),
            ),
            commit: env!("BITTAP_COMMIT").to_string(),
        })
}

pub fn flush_delay_secs(d: &DaemonArgs) -> u32 {
    d.flush_delay.unwrap_or(DEFAULT_FLUSH_DELAY_SECS)
}

pub fn load_rules(dir: Option<&Path>) -> Result<Rules, bittap::classify::RuleError> {
    match dir {
        Some(d) => Rules::load_dir(d),
        None => Rules::builtin(),
    }
}

/// The host name, the default `probe` tag.
pub fn default_probe() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "bittap".to_string())
}

/// A secret from a file (first line) or an environment variable; never from the command line.
pub fn secret(file: Option<&PathBuf>, var: &str) -> Result<Option<String>, Error> {
    match file {
        Some(f) => std::fs::read_to_string(f)
            .map(|s| Some(s.lines().next().unwrap_or_default().to_string()))
            .map_err(|e| Error::Usage(format!("{}: {e}", f.display()))),
        None => Ok(std::env::var(var).ok()),
    }
}

/// The database from the flags, checked (URL, exactly one of 1.x and v2, CA file) before
/// anything is counted.
pub fn influx_target(a: &InfluxArgs) -> Result<Option<Target>, Error> {
    let Some(url) = a.influx_url.clone() else {
        if a.spool.is_some() {
            return Err(Error::Usage("--spool needs --influx-url".into()));
        }
        return Ok(None);
    };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(Error::Usage(format!(
            "--influx-url {url}: must start with http:// or https://"
        )));
    }
    let target = match (&a.influx_bucket, &a.influx_db) {
        (Some(bucket), None) => Target::V2 {
            url,
            org: a.influx_org.clone().unwrap_or_default(),
            bucket: bucket.clone(),
            token: secret(a.influx_token_file.as_ref(), "BITTAP_INFLUX_TOKEN")?,
        },
        (None, Some(db)) => Target::V1 {
            url,
            db: db.clone(),
            rp: a.influx_rp.clone(),
            user: a.influx_user.clone(),
            password: secret(a.influx_password_file.as_ref(), "BITTAP_INFLUX_PASSWORD")?,
        },
        _ => {
            return Err(Error::Usage(
                "--influx-url needs exactly one of --influx-db (1.x) or --influx-bucket (v2)"
                    .into(),
            ))
        }
    };
    // A bad CA file or URL is an argument error, found before anything is counted.
    Client::new(&target, &http_options(a)).map_err(|e| Error::Usage(e.to_string()))?;
    Ok(Some(target))
}

pub fn http_options(a: &InfluxArgs) -> HttpOptions {
    HttpOptions {
        timeout: request_timeout(a),
        gzip: !a.influx_no_gzip,
        ca_file: a.influx_ca.clone(),
    }
}

/// `--influx-timeout`, at least a second.
pub fn request_timeout(a: &InfluxArgs) -> Duration {
    Duration::from_secs(
        a.influx_timeout
            .unwrap_or(DEFAULT_INFLUX_TIMEOUT_SECS)
            .max(1),
    )
}

pub fn spool_config(a: &InfluxArgs) -> SpoolConfig {
    SpoolConfig {
        max_bytes: a
            .spool_max_mb
            .unwrap_or(DEFAULT_SPOOL_MAX_MB)
            .saturating_mul(1 << 20),
        http: http_options(a),
        ..Default::default()
    }
}

/// The spool `analyze` and `send` write through, if `--spool` was given.
pub fn spool_options(a: &InfluxArgs) -> Option<(PathBuf, SpoolConfig)> {
    a.spool.clone().map(|d| (d, spool_config(a)))
}

/// Live and sflow always write the database through a spool: `--spool`, or `bittap-spool`
/// in the working directory.
pub fn live_spool(a: &InfluxArgs) -> (PathBuf, SpoolConfig) {
    let dir = a
        .spool
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LIVE_SPOOL));
    (dir, spool_config(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_flags_keep_the_engines_defaults() {
        let cfg = engine_config(&FlowArgs::default(), HomeNet::default()).expect("defaults");
        let d = Config::default();
        assert_eq!(cfg.tcp_idle_ns, d.tcp_idle_ns);
        assert_eq!(cfg.udp_idle_ns, d.udp_idle_ns);
        assert_eq!(cfg.max_flows, d.max_flows);
        assert_eq!(cfg.endpoint_ttl_ns, d.endpoint_ttl_ns);
    }

    /// The defaults the help texts name are the engine's.
    #[test]
    fn help_names_the_engines_defaults() {
        use clap::CommandFactory;
        let d = Config::default();
        let help = crate::Cli::command()
            .find_subcommand_mut("analyze")
            .map(|c| c.render_help().to_string())
            .unwrap_or_default();
        let secs = |ns: i64| ns / 1_000_000_000;
        for want in [
            format!("(default {})", secs(d.tcp_idle_ns)),
            format!("(default {})", secs(d.udp_idle_ns)),
            format!("(default {})", d.max_flows),
            format!("(default {})", d.endpoint_ttl_ns / 60_000_000_000),
            format!("(default {DEFAULT_INFLUX_TIMEOUT_SECS})"),
            format!("(default {DEFAULT_SPOOL_MAX_MB})"),
        ] {
            assert!(help.contains(&want), "help lacks {want}:\n{help}");
        }
    }

    #[test]
    fn flags_convert_and_zero_flows_is_an_error() {
        let f = FlowArgs {
            tcp_timeout: Some(7),
            udp_timeout: Some(u32::MAX),
            max_flows: Some(3),
            endpoint_ttl: Some(2),
        };
        let cfg = engine_config(&f, HomeNet::default()).expect("valid");
        assert_eq!(cfg.tcp_idle_ns, 7_000_000_000);
        assert_eq!(cfg.udp_idle_ns, i64::from(u32::MAX) * 1_000_000_000);
        assert_eq!(cfg.max_flows, 3);
        assert_eq!(cfg.endpoint_ttl_ns, 120_000_000_000);
        let zero = FlowArgs {
            max_flows: Some(0),
            ..FlowArgs::default()
        };
        let e = engine_config(&zero, HomeNet::default()).err();
        assert!(matches!(e, Some(Error::Usage(m)) if m.contains("--max-flows")));
    }

    #[test]
    fn database_flags_are_checked_before_anything_runs() {
        let spool_alone = InfluxArgs {
            spool: Some("x".into()),
            ..InfluxArgs::default()
        };
        assert!(matches!(influx_target(&spool_alone), Err(Error::Usage(_))));
        let both = InfluxArgs {
            influx_url: Some("http://127.0.0.1:1".into()),
            influx_db: Some("d".into()),
            influx_bucket: Some("b".into()),
            ..InfluxArgs::default()
        };
        assert!(matches!(influx_target(&both), Err(Error::Usage(_))));
        let scheme = InfluxArgs {
            influx_url: Some("ftp://x".into()),
            influx_db: Some("d".into()),
            ..InfluxArgs::default()
        };
        assert!(matches!(influx_target(&scheme), Err(Error::Usage(_))));
        assert!(matches!(influx_target(&InfluxArgs::default()), Ok(None)));
        let zero = InfluxArgs {
            influx_timeout: Some(0),
            spool_max_mb: Some(1),
            ..InfluxArgs::default()
        };
        assert_eq!(request_timeout(&zero), Duration::from_secs(1));
        assert_eq!(spool_config(&zero).max_bytes, 1 << 20);
        assert_eq!(live_spool(&zero).0, PathBuf::from(DEFAULT_LIVE_SPOOL));
    }
}
