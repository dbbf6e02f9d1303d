//! Endpoint correlation through the whole pipeline: peers advertised in DHT replies are
//! learned, a later flow to one of them is BitTorrent by correlation, a flow to the same host
//! on another port is not, and a flood of advertised peers keeps the table within its bound.

use std::sync::Arc;

use bittap::capture::RawPacket;
use bittap::classify::{Evidence, Method, Proto, Rules};
use bittap::engine::{Config, Engine};
use bittap::flow::record::SharedFlows;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_717_149_600 * S;

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(l4);
    v
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = sp.to_be_bytes().to_vec();
    l4.extend_from_slice(&dp.to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    ipv4(17, src, dst, &l4)
}

fn tcp(
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = sp.to_be_bytes().to_vec();
    l4.extend_from_slice(&dp.to_be_bytes());
    l4.extend_from_slice(&seq.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    l4.extend_from_slice(payload);
    ipv4(6, src, dst, &l4)
}

/// A get_peers response advertising `peers` (compact IPv4 entries).
fn dht_values(peers: &[([u8; 4], u16)]) -> Vec<u8> {
    let mut m = b"d1:rd2:id20:abcdefghij0123456789".to_vec();
    m.extend_from_slice(b"5:token8:aoeusnth6:valuesl");
    for (ip, port) in peers {
        m.extend_from_slice(b"6:");
        m.extend_from_slice(ip);
        m.extend_from_slice(&port.to_be_bytes());
    }
    m.extend_from_slice(b"ee1:t2:aa1:y1:re");
    m
}

fn feed(p: &mut Engine, ts: i64, frame: &[u8]) {
    p.process(&RawPacket {
        ts_ns: ts,
        wire_len: frame.len() as u32,
        linktype: 101,
        data: frame,
    });
}

/// Uniformly random-looking bytes (xorshift).
fn random(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

#[test]
fn advertised_peer_is_found_by_correlation_and_only_on_its_port() {
    let rules = Arc::new(Rules::builtin().expect("rules"));
    let mut p = Engine::new(Config::default(), rules);
    let flows = SharedFlows::default();
    p.set_flow_sink(Box::new(flows.clone()));
    let (me, node, peer) = ([10, 0, 0, 1], [192, 0, 2, 7], [198, 51, 100, 9]);
    let query = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
    feed(&mut p, T0, &udp(me, 40000, node, 41000, query));
    feed(
        &mut p,
        T0 + S / 10,
        &udp(node, 41000, me, 40000, &dht_values(&[(peer, 52000)])),
    );
    // Ten minutes later: a TCP flow to the advertised peer, and one to the same host on
    // another port, both opening with what could be an MSE key (300 random-looking bytes) and
    // then nothing: the payload says nothing either way. A third flow to the advertised peer
    // opens with 1000-byte segments, which BitTorrent never sends first: not BitTorrent, peer
    // or not.
    for (i, (port, seg, segs)) in [(52000u16, 300, 1u32), (52001, 300, 1), (52000, 1000, 30)]
        .into_iter()
        .enumerate()
    {
        let t = T0 + 600 * S + i as i64 * S;
        let sp = 50000 + i as u16;
        feed(&mut p, t, &tcp(me, sp, peer, port, 0x02, 100, &[]));
        feed(&mut p, t + 1, &tcp(peer, port, me, sp, 0x12, 500, &[]));
        for k in 0..segs {
            feed(
                &mut p,
                t + 2 + i64::from(k),
                &tcp(
                    me,
                    sp,
                    peer,
                    port,
                    0x18,
                    101 + k * seg as u32,
                    &random(seg, k + 1),
                ),
            );
        }
    }
    p.finish().expect("finish");
    let flows = flows.take();
    let verdict = |sport: u16| {
        flows
            .iter()
            .find(|f| f.src_port == sport)
            .map(|f| (f.verdict.proto, f.verdict.method, f.evidence))
            .expect("flow")
    };
    assert_eq!(
        verdict(40000),
        (Proto::Dht, Method::Signature, Evidence::Krpc)
    );
    assert_eq!(
        verdict(50000),
        (
            Proto::PeerwireMse,
            Method::Correlation,
            Evidence::AdvertisedPeer
        )
    );
    assert_eq!(verdict(50001).0, Proto::Other);
    assert_eq!(
        verdict(50002),
        (Proto::Other, Method::None, Evidence::NotBittorrent)
    );
}

#[test]
fn flood_of_advertised_peers_stays_within_the_bound() {
    let rules = Arc::new(Rules::builtin().expect("rules"));
    let cfg = Config {
        max_endpoints: 10_000,
        ..Config::default()
    };
    let mut p = Engine::new(cfg, rules);
    let (me, node) = ([10, 0, 0, 1], [192, 0, 2, 7]);
    // The node's reply is validated KRPC: both ends of that UDP flow are observed endpoints.
    let observed = bittap::classify::endpoints::Endpoint {
        addr: 0xffff_c000_0207,
        port: 41000,
        proto: 17,
    };
    let mut n = 0u32;
    for msg in 0..2000u32 {
        let peers: Vec<([u8; 4], u16)> = (0..100)
            .map(|_| {
                n += 1;
                (
                    [100, (n >> 16) as u8, (n >> 8) as u8, n as u8],
                    6881 + (n % 7) as u16,
                )
            })
            .collect();
        feed(
            &mut p,
            T0 + i64::from(msg) * S / 100,
            &udp(node, 41000, me, 40000, &dht_values(&peers)),
        );
        assert!(p.endpoints().len() <= 10_000);
    }
    // 200,000 advertised peers (two transports each) went through a table of 10,000.
    assert!(
        p.endpoints().evicted() > 380_000,
        "evicted {}",
        p.endpoints().evicted()
    );
    // Advertisements have three quarters of the bound; they never evict what was observed.
    assert!(p.endpoints().len() > 6_000, "{}", p.endpoints().len());
    assert!(p.endpoints().knows(&observed, T0 + 20 * S));
}
