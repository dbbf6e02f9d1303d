//! The engine's settings.

use crate::classify::endpoints;
use crate::flow::table::Timeouts;
use crate::flow::HomeNet;

const NS: i64 = 1_000_000_000;
/// Pipeline settings; `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub home_net: HomeNet,
    /// Idle timeout of TCP flows.
    pub tcp_idle_ns: i64,
    /// Idle timeout of UDP and other flows.
    pub udp_idle_ns: i64,
    /// How long a TCP flow stays after FIN both ways or RST (late retransmissions).
    pub linger_ns: i64,
    /// Most flows in the table; when full, the longest-idle sixteenth is evicted.
    pub max_flows: usize,
    /// How long a fragmented datagram is remembered.
    pub frag_timeout_ns: i64,
    pub max_frags: usize,
    /// How often (in packet time) expired flows are swept out.
    pub sweep_interval_ns: i64,
    /// How long a learned BitTorrent endpoint is trusted (packet time).
    pub endpoint_ttl_ns: i64,
    /// Most learned endpoints kept.
    pub max_endpoints: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            home_net: HomeNet::default(),
            tcp_idle_ns: 300 * NS,
            udp_idle_ns: 120 * NS,
            linger_ns: 5 * NS,
            max_flows: 1 << 20,
            frag_timeout_ns: 30 * NS,
            max_frags: 1 << 16,
            sweep_interval_ns: 5 * NS,
            endpoint_ttl_ns: endpoints::DEFAULT_TTL_NS,
            max_endpoints: endpoints::DEFAULT_MAX,
        }
    }
}

impl Config {
    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            tcp_idle_ns: self.tcp_idle_ns,
            udp_idle_ns: self.udp_idle_ns,
            linger_ns: self.linger_ns,
        }
    }
}
