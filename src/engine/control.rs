//! What a front door does to an engine besides feeding it packets: settings between packets,
//! the clock, figures, and handing over minutes.

use std::io;
use std::sync::Arc;

use super::{Engine, Flushed, PacketSink};
use crate::aggregate::{Aggregator, Counts};
use crate::capture::RawPacket;
use crate::classify::endpoints::{EndpointTable, SharedEndpoints};
use crate::classify::Rules;
use crate::flow::record::FlowSink;

impl Engine {
    /// Finished flows go to `sink` (`--flows`); without one, flow records are not built.
    pub fn set_flow_sink(&mut self, sink: Box<dyn FlowSink + Send>) {
        self.flow_sink = Some(sink);
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replaces the learned endpoints, e.g. with those of a look-ahead pass over the same
    /// input, or with a table shared by several workers.
    pub fn set_endpoints(&mut self, table: SharedEndpoints) {
        self.endpoints = table;
    }

    /// The learned endpoints.
    pub fn endpoints(&self) -> &SharedEndpoints {
        &self.endpoints
    }

    /// Takes the learned endpoints out (leaving an empty table).
    pub fn take_endpoints(&mut self) -> SharedEndpoints {
        let empty = SharedEndpoints::from_table(EndpointTable::new(
            self.cfg.endpoint_ttl_ns,
            self.cfg.max_endpoints,
        ));
        std::mem::replace(&mut self.endpoints, empty)
    }

    /// Switches to a reloaded rule set between packets. Flows keep their verdicts; a flow's
    /// port rule and the open minutes' port view follow the rule id into the new set (a rule
    /// that is gone drops out of the port view).
    pub fn set_rules(&mut self, rules: Arc<Rules>) {
        let map: Vec<Option<usize>> = self
            .rules
            .ports
            .iter()
            .map(|old| rules.ports.iter().position(|n| n.id == old.id))
            .collect();
        for f in self.flows.flows_mut() {
            f.state.port_rule = f
                .state
                .port_rule
                .checked_sub(1)
                .and_then(|i| map.get(usize::from(i)).copied().flatten())
                .and_then(|n| u8::try_from(n + 1).ok())
                .unwrap_or(0);
        }
        self.agg.remap_ports(&map, rules.ports.len());
        self.rules = rules;
    }

    /// Packets and wire bytes fed in so far.
    pub fn totals(&self) -> Counts {
        self.totals
    }

    /// Flows in the table now.
    pub fn flows_tracked(&self) -> usize {
        self.flows.len()
    }

    /// Flows evicted from a full table while still being classified, so far.
    pub fn evicted_probing(&self) -> u64 {
        self.evicted_probing
    }

    /// Probe states in use (flows still being classified).
    pub fn probes_in_use(&self) -> usize {
        self.probing.in_use()
    }

    pub fn aggregator(&mut self) -> &mut Aggregator {
        &mut self.agg
    }

    /// Moves packet time forward without a packet (a worker whose share of the link is quiet
    /// hears the time from the dispatcher), ending flows idle past their timeout.
    pub fn advance_clock(&mut self, ts: i64) {
        self.settle_due();
        if ts <= self.now {
            return;
        }
        self.now = ts;
        if self.last_sweep == i64::MIN {
            self.last_sweep = ts;
        }
        if self.now.saturating_sub(self.last_sweep) >= self.cfg.sweep_interval_ns {
            self.sweep(false);
        }
    }

    #[cold]
    pub(super) fn warn_link(&mut self, linktype: u32) {
        if !self.warned_links.contains(&linktype) {
            self.warned_links.push(linktype);
            self.warnings.push(format!(
                "link type {linktype} has no decoder: its frames are counted as undecodable"
            ));
        }
    }

    /// Warnings not handed over yet.
    fn new_warnings(&mut self) -> Vec<String> {
        let w = self.warnings[self.warnings_handed..].to_vec();
        self.warnings_handed = self.warnings.len();
        w
    }

    fn handover(&mut self, agg: Aggregator, error: Option<io::Error>) -> Flushed {
        Flushed {
            agg,
            error,
            warnings: self.new_warnings(),
            totals: self.totals,
        }
    }
}

impl PacketSink for Engine {
    fn packet(&mut self, pkt: &RawPacket<'_>) -> bool {
        self.process(pkt);
        true
    }

    fn clock(&mut self, ts: i64) {
        self.advance_clock(ts);
    }

    fn flush_minutes(&mut self, minute: i64) -> Flushed {
        let agg = self.agg.split_before(minute);
        self.handover(agg, None)
    }

    fn finish_all(&mut self) -> Flushed {
        let error = self.finish().err();
        let agg = self.agg.split_all();
        self.handover(agg, error)
    }
}
