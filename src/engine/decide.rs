//! How an engine decides a flow: on its probes' answer, or on what is known when they say
//! nothing (correlation, then the port rule), and what deciding releases and credits.

use super::settle::{Kind, Settling, Wait};
use crate::aggregate::{ledger, Aggregator, Amount, Tag};
use crate::classify::endpoints::{Provenance, SharedEndpoints};
use crate::classify::{correlate, Answer, ProbePool, Rules, Transport, Verdict};
use crate::decode::{TcpInfo, TCP_SYN};
use crate::flow::{Classification, Flow, FlowKey, HeldPool, PendingCount, Stage};

/// What only flows being classified have, by probing index: the packets they hold, and
/// their probe state (from the pool) once they carry more than a TCP opening. A decided flow
/// has neither, which keeps it small. Also the lookups of such flows to be answered late
/// ([`super::settle`]).
#[derive(Default)]
pub(super) struct Probing {
    probes: ProbePool,
    held: HeldPool,
    slots: Vec<Slot>,
    free: Vec<u32>,
    pub(super) settling: Settling,
}

/// Payload-free SYNs a flow may open with before it takes a probe state: a SYN and its
/// SYN-ACK (a retransmitted SYN takes one).
const OPENING_SYNS: usize = 2;

/// A payload-free SYN, as the probes need it replayed.
#[derive(Debug, Clone, Copy, Default)]
struct Syn {
    seq: u32,
    ack: u32,
    flags: u8,
    dir: u8,
}

/// One flow being classified. A payload-free SYN tells the probes only where each side's
/// sequence space starts and who opened (the stream prefix's anchor, MSE's bases and
/// initiator) and can never decide, so a flow that has sent nothing else (a scan, a flood,
/// an unanswered or refused connection) keeps its SYNs here instead of a whole probe state;
/// they are replayed into one, in order, when its first other packet comes.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Index + 1 of the flow's probe state in the pool; 0 for none yet.
    state: u32,
    syns: u8,
    opening: [Syn; OPENING_SYNS],
    /// Counts the flows the index went to, so a late answer finds its own.
    gen: u32,
    open: Open,
    /// The id of the flow's verdict wait, while it is settling.
    wait: u32,
}

/// Where a flow's open lookup stands ([`super::settle`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Open {
    /// In the flow's classification.
    #[default]
    Known,
    /// Made before every other worker had passed its position: asked again once they have.
    Waiting,
    /// Asked again: the answer, for the flow's classification.
    Found(Option<Provenance>),
}

/// What the probes said of one packet.
pub(super) struct Probed {
    pub(super) answer: Answer,
    /// Some direction was probed to the end (see [`ProbeState::any_done`](crate::classify::ProbeState::any_done)).
    pub(super) any_done: bool,
    /// Malformed BitTorrent messages in the packet.
    pub(super) malformed: u32,
}

impl Probing {
    pub(super) fn alloc(&mut self) -> u32 {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[i as usize];
        slot.gen = slot.gen.wrapping_add(1);
        self.held.ensure(i);
        i
    }

    /// The open lookup of flow `key` at probing index `i`, made at this engine's position
    /// `at` and packet time `ts`, is asked again once every other worker has passed `at`.
    pub(super) fn wait_open(
        &mut self,
        i: u32,
        at: u64,
        ts: i64,
        key: FlowKey,
        endpoints: &SharedEndpoints,
    ) {
        let slot = &mut self.slots[i as usize];
        slot.open = Open::Waiting;
        let w = Wait {
            at,
            ts,
            key,
            pi: i,
            gen: slot.gen,
            kind: Kind::Open,
        };
        self.settling.push(w, endpoints);
    }

    /// The answer `c` of the open lookup of the flow at index `i` (generation `gen`).
    pub(super) fn found_open(&mut self, i: u32, gen: u32, c: Option<Provenance>) {
        if let Some(slot) = self.slots.get_mut(i as usize) {
            if slot.gen == gen && slot.open == Open::Waiting {
                slot.open = Open::Found(c);
            }
        }
    }

    /// Puts the answer of the open lookup of the flow at index `i`, if it came, into its
    /// classification; `false` while it has not come.
    fn take_open(&mut self, i: u32, class: &mut Classification) -> bool {
        let slot = &mut self.slots[i as usize];
        match slot.open {
            Open::Known => true,
            Open::Waiting => false,
            Open::Found(c) => {
                class.correlated = c;
                slot.open = Open::Known;
                true
            }
        }
    }

    /// [`take_open`](Self::take_open) for a flow whose open answer has come.
    pub(super) fn take_open_answer(&mut self, i: u32, class: &mut Classification) {
        let came = self.take_open(i, class);
        debug_assert!(came, "an open answer after its verdict's");
    }

    /// The generation of index `i`.
    pub(super) fn gen(&self, i: u32) -> u32 {
        self.slots.get(i as usize).map_or(0, |s| s.gen)
    }

    /// The id of the verdict wait of the settling flow at index `i`.
    pub(super) fn wait_of(&self, i: u32) -> u32 {
        self.slots.get(i as usize).map_or(u32::MAX, |s| s.wait)
    }

    /// Flows being classified.
    pub(super) fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Feeds one packet of the flow at probing index `i` to its probes (see
    /// [`ProbeState::on_packet`](crate::classify::ProbeState::on_packet)).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn probe(
        &mut self,
        i: u32,
        rules: &Rules,
        transport: Transport,
        dir: usize,
        tcp: Option<TcpInfo>,
        ports: (u16, u16),
        payload: &[u8],
        cut: bool,
    ) -> Probed {
        let slot = &mut self.slots[i as usize];
        if slot.state == 0 {
            let n = usize::from(slot.syns);
            if let Some(t) = tcp.filter(|t| {
                t.flags & TCP_SYN != 0
                    && transport == Transport::Tcp
                    && payload.is_empty()
                    && n < OPENING_SYNS
            }) {
                slot.opening[n] = Syn {
                    seq: t.seq,
                    ack: t.ack,
                    flags: t.flags,
                    dir: (dir & 1) as u8,
                };
                slot.syns += 1;
                return Probed {
                    answer: Answer::Undecided,
                    any_done: false,
                    malformed: 0,
                };
            }
            let j = self.probes.alloc();
            slot.state = j + 1;
            let state = self.probes.get(j);
            for s in &slot.opening[..n] {
                let t = TcpInfo {
                    flags: s.flags,
                    seq: s.seq,
                    ack: s.ack,
                    len: 0,
                };
                // Undecided, as it was when the SYN came.
                let _ = state.on_packet(
                    rules,
                    Transport::Tcp,
                    usize::from(s.dir),
                    Some(t),
                    ports,
                    &[],
                    false,
                );
            }
        }
        let state = self.probes.get(slot.state - 1);
        let answer = state.on_packet(rules, transport, dir, tcp, ports, payload, cut);
        Probed {
            answer,
            any_done: state.any_done(),
            malformed: state.take_malformed(),
        }
    }

    /// Frees index `i` (its held counts, its probe state) for another flow.
    fn release(&mut self, i: u32) {
        self.held.clear(i);
        let slot = &mut self.slots[i as usize];
        if slot.state != 0 {
            self.probes.release(slot.state - 1);
        }
        *slot = Slot {
            gen: slot.gen,
            ..Slot::default()
        };
        self.free.push(i);
    }
}

/// Decides a flow undecided by its payload (see [`correlate::fallback`]) at packet time
/// `ts`, looking its ends up once more first when `refresh`. Returns `None`, and the flow
/// is settling, when what one engine reading the whole stream would know here may not be
/// known yet ([`super::settle`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn fallback(
    flow: &mut Flow,
    key: &FlowKey,
    rules: &Rules,
    endpoints: &SharedEndpoints,
    probing: &mut Probing,
    ts: i64,
    refresh: bool,
) -> Option<Verdict> {
    let pi = match flow.class.stage {
        Stage::Probing(pi) => pi,
        Stage::Settling(_) => return None,
        Stage::Decided(v) => return Some(v),
    };
    let at = endpoints.position();
    // Evidence decides whatever is known; else the open answer must have come, and a
    // lookup now must see what one engine's would (asked before looking).
    let now = flow.class.evidence
        || (probing.take_open(pi, &mut flow.class)
            && (!refresh || flow.class.correlated.is_some() || endpoints.settled(at)));
    if now {
        if refresh {
            correlate::refresh(&mut flow.class, key, endpoints, ts);
        }
        return Some(correlate::fallback(rules, &mut flow.class, &flow.state));
    }
    let w = Wait {
        at,
        ts,
        key: *key,
        pi,
        gen: probing.gen(pi),
        kind: Kind::Verdict {
            refresh,
            ended: None,
            extra: Vec::new(),
        },
    };
    let id = probing.settling.push(w, endpoints);
    probing.slots[pi as usize].wait = id;
    flow.class.stage = Stage::Settling(pi);
    None
}

/// Gives a flow its verdict: its probe state goes back to the pool and its held packets are
/// credited.
pub(super) fn decide(flow: &mut Flow, v: Verdict, probing: &mut Probing, agg: &mut Aggregator) {
    if let Stage::Probing(pi) | Stage::Settling(pi) = flow.class.stage {
        let (inline, spilled) = probing.held.counts(pi);
        ledger::credit_counts(agg, v, inline, flow.state.host_hash);
        ledger::credit_counts(agg, v, spilled, flow.state.host_hash);
        probing.release(pi);
    }
    flow.class.stage = Stage::Decided(v);
}

/// Counts packets of a flow: in the series if it has a verdict, else held (and
/// when there is no room to hold more, the flow is decided on what is known).
#[allow(clippy::too_many_arguments)]
pub(super) fn account(
    flow: &mut Flow,
    key: &FlowKey,
    rules: &Rules,
    endpoints: &SharedEndpoints,
    probing: &mut Probing,
    agg: &mut Aggregator,
    minute: i64,
    tag: Tag,
    a: Amount,
) {
    if let Stage::Probing(pi) | Stage::Settling(pi) = flow.class.stage {
        let samples = u16::try_from(a.est.samples).unwrap_or(u16::MAX);
        if probing
            .held
            .add(pi, minute, tag, a.packets, a.bytes, samples)
        {
            return;
        }
        let last = flow.state.last_ts;
        match fallback(flow, key, rules, endpoints, probing, last, false) {
            Some(v) => decide(flow, v, probing, agg),
            None => {
                let c = PendingCount {
                    minute,
                    tag,
                    packets: a.packets,
                    bytes: a.bytes,
                    samples,
                };
                let id = probing.wait_of(pi);
                probing.settling.add_extra(id, c);
                return;
            }
        }
    }
    if let Stage::Decided(v) = flow.class.stage {
        ledger::credit(agg, v, &mut flow.state, minute, tag, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ProbeState;
    use crate::decode::TCP_ACK;

    const HANDSHAKE: &[u8] =
        b"\x13BitTorrent protocol\0\0\0\0\0\x10\0\x05aaaaaaaaaaaaaaaaaaaa-TR3000-bbbbbbbbbbbb";

    /// (dir, flags, seq, ack, payload)
    type Pkt = (usize, u8, u32, u32, &'static [u8]);

    fn tcp(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Option<TcpInfo> {
        Some(TcpInfo {
            flags,
            seq,
            ack,
            len: payload.len() as u32,
        })
    }

    #[test]
    fn syns_kept_aside_answer_as_a_whole_probe_state_does() {
        let rules = Rules::builtin().expect("rules");
        let (syn, syn_ack, ack, psh) = (TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK, TCP_ACK | 0x08);
        let mse_key: &'static [u8] = &[0x5a; 200];
        let flows: [&[Pkt]; 5] = [
            // An opening, then the handshake both ways.
            &[
                (0, syn, 99, 0, b""),
                (1, syn_ack, 499, 100, b""),
                (0, ack, 100, 500, b""),
                (0, psh, 100, 500, HANDSHAKE),
                (1, psh, 500, 168, HANDSHAKE),
            ],
            // The SYN-ACK alone, then a handshake from the responder.
            &[(1, syn_ack, 499, 100, b""), (1, psh, 500, 100, HANDSHAKE)],
            // Retransmitted SYNs (more than are kept aside), then random bytes.
            &[
                (0, syn, 7, 0, b""),
                (0, syn, 7, 0, b""),
                (0, syn, 7, 0, b""),
                (1, syn_ack, 70, 8, b""),
                (0, psh, 8, 71, mse_key),
            ],
            // A SYN, then a silent receiver acknowledging bulk data.
            &[
                (1, syn_ack, 9000, 1001, b""),
                (1, ack, 9001, 30_000, b""),
                (1, ack, 9001, 60_000, b""),
            ],
            // SYNs only.
            &[(0, syn, 1, 0, b""), (1, syn_ack, 5, 2, b"")],
        ];
        for (n, pkts) in flows.iter().enumerate() {
            let mut probing = Probing::default();
            let i = probing.alloc();
            let mut whole = ProbeState::default();
            for (k, &(dir, flags, seq, ack, payload)) in pkts.iter().enumerate() {
                let t = tcp(flags, seq, ack, payload);
                let ports = (40000, 6881);
                let got = probing.probe(i, &rules, Transport::Tcp, dir, t, ports, payload, false);
                let want = whole.on_packet(&rules, Transport::Tcp, dir, t, ports, payload, false);
                let want_done = whole.any_done();
                let want_bad = whole.take_malformed();
                assert_eq!(
                    (got.answer, got.any_done, got.malformed),
                    (want, want_done, want_bad),
                    "flow {n} packet {k}"
                );
            }
            // Only a flow that sent more than SYNs took a probe state.
            let syns_only = pkts.iter().all(|p| p.1 & TCP_SYN != 0 && p.4.is_empty())
                && pkts.len() <= OPENING_SYNS;
            assert_eq!(probing.probes.in_use(), usize::from(!syns_only), "flow {n}");
            probing.release(i);
            assert_eq!((probing.in_use(), probing.probes.in_use()), (0, 0));
        }
    }
}
