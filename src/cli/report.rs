//! `bittap report`: chart, summary and level shifts of written series.

use std::path::PathBuf;

use clap::Args;

use bittap::report::input::InputError;

use super::args::InfluxArgs;
use super::exit::Error;
use super::settings;

#[derive(Args)]
pub struct ReportArgs {
    /// Series CSV written by `analyze --series`.
    #[arg(long, value_name = "FILE")]
    pub series: Option<PathBuf>,
    /// Port view CSV written by `analyze --port-series`.
    #[arg(long, value_name = "FILE")]
    pub port_series: Option<PathBuf>,
    /// Distinct-host CSV written by `analyze --hosts`.
    #[arg(long, value_name = "FILE")]
    pub hosts: Option<PathBuf>,
    /// SVG chart to write.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// Markdown summary to write (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub influx: InfluxArgs,
    /// The probe whose series are read from the database.
    #[arg(long)]
    pub probe: Option<String>,
    /// Start of the period read from the database (RFC 3339, included).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the period read from the database (RFC 3339, excluded).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
}

/// The database to read, if `--influx-url` was given (InfluxDB 1.x `/query`).
fn database(a: &ReportArgs) -> Result<Option<bittap::report::input::Influx>, Error> {
    let Some(url) = &a.influx.influx_url else {
        return Ok(None);
    };
    let (Some(db), Some(probe), Some(from), Some(to)) =
        (&a.influx.influx_db, &a.probe, &a.from, &a.to)
    else {
        return Err(Error::Usage(
            "report from a database needs --influx-db, --probe, --from and --to (InfluxDB 1.x /query)".into(),
        ));
    };
    Ok(Some(bittap::report::input::Influx {
        url: url.clone(),
        db: db.clone(),
        user: a.influx.influx_user.clone(),
        password: settings::secret(
            a.influx.influx_password_file.as_ref(),
            "BITTAP_INFLUX_PASSWORD",
        )?,
        probe: probe.clone(),
        from: from.clone(),
        to: to.clone(),
        timeout: settings::request_timeout(&a.influx),
    }))
}

pub fn run(a: ReportArgs) -> Result<(), Error> {
    let opts = bittap::report::Options {
        influx: database(&a)?,
        series: a.series,
        port_series: a.port_series,
        hosts: a.hosts,
        chart: a.chart,
        summary: a.summary.clone(),
        params: Default::default(),
    };
    let r = bittap::report::run(&opts).map_err(|e| match e {
        bittap::report::Error::Input(InputError::Database(_)) | bittap::report::Error::Write(_) => {
            Error::Failure(e.to_string())
        }
        _ => Error::Usage(e.to_string()),
    })?;
    if a.summary.is_none() {
        print!("{}", r.summary);
    }
    Ok(())
}
