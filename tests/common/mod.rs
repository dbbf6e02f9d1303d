//! Helpers shared by the integration tests: run the pipeline over files and read the truth
//! tables that the crafted-capture generator writes next to its captures.
#![allow(dead_code)]

pub mod influxd;
pub mod sflow;
pub mod tls;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bittap::aggregate::{Counts, SeriesRow};
use bittap::capture::{CaptureError, MergedReader};
use bittap::classify::Rules;
use bittap::engine::{Config, Engine};
use bittap::flow::record::{FlowRecord, SharedFlows};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn crafted(name: &str) -> PathBuf {
    repo().join("pcaps/crafted").join(name)
}

pub struct Run {
    pub series: Vec<SeriesRow>,
    pub flows: Vec<FlowRecord>,
    pub problems: Vec<CaptureError>,
    pub input: Counts,
}

impl Run {
    pub fn series_total(&self) -> Counts {
        let mut c = Counts::default();
        for r in &self.series {
            c.add(r.counts.packets, r.counts.bytes);
        }
        c
    }

    /// The flow with this orientation and 5-tuple.
    pub fn flow(
        &self,
        l4: &str,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
    ) -> Option<&FlowRecord> {
        self.flows.iter().find(|f| {
            f.l4 == l4
                && bittap::decode::addr_to_ip(f.src).to_string() == src
                && f.src_port == sport
                && bittap::decode::addr_to_ip(f.dst).to_string() == dst
                && f.dst_port == dport
        })
    }
}

pub fn run_with(paths: &[PathBuf], cfg: Config) -> Run {
    let rules = Arc::new(Rules::builtin().expect("built-in rules"));
    let mut reader = MergedReader::new(paths).expect("open captures");
    let mut p = Engine::new(cfg, rules);
    let flows = SharedFlows::default();
    p.set_flow_sink(Box::new(flows.clone()));
    while reader.advance() {
        if let Some(pkt) = reader.packet() {
            p.process(&pkt);
        }
    }
    p.finish().expect("flow sink");
    let input = p.totals();
    Run {
        series: p.aggregator().series_rows(),
        flows: flows.take(),
        problems: std::mem::take(&mut reader.problems),
        input,
    }
}

pub fn run(paths: &[PathBuf]) -> Run {
    run_with(paths, Config::default())
}

/// Rows of a TSV file with a header, as maps from column name to value.
pub fn tsv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(String::from)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(String::from))
                .collect()
        })
        .collect()
}

/// A free TCP port on loopback (for test servers).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// An HTTP request to a test server: status (0 when unreachable) and body.
pub fn http(method: &str, url: &str, form: &[(&str, &str)]) -> (u16, String) {
    http_with(&ureq::agent(), method, url, form)
}

/// As `http`, through this agent (e.g. one that trusts a test CA).
pub fn http_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let req = agent.request(method, url);
    let resp = if form.is_empty() {
        req.call()
    } else {
        req.send_form(form)
    };
    match resp {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Runs the bittap binary with `BITTAP_INFLUX_PASSWORD` set to `password`.
pub fn bittap_with_password(args: &[&str], password: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bittap"))
        .args(args)
        .env("BITTAP_INFLUX_PASSWORD", password)
        .output()
        .expect("run bittap")
}

/// A path as the `&str` a command line takes.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}
