//! How an engine decides a flow: on its probes' answer, or on what is known when they say
//! nothing (correlation, then the port rule), and what deciding releases and credits.

use crate::aggregate::{ledger, Aggregator, Amount, Direction};
use crate::classify::endpoints::SharedEndpoints;
use crate::classify::{correlate, ProbePool, Rules, Verdict};
use crate::flow::{Flow, FlowKey, HeldPool, Stage};

/// What only flows being classified have, by probe index: their probe state (from the
/// pool) and the packets they hold. A decided flow has neither, which keeps it small.
#[derive(Default)]
pub(super) struct Probing {
    pub(super) probes: ProbePool,
    held: HeldPool,
}

impl Probing {
    pub(super) fn alloc(&mut self) -> u32 {
        let i = self.probes.alloc();
        self.held.ensure(i);
        i
    }
}

/// Decides a flow undecided by its payload (see [`correlate::fallback`]), looking its ends
/// up once more first.
pub(super) fn fallback(
    flow: &mut Flow,
    key: &FlowKey,
    rules: &Rules,
    endpoints: &SharedEndpoints,
    ts: i64,
) -> Verdict {
    correlate::refresh(&mut flow.class, key, endpoints, ts);
    correlate::fallback(rules, &mut flow.class, &flow.state)
}

/// Gives a flow its verdict: its probe state goes back to the pool and its held packets are
/// credited.
pub(super) fn decide(flow: &mut Flow, v: Verdict, probing: &mut Probing, agg: &mut Aggregator) {
    if let Stage::Probing(pi) = flow.class.stage {
        let (inline, spilled) = probing.held.counts(pi);
        ledger::credit_counts(agg, v, inline, flow.state.host_hash);
        ledger::credit_counts(agg, v, spilled, flow.state.host_hash);
        probing.held.clear(pi);
        probing.probes.release(pi);
    }
    flow.class.stage = Stage::Decided(v);
}

/// Counts packets of a flow: in the series if it has a verdict, else held (and
/// when there is no room to hold more, the flow is decided on what is known).
pub(super) fn account(
    flow: &mut Flow,
    rules: &Rules,
    probing: &mut Probing,
    agg: &mut Aggregator,
    minute: i64,
    dir: Direction,
    a: Amount,
) {
    if let Stage::Probing(pi) = flow.class.stage {
        let samples = u16::try_from(a.est.samples).unwrap_or(u16::MAX);
        if probing
            .held
            .add(pi, minute, dir, a.packets, a.bytes, samples)
        {
            return;
        }
        let v = correlate::fallback(rules, &mut flow.class, &flow.state);
        decide(flow, v, probing, agg);
    }
    if let Stage::Decided(v) = flow.class.stage {
        ledger::credit(agg, v, &mut flow.state, minute, dir, a);
    }
}
