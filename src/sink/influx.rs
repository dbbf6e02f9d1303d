//! Writing line protocol to a time-series database over HTTP: InfluxDB 1.x `/write`
//! (database, retention policy, user and password) and the v2 write API `/api/v2/write`
//! (org, bucket, token — also served by InfluxDB 3, InfluxDB 1.8+ and VictoriaMetrics).
//!
//! Writes are idempotent (same series, same minute timestamp: the point is overwritten), so a
//! retry never counts twice. Failures are told apart: those that can pass (refused connection,
//! timeout, 5xx, 429) and those retrying cannot fix (bad credentials, unknown database or
//! bucket, rejected data). Secrets are never printed.

use std::cell::Cell;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Where and how to write.
#[derive(Clone)]
pub enum Target {
    V1 {
        url: String,
        db: String,
        rp: Option<String>,
        user: Option<String>,
        password: Option<String>,
    },
    V2 {
        url: String,
        org: String,
        bucket: String,
        token: Option<String>,
    },
}

impl fmt::Debug for Target {
    // Never shows a password or token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::V1 { url, db, .. } => write!(f, "InfluxDB 1.x {url} database {db}"),
            Target::V2 {
                url, org, bucket, ..
            } => write!(f, "v2 write API {url} org {org} bucket {bucket}"),
        }
    }
}

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// May pass: the database is down, slow or overloaded (refused connection, timeout, DNS,
    /// HTTP 5xx or 429).
    Transient(String),
    /// Retrying cannot fix it until the operator does: bad credentials (401/403), unknown
    /// database or bucket (404), an untrusted certificate, a bad URL or CA file.
    Permanent(String),
    /// The server refused this data (HTTP 400 and other 4xx): resending the same lines cannot
    /// help, other lines may pass.
    Rejected(String),
}

impl WriteError {
    pub fn is_transient(&self) -> bool {
        matches!(self, WriteError::Transient(_))
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Transient(m) => write!(f, "{m} (temporary: retry later)"),
            WriteError::Permanent(m) => write!(f, "{m}"),
            WriteError::Rejected(m) => write!(f, "{m} (data rejected)"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Lines per request.
pub const BATCH_LINES: usize = 5000;

/// How requests are made.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Whole request, connection included.
    pub timeout: Duration,
    /// `Content-Encoding: gzip` request bodies (InfluxDB 1.x/2.x and VictoriaMetrics accept
    /// them); line protocol shrinks about tenfold.
    pub gzip: bool,
    /// PEM file of the certificate authorities to trust for https:// instead of the public
    /// web roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            gzip: true,
            ca_file: None,
        }
    }
}

/// A connection to one database, reused across writes.
pub struct Client {
    agent: ureq::Agent,
    url: String,
    query: Vec<(&'static str, String)>,
    auth: Option<String>,
    what: String,
    opts: HttpOptions,
    /// The server's `Retry-After` on the last 429 or 503, until taken.
    retry_after: Cell<Option<Duration>>,
}

/// The longest `Retry-After` honoured: a server asking for more is retried after this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// A `Retry-After` value: delay seconds or an HTTP date (RFC 9110 §10.2.3), from `now`.
pub fn parse_retry_after(v: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = v.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(v.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(RETRY_AFTER_MAX))
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

/// Standard base64 (RFC 4648) for the Basic authorization header.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tls_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, WriteError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let bad = |e: String| WriteError::Permanent(format!("--influx-ca {}: {e}", ca_file.display()));
    let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The TLS error under a transport error, if any (rustls wraps it in an io::Error).
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return Some(t);
            }
        }
        cur = err.source();
    }
    None
}

/// Classifies a transport failure. The URL is left out of the message: for 1.x it used to
/// carry the password, and the target already names the server.
fn transport_error(what: &str, t: &ureq::Transport) -> WriteError {
    use ureq::ErrorKind as K;
    let mut msg = format!("{what}: {}", t.kind());
    if let Some(m) = t.message() {
        msg.push_str(": ");
        msg.push_str(m);
    }
    let tls = std::error::Error::source(t).and_then(tls_error);
    if let Some(e) = tls {
        msg.push_str(&format!(": {e}"));
    } else if let Some(src) = std::error::Error::source(t) {
        msg.push_str(&format!(": {src}"));
    }
    match (t.kind(), tls) {
        (_, Some(rustls::Error::InvalidCertificate(_))) => WriteError::Permanent(format!(
            "{msg} (the server's certificate is not trusted: give its CA with --influx-ca)"
        )),
        (
            _,
            Some(
                rustls::Error::NoCertificatesPresented
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::UnsupportedNameType,
            ),
        ) => WriteError::Permanent(format!("{msg} (TLS handshake impossible)")),
        (K::InvalidUrl | K::UnknownScheme | K::InsecureRequestHttpsOnly, _) => {
            WriteError::Permanent(msg)
        }
        _ => WriteError::Transient(msg),
    }
}

impl Client {
    pub fn new(target: &Target, opts: &HttpOptions) -> Result<Client, WriteError> {
        let what = format!("{target:?}");
        let (base, url, query, auth) = match target {
            Target::V1 {
                url,
                db,
                rp,
                user,
                password,
            } => {
                let mut q = vec![("db", db.clone()), ("precision", "ns".to_string())];
                if let Some(rp) = rp {
                    q.push(("rp", rp.clone()));
                }
                // Basic authentication rather than u=/p= in the query string, so the password
                // is in no URL (server access logs, error messages).
                let auth = user.as_ref().map(|u| {
                    let pair = format!("{u}:{}", password.as_deref().unwrap_or_default());
                    format!("Basic {}", base64(pair.as_bytes()))
                });
                let w = format!("{}/write", url.trim_end_matches('/'));
                (url, w, q, auth)
            }
            Target::V2 {
                url,
                org,
                bucket,
                token,
            } => (
                url,
                format!("{}/api/v2/write", url.trim_end_matches('/')),
                vec![
                    ("org", org.clone()),
                    ("bucket", bucket.clone()),
                    ("precision", "ns".to_string()),
                ],
                token.as_ref().map(|t| format!("Token {t}")),
            ),
        };
        let https = base.starts_with("https://");
        if !https && !base.starts_with("http://") {
            return Err(WriteError::Permanent(format!(
                "{what}: the URL must start with http:// or https://"
            )));
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(opts.timeout.min(Duration::from_secs(10)))
            .timeout(opts.timeout);
        if let Some(ca) = &opts.ca_file {
            builder = builder.tls_config(tls_config(ca)?);
        }
        Ok(Client {
            agent: builder.build(),
            url,
            query,
            auth,
            what,
            opts: opts.clone(),
            retry_after: Cell::new(None),
        })
    }

    /// How long the server asked to wait (`Retry-After` on a 429 or 503) after the last
    /// failed write, if it did.
    pub fn take_retry_after(&self) -> Option<Duration> {
        self.retry_after.take()
    }

    /// Sends line protocol in requests of at most [`BATCH_LINES`] lines; stops at the first
    /// failure. Returns the lines sent.
    pub fn write(&self, text: &str) -> Result<usize, WriteError> {
        self.write_within(text, self.opts.timeout)
    }

    /// As [`Client::write`], each request given at most `timeout` (for draining before a
    /// deadline).
    pub fn write_within(&self, text: &str, timeout: Duration) -> Result<usize, WriteError> {
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let mut sent = 0;
        for batch in lines.chunks(BATCH_LINES) {
            let body = batch.join("\n") + "\n";
            self.post(body.as_bytes(), timeout.min(self.opts.timeout))?;
            sent += batch.len();
        }
        Ok(sent)
    }

    fn post(&self, body: &[u8], timeout: Duration) -> Result<(), WriteError> {
        let mut req = self
            .agent
            .post(&self.url)
            .timeout(timeout)
            .set("Content-Type", "text/plain; charset=utf-8");
        for (k, v) in &self.query {
            req = req.query(k, v);
        }
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        let result = if self.opts.gzip {
            let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
            let gz = gz
                .write_all(body)
                .and_then(|()| gz.finish())
                .map_err(|e| WriteError::Transient(format!("{}: gzip: {e}", self.what)))?;
            req.set("Content-Encoding", "gzip").send_bytes(&gz)
        } else {
            req.send_bytes(body)
        };
        match result {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, resp)) => {
                if matches!(code, 429 | 503) {
                    self.retry_after.set(
                        resp.header("Retry-After")
                            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now())),
                    );
                }
                // The start of the reply says why; a huge or endless one is not read further.
                let mut head = Vec::new();
                let _ = resp.into_reader().take(4096).read_to_end(&mut head);
                let detail: String = String::from_utf8_lossy(&head).chars().take(300).collect();
                let what = format!("{}: HTTP {code}: {}", self.what, detail.trim());
                Err(match code {
                    429 | 500..=599 => WriteError::Transient(what),
                    401 | 403 => WriteError::Permanent(format!("{what} (bad credentials)")),
                    404 => WriteError::Permanent(format!("{what} (unknown database or bucket)")),
                    400..=499 => WriteError::Rejected(what),
                    _ => WriteError::Permanent(what),
                })
            }
            Err(ureq::Error::Transport(t)) => Err(transport_error(&self.what, &t)),
        }
    }
}

/// Sends line protocol once with the default options (gzip, 30 s timeout, public roots);
/// stops at the first failure.
pub fn write(target: &Target, text: &str) -> Result<usize, WriteError> {
    Client::new(target, &HttpOptions::default())?.write(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_shown() {
        let t = Target::V1 {
            url: "http://127.0.0.1:8086".into(),
            db: "bt".into(),
            rp: None,
            user: Some("probe".into()),
            password: Some("s3cret".into()),
        };
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = Target::V2 {
            url: "http://127.0.0.1:8428".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: Some("tok3n".into()),
        };
        assert!(!format!("{t:?}").contains("tok3n"));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        for (v, want) in [
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("99999999999999999999", Some(3600)),
            // 1994-11-06T08:49:37Z is `now`; 10 s later in each of the three formats.
            ("Sun, 06 Nov 1994 08:49:47 GMT", Some(10)),
            ("Sunday, 06-Nov-94 08:49:47 GMT", Some(10)),
            ("Sun Nov  6 08:49:47 1994", Some(10)),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(0)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                want.map(Duration::from_secs),
                "{v:?}"
            );
        }
    }

    #[test]
    fn base64_per_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("admin:adminpw", "YWRtaW46YWRtaW5wdw=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o, "{i}");
        }
    }

    #[test]
    fn unreachable_database_is_transient_and_names_no_secret() {
        // Port 9 on loopback: nothing listens (discard is not run here).
        let t = Target::V1 {
            url: "http://127.0.0.1:9".into(),
            db: "bt".into(),
            rp: None,
            user: Some("probe".into()),
            password: Some("s3cret".into()),
        };
        match write(&t, "m f=1i 0\n") {
            Err(WriteError::Transient(m)) => {
                assert!(m.contains("127.0.0.1:9"), "{m}");
                assert!(!m.contains("s3cret"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A one-request HTTP server on loopback: answers `status` and hands back the request
    /// head and body.
    fn one_request(status: u16) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
        use std::io::{BufRead, BufReader, Read};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut r = BufReader::new(stream);
            let (mut head, mut len) = (String::new(), 0usize);
            loop {
                let mut l = String::new();
                r.read_line(&mut l).expect("read");
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().expect("length");
                }
                if l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).expect("body");
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno");
            r.get_mut().write_all(reply.as_bytes()).expect("reply");
            (head, body)
        });
        (url, server)
    }

    fn v1(url: String) -> Target {
        Target::V1 {
            url,
            db: "bt".into(),
            rp: Some("week".into()),
            user: Some("probe".into()),
            password: Some("s3cret".into()),
        }
    }

    #[test]
    fn gzip_body_and_basic_auth_on_the_wire() {
        use std::io::Read;
        let text = "bittap,probe=a packets=1i,bytes=60i 60000000000\nbittap,probe=b packets=2i,bytes=120i 60000000000\n";
        for gzip in [true, false] {
            let (url, server) = one_request(204);
            let opts = HttpOptions {
                gzip,
                ..HttpOptions::default()
            };
            let sent = Client::new(&v1(url), &opts).and_then(|c| c.write(text));
            assert_eq!(sent, Ok(2));
            let (head, body) = server.join().expect("server");
            let lower = head.to_ascii_lowercase();
            assert!(
                head.starts_with("POST /write?db=bt&precision=ns&rp=week HTTP/1.1\r\n"),
                "{head}"
            );
            assert!(!head.contains("s3cret"), "{head}");
            // "probe:s3cret" in base64.
            assert!(
                head.contains("Authorization: Basic cHJvYmU6czNjcmV0\r\n"),
                "{head}"
            );
            let plain = if gzip {
                assert!(lower.contains("content-encoding: gzip\r\n"), "{head}");
                let mut out = String::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut out)
                    .expect("gunzip");
                out
            } else {
                assert!(!lower.contains("content-encoding"), "{head}");
                String::from_utf8(body).expect("utf-8")
            };
            assert_eq!(plain, text);
        }
    }

    #[test]
    fn statuses_are_classified() {
        for (status, kind) in [
            (400, "rejected"),
            (413, "rejected"),
            (401, "permanent"),
            (403, "permanent"),
            (404, "permanent"),
            (429, "transient"),
            (500, "transient"),
            (503, "transient"),
        ] {
            let (url, server) = one_request(status);
            let got =
                Client::new(&v1(url), &HttpOptions::default()).and_then(|c| c.write("m f=1i 0\n"));
            server.join().expect("server");
            let (k, m) = match got {
                Err(WriteError::Rejected(m)) => ("rejected", m),
                Err(WriteError::Permanent(m)) => ("permanent", m),
                Err(WriteError::Transient(m)) => ("transient", m),
                Ok(n) => panic!("{status}: sent {n}"),
            };
            assert_eq!(k, kind, "{status}: {m}");
            assert!(m.contains(&format!("HTTP {status}")), "{m}");
        }
    }

    #[test]
    fn bad_urls_and_ca_files_are_permanent_and_named() {
        let t = v1("ftp://127.0.0.1:21".into());
        assert!(matches!(
            Client::new(&t, &HttpOptions::default()),
            Err(WriteError::Permanent(_))
        ));
        let opts = HttpOptions {
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..HttpOptions::default()
        };
        match Client::new(&v1("https://127.0.0.1:1".into()), &opts) {
            Err(WriteError::Permanent(m)) => assert!(m.contains("/nonexistent/ca.pem"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
