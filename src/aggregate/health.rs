//! Capture health per minute, and sFlow input's own health.

/// sFlow's own health for one minute (all agents): datagrams and samples read, datagrams
/// lost (sequence gaps), samples the agents dropped, and the link load their interface
/// counters report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SflowHealth {
    pub datagrams: u64,
    pub flow_samples: u64,
    pub counter_samples: u64,
    /// Datagrams missing from the agents' sequence numbers.
    pub datagrams_lost: u64,
    /// Samples the agents dropped for lack of resources (their `drops` counters).
    pub sample_drops: u64,
    /// Datagrams, samples or records that did not add up (counted, then skipped).
    pub malformed: u64,
    /// Datagrams from agents not in `--agents`.
    pub rejected: u64,
    /// Samples without a record bittap decodes, and records of unknown formats.
    pub unknown: u64,
    /// Agents that restarted (uptime or sequence numbers going back).
    pub restarts: u64,
    /// Octets in and out of the sampled interfaces, from their counters.
    pub if_in_octets: u64,
    pub if_out_octets: u64,
    /// The minute's BitTorrent estimate and its range ([`super::BtRange`]), filled when
    /// rows are written (never summed by [`SflowHealth::merge`]).
    pub bittorrent_bytes: u64,
    pub bittorrent_low: u64,
    pub bittorrent_high: u64,
    pub unresolved_bytes: u64,
}

impl SflowHealth {
    pub const FIELDS: [&'static str; 15] = [
        "datagrams",
        "flow_samples",
        "counter_samples",
        "datagrams_lost",
        "sample_drops",
        "malformed",
        "rejected",
        "unknown",
        "restarts",
        "if_in_octets",
        "if_out_octets",
        "bittorrent_bytes",
        "bittorrent_low",
        "bittorrent_high",
        "unresolved_bytes",
    ];

    pub fn values(&self) -> [u64; 15] {
        [
            self.datagrams,
            self.flow_samples,
            self.counter_samples,
            self.datagrams_lost,
            self.sample_drops,
            self.malformed,
            self.rejected,
            self.unknown,
            self.restarts,
            self.if_in_octets,
            self.if_out_octets,
            self.bittorrent_bytes,
            self.bittorrent_low,
            self.bittorrent_high,
            self.unresolved_bytes,
        ]
    }

    /// Sets the minute's BitTorrent range.
    pub fn set_range(&mut self, r: &super::BtRange) {
        self.bittorrent_bytes = r.bytes;
        self.bittorrent_low = r.low();
        self.bittorrent_high = r.high();
        self.unresolved_bytes = r.unresolved;
    }

    pub fn merge(&mut self, o: &SflowHealth) {
        let fields = [
            &mut self.datagrams,
            &mut self.flow_samples,
            &mut self.counter_samples,
            &mut self.datagrams_lost,
            &mut self.sample_drops,
            &mut self.malformed,
            &mut self.rejected,
            &mut self.unknown,
            &mut self.restarts,
            &mut self.if_in_octets,
            &mut self.if_out_octets,
        ];
        for (f, v) in fields.into_iter().zip(o.values()) {
            *f += v;
        }
    }
}

/// Capture health for one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    pub packets: u64,
    pub bytes: u64,
    pub non_ip: u64,
    pub undecodable: u64,
    /// Frames of a link type with no decoder (also counted in `undecodable`).
    pub unknown_link: u64,
    pub flows_created: u64,
    pub flows_ended: u64,
    pub flows_evicted: u64,
    /// Flows that ended with no verdict from payload or port (class other, method none).
    pub flows_unclassified: u64,
    /// Most flows in the table at once during the minute.
    pub flows_tracked: u64,
    /// Later IP fragments whose first fragment never came.
    pub fragments_orphaned: u64,
    /// Live capture: packets the kernel dropped (pcap statistics), during the minute.
    pub kernel_drops: u64,
    /// Live capture: packets the interface or its driver dropped, during the minute.
    pub interface_drops: u64,
    /// Live capture: packets bittap itself dropped because a worker's queue was full.
    pub queue_drops: u64,
    /// Bytes waiting in the database spool when the minute was flushed.
    pub spool_bytes: u64,
    /// Age in seconds of the oldest write waiting in the spool when the minute was flushed.
    pub spool_age_seconds: u64,
    /// Of `flows_evicted`, flows still being classified (a full table ends decided idle
    /// flows first: these are the flows a flood of new 5-tuples cost their verdict).
    pub flows_evicted_probing: u64,
    /// BitTorrent messages that began as one (a guard passed: the handshake's first byte
    /// and name, a KRPC dictionary's opening, BEP 15's protocol id) but did not validate.
    pub bt_malformed: u64,
}

impl Health {
    pub const FIELDS: [&'static str; 18] = [
        "packets",
        "bytes",
        "non_ip",
        "undecodable",
        "unknown_link",
        "flows_created",
        "flows_ended",
        "flows_evicted",
        "flows_unclassified",
        "flows_tracked",
        "fragments_orphaned",
        "kernel_drops",
        "interface_drops",
        "queue_drops",
        "spool_bytes",
        "spool_age_seconds",
        "flows_evicted_probing",
        "bt_malformed",
    ];

    /// Adds another worker's health for the same minute. Counts add up; `flows_tracked` (a
    /// per-worker peak) adds up to the peak of the whole table at worst; spool figures are
    /// levels, not counts, so the larger is kept.
    pub fn merge(&mut self, o: &Health) {
        let a = self;
        a.packets += o.packets;
        a.bytes += o.bytes;
        a.non_ip += o.non_ip;
        a.undecodable += o.undecodable;
        a.unknown_link += o.unknown_link;
        a.flows_created += o.flows_created;
        a.flows_ended += o.flows_ended;
        a.flows_evicted += o.flows_evicted;
        a.flows_unclassified += o.flows_unclassified;
        a.flows_tracked += o.flows_tracked;
        a.fragments_orphaned += o.fragments_orphaned;
        a.kernel_drops += o.kernel_drops;
        a.interface_drops += o.interface_drops;
        a.queue_drops += o.queue_drops;
        a.spool_bytes = a.spool_bytes.max(o.spool_bytes);
        a.spool_age_seconds = a.spool_age_seconds.max(o.spool_age_seconds);
        a.flows_evicted_probing += o.flows_evicted_probing;
        a.bt_malformed += o.bt_malformed;
    }

    pub fn values(&self) -> [u64; 18] {
        [
            self.packets,
            self.bytes,
            self.non_ip,
            self.undecodable,
            self.unknown_link,
            self.flows_created,
            self.flows_ended,
            self.flows_evicted,
            self.flows_unclassified,
            self.flows_tracked,
            self.fragments_orphaned,
            self.kernel_drops,
            self.interface_drops,
            self.queue_drops,
            self.spool_bytes,
            self.spool_age_seconds,
            self.flows_evicted_probing,
            self.bt_malformed,
        ]
    }
}
