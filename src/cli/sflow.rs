//! `bittap sflow`.

use std::net::SocketAddr;

use clap::Args;

use bittap::capture::live::LiveOptions;

use super::args::{ClassifyArgs, DaemonArgs, FlowArgs, InfluxArgs, OutputArgs, SflowOpts};
use super::exit::Error;
use super::settings::{self, Common};

/// `bittap sflow` flags.
#[derive(Args)]
pub struct SflowArgs {
    /// Where to listen: PORT or ADDR:PORT ([::]:PORT for IPv6).
    #[arg(long, default_value = "6343", value_name = "[ADDR:]PORT")]
    pub listen: String,
    #[command(flatten)]
    pub sflow_opts: SflowOpts,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub classify: ClassifyArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// No line per minute on stdout.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub influx: InfluxArgs,
}

/// `--listen`: a port alone means every IPv4 address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, Error> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    s.parse()
        .map_err(|_| Error::Usage(format!("--listen {s}: expected PORT or ADDR:PORT")))
}

pub fn run(a: SflowArgs) -> Result<(), Error> {
    let common = Common::new(&a.classify, &a.flow, &a.influx)?;
    let listen = parse_listen(&a.listen)?;
    let sf = settings::sflow_options(&a.sflow_opts, listen.port())?;
    let opts = bittap::live::Options {
        capture: LiveOptions {
            interfaces: Vec::new(),
            snaplen: 0,
            buffer_bytes: 0,
            promisc: false,
            filter: None,
        },
        threads: 1,
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
    let o = bittap::sflow::listen::run(&opts, listen, &sf, common.cfg, common.rules, &signals)
        .map_err(|e| Error::Failure(format!("{e:#}")))?;
    eprintln!(
        "bittap: stopped: {} datagrams, {} packets estimated, {} minute(s) written",
        o.datagrams, o.packets, o.minutes
    );
    if o.errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_port_or_an_address() {
        assert_eq!(
            parse_listen("6343").ok(),
            Some(SocketAddr::from(([0, 0, 0, 0], 6343)))
        );
        assert_eq!(
            parse_listen("[::1]:9").ok(),
            "[::1]:9".parse::<SocketAddr>().ok()
        );
        assert!(matches!(parse_listen("x:y"), Err(Error::Usage(_))));
    }
}
