//! What a finished flow leaves behind (`--flows`), and where it goes.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::EndReason;
use crate::classify::{Evidence, Verdict};
use crate::decode::{Addr, IPPROTO_TCP, IPPROTO_UDP};

/// The transport of a flow as `--flows` names it. Ordered as the names sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4 {
    Esp,
    Gre,
    Icmp,
    Icmpv6,
    /// Any other IP protocol (its number).
    Ip(u8),
    Tcp,
    Udp,
}

impl L4 {
    pub fn of(proto: u8) -> L4 {
        match proto {
            IPPROTO_TCP => L4::Tcp,
            IPPROTO_UDP => L4::Udp,
            1 => L4::Icmp,
            58 => L4::Icmpv6,
            47 => L4::Gre,
            50 => L4::Esp,
            p => L4::Ip(p),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Icmp => "icmp",
            L4::Icmpv6 => "icmpv6",
            L4::Gre => "gre",
            L4::Esp => "esp",
            L4::Ip(_) => "ip",
        }
    }
}

impl fmt::Display for L4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<&str> for L4 {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// A finished flow, as written to `--flows`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    pub first_ts: i64,
    pub last_ts: i64,
    pub l4: L4,
    pub src: Addr,
    pub src_port: u16,
    pub dst: Addr,
    pub dst_port: u16,
    pub verdict: Verdict,
    pub packets: u64,
    pub bytes: u64,
    pub end: EndReason,
    /// What proved the verdict.
    pub evidence: Evidence,
}

impl FlowRecord {
    /// The order flows ending together are written in (they leave the table in hash order).
    pub fn order(a: &FlowRecord, b: &FlowRecord) -> std::cmp::Ordering {
        (a.first_ts, a.src, a.src_port, a.dst, a.dst_port, a.l4)
            .cmp(&(b.first_ts, b.src, b.src_port, b.dst, b.dst_port, b.l4))
    }
}

/// Where finished flows go.
pub trait FlowSink {
    fn write(&mut self, r: &FlowRecord) -> io::Result<()>;

    /// Whether records must come in [`FlowRecord::order`] where flows end together (false for
    /// a sink that only counts them: the engine then does not sort).
    fn ordered(&self) -> bool {
        true
    }
}

impl FlowSink for Vec<FlowRecord> {
    fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        self.push(r.clone());
        Ok(())
    }
}

/// A flow sink that can be read while the pipeline still owns it (tests, benches).
#[derive(Clone, Default)]
pub struct SharedFlows(pub Arc<std::sync::Mutex<Vec<FlowRecord>>>);

impl FlowSink for SharedFlows {
    fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("flow list poisoned"))?
            .push(r.clone());
        Ok(())
    }
}

impl SharedFlows {
    pub fn take(&self) -> Vec<FlowRecord> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l4_names_and_order_match_the_old_strings() {
        let protos = [6u8, 17, 1, 58, 47, 50, 132, 2];
        let names = ["tcp", "udp", "icmp", "icmpv6", "gre", "esp", "ip", "ip"];
        for (p, n) in protos.iter().zip(names) {
            assert_eq!(L4::of(*p).to_string(), n);
            assert!(L4::of(*p) == n);
        }
        // Sorting by the enum sorts by the name, as sorting the names did.
        let mut by_enum: Vec<L4> = protos.iter().map(|&p| L4::of(p)).collect();
        by_enum.sort();
        let mut by_name: Vec<&str> = names.to_vec();
        by_name.sort();
        let sorted: Vec<&str> = by_enum.iter().map(|l| l.name()).collect();
        assert_eq!(sorted, by_name);
    }
}
