//! `bittap send`: a line-protocol file or a spool to the database.

use std::path::{Path, PathBuf};

use clap::Args;

use bittap::sink::influx::Client;
use bittap::sink::spool::{SpoolStats, Spooler};

use super::args::InfluxArgs;
use super::exit::Error;
use super::settings;

#[derive(Args)]
pub struct SendArgs {
    /// The line-protocol file (with --spool: optional; without a file, what the spool holds
    /// is sent).
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub influx: InfluxArgs,
}

pub fn run(a: SendArgs) -> Result<(), Error> {
    let Some(target) = settings::influx_target(&a.influx)? else {
        return Err(Error::Usage("send needs --influx-url".into()));
    };
    let text = match &a.file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| Error::Usage(format!("{}: {e}", f.display())))?,
        ),
        None => None,
    };
    let http = settings::http_options(&a.influx);
    if let Some((dir, cfg)) = settings::spool_options(&a.influx) {
        let spool = Spooler::start(target.clone(), dir.clone(), cfg)
            .map_err(|e| Error::Failure(e.to_string()))?;
        if let Some(t) = &text {
            spool
                .submit_text(t)
                .map_err(|e| Error::Failure(e.to_string()))?;
        }
        let st = spool.close(http.timeout);
        println!(
            "sent {} batches ({} lines) to {target:?}",
            st.sent_batches, st.sent_lines
        );
        return spool_exit(&dir, &st);
    }
    let Some(text) = text else {
        return Err(Error::Usage("send needs a FILE or --spool DIR".into()));
    };
    let n = Client::new(&target, &http)
        .and_then(|c| c.write(&text))
        .map_err(|e| Error::Failure(format!("database write failed: {e}")))?;
    println!("sent {n} lines to {target:?}");
    Ok(())
}

/// After a one-shot run through the spool: what is left in it, said on stderr; a failure if
/// anything is left, was refused or dropped (the sender already reported errors).
pub fn spool_exit(dir: &Path, st: &SpoolStats) -> Result<(), Error> {
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
        Err(Error::Reported)
    } else {
        Ok(())
    }
}
