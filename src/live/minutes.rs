//! The daemons' minute loop: read a source, hand packets to the engine, flush each minute a
//! delay after it ends by the clock, reload rules on SIGHUP, and report drops in the health of
//! the minute they were noticed in. `live` drives its workers with it, `sflow` its collector.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use super::{load_rules, Outcome, Ready, Signals};
use crate::aggregate::{minute_of, Aggregator, MinuteStart};
use crate::capture::Source;
use crate::classify::Rules;
use crate::engine::workers::Workers;
use crate::metrics::Metrics;
use crate::time::{Clock, Nanos};

const NS: i64 = 1_000_000_000;

/// What the capture loop needs besides its source, workers and clock.
pub(crate) struct Minutes<'a> {
    pub(crate) signals: &'a Signals,
    /// Where SIGHUP reloads rules from (None: the built-in rules).
    pub(crate) rules_dir: &'a Option<PathBuf>,
    /// How long after its end a minute is flushed.
    pub(crate) delay: Nanos,
    pub(crate) metrics: Option<&'a Arc<Metrics>>,
    /// Where flushed minutes go (the sink thread).
    pub(crate) tx: SyncSender<Ready>,
}

/// Reads `cap` until a stop signal (or its end), flushing each minute `delay` after it ends
/// by `clock` (or by packet time, if later), reloading rules on SIGHUP and reporting drops in
/// the health of the minute they were noticed in. Returns the counts and the source's error.
/// Minutes handed over by a [`MinuteEngine`].
pub(crate) struct Flush {
    pub(crate) agg: Aggregator,
    /// Warnings since the last flush.
    pub(crate) warnings: Vec<String>,
    /// The first flow-sink error.
    pub(crate) error: Option<std::io::Error>,
    /// Packets counted in all (at the end).
    pub(crate) packets: u64,
    /// sFlow: the per-agent rows of the same minutes.
    pub(crate) agent_rows: Option<crate::sflow::AgentRows>,
}

impl From<crate::engine::workers::Flushed> for Flush {
    fn from(f: crate::engine::workers::Flushed) -> Flush {
        Flush {
            agg: f.agg,
            warnings: f.warnings,
            error: f.error,
            packets: f.totals.packets,
            agent_rows: None,
        }
    }
}

/// What the daemons' minute loop drives: the workers for `live`, a collector in front of one
/// pipeline for `sflow`.
pub(crate) trait MinuteEngine {
    fn packet(&mut self, pkt: &crate::capture::RawPacket<'_>);
    /// Nothing was read: what is batched goes to the workers.
    fn idle(&mut self) {}
    /// Time passes on a quiet link: idle flows end.
    fn clock(&mut self, now: i64);
    /// The newest packet time counted (the minute loop never flushes behind it).
    fn watermark(&self) -> i64;
    /// Packets dropped on the way to the workers since the last call.
    fn take_queue_drops(&mut self) -> u64 {
        0
    }
    fn set_rules(&mut self, rules: Arc<Rules>);
    /// The minutes before `due`.
    fn flush(&mut self, due: i64) -> Flush;
    /// Every minute left, flows ended.
    fn finish(self) -> Flush;
}

impl MinuteEngine for Workers {
    fn packet(&mut self, pkt: &crate::capture::RawPacket<'_>) {
        self.dispatch(pkt);
    }
    fn idle(&mut self) {
        self.send_pending();
    }
    fn clock(&mut self, now: i64) {
        Workers::clock(self, now);
    }
    fn watermark(&self) -> i64 {
        Workers::watermark(self)
    }
    fn take_queue_drops(&mut self) -> u64 {
        Workers::take_queue_drops(self)
    }
    fn set_rules(&mut self, rules: Arc<Rules>) {
        Workers::set_rules(self, rules);
    }
    fn flush(&mut self, due: i64) -> Flush {
        Workers::flush(self, due).into()
    }
    fn finish(self) -> Flush {
        Workers::finish(self).into()
    }
}

pub(crate) fn capture_minutes<S: Source, E: MinuteEngine, C: Clock>(
    cap: &mut S,
    mut workers: E,
    mut rules: Arc<Rules>,
    m: &Minutes<'_>,
    clock: &C,
) -> (Outcome, Option<S::Error>) {
    let delay = m.delay.get();
    let (signals, metrics, tx) = (m.signals, m.metrics, &m.tx);
    let mut out = Outcome::default();
    // Minutes before `open` are flushed.
    let mut open = minute_of(clock.now().get().saturating_sub(delay));
    let mut last = cap.drops();
    let mut dropping = false;
    let mut last_clock = clock.now().get();
    let mut read_error = None;
    loop {
        let stopping = signals.stop.load(Ordering::Relaxed);
        if signals.reload.swap(false, Ordering::Relaxed) {
            match load_rules(m.rules_dir) {
                Ok(r) => {
                    // At once, between packets: open minutes' port views follow rule ids into
                    // the new set; minutes already flushed keep the names they were counted under.
                    let r = Arc::new(r);
                    workers.set_rules(r.clone());
                    rules = r;
                    eprintln!(
                        "bittap: rules reloaded: {} port rules, {} signatures",
                        rules.ports.len(),
                        rules.signatures.len()
                    );
                }
                Err(e) => eprintln!("bittap: SIGHUP: invalid rules, keeping the old ones: {e}"),
            }
        }
        if !stopping {
            cap.wait(100);
        }
        // On stop, what the kernel already holds is read too (bounded: the link may not pause).
        let budget = if stopping { 1 << 20 } else { 4096 };
        let mut read = 0u64;
        let r = cap.read(budget, |pkt| {
            read += 1;
            workers.packet(pkt);
        });
        out.read += read;
        let ended = matches!(r, Ok(None));
        if let Some(m) = metrics {
            m.beat();
        }
        if let Err(e) = r {
            if let Some(m) = metrics {
                m.capture_failed(e.to_string());
            }
            read_error = Some(e);
        }
        let now = clock.now().get().max(workers.watermark());
        if read == 0 {
            workers.idle();
            if now.saturating_sub(last_clock) >= NS {
                // A quiet link: idle flows still end on time.
                workers.clock(now);
                last_clock = now;
            }
        }
        if stopping || ended || read_error.is_some() {
            break;
        }
        let due = minute_of(now.saturating_sub(delay));
        if due > open {
            let mut f = workers.flush(due);
            let d = cap.drops();
            if let Some(m) = metrics {
                m.set_drops(cap.drops_by_interface());
            }
            let q = workers.take_queue_drops();
            out.queue_drops += q;
            let kernel = d.kernel - last.kernel;
            let iface = d.interface - last.interface;
            last = d;
            // Drops since the last flush are reported in the newest minute flushed; a quiet
            // minute still gets its health row.
            let h = &mut f.agg.bucket(due - 1).health;
            h.kernel_drops += kernel;
            h.interface_drops += iface;
            h.queue_drops += q;
            let now_dropping = kernel + iface + q > 0;
            if now_dropping && !dropping {
                eprintln!(
                    "bittap: warning: packets dropped in the minute to {}: kernel {kernel}, interface {iface}, queue {q}; counts are low by that much (raise --buffer-size or --threads, or narrow --filter)",
                    MinuteStart(due)
                );
            }
            dropping = now_dropping;
            for w in &f.warnings {
                eprintln!("bittap: warning: {w}");
            }
            if let Some(e) = f.error {
                out.errors.push(format!("flows: {e}"));
            }
            let _ = tx.send(Ready {
                agg: f.agg,
                rules: rules.clone(),
                agent_rows: f.agent_rows,
            });
            open = due;
        }
    }

    let q = workers.take_queue_drops();
    out.queue_drops += q;
    let mut f = workers.finish();
    let d = cap.drops();
    if let Some(m) = metrics {
        m.set_drops(cap.drops_by_interface());
    }
    let kernel = d.kernel - last.kernel;
    let iface = d.interface - last.interface;
    out.drops = d;
    out.counted = f.packets;
    let newest = f.agg.minutes().last().map(|(m, _)| m).unwrap_or(open);
    let h = &mut f.agg.bucket(newest).health;
    h.kernel_drops += kernel;
    h.interface_drops += iface;
    h.queue_drops += q;
    if let Some(e) = f.error {
        out.errors.push(format!("flows: {e}"));
    }
    let _ = tx.send(Ready {
        agg: f.agg,
        rules,
        agent_rows: f.agent_rows,
    });
    (out, read_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::live::Drops;
    use crate::capture::{MemorySource, OwnedPacket};
    use crate::engine::Config;
    use crate::time::{FakeClock, NS_PER_MIN};
    use std::sync::mpsc::sync_channel;

    /// A minute well inside the packet times bittap represents.
    const MINUTE: i64 = 29_000_000;

    fn udp(ts: i64, sport: u16) -> OwnedPacket {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 48, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&53u16.to_be_bytes());
        f.extend_from_slice(&[0, 28, 0, 0]);
        f.extend_from_slice(&[0u8; 20]);
        OwnedPacket::ethernet(ts, f)
    }

    struct Run {
        out: Outcome,
        ready: Vec<Ready>,
        rules: Arc<Rules>,
    }

    /// Runs the capture loop over `src` with a clock that starts 10 s into the minute and
    /// moves a second per read, and collects what it flushed.
    fn run_loop(mut src: MemorySource, signals: &Signals) -> Run {
        let rules = Arc::new(Rules::builtin().expect("rules"));
        let workers = Workers::start(1, &Config::default(), rules.clone(), None, None, false)
            .expect("workers");
        let (tx, rx) = sync_channel::<Ready>(1024);
        let clock = FakeClock::new(Nanos(MINUTE * NS_PER_MIN + 10 * NS), Nanos::from_secs(1));
        let (out, err) = capture_minutes(
            &mut src,
            workers,
            rules.clone(),
            &Minutes {
                signals,
                rules_dir: &None,
                delay: Nanos::from_secs(5),
                metrics: None,
                tx,
            },
            &clock,
        );
        assert!(err.is_none());
        Run {
            out,
            ready: rx.into_iter().collect(),
            rules,
        }
    }

    fn packets(r: &mut Ready) -> u64 {
        r.agg.series_rows().iter().map(|r| r.counts.packets).sum()
    }

    /// A minute is flushed once the clock is `delay` past its end, with its packets; the
    /// partial minute follows at the end.
    #[test]
    fn minutes_are_flushed_a_delay_after_they_end() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let mut src = MemorySource::new(vec![udp(t, 4000), udp(t + NS, 4000), udp(t, 4001)]);
        src.idle_reads = 120;
        let mut r = run_loop(src, &Signals::default());
        assert_eq!(r.out.read, 3);
        assert_eq!(r.out.counted, 3);
        assert!(r.ready.len() >= 2, "{}", r.ready.len());
        let first = &mut r.ready[0];
        let minutes: Vec<i64> = first.agg.minutes().map(|(m, _)| m).collect();
        assert_eq!(minutes, [MINUTE]);
        assert_eq!(packets(first), 3);
        let rest: u64 = r.ready[1..].iter_mut().map(packets).sum();
        assert_eq!(rest, 0);
        assert!(r.ready.iter().all(|x| Arc::ptr_eq(&x.rules, &r.rules)));
    }

    /// SIGHUP: the rules are loaded again, the flag is cleared, and later minutes carry the
    /// new set.
    #[test]
    fn sighup_reloads_rules() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let signals = Signals::default();
        signals.reload.store(true, Ordering::Relaxed);
        let mut src = MemorySource::new(vec![udp(t, 4000)]);
        src.idle_reads = 3;
        let r = run_loop(src, &signals);
        assert!(!signals.reload.load(Ordering::Relaxed));
        let last = r.ready.last().expect("a minute");
        assert!(!Arc::ptr_eq(&last.rules, &r.rules));
        assert_eq!(r.out.counted, 1);
    }

    /// Drops growing while the capture is read land in the health rows, all of them once.
    #[test]
    fn drops_are_reported_in_the_health_rows() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let mut src = MemorySource::new(vec![udp(t, 4000), udp(t, 4001)]);
        src.idle_reads = 80;
        src.drops_per_read = Drops {
            received: 3,
            kernel: 2,
            interface: 1,
        };
        let mut r = run_loop(src, &Signals::default());
        let reads = r.out.drops.received / 3;
        assert!(reads > 60, "{reads}");
        assert_eq!(r.out.drops.kernel, 2 * reads);
        let (mut kernel, mut iface) = (0, 0);
        for x in &mut r.ready {
            for (_, h) in x.agg.health_rows() {
                kernel += h.kernel_drops;
                iface += h.interface_drops;
            }
        }
        assert_eq!(kernel, 2 * reads);
        assert_eq!(iface, reads);
    }

    /// A stop signal: what the source still holds is read (bounded) and counted.
    #[test]
    fn stop_reads_what_is_waiting_then_flushes() {
        let t = MINUTE * NS_PER_MIN + 10 * NS;
        let signals = Signals::default();
        signals.stop.store(true, Ordering::Relaxed);
        let mut src = MemorySource::new((0..50).map(|i| udp(t, 4000 + i)).collect());
        src.idle_reads = 1000;
        let mut r = run_loop(src, &signals);
        assert_eq!(r.out.read, 50);
        let all: u64 = r.ready.iter_mut().map(packets).sum();
        assert_eq!(all, 50);
    }
}
