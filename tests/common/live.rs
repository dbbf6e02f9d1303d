//! Helpers for the tests that run `bittap live` on real packets: a network namespace with a
//! veth pair, `bittap live` started on one end and stopped with SIGTERM, tcpreplay on the
//! other, and readers of the CSV outputs (tests/live.rs and tests/afpacket.rs).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bittap");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the live tests as root"
        );
        eprintln!("skipping: live capture tests need root (network namespaces, tcpreplay)");
    }
    root
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a veth pair `rp` (replay) / `cp` (capture), removed on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "bittap-t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&[
            "ip", "link", "add", "rp", "type", "veth", "peer", "name", "cp",
        ]);
        // No IPv6 (router solicitations, MLD) and no addresses: the kernel sends nothing of
        // its own, so what is captured is exactly what is replayed. A large MTU lets the
        // captures' GRO super-frames through.
        for k in ["all", "default", "rp", "cp"] {
            ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
            ]);
        }
        for i in ["rp", "cp"] {
            ns.exec(&["ip", "link", "set", i, "mtu", "65535", "up"]);
        }
        ns
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    pub fn exec(&self, args: &[&str]) {
        let out = self.cmd(args).output().expect("ip netns exec");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub struct Live {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Live {
    /// Starts `bittap live` on `cp` and waits until the capture is open.
    pub fn start(ns: &Netns, threads: usize) -> Live {
        Live::start_with(ns, threads, &[])
    }

    pub fn start_with(ns: &Netns, threads: usize, extra: &[&str]) -> Live {
        Live::launch(Some(ns), "cp", threads, extra)
    }

    /// Starts `bittap live` on `iface`, in `ns` or (None) in this namespace, and waits until
    /// the capture is open.
    pub fn launch(ns: Option<&Netns>, iface: &str, threads: usize, extra: &[&str]) -> Live {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        let err = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let (threads, series, flows, health, ports) = (
            threads.to_string(),
            p("series.csv"),
            p("flows.csv"),
            p("health.csv"),
            p("ports.csv"),
        );
        let mut args = vec![
            BIN,
            "live",
            "-i",
            iface,
            "--quiet",
            "--threads",
            &threads,
            "--buffer-size",
            "33554432",
            "--series",
            &series,
            "--flows",
            &flows,
            "--health",
            &health,
            "--port-series",
            &ports,
        ];
        args.extend_from_slice(extra);
        let mut cmd = match ns {
            Some(ns) => ns.cmd(&args),
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start bittap live");
        let live = Live { child, dir };
        let t0 = Instant::now();
        while !live.stderr().contains("capturing on") {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "bittap live did not start: {}",
                live.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        live
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// SIGTERM, then the exit status must be success.
    pub fn stop(mut self) -> Stopped {
        // SAFETY: kill with a child's pid; `ip netns exec` execs bittap in place.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "bittap live: {status}: {}", self.stderr());
        let line = self
            .stderr()
            .lines()
            .find(|l| l.contains("stopped:"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no stop line: {}", self.stderr()));
        let num = |after: &str| -> u64 {
            let i = line
                .find(after)
                .unwrap_or_else(|| panic!("{after} in {line}"));
            line[i + after.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{after} in {line}"))
        };
        Stopped {
            read: num("read "),
            counted: num("counted "),
            in_series: num("minute(s) ("),
            kernel: num("kernel "),
            queue: num("queue "),
            received: num("pcap received "),
            stderr: self.stderr(),
            dir: self.dir,
        }
    }
}

pub struct Stopped {
    pub read: u64,
    pub counted: u64,
    pub in_series: u64,
    pub kernel: u64,
    pub queue: u64,
    pub received: u64,
    pub stderr: String,
    pub dir: tempfile::TempDir,
}

/// Column sums of a CSV file (`cols` by name).
pub fn sums(path: &Path, cols: &[&str]) -> Vec<u64> {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().expect("header").split(',').collect();
    let idx: Vec<usize> = cols
        .iter()
        .map(|c| head.iter().position(|h| h == c).expect("column"))
        .collect();
    let mut out = vec![0u64; cols.len()];
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        for (o, &i) in out.iter_mut().zip(&idx) {
            *o += f[i].parse::<u64>().expect("number");
        }
    }
    out
}

/// Flows keyed by 5-tuple and first packet order: (class, proto, method, packets, bytes).
/// Times and end reasons are left out: a replay compresses time.
pub fn flows(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).expect("read flows");
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        m.entry(f[2..7].join(","))
            .or_default()
            .push(f[7..12].join(","));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

pub fn replay(ns: &Netns, file: &Path, extra: &[&str]) -> Child {
    let f = file.to_string_lossy();
    let mut args = vec!["tcpreplay", "-q", "-i", "rp"];
    args.extend_from_slice(extra);
    args.push(&f);
    ns.cmd(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpreplay")
}

pub fn lab_captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("pcaps/lab"))
        .expect("pcaps/lab")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    assert!(v.len() >= 18, "{} lab captures", v.len());
    v
}
