//! The `bittap` command line: the subcommands; their arguments, settings and exit statuses
//! are in [`cli`].

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::analyze::AnalyzeArgs;
use cli::live::LiveArgs;
use cli::report::ReportArgs;
use cli::send::SendArgs;
use cli::sflow::SflowArgs;

/// `bittap --version`: the package version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BITTAP_COMMIT"), ")");

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

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Analyze(a) => cli::analyze::run(*a),
        Command::Live(a) => cli::live::run(*a),
        Command::Sflow(a) => cli::sflow::run(*a),
        Command::Send(a) => cli::send::run(*a),
        Command::Report(a) => cli::report::run(*a),
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => cli::docs::rules_check(dir),
        Command::Manpage => cli::docs::manpage(),
        Command::Completions { shell } => cli::docs::completions(shell),
    };
    ExitCode::from(cli::exit::status(result))
}
