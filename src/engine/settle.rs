//! Lookups answered late. In an offline `--threads` run whose workers share the endpoint
//! table without waiting for each other ([`StreamOrder::no_wait`]), a lookup a worker makes
//! before every other worker has passed its position may miss an endpoint one engine reading
//! the whole stream would have learned from an earlier packet (still queued for the worker
//! behind). Such a lookup is made later, as of the same position
//! ([`SharedEndpoints::lookup_at`]), once every other worker has passed it:
//!
//! - a flow's open lookup: the answer goes to the flow's probing slot;
//! - a flow's verdict on what is known (correlation, then its port rule): until the answer
//!   comes the flow is [`Stage::Settling`], probed no more (one engine would have decided it)
//!   and holding its packets, and a flow that ends meanwhile waits here with its end.
//!
//! Positions only grow, so the waits are queued in stream order and answered from the
//! front; the earliest one holds learnings after it aside ([`SharedEndpoints::hold`]).
//!
//! [`StreamOrder::no_wait`]: crate::classify::endpoints::StreamOrder::no_wait
//! [`Stage::Settling`]: crate::flow::Stage::Settling

use std::collections::VecDeque;

use crate::classify::endpoints::SharedEndpoints;
use crate::flow::{EndReason, Flow, FlowKey, PendingCount};

/// The waits of one engine, in stream order.
#[derive(Default)]
pub(super) struct Settling {
    waits: VecDeque<Wait>,
    /// The id of `waits[0]`: ids count every wait ever queued, wrapping (far fewer than
    /// 2^32 wait at once).
    first: u32,
}

/// A lookup of flow `key` made at stream position `at` and packet time `ts`, for the flow
/// at probing index `pi` (generation `gen`: the index may have gone to another flow since).
pub(super) struct Wait {
    pub(super) at: u64,
    pub(super) ts: i64,
    pub(super) key: FlowKey,
    pub(super) pi: u32,
    pub(super) gen: u32,
    pub(super) kind: Kind,
}

pub(super) enum Kind {
    /// The flow's open lookup.
    Open,
    /// The flow's verdict on what is known, looking its ends up once more first when
    /// `refresh`.
    Verdict {
        refresh: bool,
        /// The flow and why it ended, when it ended before the answer.
        ended: Option<Box<(Flow, EndReason)>>,
        /// Counts of its packets the held counts had no room for.
        extra: Vec<PendingCount>,
    },
}

impl Settling {
    pub(super) fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }

    /// Queues a wait at this engine's position, returning its id; the first one holds
    /// learnings after it aside.
    pub(super) fn push(&mut self, w: Wait, endpoints: &SharedEndpoints) -> u32 {
        debug_assert!(self.waits.back().is_none_or(|b| b.at <= w.at));
        if self.waits.is_empty() {
            endpoints.hold(w.at);
        }
        self.waits.push_back(w);
        self.first.wrapping_add(self.waits.len() as u32 - 1)
    }

    /// The front wait, once its position is settled (see [`SharedEndpoints::settled`]).
    pub(super) fn due(&self, endpoints: &SharedEndpoints) -> Option<&Wait> {
        self.waits.front().filter(|w| endpoints.settled(w.at))
    }

    /// Takes the front wait out, to be answered: learnings stay held back to its position
    /// until [`rehold`](Self::rehold).
    pub(super) fn take(&mut self) -> Option<Wait> {
        let w = self.waits.pop_front()?;
        self.first = self.first.wrapping_add(1);
        Some(w)
    }

    /// Holds learnings back to the front wait (none once all are answered).
    pub(super) fn rehold(&self, endpoints: &SharedEndpoints) {
        endpoints.hold(self.waits.front().map_or(u64::MAX, |n| n.at));
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Wait> {
        self.waits.get_mut(id.wrapping_sub(self.first) as usize)
    }

    /// Parks flow `f`, ended for `reason`, in its verdict's wait `id`.
    pub(super) fn park(&mut self, id: u32, f: Flow, reason: EndReason) {
        match self.get_mut(id) {
            Some(Wait {
                kind: Kind::Verdict { ended, .. },
                ..
            }) => *ended = Some(Box::new((f, reason))),
            _ => debug_assert!(false, "a settling flow without its wait"),
        }
    }

    /// Adds counts the held counts of the flow waiting in `id` had no room for.
    pub(super) fn add_extra(&mut self, id: u32, c: PendingCount) {
        let Some(Wait {
            kind: Kind::Verdict { extra, .. },
            ..
        }) = self.get_mut(id)
        else {
            debug_assert!(false, "a settling flow without its wait");
            return;
        };
        match extra
            .iter_mut()
            .find(|p| p.minute == c.minute && p.tag == c.tag)
        {
            Some(p) => {
                p.packets = p.packets.saturating_add(c.packets);
                p.bytes += c.bytes;
                p.samples = p.samples.saturating_add(c.samples);
            }
            None => extra.push(c),
        }
    }
}
