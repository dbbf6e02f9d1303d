//! The database writer's on-disk spool: every batch of line protocol is made durable in a
//! directory before it is sent, and a sender thread of its own writes the batches to the
//! database in order, so the capture path never waits on the network and no minute is lost
//! to an outage.
//!
//! Layout of the directory:
//! - `SEQ-MILLIS.lp`: a pending batch; `SEQ` is a 20-digit sequence number (so names sort in
//!   sending order), `MILLIS` the Unix time it was spooled (for the age metric, across
//!   restarts). Written as `….lp.tmp`, fsynced, renamed, and the directory fsynced.
//! - `….tmp`: a batch whose write was cut (a crash); removed at start, as its `submit` never
//!   returned.
//! - `rejected/`: batches the database refused as data (HTTP 400), kept for inspection.
//! - `lock`: held while a process uses the spool, so two never send the same batches.
//!
//! Writes are idempotent (same series, same minute timestamp), so a batch sent again after a
//! timeout whose answer was lost, or after a crash between send and removal, overwrites the
//! same points rather than counting twice.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::influx::{Client, HttpOptions, Target, WriteError, BATCH_LINES};

/// How the spool is bounded and how it retries.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Most bytes of pending batches; beyond it the oldest batch is dropped (and counted).
    /// The newest batch is always kept.
    pub max_bytes: u64,
    /// First wait after a failure that can pass; doubled after each further failure, each wait
    /// drawn between half of it and all of it (jitter). A `Retry-After` on a 429 or 503 is
    /// waited instead.
    pub backoff_min: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
    /// Timeout, gzip and CA of the requests.
    pub http: HttpOptions,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: 256 << 20,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            http: HttpOptions::default(),
        }
    }
}

/// What the spool holds and has done (health metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub pending_batches: u64,
    pub pending_bytes: u64,
    /// Age of the oldest pending batch, in seconds (0 when none).
    pub oldest_age_secs: u64,
    pub sent_batches: u64,
    pub sent_lines: u64,
    /// Oldest batches dropped because the spool was full.
    pub dropped_batches: u64,
    pub dropped_bytes: u64,
    /// Batches the database refused as data, moved to `rejected/`.
    pub rejected_batches: u64,
    /// Failed attempts that will be retried.
    pub retries: u64,
    /// The last failure that can pass, until a write succeeds again.
    pub last_error: Option<String>,
    /// A failure retrying cannot fix (credentials, unknown database, untrusted certificate):
    /// sending stopped, the batches stay on disk.
    pub permanent_error: Option<String>,
    /// How long writes have been failing (since the first failure after the last success).
    pub failing_for: Option<Duration>,
}

/// Name of a pending batch.
fn batch_name(seq: u64, millis: u64) -> String {
    format!("{seq:020}-{millis:013}.lp")
}

/// Sequence number and spool time of a pending batch's file name.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".lp")?;
    let (seq, millis) = stem.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if seq.len() != 20 || !digits(seq) || !digits(millis) {
        return None;
    }
    let seq: u64 = seq.parse().ok()?;
    // bittap numbers batches from 0 up, one at a time: a number this large is not one of its
    // batches (and would leave no next number to give).
    if seq >= MAX_SEQ {
        return None;
    }
    Some((seq, millis.parse().ok()?))
}

/// Sequence numbers of batches stay below this (2^48: a batch a minute for 500 million years).
const MAX_SEQ: u64 = 1 << 48;

/// Sequence number and spool time of a batch file's name (`SEQ-MILLIS.lp`).
pub fn parse_batch_name(name: &str) -> Option<(u64, u64)> {
    parse_name(name)
}

/// The pending batches of a spool directory, in sending order, as a restarted spooler finds
/// them (half-written `.tmp` files are removed).
pub fn recover_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    recover(dir).map(|(b, _)| b.into_iter().map(|b| b.path).collect())
}

/// A batch larger than this is not one bittap wrote (a minute's lines are a few kB; `send`
/// splits a file into batches of [`BATCH_LINES`] lines): it is set aside unread, so a
/// stray file cannot make the sender read without bound.
pub const MAX_BATCH_BYTES: u64 = 64 << 20;

/// A batch's text as the sender reads it; `None` if it is gone. Not UTF-8 or too large:
/// rejected (set aside in `rejected/`, every other batch is still sent); unreadable: a
/// failure that can pass.
pub fn read_batch(path: &Path) -> Result<Option<String>, WriteError> {
    let transient = |e: io::Error| WriteError::Transient(format!("{}: {e}", path.display()));
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(transient(e)),
    };
    // A directory or device under a batch's name would fail every retry: set it aside.
    if !meta.is_file() {
        return Err(WriteError::Rejected(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    let len = meta.len();
    if len > MAX_BATCH_BYTES {
        return Err(WriteError::Rejected(format!(
            "{}: {len} bytes, more than a batch can be ({MAX_BATCH_BYTES})",
            path.display()
        )));
    }
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| WriteError::Rejected(format!("{}: not UTF-8 text", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(transient(e)),
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| named(dir, e))
}

#[derive(Debug, Clone)]
struct Batch {
    seq: u64,
    path: PathBuf,
    bytes: u64,
    millis: u64,
}

/// Pending batches found in a spool directory, in sending order, after removing half-written
/// ones; and the next free sequence number (also past the rejected ones, so names never
/// collide there).
fn recover(dir: &Path) -> io::Result<(Vec<Batch>, u64)> {
    let mut batches = Vec::new();
    let mut next = 0;
    for entry in fs::read_dir(dir).map_err(|e| named(dir, e))? {
        let entry = entry.map_err(|e| named(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            fs::remove_file(&path).map_err(|e| named(&path, e))?;
            continue;
        }
        let Some((seq, millis)) = parse_name(&name) else {
            continue;
        };
        let bytes = entry.metadata().map_err(|e| named(&path, e))?.len();
        next = next.max(seq.saturating_add(1));
        batches.push(Batch {
            seq,
            path,
            bytes,
            millis,
        });
    }
    if let Ok(rejected) = fs::read_dir(dir.join("rejected")) {
        for entry in rejected.flatten() {
            if let Some((seq, _)) = parse_name(&entry.file_name().to_string_lossy()) {
                next = next.max(seq.saturating_add(1));
            }
        }
    }
    batches.sort_by_key(|b| b.seq);
    Ok((batches, next))
}

struct State {
    queue: VecDeque<Batch>,
    bytes: u64,
    /// The batch being sent: never dropped under the sender's feet.
    inflight: Option<u64>,
    /// Set by `close`: drain until then, then stop.
    deadline: Option<Instant>,
    /// A permanent failure: nothing more is sent by this process.
    halted: bool,
    /// "Spool full" was said; said again after the spool has emptied.
    full_reported: bool,
    /// The first failure since the last successful write.
    failing_since: Option<Instant>,
    stats: SpoolStats,
}

impl State {
    /// Drops the oldest batches until the bound holds, keeping the newest and the one in
    /// flight.
    fn enforce_bound(&mut self, max_bytes: u64, dir: &Path) {
        while self.bytes > max_bytes && self.queue.len() > 1 {
            let i = usize::from(
                self.inflight.is_some() && self.inflight == self.queue.front().map(|b| b.seq),
            );
            if i + 1 >= self.queue.len() {
                break;
            }
            let Some(b) = self.queue.remove(i) else { break };
            self.bytes -= b.bytes;
            // Already gone is fine: the point is that it is no longer counted as pending.
            let _ = fs::remove_file(&b.path);
            self.stats.dropped_batches += 1;
            self.stats.dropped_bytes += b.bytes;
            if !self.full_reported {
                self.full_reported = true;
                eprintln!(
                    "bittap: spool {} is full ({max_bytes} bytes): dropping the oldest batches; they are lost (counted in the spool statistics)",
                    dir.display()
                );
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A spool directory and the thread that sends its batches.
pub struct Spooler {
    shared: Arc<Shared>,
    dir: PathBuf,
    max_bytes: u64,
    /// The next sequence number; held for the whole of a submit, so batches enter the queue
    /// in the order of their names.
    next_seq: Mutex<u64>,
    thread: Option<JoinHandle<()>>,
    _lock: File,
}

impl std::fmt::Debug for Spooler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spool {}", self.dir.display())
    }
}

impl Spooler {
    /// Opens (creating it if needed) the spool directory, takes its lock, and starts the
    /// sender, which first replays what an earlier run left, in order. A bad URL or CA file,
    /// or a spool in use by another process, is an error here.
    pub fn start(target: Target, dir: PathBuf, cfg: SpoolConfig) -> io::Result<Spooler> {
        let client = Client::new(&target, &cfg.http)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        fs::create_dir_all(&dir).map_err(|e| named(&dir, e))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| named(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "spool {} is in use by another bittap process",
                        dir.display()
                    ),
                ))
            }
            Err(fs::TryLockError::Error(e)) => return Err(named(&lock_path, e)),
        }
        let (batches, next) = recover(&dir)?;
        let bytes = batches.iter().map(|b| b.bytes).sum();
        let mut state = State {
            queue: batches.into(),
            bytes,
            inflight: None,
            deadline: None,
            halted: false,
            full_reported: false,
            failing_since: None,
            stats: SpoolStats::default(),
        };
        state.enforce_bound(cfg.max_bytes, &dir);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
        });
        let sender = Sender {
            shared: shared.clone(),
            client,
            dir: dir.clone(),
            cfg: cfg.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("bittap-spool".into())
            .spawn(move || sender.run())?;
        Ok(Spooler {
            shared,
            dir,
            max_bytes: cfg.max_bytes,
            next_seq: Mutex::new(next),
            thread: Some(thread),
            _lock: lock,
        })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes a batch of line protocol durable on disk and queues it for sending; returns
    /// without waiting on the network. An empty batch is ignored.
    pub fn submit(&self, lines: String) -> io::Result<()> {
        if lines.trim().is_empty() {
            return Ok(());
        }
        let mut next = self.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
        let (seq, millis) = (*next, now_millis());
        *next += 1;
        let name = batch_name(seq, millis);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(lines.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(named(&tmp, e));
        }
        sync_dir(&self.dir)?;
        let mut st = self.shared.lock();
        st.queue.push_back(Batch {
            seq,
            path,
            bytes: lines.len() as u64,
            millis,
        });
        st.bytes += lines.len() as u64;
        st.enforce_bound(self.max_bytes, &self.dir);
        drop(st);
        self.shared.wake.notify_all();
        Ok(())
    }

    /// Submits a text of any size as batches of at most [`BATCH_LINES`] lines, so a full
    /// spool drops old data in small pieces.
    pub fn submit_text(&self, text: &str) -> io::Result<()> {
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        for chunk in lines.chunks(BATCH_LINES) {
            self.submit(chunk.join("\n") + "\n")?;
        }
        Ok(())
    }

    pub fn stats(&self) -> SpoolStats {
        stats_of(&self.shared.lock())
    }

    /// A handle that reads the statistics from another thread (metrics, health).
    pub fn watch(&self) -> SpoolWatch {
        SpoolWatch(self.shared.clone())
    }

    /// Tries to send what is pending until `deadline` from now (no retry starts after it, and
    /// requests are cut at it), then stops the sender. What is left stays on disk for the
    /// next start.
    pub fn close(mut self, deadline: Duration) -> SpoolStats {
        self.stop(deadline)
    }

    fn stop(&mut self, deadline: Duration) -> SpoolStats {
        {
            let mut st = self.shared.lock();
            st.deadline = Some(Instant::now() + deadline);
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.stats()
    }
}

impl Drop for Spooler {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Duration::ZERO);
        }
    }
}

/// Reads a spool's statistics while another thread owns the [`Spooler`].
#[derive(Clone)]
pub struct SpoolWatch(Arc<Shared>);

impl SpoolWatch {
    pub fn stats(&self) -> SpoolStats {
        stats_of(&self.0.lock())
    }
}

fn stats_of(st: &State) -> SpoolStats {
    let mut s = st.stats.clone();
    s.pending_batches = st.queue.len() as u64;
    s.pending_bytes = st.bytes;
    s.oldest_age_secs = st
        .queue
        .front()
        .map(|b| now_millis().saturating_sub(b.millis) / 1000)
        .unwrap_or(0);
    s.failing_for = st.failing_since.map(|t| t.elapsed());
    s
}

mod sender;
use sender::Sender;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_sending_order() {
        let names: Vec<String> = [(9, 5), (10, 1), (1_000_000, 3), (2, 7)]
            .iter()
            .map(|&(s, m)| batch_name(s, m))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        let seqs: Vec<u64> = sorted
            .iter()
            .map(|n| parse_name(n).expect("parses").0)
            .collect();
        assert_eq!(seqs, [2, 9, 10, 1_000_000]);
        assert_eq!(
            parse_name("00000000000000000042-1717149600000.lp"),
            Some((42, 1_717_149_600_000))
        );
        for bad in [
            "00000000000000000042-1717149600000.lp.tmp",
            "42-1717149600000.lp",
            "0000000000000000004x-1.lp",
            "00000000000000000042-.lp",
            "00000000000000000042.lp",
            "lock",
            "rejected",
            // Found by the spool_batch fuzz target: the largest number left no next one
            // (`seq + 1` overflowed in recovery).
            "18446744073709551615-000.lp",
            "00000281474976710656-1.lp",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn recovery_orders_batches_and_removes_half_written_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for (seq, text) in [(7u64, "c\n"), (3, "a\n"), (5, "b b\n")] {
            fs::write(d.join(batch_name(seq, 1000 + seq)), text).expect("write");
        }
        // A crash in the middle of a submit: the temp file is cut short.
        fs::write(d.join(format!("{}.tmp", batch_name(8, 2000))), "bittap,pro").expect("w");
        fs::write(d.join("lock"), "").expect("w");
        fs::create_dir(d.join("rejected")).expect("mkdir");
        fs::write(d.join("rejected").join(batch_name(11, 1)), "x\n").expect("w");
        // A foreign file under a batch-like name with the largest number: not a batch.
        fs::write(d.join("18446744073709551615-000.lp"), "b0").expect("w");
        let (batches, next) = recover(d).expect("recover");
        let got: Vec<(u64, u64, u64)> =
            batches.iter().map(|b| (b.seq, b.bytes, b.millis)).collect();
        assert_eq!(got, [(3, 2, 1003), (5, 4, 1005), (7, 2, 1007)]);
        assert_eq!(next, 12, "past the rejected batch too");
        assert!(!d.join(format!("{}.tmp", batch_name(8, 2000))).exists());
    }

    #[test]
    fn bound_drops_oldest_but_keeps_newest_and_inflight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let batch = |seq: u64| Batch {
            seq,
            path: dir.path().join(batch_name(seq, 0)),
            bytes: 10,
            millis: 0,
        };
        let mut st = State {
            queue: (0..5).map(batch).collect(),
            bytes: 50,
            inflight: Some(0),
            deadline: None,
            halted: false,
            full_reported: false,
            failing_since: None,
            stats: SpoolStats::default(),
        };
        st.enforce_bound(25, dir.path());
        let left: Vec<u64> = st.queue.iter().map(|b| b.seq).collect();
        assert_eq!(left, [0, 4], "in-flight 0 kept, 1..3 dropped");
        assert_eq!(
            (st.bytes, st.stats.dropped_batches, st.stats.dropped_bytes),
            (20, 3, 30)
        );
        // A single batch larger than the bound is kept.
        st.inflight = None;
        st.enforce_bound(5, dir.path());
        let left: Vec<u64> = st.queue.iter().map(|b| b.seq).collect();
        assert_eq!(left, [4]);
    }

    #[test]
    fn submit_is_durable_and_a_second_process_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Nothing listens on port 9: every write fails and is kept.
        let target = Target::V1 {
            url: "http://127.0.0.1:9".into(),
            db: "bt".into(),
            rp: None,
            user: None,
            password: None,
        };
        let cfg = SpoolConfig {
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            ..SpoolConfig::default()
        };
        let spool = Spooler::start(target.clone(), dir.path().into(), cfg.clone()).expect("start");
        spool.submit("m f=1i 60000000000\n".into()).expect("submit");
        spool.submit(String::new()).expect("empty ignored");
        spool
            .submit("m f=2i 120000000000\n".into())
            .expect("submit");
        let again = Spooler::start(target.clone(), dir.path().into(), cfg.clone());
        assert_eq!(
            again.map(|_| ()).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        let st = spool.close(Duration::from_millis(50));
        assert_eq!(
            (st.pending_batches, st.pending_bytes, st.sent_batches),
            (2, 39, 0)
        );
        assert!(st.retries >= 1, "{st:?}");
        assert!(
            st.last_error
                .as_deref()
                .unwrap_or("")
                .contains("127.0.0.1:9"),
            "{st:?}"
        );
        assert_eq!(st.permanent_error, None);
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".lp"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 2);
        assert_eq!(
            fs::read_to_string(dir.path().join(&names[1])).expect("read"),
            "m f=2i 120000000000\n"
        );
        // The lock went with the first spooler; a new one finds both batches.
        let spool = Spooler::start(target, dir.path().into(), cfg).expect("restart");
        assert_eq!(spool.stats().pending_batches, 2);
        spool.close(Duration::ZERO);
    }
}
