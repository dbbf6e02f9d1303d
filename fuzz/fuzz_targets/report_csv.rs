//! `bittap report` over CSV files: series, port view and hosts (split at NUL bytes), then
//! level-shift detection, the summary and the chart.
#![no_main]
use bittap::report::{self, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir_in(std::env::temp_dir()) else {
        return;
    };
    let mut parts = data.splitn(3, |&b| b == 0);
    let mut path = |name: &str| -> Option<std::path::PathBuf> {
        let part = parts.next()?;
        let p = dir.path().join(name);
        std::fs::write(&p, part).ok()?;
        Some(p)
    };
    let series = path("series.csv");
    let port_series = path("ports.csv");
    let hosts = path("hosts.csv");
    let o = Options {
        series,
        port_series,
        hosts,
        chart: Some(dir.path().join("chart.svg")),
        ..Options::default()
    };
    match report::run(&o) {
        Ok(r) => assert!(r.series.len() as i64 <= report::MAX_MINUTES),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
