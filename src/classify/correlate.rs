//! Correlation: what learns BitTorrent endpoints and looks them up. A flow identified with
//! strong evidence teaches its own ends and the peers and nodes its messages advertise (DHT
//! replies, tracker replies over HTTP and UDP, PEX); a flow whose payload says nothing either
//! way is BitTorrent by correlation when an end of it is a learned endpoint.

use super::endpoints::{Endpoint, Provenance, SharedEndpoints};
use super::{
    peers, peerwire, tracker_http, tracker_udp, Evidence, Method, Proto, Rules, Transport, Verdict,
};
use crate::decode::{self, Addr, IpPacket};
use crate::flow::{Classification, FlowKey, FlowState};

/// How one of two endpoints (`a` or `b`, of IP protocol `proto`) is known, if either is; the
/// better provenance of the two.
pub fn lookup_ends(
    endpoints: &SharedEndpoints,
    proto: u8,
    a: (Addr, u16),
    b: (Addr, u16),
    ts: i64,
) -> Option<Provenance> {
    let e = |(addr, port)| Endpoint { addr, port, proto };
    let (a, b) = (endpoints.lookup(&e(a), ts), endpoints.lookup(&e(b), ts));
    a.into_iter().chain(b).min()
}

/// Looks the flow's ends up again when it is decided without evidence: a peer identified
/// after the flow began (in the same flow's lifetime) correlates it too. Matters most for
/// sampled input, where a flow's first sample rarely shows the evidence that names its peer.
pub fn refresh(class: &mut Classification, key: &FlowKey, endpoints: &SharedEndpoints, ts: i64) {
    if class.correlated.is_some() || class.evidence {
        return;
    }
    let (lo, hi) = ((key.lo, key.lo_port), (key.hi, key.hi_port));
    class.correlated = lookup_ends(endpoints, key.proto, lo, hi, ts);
}

/// How an end of flow `key` is known at packet time `ts`, as one engine reading the whole
/// stream would have answered at stream position `at` (see [`SharedEndpoints::lookup_at`]).
pub fn key_ends_at(
    endpoints: &SharedEndpoints,
    key: &FlowKey,
    ts: i64,
    at: u64,
) -> Option<Provenance> {
    let e = |addr, port| Endpoint {
        addr,
        port,
        proto: key.proto,
    };
    let a = endpoints.lookup_at(&e(key.lo, key.lo_port), ts, at);
    let b = endpoints.lookup_at(&e(key.hi, key.hi_port), ts, at);
    a.into_iter().chain(b).min()
}

/// The verdict of a flow whose payload said nothing either way: BitTorrent by correlation
/// when an end of it is a learned BitTorrent endpoint, else its port rule, if any. Records
/// what it rests on in `class.proof`.
pub fn fallback(rules: &Rules, class: &mut Classification, flow: &FlowState) -> Verdict {
    if class.evidence {
        return Verdict::OTHER;
    }
    if let Some(how) = class.correlated {
        class.proof = match how {
            Provenance::Observed => Evidence::ObservedPeer,
            Provenance::Advertised => Evidence::AdvertisedPeer,
            Provenance::DhtNode => Evidence::DhtNode,
        };
        return Verdict {
            proto: if flow.udp {
                Proto::Utp
            } else {
                Proto::PeerwireMse
            },
            method: Method::Correlation,
        };
    }
    match flow
        .port_rule
        .checked_sub(1)
        .and_then(|i| rules.ports.get(usize::from(i)))
    {
        Some(rule) => {
            class.proof = Evidence::Port;
            Verdict {
                proto: rule.proto,
                method: Method::Port,
            }
        }
        // Sampled: the samples may have missed what would have shown it (see
        // `Method::Unresolved`).
        None if class.sampled => Verdict::UNRESOLVED,
        None => Verdict::OTHER,
    }
}

/// Whether an endpoint may be learned: not a well-known service's port (a poisoned peer list
/// naming a web or DNS server must not turn its traffic into BitTorrent). Addresses that
/// cannot be a peer's are refused by the table itself.
pub fn learnable(rules: &Rules, port: u16) -> bool {
    !rules.is_service(Transport::Tcp, port) && !rules.is_service(Transport::Udp, port)
}

/// Learns the endpoints of a flow just identified with strong evidence. A TCP flow's
/// initiator speaks from an ephemeral port, so only the side it connected to is learned (for
/// TCP and UDP: clients take uTP and DHT on their TCP listen port); both ends of a UDP flow
/// are listening sockets.
pub fn learn_flow(
    endpoints: &SharedEndpoints,
    rules: &Rules,
    ip: &IpPacket<'_>,
    from_src: bool,
    ts: i64,
) {
    let (responder, initiator) = if from_src {
        ((ip.dst, ip.dport), (ip.src, ip.sport))
    } else {
        ((ip.src, ip.sport), (ip.dst, ip.dport))
    };
    let learn = |(addr, port): (u128, u16)| {
        if learnable(rules, port) {
            endpoints.learn_peer(addr, port, Provenance::Observed, ts);
        }
    };
    learn(responder);
    if ip.proto == decode::IPPROTO_UDP {
        learn(initiator);
    }
}

/// Learns the peers and nodes advertised in DHT messages, tracker replies and PEX messages of
/// a flow identified with strong evidence: peers for both transports, DHT nodes for UDP only.
pub fn learn_advertised(
    endpoints: &SharedEndpoints,
    rules: &Rules,
    proto: Proto,
    ip: &IpPacket<'_>,
    ts: i64,
) {
    let mut learn = |addr: [u8; 16], port: u16, node: bool| {
        if !learnable(rules, port) {
            return;
        }
        let addr = u128::from_be_bytes(addr);
        if node {
            let e = Endpoint {
                addr,
                port,
                proto: decode::IPPROTO_UDP,
            };
            endpoints.learn(e, Provenance::DhtNode, ts);
        } else {
            endpoints.learn_peer(addr, port, Provenance::Advertised, ts);
        }
    };
    let p = ip.payload;
    match proto {
        Proto::Dht => peers::for_each_advertised_peer(p, &mut learn),
        Proto::TrackerHttp => tracker_http::for_each_tracker_reply_peer(p, &mut learn),
        // BEP 11 PEX in plaintext peer wire: `added` and `added6` of a ut_pex message.
        Proto::Peerwire => peerwire::for_each_pex_peer(p, &mut |a, port| learn(a, port, false)),
        Proto::TrackerUdp => {
            tracker_udp::for_each_announce_peer(p, ip.v6, &mut |a, port| learn(a, port, false))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::endpoints::EndpointTable;
    use crate::decode::{v4_addr, Fragment, IPPROTO_TCP, IPPROTO_UDP};
    use crate::flow::{Direction, Stage};

    fn table() -> SharedEndpoints {
        SharedEndpoints::from_table(EndpointTable::new(1_000_000_000_000, 1000))
    }

    fn rules() -> Rules {
        Rules::builtin().expect("builtin rules")
    }

    fn udp<'a>(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, p: &'a [u8]) -> IpPacket<'a> {
        IpPacket {
            src: v4_addr(src),
            dst: v4_addr(dst),
            v6: false,
            proto: IPPROTO_UDP,
            sport,
            dport,
            tcp: None,
            frag: Fragment::Whole,
            payload: p,
        }
    }

    #[test]
    fn a_bep15_announce_reply_teaches_its_peers() {
        let mut reply = vec![0, 0, 0, 1, 9, 9, 9, 9, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2];
        reply.extend_from_slice(&[203, 0, 113, 5, 0x1a, 0xe1]); // 203.0.113.5:6881
        reply.extend_from_slice(&[198, 51, 100, 7, 0, 80]); // port 80: a service, refused
        let mut peers = Vec::new();
        tracker_udp::for_each_announce_peer(&reply, false, &mut |a, p| peers.push((a, p)));
        assert_eq!(peers.len(), 2);
        // Not an announce response (action 3, an error): nothing.
        let mut err = reply.clone();
        err[3] = 3;
        tracker_udp::for_each_announce_peer(&err, false, &mut |_, _| {
            panic!("no peers in an error")
        });

        let (ends, r) = (table(), rules());
        let ip = udp([192, 0, 2, 1], 6969, [192, 0, 2, 2], 40000, &reply);
        learn_advertised(&ends, &r, Proto::TrackerUdp, &ip, 0);
        let peer = (v4_addr([203, 0, 113, 5]), 6881);
        let web = (v4_addr([198, 51, 100, 7]), 80);
        let tcp = |e| lookup_ends(&ends, IPPROTO_TCP, e, (v4_addr([192, 0, 2, 9]), 1), 5);
        assert_eq!(tcp(peer), Some(Provenance::Advertised));
        assert_eq!(tcp(web), None);
    }

    #[test]
    fn a_tcp_flow_teaches_its_responder_a_udp_flow_both_ends() {
        let (ends, r) = (table(), rules());
        let a = ([203, 0, 113, 1], 50000u16);
        let b = ([203, 0, 113, 2], 6881u16);
        let mut ip = udp(a.0, a.1, b.0, b.1, &[]);
        ip.proto = IPPROTO_TCP;
        learn_flow(&ends, &r, &ip, true, 0);
        let known = |e: ([u8; 4], u16), proto| {
            ends.lookup(
                &Endpoint {
                    addr: v4_addr(e.0),
                    port: e.1,
                    proto,
                },
                0,
            )
        };
        assert_eq!(known(b, IPPROTO_TCP), Some(Provenance::Observed));
        assert_eq!(known(a, IPPROTO_TCP), None);
        ip.proto = IPPROTO_UDP;
        learn_flow(&ends, &r, &ip, true, 0);
        assert_eq!(known(a, IPPROTO_UDP), Some(Provenance::Observed));
    }

    #[test]
    fn fallback_is_correlation_then_port_then_other() {
        let r = rules();
        let mut class = Classification {
            stage: Stage::Probing(0),
            evidence: false,
            proof: Evidence::None,
            correlated: Some(Provenance::DhtNode),
            sampled: false,
        };
        let mut state = FlowState {
            first_ts: 0,
            last_ts: 0,
            packets: 0,
            bytes: 0,
            src_is_lo: true,
            dir_tag: [Direction::Unknown; 2],
            fins: 0,
            rst: false,
            udp: true,
            port_rule: 0,
            host_hash: [0; 2],
            hosts_minute: 0,
        };
        let v = fallback(&r, &mut class, &state);
        assert_eq!((v.proto, v.method), (Proto::Utp, Method::Correlation));
        assert_eq!(class.proof, Evidence::DhtNode);
        class.correlated = None;
        class.proof = Evidence::None;
        assert_eq!(fallback(&r, &mut class, &state), Verdict::OTHER);
        // Sampled, nothing either way: unresolved, not "not BitTorrent".
        class.sampled = true;
        assert_eq!(fallback(&r, &mut class, &state), Verdict::UNRESOLVED);
        if !r.ports.is_empty() {
            state.port_rule = 1;
            let v = fallback(&r, &mut class, &state);
            assert_eq!((v.proto, v.method), (r.ports[0].proto, Method::Port));
            assert_eq!(class.proof, Evidence::Port);
        }
        // Payload evidence against BitTorrent wins over everything, sampled or not.
        class.evidence = true;
        class.correlated = Some(Provenance::Observed);
        assert_eq!(fallback(&r, &mut class, &state), Verdict::OTHER);
    }
}
