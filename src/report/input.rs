//! Reading series back: the CSV files of `analyze` (`--series`, `--port-series`, `--hosts`)
//! or an InfluxDB 1.x database over InfluxQL `/query`. Errors name the file and line, or the
//! query; a password is never part of a message.

use std::path::Path;

use super::{parse_rfc3339, Builder};
use crate::classify::{Method, Proto};
use crate::sink::line::{HOSTS, PORTS, SERIES};
use crate::sink::rows::{BYTES, HOSTS_FIELD, HOSTS_LINE_FIELD, METHOD, PACKETS, PROTO, TIME};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: String,
        line: usize,
        msg: String,
    },
    #[error("database: {0}")]
    Database(String),
}

/// Reads a CSV file with a header; calls `row` with a column lookup per data line.
fn read_csv(
    path: &Path,
    want: &[&str],
    mut row: impl FnMut(&[&str]) -> Result<(), String>,
) -> Result<(), InputError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split(',').map(str::trim).collect(),
        None => {
            return Err(InputError::Parse {
                path: name,
                line: 1,
                msg: "empty file (expected a CSV header)".into(),
            })
        }
    };
    let mut idx = Vec::with_capacity(want.len());
    for w in want {
        match header.iter().position(|h| h == w) {
            Some(i) => idx.push(i),
            None => {
                return Err(InputError::Parse {
                    path: name,
                    line: 1,
                    msg: format!("no column `{w}` in the header (is this the right file?)"),
                })
            }
        }
    }
    let mut vals = Vec::with_capacity(want.len());
    for (i, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = l.split(',').collect();
        vals.clear();
        for &j in &idx {
            match cols.get(j) {
                Some(v) => vals.push(v.trim()),
                None => {
                    return Err(InputError::Parse {
                        path: name,
                        line: i + 1,
                        msg: format!("{} columns, expected {}", cols.len(), header.len()),
                    })
                }
            }
        }
        row(&vals).map_err(|msg| InputError::Parse {
            path: name.clone(),
            line: i + 1,
            msg,
        })?;
    }
    Ok(())
}

fn minute(s: &str) -> Result<i64, String> {
    parse_rfc3339(s)
        .map(|t| t.div_euclid(60))
        .ok_or_else(|| format!("`{s}` is not an RFC 3339 time"))
}

fn count(s: &str, what: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{what} `{s}` is not a whole number"))
}

fn proto(s: &str) -> Result<Proto, String> {
    Proto::parse(s).ok_or_else(|| format!("unknown proto `{s}`"))
}

fn method(s: &str) -> Result<Method, String> {
    Method::ALL
        .into_iter()
        .find(|m| m.name() == s)
        .ok_or_else(|| format!("unknown method `{s}`"))
}

/// `analyze --series` CSV.
pub fn read_series(path: &Path, b: &mut Builder) -> Result<(), InputError> {
    read_csv(path, &[TIME, PROTO, METHOD, PACKETS, BYTES], |v| {
        b.add_series(
            minute(v[0])?,
            proto(v[1])?,
            method(v[2])?,
            count(v[3], PACKETS)?,
            count(v[4], BYTES)?,
        );
        Ok(())
    })
}

/// `analyze --port-series` CSV.
pub fn read_ports(path: &Path, b: &mut Builder) -> Result<(), InputError> {
    read_csv(path, &[TIME, BYTES], |v| {
        b.add_port(minute(v[0])?, count(v[1], BYTES)?);
        Ok(())
    })
}

/// `analyze --hosts` CSV.
pub fn read_hosts(path: &Path, b: &mut Builder) -> Result<(), InputError> {
    read_csv(path, &[TIME, HOSTS_FIELD], |v| {
        b.set_hosts(minute(v[0])?, count(v[1], HOSTS_FIELD)?);
        Ok(())
    })
}

/// An InfluxDB 1.x database to read from.
#[derive(Debug, Clone)]
pub struct Influx {
    pub url: String,
    pub db: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub probe: String,
    /// RFC 3339 bounds: `from` included, `to` excluded.
    pub from: String,
    pub to: String,
    /// How long each query may take, reading the reply included: a database that answers
    /// slowly, or trickles its reply, is an error after this.
    pub timeout: std::time::Duration,
}

/// Standard base64 with padding (RFC 4648), for the basic authentication header.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= c.len() {
                o.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// Quotes an InfluxQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Influx {
    fn query(&self, q: &str) -> Result<serde_json::Value, InputError> {
        let url = format!("{}/query", self.url.trim_end_matches('/'));
        let form: [(&str, &str); 3] = [("db", &self.db), ("q", q), ("epoch", "s")];
        // ureq also caps a reply read as text at 10 MB: a huge reply is an error, not memory.
        let mut req = ureq::post(&url).timeout(self.timeout);
        if let Some(u) = &self.user {
            // HTTP basic authentication: the password stays out of the URL, so no error
            // message can show it.
            let cred = format!("{u}:{}", self.password.as_deref().unwrap_or_default());
            req = req.set(
                "Authorization",
                &format!("Basic {}", base64(cred.as_bytes())),
            );
        }
        let resp = req.send_form(&form);
        let body = match resp {
            Ok(r) => r
                .into_string()
                .map_err(|e| InputError::Database(format!("{url}: reading the reply: {e}")))?,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let hint = if code == 401 {
                    " (bad credentials)"
                } else {
                    ""
                };
                return Err(InputError::Database(format!(
                    "{url}: HTTP {code}{hint}: {}",
                    body.trim()
                )));
            }
            Err(e) => {
                return Err(InputError::Database(format!(
                    "{url}: {}",
                    match e {
                        ureq::Error::Transport(t) => t.to_string(),
                        other => other.to_string(),
                    }
                )))
            }
        };
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| InputError::Database(format!("{url}: reply is not JSON: {e}")))?;
        if let Some(err) = json["results"][0]["error"]
            .as_str()
            .or(json["error"].as_str())
        {
            return Err(InputError::Database(format!("query `{q}`: {err}")));
        }
        Ok(json)
    }

    fn bounds(&self) -> Result<String, InputError> {
        for t in [&self.from, &self.to] {
            if parse_rfc3339(t).is_none() {
                return Err(InputError::Database(format!(
                    "`{t}` is not an RFC 3339 time (e.g. 2024-05-31T10:00:00Z)"
                )));
            }
        }
        Ok(format!(
            "\"probe\" = {} AND time >= {} AND time < {}",
            quote(&self.probe),
            quote(&self.from),
            quote(&self.to)
        ))
    }

    /// Reads the series, the port view and the host counts of one probe.
    pub fn read(&self, b: &mut Builder) -> Result<(), InputError> {
        let w = self.bounds()?;
        let q = format!(
            "SELECT \"{PACKETS}\", \"{BYTES}\" FROM \"{SERIES}\" WHERE {w} GROUP BY \"{PROTO}\", \"{METHOD}\""
        );
        let json = self.query(&q)?;
        read_reply(&json, &q, 0, b)?;
        let q = format!("SELECT \"{BYTES}\" FROM \"{PORTS}\" WHERE {w}");
        let json = self.query(&q)?;
        read_reply(&json, &q, 1, b)?;
        let q = format!("SELECT \"{HOSTS_LINE_FIELD}\" FROM \"{HOSTS}\" WHERE {w}");
        let json = self.query(&q)?;
        read_reply(&json, &q, 2, b)?;
        Ok(())
    }
}

/// Reads the reply to query `q` into `b`: `kind` 0 is the series (points grouped by proto and
/// method: time, packets, bytes), 1 the port view (time, bytes), 2 the host counts.
pub fn read_reply(
    json: &serde_json::Value,
    q: &str,
    kind: u8,
    b: &mut Builder,
) -> Result<(), InputError> {
    match kind {
        0 => for_each_point(json, q, |tags, t, v| {
            let p = tags[PROTO].as_str().unwrap_or_default();
            let m = tags[METHOD].as_str().unwrap_or_default();
            b.add_series(t, proto(p)?, method(m)?, int(v, 1)?, int(v, 2)?);
            Ok(())
        }),
        1 => for_each_point(json, q, |_, t, v| {
            b.add_port(t, int(v, 1)?);
            Ok(())
        }),
        _ => for_each_point(json, q, |_, t, v| {
            b.set_hosts(t, int(v, 1)?);
            Ok(())
        }),
    }
}

fn int(v: &[serde_json::Value], i: usize) -> Result<u64, String> {
    match v.get(i) {
        Some(serde_json::Value::Null) | None => Ok(0),
        Some(x) => x
            .as_u64()
            .ok_or_else(|| format!("value `{x}` is not a whole number")),
    }
}

/// Calls `f(tags, minute, row)` for every point of a query's reply.
fn for_each_point(
    json: &serde_json::Value,
    q: &str,
    mut f: impl FnMut(&serde_json::Value, i64, &[serde_json::Value]) -> Result<(), String>,
) -> Result<(), InputError> {
    let Some(series) = json["results"][0]["series"].as_array() else {
        return Ok(()); // no points in the range
    };
    for s in series {
        let tags = &s["tags"];
        for v in s["values"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let row = v.as_array().map(Vec::as_slice).unwrap_or_default();
            let t = row
                .first()
                .and_then(serde_json::Value::as_i64)
                .ok_or_else(|| {
                    InputError::Database(format!("query `{q}`: a point without time"))
                })?;
            f(tags, t.div_euclid(60), row)
                .map_err(|e| InputError::Database(format!("query `{q}`: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "time,class,proto,method,direction,packets,bytes\n2024-05-31T10:00:00Z,bittorrent,dht,signature,unknown,1,100\n2024-05-31T10:01:00Z,bittorrent,warez,signature,unknown,1,100\n",
        )
        .expect("write");
        let mut b = Builder::default();
        let e = read_series(&p, &mut b).expect_err("bad proto");
        assert_eq!(
            e.to_string(),
            format!("{}:3: unknown proto `warez`", p.display())
        );
        std::fs::write(&p, "time,bittorrent_hosts\n").expect("write");
        let e = read_series(&p, &mut Builder::default()).expect_err("wrong file");
        assert!(e.to_string().contains(":1: no column `proto`"), "{e}");
        assert_eq!(quote("a'b"), "'a\\'b'");
        assert_eq!(base64(b"admin:adminpw"), "YWRtaW46YWRtaW5wdw==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
