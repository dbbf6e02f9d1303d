//! The traffic of each crafted capture.

use std::net::SocketAddr;

use crate::model::{Capture, Expect, Kind, DHT, L4, OTHER, PEERWIRE, PORT_ONLY, T0_NS};
use crate::pkt::*;

/// Records a layer-3 segment, wrapped by `enc`, `dt_us` after the previous record.
pub fn send(cap: &mut Capture, enc: &mut Encap, dt_us: u64, seg: Seg) {
    let frame = enc.wrap(&seg.l3, seg.from_a);
    cap.put(dt_us, frame, seg.kind());
}

pub fn tcp_flow(
    cap: &mut Capture,
    rng: &mut Rng,
    a: SocketAddr,
    b: SocketAddr,
    expect: Expect,
    note: &str,
) -> TcpFlow {
    let id = cap.flow(L4::Tcp, a, b, expect, note);
    TcpFlow::new(id, a, b, rng)
}

pub fn udp_flow(
    cap: &mut Capture,
    rng: &mut Rng,
    a: SocketAddr,
    b: SocketAddr,
    expect: Expect,
    note: &str,
) -> UdpFlow {
    let id = cap.flow(L4::Udp, a, b, expect, note);
    UdpFlow::new(id, a, b, rng)
}

/// How the initiator's handshake is sent.
#[derive(Clone, Copy)]
pub enum Split {
    Whole,
    /// Two in-order segments, the first `n` bytes long.
    At(usize),
    /// Two segments, the second (68-n bytes) captured first, then the first, then a
    /// retransmission of the first.
    OooRetx(usize),
}

pub struct Session {
    pub split: Split,
    pub pieces: usize,
    pub piece_len: usize,
    /// Extra wait before each request (µs).
    pub gap_us: u64,
}

pub fn open(cap: &mut Capture, enc: &mut Encap, f: &mut TcpFlow) {
    send(cap, enc, 1000, f.syn());
    send(cap, enc, 20_000, f.synack());
    send(cap, enc, 20_000, f.ack(A));
}

pub fn close(cap: &mut Capture, enc: &mut Encap, f: &mut TcpFlow) {
    send(cap, enc, 5_000, f.fin(A));
    send(cap, enc, 20_000, f.fin(B));
    send(cap, enc, 20_000, f.ack(A));
}

/// Sends the initiator's handshake according to `split`.
fn send_hs(cap: &mut Capture, enc: &mut Encap, f: &mut TcpFlow, hs: &[u8], split: Split) {
    match split {
        Split::Whole => send(cap, enc, 300, f.data(A, hs)),
        Split::At(n) => {
            send(cap, enc, 300, f.data(A, &hs[..n]));
            send(cap, enc, 200, f.data(A, &hs[n..]));
        }
        Split::OooRetx(n) => {
            let seq = f.nxt[0];
            let ack = f.nxt[1];
            let first = f.raw(A, seq, ack, PSH | ACK, &hs[..n]);
            let second = f.raw(A, seq.wrapping_add(n as u32), ack, PSH | ACK, &hs[n..]);
            f.nxt[0] = seq.wrapping_add(hs.len() as u32);
            send(cap, enc, 300, second);
            // duplicate ACK from b: still waiting for `seq`
            let dup = f.raw(B, f.nxt[1], seq, ACK, &[]);
            send(cap, enc, 20_000, dup);
            send(cap, enc, 200, first);
            // spurious retransmission of the first segment
            let retx = f.raw(A, seq, ack, PSH | ACK, &hs[..n]);
            send(cap, enc, 30_000, retx);
        }
    }
}

/// A complete peer-wire connection: TCP open, handshakes, bitfield, interested, unchoke,
/// request/piece rounds, TCP close.
pub fn pw_session(cap: &mut Capture, enc: &mut Encap, f: &mut TcpFlow, rng: &mut Rng, s: &Session) {
    let info = rng.arr20();
    let hs_a = handshake(&info, &rng.peer_id("-TR3000-"));
    let hs_b = handshake(&info, &rng.peer_id("-qB4630-"));
    open(cap, enc, f);
    send_hs(cap, enc, f, &hs_a, s.split);
    send(cap, enc, 20_000, f.data(B, &hs_b));
    send(cap, enc, 300, f.data(B, &pw_bitfield(&[0xff, 0xf0])));
    send(cap, enc, 20_000, f.data(A, &pw_msg(2, &[]))); // interested
    send(cap, enc, 20_000, f.data(B, &pw_msg(1, &[]))); // unchoke
    for i in 0..s.pieces {
        cap.wait_us(s.gap_us);
        let begin = (i * s.piece_len) as u32;
        send(
            cap,
            enc,
            20_000,
            f.data(A, &pw_request(0, begin, s.piece_len as u32)),
        );
        let block = rng.bytes(s.piece_len);
        send(cap, enc, 20_000, f.data(B, &pw_piece(0, begin, &block)));
        send(cap, enc, 500, f.ack(A));
    }
    close(cap, enc, f);
}

/// A short peer-wire connection: open, handshake both ways, interested, ACK, close
/// (10 packets).
pub fn pw_short(cap: &mut Capture, enc: &mut Encap, f: &mut TcpFlow, rng: &mut Rng) {
    let info = rng.arr20();
    let hs_a = handshake(&info, &rng.peer_id("-TR3000-"));
    let hs_b = handshake(&info, &rng.peer_id("-TR2940-"));
    open(cap, enc, f);
    send(cap, enc, 300, f.data(A, &hs_a));
    send(cap, enc, 20_000, f.data(B, &hs_b));
    send(cap, enc, 20_000, f.data(A, &pw_msg(2, &[])));
    send(cap, enc, 20_000, f.ack(B));
    close(cap, enc, f);
}

/// DHT ping query, its response, and a find_node query (3 packets).
pub fn dht_three(cap: &mut Capture, enc: &mut Encap, u: &mut UdpFlow, rng: &mut Rng) {
    let id_a = rng.arr20();
    let id_b = rng.arr20();
    let target = rng.arr20();
    send(
        cap,
        enc,
        1000,
        u.dgram(A, &krpc_query("ping", &[("id", id_a.to_vec())], b"pp")),
    );
    send(
        cap,
        enc,
        25_000,
        u.dgram(B, &krpc_response(&[("id", id_b.to_vec())], b"pp")),
    );
    send(
        cap,
        enc,
        10_000,
        u.dgram(
            A,
            &krpc_query(
                "find_node",
                &[("id", id_a.to_vec()), ("target", target.to_vec())],
                b"fn",
            ),
        ),
    );
}

fn new_cap(name: &str) -> (Capture, Rng) {
    (Capture::new(T0_NS), Rng::new(name))
}

fn one(split: Split, pieces: usize, piece_len: usize) -> Session {
    Session {
        split,
        pieces,
        piece_len,
        gap_us: 0,
    }
}

// ---------------------------------------------------------------------------------------------

pub fn handshake_split_1_67() -> Capture {
    let (mut cap, mut rng) = new_cap("handshake_split_1_67");
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 2, 50123),
        v4(10, 1, 0, 3, 41234),
        PEERWIRE,
        "initiator handshake split 1+67 bytes",
    );
    pw_session(
        &mut cap,
        &mut Encap::Eth,
        &mut f,
        &mut rng,
        &one(Split::At(1), 1, 1024),
    );
    cap
}

pub fn handshake_split_20_48_ooo() -> Capture {
    let (mut cap, mut rng) = new_cap("handshake_split_20_48_ooo");
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 4, 50124),
        v4(10, 1, 0, 5, 41235),
        PEERWIRE,
        "handshake split 20+48, 48-byte segment first, 20-byte segment retransmitted",
    );
    pw_session(
        &mut cap,
        &mut Encap::Eth,
        &mut f,
        &mut rng,
        &one(Split::OooRetx(20), 1, 1024),
    );
    cap
}

pub fn one_direction() -> Capture {
    let (mut cap, mut rng) = new_cap("one_direction");
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 6, 50125),
        v4(10, 1, 0, 7, 41236),
        PEERWIRE,
        "only the initiator's packets captured",
    );
    cap.only_from_a = Some(true);
    pw_session(
        &mut cap,
        &mut Encap::Eth,
        &mut f,
        &mut rng,
        &one(Split::Whole, 3, 1024),
    );
    let mut g = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 16, 50126),
        v4(10, 1, 0, 17, 41237),
        PEERWIRE,
        "only the responder's packets captured (SYN-ACK, handshake, pieces; no SYN)",
    );
    cap.only_from_a = Some(false);
    cap.wait_us(500_000);
    pw_session(
        &mut cap,
        &mut Encap::Eth,
        &mut g,
        &mut rng,
        &one(Split::Whole, 3, 1024),
    );
    cap.only_from_a = None;
    cap
}

pub fn vlan_qinq_mpls_pppoe() -> Capture {
    let (mut cap, mut rng) = new_cap("vlan_qinq_mpls_pppoe");
    let cases: Vec<(SocketAddr, SocketAddr, Encap, &str)> = vec![
        (
            v4(10, 1, 1, 2, 50201),
            v4(10, 1, 1, 3, 41301),
            Encap::Vlan(vec![(0x8100, 100)]),
            "802.1Q VLAN 100",
        ),
        (
            v4(10, 1, 1, 2, 50202),
            v4(10, 1, 1, 3, 41302),
            Encap::Vlan(vec![(0x88a8, 200), (0x8100, 100)]),
            "QinQ: 802.1ad 0x88a8 VLAN 200 outer, 0x8100 VLAN 100 inner",
        ),
        (
            v4(10, 1, 1, 2, 50203),
            v4(10, 1, 1, 3, 41303),
            Encap::Vlan(vec![(0x88a8, 300), (0x8100, 301), (0x8100, 302)]),
            "three tags: 0x88a8 VLAN 300, 0x8100 VLAN 301, 0x8100 VLAN 302",
        ),
        (
            v4(10, 1, 1, 2, 50204),
            v4(10, 1, 1, 3, 41304),
            Encap::Mpls(vec![1000, 2000]),
            "MPLS 0x8847, labels 1000 and 2000 (bottom of stack), IPv4",
        ),
        (
            v4(10, 1, 1, 2, 50205),
            v4(10, 1, 1, 3, 41305),
            Encap::Pppoe(0x1234),
            "PPPoE session 0x1234 (0x8864), PPP 0x0021 IPv4",
        ),
        (
            v6("2001:db8:1::2", 50206),
            v6("2001:db8:1::3", 41306),
            Encap::Pppoe(0x1235),
            "PPPoE session 0x1235 (0x8864), PPP 0x0057 IPv6",
        ),
    ];
    for (a, b, mut enc, note) in cases {
        let mut f = tcp_flow(&mut cap, &mut rng, a, b, PEERWIRE, note);
        pw_short(&mut cap, &mut enc, &mut f, &mut rng);
        cap.wait_us(100_000);
    }
    cap
}

pub fn tunnels() -> Capture {
    let (mut cap, mut rng) = new_cap("tunnels");
    let ga = [192, 0, 2, 1];
    let gb = [192, 0, 2, 2];
    let ea = [198, 51, 100, 1];
    let eb = [198, 51, 100, 2];
    let cases: Vec<(u16, Encap, &str)> = vec![
        (
            50301,
            Encap::tunnel(
                TunnelKind::Gre {
                    key: None,
                    seq: false,
                },
                ga,
                gb,
            ),
            "GRE (192.0.2.1<->192.0.2.2), proto 0x0800",
        ),
        (
            50302,
            Encap::tunnel(
                TunnelKind::Gre {
                    key: Some(0x0000_beef),
                    seq: true,
                },
                ga,
                gb,
            ),
            "GRE with key 0xbeef and sequence number, proto 0x0800",
        ),
        (
            50303,
            Encap::tunnel(TunnelKind::GreTeb, ga, gb),
            "GRE transparent Ethernet bridging 0x6558, inner Ethernet",
        ),
        (
            50304,
            Encap::tunnel(TunnelKind::Erspan2 { session: 17 }, ea, eb),
            "ERSPAN II (GRE 0x88be + sequence, 8-byte header, session 17)",
        ),
        (
            50305,
            Encap::tunnel(
                TunnelKind::Erspan3 {
                    session: 18,
                    subheader: false,
                },
                ea,
                eb,
            ),
            "ERSPAN III (GRE 0x22eb + sequence, 12-byte header, O=0, session 18)",
        ),
        (
            50306,
            Encap::tunnel(
                TunnelKind::Erspan3 {
                    session: 19,
                    subheader: true,
                },
                ea,
                eb,
            ),
            "ERSPAN III with O=1 and 8-byte platform-specific subheader, session 19",
        ),
        (
            50307,
            Encap::tunnel(
                TunnelKind::Vxlan {
                    vni: 4242,
                    sport: 49877,
                },
                [203, 0, 113, 1],
                [203, 0, 113, 2],
            ),
            "VXLAN (UDP 49877->4789, VNI 4242), inner Ethernet",
        ),
    ];
    for (i, (sport, mut enc, note)) in cases.into_iter().enumerate() {
        let a = v4(10, 1, 2, 2, sport);
        let b = v4(10, 1, 2, 3, 41401 + i as u16);
        let mut f = tcp_flow(&mut cap, &mut rng, a, b, PEERWIRE, note);
        pw_short(&mut cap, &mut enc, &mut f, &mut rng);
        cap.wait_us(100_000);
    }
    cap
}

fn padn(len: usize) -> Vec<u8> {
    // PadN option filling an extension header payload of `len` bytes (len >= 6).
    let mut v = vec![1u8, (len - 2) as u8];
    v.resize(len, 0);
    v
}

pub fn ipv6_ext() -> Capture {
    use etherparse::{IpNumber, Ipv6RawExtHeader, Ipv6RoutingExtensions};
    let (mut cap, mut rng) = new_cap("ipv6_ext");
    let hbh = Ipv6RawExtHeader::new_raw(IpNumber::TCP, &padn(6)).expect("valid ext");
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v6("2001:db8:2::2", 50401),
        v6("2001:db8:2::3", 41501),
        PEERWIRE,
        "every packet has a hop-by-hop options header (PadN)",
    );
    f.exts.hop_by_hop_options = Some(hbh);
    pw_short(&mut cap, &mut Encap::Eth, &mut f, &mut rng);

    // Routing header type 2 (one address, segments left 0) + destination options.
    let mut rt = vec![2u8, 0, 0, 0, 0, 0];
    let home: std::net::Ipv6Addr = "2001:db8:2::3".parse().expect("literal");
    rt.extend_from_slice(&home.octets());
    let routing = Ipv6RoutingExtensions {
        routing: Ipv6RawExtHeader::new_raw(IpNumber::TCP, &rt).expect("valid ext"),
        final_destination_options: Some(
            Ipv6RawExtHeader::new_raw(IpNumber::TCP, &padn(6)).expect("valid ext"),
        ),
    };
    let mut g = tcp_flow(
        &mut cap,
        &mut rng,
        v6("2001:db8:2::2", 50402),
        v6("2001:db8:2::3", 41502),
        PEERWIRE,
        "every packet has a routing header (type 2, segments left 0) then destination options",
    );
    g.exts.routing = Some(routing);
    cap.wait_us(200_000);
    pw_short(&mut cap, &mut Encap::Eth, &mut g, &mut rng);

    let mut u = udp_flow(
        &mut cap,
        &mut rng,
        v6("2001:db8:2::4", 50403),
        v6("2001:db8:2::5", 41503),
        DHT,
        "DHT ping query and response, each with a destination options header",
    );
    u.exts.destination_options =
        Some(Ipv6RawExtHeader::new_raw(IpNumber::UDP, &padn(14)).expect("valid ext"));
    let id_a = rng.arr20();
    let id_b = rng.arr20();
    cap.wait_us(200_000);
    send(
        &mut cap,
        &mut Encap::Eth,
        0,
        u.dgram(A, &krpc_query("ping", &[("id", id_a.to_vec())], b"p6")),
    );
    send(
        &mut cap,
        &mut Encap::Eth,
        30_000,
        u.dgram(B, &krpc_response(&[("id", id_b.to_vec())], b"p6")),
    );
    cap
}

/// A get_peers query padded to `total` bytes by a `pad` argument.
fn big_get_peers(rng: &mut Rng, total: usize, t: &[u8]) -> Vec<u8> {
    let id = rng.arr20().to_vec();
    let ih = rng.arr20().to_vec();
    let base = krpc_query(
        "get_peers",
        &[
            ("id", id.clone()),
            ("info_hash", ih.clone()),
            ("pad", vec![]),
        ],
        t,
    );
    // "3:pad0:" -> "3:padN:<N bytes>"; the length prefix grows with N.
    let mut n = total - base.len();
    while base.len() + n + format!("{n}").len() - 1 > total {
        n -= 1;
    }
    let pad = vec![b'x'; n];
    krpc_query(
        "get_peers",
        &[("id", id), ("info_hash", ih), ("pad", pad)],
        t,
    )
}

fn put_frags(cap: &mut Capture, frags: Vec<Vec<u8>>, order: &[usize], kind: Kind, dt: u64) {
    for &i in order {
        cap.put(dt, eth(&frags[i]), kind);
    }
}

pub fn fragments() -> Capture {
    let (mut cap, mut rng) = new_cap("fragments");
    // 1. IPv4 UDP datagram of 3000 bytes of payload in 3 fragments, in order.
    let mut u = udp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 3, 2, 50501),
        v4(10, 1, 3, 3, 41601),
        DHT,
        "3000-byte get_peers query in 3 IPv4 fragments (in order), then a small response",
    );
    let q = big_get_peers(&mut rng, 3000, b"aa");
    let seg = u.dgram(A, &q);
    let kind = seg.kind();
    put_frags(
        &mut cap,
        frag_v4(&seg.l3, &[1480, 1480]),
        &[0, 1, 2],
        kind,
        1000,
    );
    let resp = krpc_response(
        &[
            ("id", rng.arr20().to_vec()),
            ("nodes", vec![]),
            ("token", rng.bytes(8)),
        ],
        b"aa",
    );
    send(&mut cap, &mut Encap::Eth, 30_000, u.dgram(B, &resp));

    // 2. Same kind of datagram on another flow, last fragment first.
    let mut u2 = udp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 3, 2, 50502),
        v4(10, 1, 3, 3, 41602),
        DHT,
        "3000-byte get_peers query in 3 IPv4 fragments delivered 3,1,2 (last first)",
    );
    let q2 = big_get_peers(&mut rng, 3000, b"ab");
    let seg2 = u2.dgram(A, &q2);
    let kind2 = seg2.kind();
    cap.wait_us(100_000);
    put_frags(
        &mut cap,
        frag_v4(&seg2.l3, &[1480, 1480]),
        &[2, 0, 1],
        kind2,
        1000,
    );

    // 3. IPv6 UDP datagram in 2 fragments (Fragment extension header).
    let mut u3 = udp_flow(
        &mut cap,
        &mut rng,
        v6("2001:db8:3::2", 50503),
        v6("2001:db8:3::3", 41603),
        DHT,
        "2000-byte get_peers query in 2 IPv6 fragments (Fragment header)",
    );
    let q3 = big_get_peers(&mut rng, 2000, b"ac");
    let seg3 = u3.dgram(A, &q3);
    let kind3 = seg3.kind();
    cap.wait_us(100_000);
    put_frags(
        &mut cap,
        frag_v6(&seg3.l3, 1232, 0x0bad_cafe),
        &[0, 1],
        kind3,
        1000,
    );

    // 4. TCP peer-wire flow whose handshake packet is IPv4-fragmented (TCP header + 20
    //    bytes in the first fragment, 48 bytes in the second).
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 3, 4, 50504),
        v4(10, 1, 3, 5, 41604),
        PEERWIRE,
        "initiator handshake packet IPv4-fragmented: TCP header + 20 bytes, then 48 bytes",
    );
    let enc = &mut Encap::Eth;
    cap.wait_us(100_000);
    let info = rng.arr20();
    let hs_a = handshake(&info, &rng.peer_id("-TR3000-"));
    let hs_b = handshake(&info, &rng.peer_id("-TR3000-"));
    open(&mut cap, enc, &mut f);
    let hs_seg = f.data(A, &hs_a);
    let k = hs_seg.kind();
    put_frags(&mut cap, frag_v4(&hs_seg.l3, &[40]), &[0, 1], k, 300);
    send(&mut cap, enc, 20_000, f.data(B, &hs_b));
    send(&mut cap, enc, 20_000, f.data(A, &pw_msg(2, &[])));
    send(&mut cap, enc, 20_000, f.ack(B));
    close(&mut cap, enc, &mut f);
    cap
}

pub fn snaplen64() -> Capture {
    let (mut cap, mut rng) = new_cap("snaplen64");
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 4, 2, 50601),
        v4(10, 1, 4, 3, 41701),
        PEERWIRE,
        "full flow, 5 piece messages of 1400 bytes, captured at snaplen 64",
    );
    // piece message = 4 (len) + 1 (id) + 8 (index, begin) + block = 1400 bytes
    pw_session(
        &mut cap,
        &mut Encap::Eth,
        &mut f,
        &mut rng,
        &one(Split::Whole, 5, 1387),
    );
    cap
}

/// Interface 0: Ethernet peer-wire flow; interface 1: raw-IP DHT flow; interleaved.
pub fn two_interfaces() -> Capture {
    let (mut cap, mut rng) = new_cap("two_interfaces");
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 5, 2, 50701),
        v4(10, 1, 5, 3, 41801),
        PEERWIRE,
        "interface 0 (Ethernet, µs timestamps)",
    );
    cap.iface = 0;
    pw_session(
        &mut cap,
        &mut Encap::Eth,
        &mut f,
        &mut rng,
        &one(Split::Whole, 2, 512),
    );
    let mut u = udp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 5, 4, 50702),
        v4(10, 1, 5, 5, 41802),
        DHT,
        "interface 1 (raw IP, linktype 101, ns timestamps)",
    );
    cap.iface = 1;
    cap.at(0, 15_123);
    cap.t += 456; // sub-microsecond part, visible only with ns resolution
    for _ in 0..2 {
        dht_three(&mut cap, &mut Encap::Raw, &mut u, &mut rng);
        cap.wait_us(40_000);
    }
    cap.iface = 0;
    cap.sort();
    cap
}

/// Section 1 (recs with iface 0): Ethernet flow; section 2 (iface 1 here, interface 0 of
/// the second section): Linux cooked flow.
pub fn two_sections() -> Capture {
    let (mut cap, mut rng) = new_cap("two_sections");
    let mut f = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 6, 2, 50801),
        v4(10, 1, 6, 3, 41901),
        PEERWIRE,
        "section 1 (little-endian), Ethernet",
    );
    pw_short(&mut cap, &mut Encap::Eth, &mut f, &mut rng);
    let mut g = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 6, 4, 50802),
        v4(10, 1, 6, 5, 41902),
        PEERWIRE,
        "section 2 (big-endian), Linux cooked SLL",
    );
    cap.iface = 1;
    cap.wait_us(1_000_000);
    pw_short(&mut cap, &mut Encap::Sll, &mut g, &mut rng);
    let mut u = udp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 6, 4, 50803),
        v4(10, 1, 6, 6, 41903),
        DHT,
        "section 2 (big-endian), Linux cooked SLL",
    );
    dht_three(&mut cap, &mut Encap::Sll, &mut u, &mut rng);
    cap.iface = 0;
    cap
}

/// The short UDP (DHT) flow used for the link-type files; `v6_afs` adds an IPv6 DHT flow
/// (one packet per given DLT_NULL family value when the encapsulation is Null).
pub fn linktype_flow(name: &str, enc: &mut Encap, with_v6: usize) -> Capture {
    let (mut cap, mut rng) = new_cap(name);
    let mut u = udp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 7, 2, 50901),
        v4(10, 1, 7, 3, 42001),
        DHT,
        "DHT ping, response, find_node",
    );
    dht_three(&mut cap, enc, &mut u, &mut rng);
    if with_v6 > 0 {
        let mut u6 = udp_flow(
            &mut cap,
            &mut rng,
            v6("2001:db8:7::2", 50902),
            v6("2001:db8:7::3", 42002),
            DHT,
            "IPv6 DHT ping, response, find_node",
        );
        dht_three(&mut cap, enc, &mut u6, &mut rng);
    }
    cap
}

/// DLT_NULL: IPv4 flow (AF 2) and an IPv6 flow whose packets use AF 30 (Darwin),
/// 24 (NetBSD/OpenBSD) and 28 (FreeBSD).
pub fn null_loopback() -> Capture {
    let (mut cap, mut rng) = new_cap("null_loopback");
    let mut u = udp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 7, 2, 50901),
        v4(10, 1, 7, 3, 42001),
        DHT,
        "DHT ping, response, find_node (AF 2)",
    );
    dht_three(&mut cap, &mut Encap::Null(30), &mut u, &mut rng);
    let mut u6 = udp_flow(
        &mut cap,
        &mut rng,
        v6("2001:db8:7::2", 50902),
        v6("2001:db8:7::3", 42002),
        DHT,
        "IPv6 DHT ping (AF 30), response (AF 24), find_node (AF 28)",
    );
    let mut tmp = Capture::new(cap.t);
    dht_three(&mut tmp, &mut Encap::Raw, &mut u6, &mut rng);
    for (r, af) in tmp.recs.into_iter().zip([30u32, 24, 28]) {
        let mut frame = af.to_le_bytes().to_vec();
        frame.extend_from_slice(&r.data);
        cap.t = r.ts_ns;
        cap.put(0, frame, r.kind);
    }
    cap
}

fn http_body() -> Vec<u8> {
    let mut b = String::from(
        "<!DOCTYPE html>\n<html><head><title>Index of /</title></head>\n<body>\n<h1>Index of /</h1>\n<ul>\n",
    );
    let mut i = 0;
    while b.len() < 2000 {
        b.push_str(&format!(
            "<li><a href=\"file{i:03}.txt\">file{i:03}.txt</a> 2024-05-31 {i} KB</li>\n"
        ));
        i += 1;
    }
    b.push_str("</ul>\n</body></html>\n");
    b.into_bytes()
}

fn tls_client_hello(rng: &mut Rng) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend(rng.bytes(32)); // random
    body.push(32);
    body.extend(rng.bytes(32)); // session id
    let suites: [u16; 5] = [0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut ext = Vec::new();
    let host = b"www.example.org";
    // server_name
    ext.extend_from_slice(&0u16.to_be_bytes());
    ext.extend_from_slice(&((host.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(host.len() as u16).to_be_bytes());
    ext.extend_from_slice(host);
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    // supported_versions: TLS 1.3, 1.2
    ext.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]);
    // key_share: x25519
    ext.extend_from_slice(&[0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
    ext.extend(rng.bytes(32));
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

fn tls_server_flight(rng: &mut Rng) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend(rng.bytes(32));
    body.push(32);
    body.extend(rng.bytes(32));
    body.extend_from_slice(&[0x13, 0x01, 0x00]);
    let ext: Vec<u8> = {
        let mut e = vec![0x00, 0x2b, 0x00, 0x02, 0x03, 0x04];
        e.extend_from_slice(&[0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20]);
        e.extend(rng.bytes(32));
        e
    };
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![2u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut v = vec![0x16, 0x03, 0x03];
    v.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    v.extend(hs);
    v.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
    let app = rng.bytes(600);
    v.extend_from_slice(&[0x17, 0x03, 0x03]);
    v.extend_from_slice(&(app.len() as u16).to_be_bytes());
    v.extend(app);
    v
}

pub fn port6881_http() -> Capture {
    let (mut cap, mut rng) = new_cap("port6881_http");
    let enc = &mut Encap::Eth;
    // HTTP on 6881.
    let mut h = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 8, 52344),
        v4(10, 1, 0, 9, 6881),
        OTHER,
        "plain HTTP/1.1 GET and 200 text/html on port 6881 (not BitTorrent)",
    );
    open(&mut cap, enc, &mut h);
    let req =
        b"GET / HTTP/1.1\r\nHost: 10.1.0.9:6881\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    send(&mut cap, enc, 300, h.data(A, req));
    let body = http_body();
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Fri, 31 May 2024 10:00:00 GMT\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend(body);
    for chunk in resp.chunks(1448) {
        send(&mut cap, enc, 500, h.data(B, chunk));
    }
    send(&mut cap, enc, 500, h.ack(A));
    close(&mut cap, enc, &mut h);

    // TLS to 51413.
    let mut t = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 8, 52400),
        v4(10, 1, 0, 13, 51413),
        OTHER,
        "TLS 1.3 ClientHello (record 16 03 01) and server flight on port 51413 (not BitTorrent)",
    );
    cap.wait_us(200_000);
    open(&mut cap, enc, &mut t);
    send(&mut cap, enc, 300, t.data(A, &tls_client_hello(&mut rng)));
    send(
        &mut cap,
        enc,
        20_000,
        t.data(B, &tls_server_flight(&mut rng)),
    );
    send(&mut cap, enc, 500, t.ack(A));
    close(&mut cap, enc, &mut t);

    // Real BitTorrent on 6881 (different server address than the HTTP flow).
    let mut b = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 10, 50800),
        v4(10, 1, 0, 11, 6881),
        PEERWIRE,
        "peer-wire handshake both ways on port 6881",
    );
    cap.wait_us(200_000);
    pw_short(&mut cap, enc, &mut b, &mut rng);

    // SYN only, to 6882: the SYN and two retransmissions.
    let mut s = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 0, 8, 52500),
        v4(10, 1, 0, 12, 6882),
        PORT_ONLY,
        "SYN and 2 SYN retransmissions to port 6882, no answer, no payload: port rule only",
    );
    cap.wait_us(200_000);
    let syn = s.syn();
    let isn = s.nxt[0].wrapping_sub(1);
    send(&mut cap, enc, 0, syn);
    let r1 = s.raw(A, isn, 0, SYN, &[]);
    send(&mut cap, enc, 1_000_000, r1);
    let r2 = s.raw(A, isn, 0, SYN, &[]);
    send(&mut cap, enc, 2_000_000, r2);
    cap
}

fn arp_frame(op: u16, smac: [u8; 6], sip: [u8; 4], tmac: [u8; 6], tip: [u8; 4]) -> Vec<u8> {
    let dst = if op == 1 { [0xff; 6] } else { tmac };
    let mut v = eth_header(smac, dst, 0x0806).to_vec();
    v.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&smac);
    v.extend_from_slice(&sip);
    v.extend_from_slice(&tmac);
    v.extend_from_slice(&tip);
    v.resize(60, 0);
    v
}

fn lldp_frame() -> Vec<u8> {
    let smac = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
    let mut v = eth_header(smac, [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e], 0x88cc).to_vec();
    // Chassis ID (MAC), Port ID (interface name), TTL, end.
    v.extend_from_slice(&[0x02, 0x07, 0x04]);
    v.extend_from_slice(&smac);
    v.extend_from_slice(&[0x04, 0x05, 0x05]);
    v.extend_from_slice(b"eth0");
    v.extend_from_slice(&[0x06, 0x02, 0x00, 0x78]);
    v.extend_from_slice(&[0x00, 0x00]);
    v.resize(60, 0);
    v
}

fn bad_ihl_frame() -> Vec<u8> {
    let mut v = eth_header([0x02, 0x00, 10, 1, 8, 2], [0x02, 0x00, 10, 1, 8, 3], 0x0800).to_vec();
    // version 4, IHL 3 (12 bytes: below the 20-byte minimum)
    let mut ip = vec![
        0x43, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    ];
    ip.extend_from_slice(&[10, 1, 8, 2, 10, 1, 8, 3]);
    ip.resize(40, 0);
    v.extend(ip);
    v.resize(60, 0);
    v
}

pub fn mixed_minutes() -> Capture {
    let (mut cap, mut rng) = new_cap("mixed_minutes");
    let enc = &mut Encap::Eth;
    // Flow 1: full peer-wire session from 10:00:30 into minute 1 (pieces 20 s apart).
    let mut f1 = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 8, 2, 51001),
        v4(10, 1, 8, 3, 42101),
        PEERWIRE,
        "handshake at 10:00:30, piece rounds every 20 s until ~10:01:30",
    );
    cap.at(30, 0);
    pw_session(
        &mut cap,
        enc,
        &mut f1,
        &mut rng,
        &Session {
            split: Split::Whole,
            pieces: 3,
            piece_len: 1024,
            gap_us: 20_000_000,
        },
    );

    // Flow 2: TCP open in minute 0, handshake in minute 1.
    let mut f2 = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 8, 4, 51002),
        v4(10, 1, 8, 5, 42102),
        PEERWIRE,
        "SYN/SYN-ACK/ACK at 10:00:50 (minute 0), handshake at 10:01:05 (minute 1)",
    );
    cap.at(50, 0);
    open(&mut cap, enc, &mut f2);
    cap.at(65, 0);
    let info = rng.arr20();
    let hs_a = handshake(&info, &rng.peer_id("-TR3000-"));
    let hs_b = handshake(&info, &rng.peer_id("-lt0D80-"));
    send(&mut cap, enc, 0, f2.data(A, &hs_a));
    send(&mut cap, enc, 20_000, f2.data(B, &hs_b));
    send(&mut cap, enc, 20_000, f2.data(A, &pw_msg(2, &[])));
    send(&mut cap, enc, 20_000, f2.ack(B));
    close(&mut cap, enc, &mut f2);

    // Flow 3: HTTP on port 80 across minutes 1 and 2.
    let mut f3 = tcp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 8, 6, 51003),
        v4(10, 1, 8, 7, 80),
        OTHER,
        "HTTP GET/200 on port 80, 10:01:40 to 10:02:01",
    );
    cap.at(100, 0);
    open(&mut cap, enc, &mut f3);
    send(
        &mut cap,
        enc,
        300,
        f3.data(A, b"GET /index.html HTTP/1.1\r\nHost: 10.1.8.7\r\n\r\n"),
    );
    let body = http_body();
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend(body);
    send(&mut cap, enc, 20_000, f3.data(B, &resp[..1448]));
    cap.at(121, 0);
    send(&mut cap, enc, 0, f3.data(B, &resp[1448..]));
    send(&mut cap, enc, 500, f3.ack(A));
    close(&mut cap, enc, &mut f3);

    // Flow 4: DHT exchange in minute 2 ending at 10:02:10 exactly.
    let mut u = udp_flow(
        &mut cap,
        &mut rng,
        v4(10, 1, 8, 8, 51004),
        v4(10, 1, 8, 9, 42104),
        DHT,
        "DHT ping/response/find_node in minute 2, last packet at 10:02:10.000000",
    );
    let mut tmp = Capture::new(0);
    dht_three(&mut tmp, &mut Encap::Eth, &mut u, &mut rng);
    for (r, (s, us)) in tmp
        .recs
        .into_iter()
        .zip([(125, 0), (125, 25_000), (130, 0)])
    {
        cap.at(s, us);
        cap.put(0, r.data, r.kind);
    }

    // Non-IP and undecodable frames.
    let m2 = [0x02, 0x00, 10, 1, 8, 2];
    let m3 = [0x02, 0x00, 10, 1, 8, 3];
    cap.at(40, 0);
    cap.put(
        0,
        arp_frame(1, m2, [10, 1, 8, 2], [0; 6], [10, 1, 8, 3]),
        Kind::NonIp,
    );
    cap.put(
        150,
        arp_frame(2, m3, [10, 1, 8, 3], m2, [10, 1, 8, 2]),
        Kind::NonIp,
    );
    cap.at(90, 0);
    cap.put(0, lldp_frame(), Kind::NonIp);
    cap.at(127, 0);
    cap.put(0, bad_ihl_frame(), Kind::Undecodable);
    cap.sort();
    cap
}
