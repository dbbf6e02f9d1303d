//! Writing line protocol to a time-series database over HTTP: InfluxDB 1.x `/write`
//! (database, retention policy, user and password) and the v2 write API `/api/v2/write`
//! (org, bucket, token — also served by InfluxDB 3, InfluxDB 1.8+ and VictoriaMetrics).
//!
//! Writes are idempotent (same series, same minute timestamp: the point is overwritten), so a
//! retry never counts twice. Failures are told apart: those that can pass (refused connection,
//! timeout, 5xx, 429) and those retrying cannot fix (bad credentials, unknown database or
//! bucket, rejected data). Secrets are never printed.

use std::fmt;
use std::time::Duration;

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
    /// May pass: the database is down, slow or overloaded.
    Transient(String),
    /// Retrying cannot fix it: credentials, unknown database, rejected data.
    Permanent(String),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Transient(m) => write!(f, "{m} (temporary: retry later)"),
            WriteError::Permanent(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Lines per request.
const BATCH_LINES: usize = 5000;

fn endpoint(target: &Target) -> (String, Vec<(&'static str, String)>, Option<String>) {
    match target {
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
            if let (Some(u), Some(p)) = (user, password) {
                q.push(("u", u.clone()));
                q.push(("p", p.clone()));
            }
            (format!("{}/write", url.trim_end_matches('/')), q, None)
        }
        Target::V2 {
            url,
            org,
            bucket,
            token,
        } => (
            format!("{}/api/v2/write", url.trim_end_matches('/')),
            vec![
                ("org", org.clone()),
                ("bucket", bucket.clone()),
                ("precision", "ns".to_string()),
            ],
            token.as_ref().map(|t| format!("Token {t}")),
        ),
    }
}

/// Sends line protocol in batches; stops at the first failure.
pub fn write(target: &Target, text: &str) -> Result<usize, WriteError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build();
    let (url, query, auth) = endpoint(target);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let mut sent = 0;
    for batch in lines.chunks(BATCH_LINES) {
        let body = batch.join("\n") + "\n";
        let mut req = agent
            .post(&url)
            .set("Content-Type", "text/plain; charset=utf-8");
        for (k, v) in &query {
            req = req.query(k, v);
        }
        if let Some(a) = &auth {
            req = req.set("Authorization", a);
        }
        match req.send_string(&body) {
            Ok(_) => sent += batch.len(),
            Err(ureq::Error::Status(code, resp)) => {
                let detail: String = resp
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                let what = format!("{target:?}: HTTP {code}: {}", detail.trim());
                return Err(match code {
                    429 | 500..=599 => WriteError::Transient(what),
                    401 | 403 => WriteError::Permanent(format!("{what} (bad credentials)")),
                    404 => WriteError::Permanent(format!("{what} (unknown database or bucket)")),
                    _ => WriteError::Permanent(what),
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(WriteError::Transient(format!("{target:?}: {t}")));
            }
        }
    }
    Ok(sent)
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
    fn unreachable_database_is_transient() {
        // Port 9 on loopback: nothing listens (discard is not run here).
        let t = Target::V1 {
            url: "http://127.0.0.1:9".into(),
            db: "bt".into(),
            rp: None,
            user: None,
            password: None,
        };
        match write(&t, "m f=1i 0\n") {
            Err(WriteError::Transient(m)) => assert!(m.contains("127.0.0.1:9"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
