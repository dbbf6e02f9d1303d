//! How an engine ends flows: a flow leaving the table without a verdict gets one on what is
//! known, its held packets are credited, it is counted in health, and (with a flow sink) its
//! record is written, sorted with the others ending at the same time (or at once, to a sink
//! that only counts).

use std::io;

use super::decide::{decide, fallback, Probing};
use super::settle::Kind;
use super::Engine;
use crate::aggregate::minute_of;
use crate::aggregate::{ledger, Aggregator};
use crate::classify::endpoints::SharedEndpoints;
use crate::classify::{correlate, Rules, Verdict};
use crate::flow::frag::Frags;
use crate::flow::record::{FlowRecord, FlowSink};
use crate::flow::table::{Ended, FlowTable};
use crate::flow::{EndReason, Flow, FlowKey, Stage};

/// What ending a flow touches.
pub(super) struct Ending<'a> {
    rules: &'a Rules,
    endpoints: &'a SharedEndpoints,
    probing: &'a mut Probing,
    pub(super) agg: &'a mut Aggregator,
    /// Where records go: kept to be sorted for a sink that wants them in order, written at
    /// once to one that does not (none without a sink).
    records: Records<'a>,
}

enum Records<'a> {
    None,
    Sorted(&'a mut Vec<FlowRecord>),
    Now(&'a mut (dyn FlowSink + Send), &'a mut Option<io::Error>),
}

impl Ending<'_> {
    pub(super) fn end(&mut self, (key, mut f, reason): Ended) {
        if let Stage::Probing(_) = f.class.stage {
            let last = f.state.last_ts;
            if let Some(v) = fallback(
                &mut f,
                &key,
                self.rules,
                self.endpoints,
                self.probing,
                last,
                true,
            ) {
                decide(&mut f, v, self.probing, self.agg);
            }
        }
        // A flow still settling ends once its verdict comes.
        if let Stage::Settling(pi) = f.class.stage {
            let id = self.probing.wait_of(pi);
            self.probing.settling.park(id, f, reason);
            return;
        }
        self.close(key, f, reason);
    }

    /// Counts a flow that ended with its verdict, and writes its record.
    fn close(&mut self, key: FlowKey, f: Flow, reason: EndReason) {
        let v = f.class.verdict().unwrap_or(Verdict::OTHER);
        ledger::flow_ended(self.agg, f.state.last_ts, v, f.class.evidence);
        if !matches!(self.records, Records::None) {
            let (src, sp, dst, dp) = if f.state.src_is_lo {
                (key.lo, key.lo_port, key.hi, key.hi_port)
            } else {
                (key.hi, key.hi_port, key.lo, key.lo_port)
            };
            let r = FlowRecord {
                first_ts: f.state.first_ts,
                last_ts: f.state.last_ts,
                l4: key.l4(),
                src,
                src_port: sp,
                dst,
                dst_port: dp,
                verdict: v,
                packets: f.state.packets,
                bytes: f.state.bytes,
                end: reason,
                evidence: f.class.proof,
            };
            match &mut self.records {
                Records::None => {}
                Records::Sorted(out) => out.push(r),
                Records::Now(sink, error) => {
                    if error.is_none() {
                        if let Err(e) = sink.write(&r) {
                            **error = Some(e);
                        }
                    }
                }
            }
        }
    }

    /// Answers the waits ([`super::settle`]) every other worker has passed the position of,
    /// in stream order: a flow's open lookup, or its verdict (the flow, in `flows` or ended
    /// meanwhile, is decided and its held packets credited).
    pub(super) fn settle(&mut self, flows: &mut FlowTable) {
        let eps = self.endpoints;
        while self.probing.settling.due(eps).is_some() {
            // Taken out with learnings still held back to its position.
            let Some(w) = self.probing.settling.take() else {
                break;
            };
            let (refresh, ended, extra) = match w.kind {
                Kind::Open => {
                    let c = correlate::key_ends_at(eps, &w.key, w.ts, w.at);
                    self.probing.found_open(w.pi, w.gen, c);
                    continue;
                }
                Kind::Verdict {
                    refresh,
                    ended,
                    extra,
                } => (refresh, ended, extra),
            };
            let mut ended = ended;
            let f = match ended.as_deref_mut() {
                Some((f, _)) => Some(f),
                None => flows
                    .find(flows.hash(&w.key), &w.key)
                    .and_then(|i| flows.at_mut(i)),
            };
            let Some(f) = f.filter(|f| {
                f.class.stage == Stage::Settling(w.pi) && self.probing.gen(w.pi) == w.gen
            }) else {
                debug_assert!(false, "a verdict wait without its flow");
                continue;
            };
            // Its open answer came first (at an earlier position).
            self.probing.take_open_answer(w.pi, &mut f.class);
            if refresh && f.class.correlated.is_none() && !f.class.evidence {
                f.class.correlated = correlate::key_ends_at(eps, &w.key, w.ts, w.at);
            }
            let v = correlate::fallback(self.rules, &mut f.class, &f.state);
            decide(f, v, self.probing, self.agg);
            ledger::credit_counts(self.agg, v, &extra, f.state.host_hash);
            if let Some(b) = ended {
                let (f, reason) = *b;
                self.close(w.key, f, reason);
            }
        }
        self.probing.settling.rehold(eps);
    }
}

impl Engine {
    /// The tables, and what ending their flows touches.
    pub(super) fn parts(&mut self) -> (&mut FlowTable, &mut Frags, Ending<'_>) {
        let records = match self.flow_sink.as_deref_mut() {
            None => Records::None,
            Some(s) if s.ordered() => Records::Sorted(&mut self.ended),
            Some(s) => Records::Now(s, &mut self.sink_error),
        };
        let ending = Ending {
            rules: &self.rules,
            endpoints: &self.endpoints,
            probing: &mut self.probing,
            agg: &mut self.agg,
            records,
        };
        (&mut self.flows, &mut self.frags, ending)
    }

    pub(super) fn ending(&mut self) -> Ending<'_> {
        self.parts().2
    }

    /// Ends flows idle past their timeout (all of them at the end of input), and forgets
    /// stale fragment state.
    pub(super) fn sweep(&mut self, eof: bool) {
        let now = self.now;
        self.last_sweep = now;
        let (flows, frags, mut ending) = self.parts();
        for e in flows.expire(now, eof) {
            ending.end(e);
        }
        for early in frags.expire(now, eof) {
            ledger::orphan_fragments(ending.agg, &early);
        }
        self.write_ended();
    }

    /// Makes room in a full flow table: ends what expired, then the longest-idle sixteenth.
    #[cold]
    pub(super) fn make_flow_room(&mut self) {
        self.sweep(false);
        if !self.flows.is_full() {
            return;
        }
        let minute = minute_of(self.now);
        let (flows, _, mut ending) = self.parts();
        let (mut evicted, mut probing) = (0, 0);
        for e in flows.evict() {
            probing += u64::from(matches!(e.1.class.stage, Stage::Probing(_)));
            ending.end(e);
            evicted += 1;
        }
        let health = &mut ending.agg.bucket(minute).health;
        health.flows_evicted += evicted;
        health.flows_evicted_probing += probing;
        self.evicted_probing += probing;
        self.write_ended();
    }

    /// Answers the lookups to be answered late ([`super::settle`]) that can be, if any.
    #[inline]
    pub fn settle_due(&mut self) {
        if self.probing.settling.due(&self.endpoints).is_some() {
            self.settle();
        }
    }

    /// Answers the lookups to be answered late ([`super::settle`]) that can be.
    pub(super) fn settle(&mut self) {
        let (flows, _, mut ending) = self.parts();
        ending.settle(flows);
        self.write_ended();
    }

    /// Answers every lookup to be answered late, waiting for the other workers to pass
    /// their positions (at the end of input).
    fn settle_all(&mut self) {
        let mut tries = 0u32;
        loop {
            self.settle();
            if self.probing.settling.is_empty() {
                return;
            }
            tries = tries.saturating_add(1);
            if tries < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
    }

    /// Ends every flow and forgets all fragment state: call once after the last packet.
    /// Returns the first error from the flow sink, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        self.sweep(true);
        self.settle_all();
        match self.sink_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes the records of the flows that just ended.
    pub(super) fn write_ended(&mut self) {
        if self.ended.is_empty() {
            return;
        }
        // Flows ending together leave the table in its order: sort for stable output. They
        // were distinct flows of the table, so no two records compare equal (the order holds
        // the whole 5-tuple) and an unstable sort, which needs no scratch space, gives the
        // same order as a stable one.
        self.ended.sort_unstable_by(FlowRecord::order);
        if let Some(sink) = &mut self.flow_sink {
            for r in &self.ended {
                if self.sink_error.is_none() {
                    if let Err(e) = sink.write(r) {
                        self.sink_error = Some(e);
                    }
                }
            }
        }
        self.ended.clear();
    }
}
