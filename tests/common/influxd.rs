//! A real InfluxDB 1.x (Debian's `influxd`) on free loopback ports, in a temporary directory,
//! with authentication on and an admin user `admin`/`adminpw` and a database `bt`. It can be
//! stopped and started again on the same port and data (outage tests); dropped, it is killed.
//! `start_with` can serve https with a certificate from `tls::TestCa`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tls::TestCa;
use super::{free_port, http_with};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "adminpw";
pub const DB: &str = "bt";

pub struct Influxd {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
    /// Trusts the server's certificate when it serves https.
    agent: ureq::Agent,
    https: bool,
    _dir: tempfile::TempDir,
}

/// How to run the server.
#[derive(Default)]
pub struct Options<'a> {
    /// Serve https (only) with a certificate of this CA for 127.0.0.1.
    pub tls: Option<&'a TestCa>,
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Influxd {
    /// Starts influxd; `None` when influxd is not installed and this is not CI (CI installs
    /// it: there the test must run).
    pub fn start() -> Option<Influxd> {
        Influxd::start_with(Options::default())
    }

    pub fn start_with(opts: Options<'_>) -> Option<Influxd> {
        if Command::new("influxd").arg("version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "influxd missing in CI: scripts/deps.sh installs it"
            );
            eprintln!("influxd not installed: skipping (scripts/deps.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, rpc) = (free_port(), free_port());
        let d = dir.path().display();
        let mut conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{port}\"\n  auth-enabled = true\n  log-enabled = false\n"
        );
        if let Some(ca) = opts.tls {
            conf.push_str(&format!(
                "  https-enabled = true\n  https-certificate = \"{}\"\n  https-private-key = \"{}\"\n",
                ca.server_cert.display(),
                ca.server_key.display()
            ));
        }
        let agent = match opts.tls {
            Some(ca) => ca.agent(),
            None => ureq::agent(),
        };
        let config = dir.path().join("influxdb.conf");
        std::fs::write(&config, conf).expect("write config");
        let mut server = Influxd {
            child: None,
            port,
            config,
            agent,
            https: opts.tls.is_some(),
            _dir: dir,
        };
        server.resume();
        let q = format!("{}/query", server.url());
        let (code, body) = http_with(
            &server.agent,
            "POST",
            &q,
            &[(
                "q",
                &format!("CREATE USER {USER} WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES"),
            )],
        );
        assert_eq!(code, 200, "{body}");
        let (code, body) = server.query(&format!("CREATE DATABASE {DB}"));
        assert_eq!(code, 200, "{body}");
        Some(server)
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); its data stays for `resume`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on the same port and data, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "influxd already running");
        let child = Command::new("influxd")
            .arg("-config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start influxd");
        self.child = Some(child);
        let started = Instant::now();
        while http_with(&self.agent, "GET", &format!("{}/ping", self.url()), &[]).0 != 204 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "influxd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An InfluxQL query as the admin user on database `bt`: status and JSON body.
    pub fn query(&self, q: &str) -> (u16, String) {
        http_with(
            &self.agent,
            "POST",
            &format!("{}/query?db={DB}&u={USER}&p={PASSWORD}", self.url()),
            &[("q", q)],
        )
    }
}
