//! The spool's sender thread: batches to the database in order, retried with backoff (or
//! as `Retry-After` says) while failures can pass, set aside when refused as data.

use super::*;

/// The sender thread's side.
pub(super) struct Sender {
    pub(super) shared: Arc<Shared>,
    pub(super) client: Client,
    pub(super) dir: PathBuf,
    pub(super) cfg: SpoolConfig,
}

/// A wait between half of `backoff` and all of it ("equal jitter").
fn jittered(backoff: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let frac = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    backoff / 2 + backoff.mul_f64(frac / 2.0)
}

/// Shortest request time while draining before a deadline.
const MIN_REQUEST: Duration = Duration::from_millis(200);

impl Sender {
    pub(super) fn run(self) {
        let mut backoff = self.cfg.backoff_min;
        let mut retry_at: Option<Instant> = None;
        let mut outage_reported = false;
        let mut closing = false;
        loop {
            // Wait for a batch to send (or the end).
            let (batch, timeout) = {
                let mut st = self.shared.lock();
                loop {
                    let now = Instant::now();
                    if let Some(d) = st.deadline {
                        if !closing {
                            // Closing: one attempt at once, whatever the backoff (the
                            // database may be back), then the usual backoff until the deadline.
                            closing = true;
                            retry_at = None;
                        }
                        if st.queue.is_empty() || st.halted || now >= d || retry_at > Some(d) {
                            return;
                        }
                    }
                    let wait_until = if st.halted || st.queue.is_empty() {
                        st.deadline
                    } else {
                        match retry_at {
                            Some(t) if t > now => Some(st.deadline.map_or(t, |d| d.min(t))),
                            _ => break,
                        }
                    };
                    st = match wait_until {
                        Some(t) => {
                            let dur = t.saturating_duration_since(now);
                            self.shared
                                .wake
                                .wait_timeout(st, dur)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0
                        }
                        None => self
                            .shared
                            .wake
                            .wait(st)
                            .unwrap_or_else(PoisonError::into_inner),
                    };
                }
                let Some(batch) = st.queue.front().cloned() else {
                    continue;
                };
                st.inflight = Some(batch.seq);
                let timeout = match st.deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()).max(MIN_REQUEST),
                    None => self.cfg.http.timeout,
                };
                (batch, timeout)
            };

            let result = match read_batch(&batch.path) {
                Ok(Some(text)) => self.client.write_within(&text, timeout),
                // Removed by someone else: nothing left to send.
                Ok(None) => Ok(0),
                Err(e) => Err(e),
            };

            let mut st = self.shared.lock();
            st.inflight = None;
            match result {
                Ok(lines) => {
                    let _ = fs::remove_file(&batch.path);
                    self.pop(&mut st, &batch);
                    st.stats.sent_batches += 1;
                    st.stats.sent_lines += lines as u64;
                    st.stats.last_error = None;
                    st.failing_since = None;
                    backoff = self.cfg.backoff_min;
                    retry_at = None;
                    if outage_reported {
                        outage_reported = false;
                        eprintln!(
                            "bittap: database writes succeed again; replaying the spool {} ({} batches pending)",
                            self.dir.display(),
                            st.queue.len()
                        );
                    }
                }
                Err(WriteError::Transient(m)) => {
                    st.stats.retries += 1;
                    st.failing_since.get_or_insert_with(Instant::now);
                    if !outage_reported {
                        outage_reported = true;
                        eprintln!(
                            "bittap: database write failed: {m}; a temporary failure: the batches stay in the spool {} and are retried (every {:?} at most)",
                            self.dir.display(),
                            self.cfg.backoff_max
                        );
                    }
                    st.stats.last_error = Some(m);
                    // The server's Retry-After when it gave one (429, 503); otherwise the
                    // backoff with jitter, so probes restarted together do not retry together.
                    let wait = match self.client.take_retry_after() {
                        Some(d) => d,
                        None => {
                            let w = jittered(backoff);
                            backoff = (backoff * 2).min(self.cfg.backoff_max);
                            w
                        }
                    };
                    retry_at = Some(Instant::now() + wait);
                }
                Err(e @ WriteError::Rejected(_)) => {
                    let moved = self.reject(&batch);
                    self.pop(&mut st, &batch);
                    st.stats.rejected_batches += 1;
                    match moved {
                        Ok(to) => eprintln!(
                            "bittap: {e}: batch moved to {} and not retried",
                            to.display()
                        ),
                        Err(me) => eprintln!(
                            "bittap: {e}: batch {} not retried; moving it aside failed: {me}",
                            batch.path.display()
                        ),
                    }
                }
                Err(e @ WriteError::Permanent(_)) => {
                    st.halted = true;
                    st.failing_since.get_or_insert_with(Instant::now);
                    eprintln!(
                        "bittap: database write failed: {e}; not retrying: {} batches stay in the spool {} (fix this, then restart bittap or run `bittap send --spool {}`)",
                        st.queue.len(),
                        self.dir.display(),
                        self.dir.display()
                    );
                    st.stats.permanent_error = Some(e.to_string());
                }
            }
            if st.queue.is_empty() {
                st.full_reported = false;
            }
        }
    }

    fn pop(&self, st: &mut State, batch: &Batch) {
        if st.queue.front().map(|b| b.seq) == Some(batch.seq) {
            st.queue.pop_front();
            st.bytes -= batch.bytes;
        }
    }

    fn reject(&self, batch: &Batch) -> io::Result<PathBuf> {
        let dir = self.dir.join("rejected");
        fs::create_dir_all(&dir).map_err(|e| named(&dir, e))?;
        let to = dir.join(batch.path.file_name().unwrap_or_default());
        match fs::rename(&batch.path, &to) {
            Ok(()) => Ok(to),
            Err(e) => {
                // Never sent again either way: it would be refused again.
                let _ = fs::remove_file(&batch.path);
                Err(named(&to, e))
            }
        }
    }
}
