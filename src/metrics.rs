//! `--metrics-listen`: a Prometheus scrape endpoint (`/metrics`, text exposition format
//! 0.0.4) and a health check (`/healthz`) for `live`.
//!
//! Counters are updated once a minute, when a minute is flushed (never on the packet path), so
//! they equal the sums of the minute series written. Labels are protocol, method, direction,
//! interface and error kind: never an address. One plain std::net thread serves requests one
//! at a time with short timeouts; a scrape every few seconds needs no async runtime.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::aggregate::{Health, SeriesRow};
use crate::capture::live::Drops;
use crate::classify::Class;
use crate::sink::spool::SpoolWatch;

/// How `/healthz` judges and what build it reports.
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    pub listen: std::net::SocketAddr,
    /// How long database writes may keep failing before `/healthz` says 503.
    pub db_grace: Duration,
    /// The build's commit (`bittap --version`).
    pub commit: String,
}

/// The capture loop is stalled when it has not come round for this long (it does every
/// 100 ms even on a quiet link).
const STALL_SECS: i64 = 10;

#[derive(Default)]
struct Counters {
    /// (proto, method, direction) → (packets, bytes).
    traffic: BTreeMap<(&'static str, &'static str, &'static str), (u64, u64)>,
    /// (proto, method) → bytes of BitTorrent protocols.
    bittorrent: BTreeMap<(&'static str, &'static str), u64>,
    minutes: u64,
    flows_tracked: u64,
    flows_created: u64,
    flows_ended: u64,
    flows_evicted: u64,
    flows_unclassified: u64,
    packets: u64,
    bytes: u64,
    non_ip: u64,
    undecodable: u64,
    queue_drops: u64,
    /// Interface → cumulative kernel and interface drops.
    drops: BTreeMap<String, Drops>,
    output_errors: u64,
}

/// Shared between the capture loop, the sink thread and the server thread.
pub struct Metrics {
    opts: MetricsOptions,
    counters: Mutex<Counters>,
    interfaces: Vec<String>,
    spool: Option<SpoolWatch>,
    /// Wall-clock second the capture loop last came round.
    heartbeat: AtomicI64,
    capture_error: Mutex<Option<String>>,
}

fn wall_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A label value escaped per the exposition format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new(opts: MetricsOptions, interfaces: Vec<String>, spool: Option<SpoolWatch>) -> Self {
        Metrics {
            opts,
            counters: Mutex::default(),
            interfaces,
            spool,
            heartbeat: AtomicI64::new(wall_secs()),
            capture_error: Mutex::new(None),
        }
    }

    /// The capture loop came round (called once per loop, not per packet).
    pub fn beat(&self) {
        self.heartbeat.store(wall_secs(), Ordering::Relaxed);
    }

    /// Capture failed for good (the run is ending).
    pub fn capture_failed(&self, why: String) {
        *lock(&self.capture_error) = Some(why);
    }

    /// Cumulative drops of each interface, at a flush.
    pub fn set_drops(&self, by_interface: Vec<(String, Drops)>) {
        let mut c = lock(&self.counters);
        for (name, d) in by_interface {
            c.drops.insert(name, d);
        }
    }

    /// Minutes flushed: their series and health rows.
    pub fn record(&self, series: &[SeriesRow], health: &[(i64, Health)]) {
        let mut c = lock(&self.counters);
        for r in series {
            let e = c
                .traffic
                .entry((r.proto.name(), r.method.name(), r.direction.name()))
                .or_default();
            e.0 += r.counts.packets;
            e.1 += r.counts.bytes;
            if r.proto.class() == Class::Bittorrent {
                *c.bittorrent
                    .entry((r.proto.name(), r.method.name()))
                    .or_default() += r.counts.bytes;
            }
        }
        for (_, h) in health {
            c.minutes += 1;
            c.flows_tracked = h.flows_tracked;
            c.flows_created += h.flows_created;
            c.flows_ended += h.flows_ended;
            c.flows_evicted += h.flows_evicted;
            c.flows_unclassified += h.flows_unclassified;
            c.packets += h.packets;
            c.bytes += h.bytes;
            c.non_ip += h.non_ip;
            c.undecodable += h.undecodable;
            c.queue_drops += h.queue_drops;
        }
    }

    /// An output file could not be written.
    pub fn output_error(&self) {
        lock(&self.counters).output_errors += 1;
    }

    /// `Ok` while capture and the database sink work; otherwise why not.
    pub fn health(&self) -> Result<(), String> {
        if let Some(e) = lock(&self.capture_error).as_ref() {
            return Err(format!("capture failed: {e}"));
        }
        for i in &self.interfaces {
            if i != "any" && !Path::new("/sys/class/net").join(i).exists() {
                return Err(format!("interface {i} is gone"));
            }
        }
        let idle = wall_secs() - self.heartbeat.load(Ordering::Relaxed);
        if idle > STALL_SECS {
            return Err(format!("capture loop stalled for {idle} s"));
        }
        if let Some(sp) = &self.spool {
            let st = sp.stats();
            if let Some(e) = st.permanent_error {
                return Err(format!("database writes stopped: {e}"));
            }
            if let Some(f) = st.failing_for {
                if f > self.opts.db_grace {
                    return Err(format!(
                        "database writes failing for {} s (grace {} s): {}",
                        f.as_secs(),
                        self.opts.db_grace.as_secs(),
                        st.last_error.unwrap_or_default()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        fn family(o: &mut String, name: &str, kind: &str, help: &str) {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let mut o = String::with_capacity(8192);
        family(
            &mut o,
            "bittap_build_info",
            "gauge",
            "Version and commit of the running bittap.",
        );
        let _ = writeln!(
            o,
            "bittap_build_info{{version=\"{}\",commit=\"{}\"}} 1",
            esc(env!("CARGO_PKG_VERSION")),
            esc(&self.opts.commit)
        );
        let c = lock(&self.counters);
        family(
            &mut o,
            "bittap_packets_total",
            "counter",
            "Packets counted in the minutes flushed.",
        );
        for ((p, m, d), (pk, _)) in &c.traffic {
            let _ = writeln!(
                o,
                "bittap_packets_total{{proto=\"{p}\",method=\"{m}\",direction=\"{d}\"}} {pk}"
            );
        }
        family(
            &mut o,
            "bittap_bytes_total",
            "counter",
            "Bytes (on the wire) counted in the minutes flushed.",
        );
        for ((p, m, d), (_, b)) in &c.traffic {
            let _ = writeln!(
                o,
                "bittap_bytes_total{{proto=\"{p}\",method=\"{m}\",direction=\"{d}\"}} {b}"
            );
        }
        family(
            &mut o,
            "bittap_bittorrent_bytes_total",
            "counter",
            "Bytes of BitTorrent protocols in the minutes flushed.",
        );
        for ((p, m), b) in &c.bittorrent {
            let _ = writeln!(
                o,
                "bittap_bittorrent_bytes_total{{proto=\"{p}\",method=\"{m}\"}} {b}"
            );
        }
        family(
            &mut o,
            "bittap_flushes_total",
            "counter",
            "Minutes flushed to the outputs (one a minute, quiet ones included).",
        );
        let _ = writeln!(o, "bittap_flushes_total {}", c.minutes);
        family(
            &mut o,
            "bittap_capture_drops_total",
            "counter",
            "Packets dropped before bittap saw them, per interface: kernel (capture buffer full) or interface (driver).",
        );
        for (i, d) in &c.drops {
            let i = esc(i);
            let _ = writeln!(
                o,
                "bittap_capture_drops_total{{interface=\"{i}\",kind=\"kernel\"}} {}\nbittap_capture_drops_total{{interface=\"{i}\",kind=\"interface\"}} {}",
                d.kernel, d.interface
            );
        }
        family(
            &mut o,
            "bittap_queue_drops_total",
            "counter",
            "Packets bittap dropped because a worker's queue was full.",
        );
        let _ = writeln!(o, "bittap_queue_drops_total {}", c.queue_drops);
        family(
            &mut o,
            "bittap_flows_tracked",
            "gauge",
            "Most flows in the table at once during the last minute flushed.",
        );
        let _ = writeln!(o, "bittap_flows_tracked {}", c.flows_tracked);
        for (name, v, help) in [
            (
                "bittap_flows_created_total",
                c.flows_created,
                "Flows created.",
            ),
            ("bittap_flows_ended_total", c.flows_ended, "Flows ended."),
            (
                "bittap_flows_evicted_total",
                c.flows_evicted,
                "Flows evicted because the table was full.",
            ),
            (
                "bittap_flows_unclassified_total",
                c.flows_unclassified,
                "Flows that ended with no verdict.",
            ),
            (
                "bittap_capture_packets_total",
                c.packets,
                "Packets captured in the minutes flushed (the series count a flow's packets once it has a verdict).",
            ),
            (
                "bittap_capture_bytes_total",
                c.bytes,
                "Bytes captured in the minutes flushed.",
            ),
            (
                "bittap_non_ip_packets_total",
                c.non_ip,
                "Frames that were not IP.",
            ),
            (
                "bittap_undecodable_packets_total",
                c.undecodable,
                "Frames that could not be decoded.",
            ),
            (
                "bittap_output_errors_total",
                c.output_errors,
                "Failed writes to the output files.",
            ),
        ] {
            family(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {v}");
        }
        drop(c);
        if let Some(sp) = &self.spool {
            let st = sp.stats();
            for (name, kind, v, help) in [
                (
                    "bittap_spool_bytes",
                    "gauge",
                    st.pending_bytes,
                    "Bytes waiting in the database spool.",
                ),
                (
                    "bittap_spool_batches",
                    "gauge",
                    st.pending_batches,
                    "Batches waiting in the database spool.",
                ),
                (
                    "bittap_spool_age_seconds",
                    "gauge",
                    st.oldest_age_secs,
                    "Age of the oldest batch waiting in the spool.",
                ),
                (
                    "bittap_spool_dropped_batches_total",
                    "counter",
                    st.dropped_batches,
                    "Oldest batches dropped because the spool was full.",
                ),
                (
                    "bittap_database_batches_sent_total",
                    "counter",
                    st.sent_batches,
                    "Batches written to the database.",
                ),
            ] {
                family(&mut o, name, kind, help);
                let _ = writeln!(o, "{name} {v}");
            }
            family(
                &mut o,
                "bittap_database_errors_total",
                "counter",
                "Failed database writes by kind: transient (retried), rejected (data refused), permanent (sending stopped).",
            );
            for (k, v) in [
                ("transient", st.retries),
                ("rejected", st.rejected_batches),
                ("permanent", u64::from(st.permanent_error.is_some())),
            ] {
                let _ = writeln!(o, "bittap_database_errors_total{{kind=\"{k}\"}} {v}");
            }
        }
        family(
            &mut o,
            "bittap_healthy",
            "gauge",
            "1 while capture and the database sink work (as /healthz).",
        );
        let _ = writeln!(o, "bittap_healthy {}", u8::from(self.health().is_ok()));
        o
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the process ends.
pub fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("bittap-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        // A client that misbehaves only loses its own request.
                        let _ = answer(s, &metrics);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(())
}

/// The request line's method and path, from a request head of at most 8 KiB.
fn request_target(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    parts.next()?.strip_prefix("HTTP/")?;
    let path = target.split('?').next()?;
    Some((method, path))
}

fn answer(mut s: TcpStream, m: &Metrics) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut buf)?;
        if n == 0 || head.len() + n > 8192 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, ctype, body) = match request_target(&head) {
        Some(("GET" | "HEAD", "/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            m.render(),
        ),
        Some(("GET" | "HEAD", "/healthz")) => match m.health() {
            Ok(()) => ("200 OK", "text/plain; charset=utf-8", "ok\n".to_string()),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                why + "\n",
            ),
        },
        Some(("GET" | "HEAD", _)) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "/metrics or /healthz\n".to_string(),
        ),
        Some(_) => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET only\n".to_string(),
        ),
        None => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "bad request\n".to_string(),
        ),
    };
    let head_only = head.starts_with(b"HEAD ");
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        resp.push_str(&body);
    }
    s.write_all(resp.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            request_target(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_target(b"GET /healthz?x=1 HTTP/1.0\r\n\r\n"),
            Some(("GET", "/healthz"))
        );
        assert_eq!(request_target(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(request_target(b"\xff\xfe"), None);
    }

    #[test]
    fn label_values_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
