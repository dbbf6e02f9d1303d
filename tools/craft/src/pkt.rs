//! Packet building: TCP/UDP flows over IPv4/IPv6 (etherparse's PacketBuilder computes the
//! checksums), link layers and tunnels around them, fragmentation, and payload helpers.

use etherparse::{
    EtherType, Ethernet2Header, IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6Extensions,
    Ipv6FlowLabel, Ipv6Header, PacketBuilder, TcpHeader, TcpOptionElement,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::model::Kind;

/// Side a (initiator) and side b (responder).
pub const A: bool = true;
pub const B: bool = false;

/// A tiny fixed-seed PRNG (xorshift64*), so "random" bytes are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: &str) -> Self {
        // FNV-1a of the seed string.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }

    pub fn arr20(&mut self) -> [u8; 20] {
        let mut a = [0u8; 20];
        a.copy_from_slice(&self.bytes(20));
        a
    }

    /// A Transmission-style peer id: `-TR3000-` and 12 alphanumerics.
    pub fn peer_id(&mut self, prefix: &str) -> [u8; 20] {
        const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(prefix.as_bytes());
        for b in id[8..].iter_mut() {
            *b = ALNUM[(self.next_u64() % ALNUM.len() as u64) as usize];
        }
        id
    }
}

pub fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

pub fn v6(s: &str, port: u16) -> SocketAddr {
    let ip: Ipv6Addr = s.parse().expect("literal IPv6 address");
    SocketAddr::new(IpAddr::V6(ip), port)
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// BEP 3 handshake: 0x13 "BitTorrent protocol", 8 reserved bytes, info hash, peer id (68 bytes).
pub fn handshake(info_hash: &[u8; 20], peer_id: &[u8; 20]) -> Vec<u8> {
    let mut v = Vec::with_capacity(68);
    v.push(19);
    v.extend_from_slice(b"BitTorrent protocol");
    // Extension protocol (BEP 10), fast extension and DHT bits, as common clients set them.
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
    v.extend_from_slice(info_hash);
    v.extend_from_slice(peer_id);
    v
}

/// A length-prefixed peer-wire message.
pub fn pw_msg(id: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + body.len());
    v.extend_from_slice(&(1 + body.len() as u32).to_be_bytes());
    v.push(id);
    v.extend_from_slice(body);
    v
}

pub fn pw_bitfield(bits: &[u8]) -> Vec<u8> {
    pw_msg(5, bits)
}

pub fn pw_request(index: u32, begin: u32, len: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&index.to_be_bytes());
    b.extend_from_slice(&begin.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    pw_msg(6, &b)
}

pub fn pw_piece(index: u32, begin: u32, block: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&index.to_be_bytes());
    b.extend_from_slice(&begin.to_be_bytes());
    b.extend_from_slice(block);
    pw_msg(7, &b)
}

/// Bencoded byte string.
pub fn bstr(s: &[u8]) -> Vec<u8> {
    let mut v = format!("{}:", s.len()).into_bytes();
    v.extend_from_slice(s);
    v
}

/// KRPC query `q` with arguments (already sorted by key) and transaction id `t`.
pub fn krpc_query(q: &str, args: &[(&str, Vec<u8>)], t: &[u8]) -> Vec<u8> {
    let mut v = b"d1:ad".to_vec();
    for (k, val) in args {
        v.extend(bstr(k.as_bytes()));
        v.extend(bstr(val));
    }
    v.extend_from_slice(b"e1:q");
    v.extend(bstr(q.as_bytes()));
    v.extend_from_slice(b"1:t");
    v.extend(bstr(t));
    v.extend_from_slice(b"1:y1:qe");
    v
}

/// KRPC response with values (already sorted by key) and transaction id `t`.
pub fn krpc_response(vals: &[(&str, Vec<u8>)], t: &[u8]) -> Vec<u8> {
    let mut v = b"d1:rd".to_vec();
    for (k, val) in vals {
        v.extend(bstr(k.as_bytes()));
        v.extend(bstr(val));
    }
    v.extend_from_slice(b"e1:t");
    v.extend(bstr(t));
    v.extend_from_slice(b"1:y1:re");
    v
}

// ---------------------------------------------------------------------------------------------
// IP and transport

/// A packet at layer 3 (starts with the IP header) with its truth.
pub struct Seg {
    pub id: usize,
    pub from_a: bool,
    pub l3: Vec<u8>,
}

impl Seg {
    pub fn kind(&self) -> Kind {
        Kind::Flow {
            id: self.id,
            from_a: self.from_a,
        }
    }
}

fn ip_headers(
    src: IpAddr,
    dst: IpAddr,
    ipid: u16,
    ttl: u8,
    df: bool,
    exts: &Ipv6Extensions,
) -> IpHeaders {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = Ipv4Header::new(0, ttl, IpNumber::TCP, s.octets(), d.octets())
                .expect("empty payload fits");
            h.identification = ipid;
            h.dont_fragment = df;
            IpHeaders::Ipv4(h, Default::default())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
            Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: 0,
                next_header: IpNumber::TCP,
                hop_limit: ttl,
                source: s.octets(),
                destination: d.octets(),
            },
            exts.clone(),
        ),
        _ => panic!("mixed address families in one flow"),
    }
}

/// TCP flag sets.
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

/// A TCP connection between a (initiator) and b, tracking sequence numbers on both sides.
pub struct TcpFlow {
    pub id: usize,
    pub a: SocketAddr,
    pub b: SocketAddr,
    /// Next sequence number to send, per side ([a, b]).
    pub nxt: [u32; 2],
    ipid: [u16; 2],
    ttl: [u8; 2],
    /// IPv4 "don't fragment" flag.
    pub df: bool,
    /// IPv6 extension headers carried by every packet of the flow.
    pub exts: Ipv6Extensions,
}

fn side(from_a: bool) -> usize {
    if from_a {
        0
    } else {
        1
    }
}

impl TcpFlow {
    pub fn new(id: usize, a: SocketAddr, b: SocketAddr, rng: &mut Rng) -> Self {
        TcpFlow {
            id,
            a,
            b,
            nxt: [rng.next_u64() as u32, rng.next_u64() as u32],
            ipid: [
                (rng.next_u64() as u16) & 0x7fff,
                (rng.next_u64() as u16) & 0x7fff,
            ],
            ttl: [64, 63],
            df: true,
            exts: Default::default(),
        }
    }

    /// Builds a segment with explicit sequence and acknowledgment numbers (no state change
    /// except the IP identification).
    pub fn raw(&mut self, from_a: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Seg {
        let s = side(from_a);
        let (src, dst) = if from_a {
            (self.a, self.b)
        } else {
            (self.b, self.a)
        };
        // SYNs advertise the raw window; later segments a window scaled by 2^7.
        let win = match (flags & SYN != 0, from_a) {
            (true, true) => 64240,
            (true, false) => 65160,
            (false, true) => 502,
            (false, false) => 509,
        };
        let mut h = TcpHeader::new(src.port(), dst.port(), seq, win);
        h.syn = flags & SYN != 0;
        h.fin = flags & FIN != 0;
        h.rst = flags & RST != 0;
        h.psh = flags & PSH != 0;
        if flags & ACK != 0 {
            h.ack = true;
            h.acknowledgment_number = ack;
        }
        if h.syn {
            h.set_options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::SelectiveAcknowledgementPermitted,
            ])
            .expect("options fit");
        }
        let iph = ip_headers(
            src.ip(),
            dst.ip(),
            self.ipid[s],
            self.ttl[s],
            self.df,
            &self.exts,
        );
        self.ipid[s] = self.ipid[s].wrapping_add(1);
        let mut l3 = Vec::new();
        PacketBuilder::ip(iph)
            .tcp_header(h)
            .write(&mut l3, payload)
            .expect("tcp packet builds");
        Seg {
            id: self.id,
            from_a,
            l3,
        }
    }

    /// A segment at the side's current sequence number, acknowledging everything the other
    /// side sent; advances the sequence number.
    pub fn seg(&mut self, from_a: bool, flags: u8, payload: &[u8]) -> Seg {
        let s = side(from_a);
        let seq = self.nxt[s];
        let ack = self.nxt[1 - s];
        let seg = self.raw(from_a, seq, ack, flags, payload);
        let mut adv = payload.len() as u32;
        if flags & (SYN | FIN) != 0 {
            adv += 1;
        }
        self.nxt[s] = seq.wrapping_add(adv);
        seg
    }

    pub fn syn(&mut self) -> Seg {
        self.seg(A, SYN, &[])
    }
    pub fn synack(&mut self) -> Seg {
        self.seg(B, SYN | ACK, &[])
    }
    pub fn ack(&mut self, from_a: bool) -> Seg {
        self.seg(from_a, ACK, &[])
    }
    pub fn data(&mut self, from_a: bool, payload: &[u8]) -> Seg {
        self.seg(from_a, PSH | ACK, payload)
    }
    pub fn fin(&mut self, from_a: bool) -> Seg {
        self.seg(from_a, FIN | ACK, &[])
    }
}

/// A UDP flow between a and b.
pub struct UdpFlow {
    pub id: usize,
    pub a: SocketAddr,
    pub b: SocketAddr,
    ipid: [u16; 2],
    pub exts: Ipv6Extensions,
}

impl UdpFlow {
    pub fn new(id: usize, a: SocketAddr, b: SocketAddr, rng: &mut Rng) -> Self {
        UdpFlow {
            id,
            a,
            b,
            ipid: [
                (rng.next_u64() as u16) & 0x7fff,
                (rng.next_u64() as u16) & 0x7fff,
            ],
            exts: Default::default(),
        }
    }

    pub fn dgram(&mut self, from_a: bool, payload: &[u8]) -> Seg {
        let s = side(from_a);
        let (src, dst) = if from_a {
            (self.a, self.b)
        } else {
            (self.b, self.a)
        };
        let iph = ip_headers(src.ip(), dst.ip(), self.ipid[s], 64, false, &self.exts);
        self.ipid[s] = self.ipid[s].wrapping_add(1);
        let mut l3 = Vec::new();
        PacketBuilder::ip(iph)
            .udp(src.port(), dst.port())
            .write(&mut l3, payload)
            .expect("udp packet builds");
        Seg {
            id: self.id,
            from_a,
            l3,
        }
    }
}

/// Splits a whole IPv4 packet (20-byte header, no options) into fragments carrying
/// `sizes` bytes of IP payload each (all but the last a multiple of 8; the rest goes in a
/// final fragment if the sizes do not cover the payload).
pub fn frag_v4(l3: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let (hdr, rest) = Ipv4Header::from_slice(l3).expect("valid IPv4 packet");
    let payload = &rest[..usize::from(hdr.total_len) - hdr.header_len()];
    let mut out = Vec::new();
    let mut off = 0usize;
    let mut chunks: Vec<usize> = sizes.to_vec();
    let covered: usize = sizes.iter().sum();
    if covered < payload.len() {
        chunks.push(payload.len() - covered);
    }
    for (i, &n) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        assert!(
            last || n.is_multiple_of(8),
            "non-final fragment size must be a multiple of 8"
        );
        let mut h = hdr.clone();
        h.dont_fragment = false;
        h.more_fragments = !last;
        h.fragment_offset = IpFragOffset::try_new((off / 8) as u16).expect("offset fits");
        h.set_payload_len(n).expect("fragment fits");
        let mut v = Vec::new();
        h.write(&mut v).expect("write to vec");
        v.extend_from_slice(&payload[off..off + n]);
        out.push(v);
        off += n;
    }
    out
}

/// Splits a whole IPv6 packet without extension headers into fragments with a Fragment
/// header; `first` bytes of the payload (multiple of 8) go in the first fragment.
pub fn frag_v6(l3: &[u8], first: usize, ident: u32) -> Vec<Vec<u8>> {
    let (hdr, rest) = Ipv6Header::from_slice(l3).expect("valid IPv6 packet");
    assert!(first.is_multiple_of(8));
    let payload = &rest[..usize::from(hdr.payload_length)];
    let parts = [(0usize, &payload[..first]), (first, &payload[first..])];
    let mut out = Vec::new();
    for (i, (off, chunk)) in parts.iter().enumerate() {
        let mut h = hdr.clone();
        h.next_header = IpNumber::IPV6_FRAGMENTATION_HEADER;
        h.payload_length = (8 + chunk.len()) as u16;
        let mut v = h.to_bytes().to_vec();
        v.push(hdr.next_header.0);
        v.push(0);
        let m = u16::from(i == 0);
        v.extend_from_slice(&(((*off / 8) as u16) << 3 | m).to_be_bytes());
        v.extend_from_slice(&ident.to_be_bytes());
        v.extend_from_slice(chunk);
        out.push(v);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Link layers and tunnels

pub const ET_IPV4: u16 = 0x0800;
pub const ET_IPV6: u16 = 0x86dd;

pub fn ethertype_of(l3: &[u8]) -> u16 {
    if l3[0] >> 4 == 6 {
        ET_IPV6
    } else {
        ET_IPV4
    }
}

/// A locally administered MAC derived from the last 4 bytes of an address.
pub fn mac_of(ip: &[u8]) -> [u8; 6] {
    let n = ip.len();
    [0x02, 0x00, ip[n - 4], ip[n - 3], ip[n - 2], ip[n - 1]]
}

fn l3_addrs(l3: &[u8]) -> (&[u8], &[u8]) {
    if l3[0] >> 4 == 6 {
        (&l3[8..24], &l3[24..40])
    } else {
        (&l3[12..16], &l3[16..20])
    }
}

pub fn eth_header(src: [u8; 6], dst: [u8; 6], et: u16) -> [u8; 14] {
    Ethernet2Header {
        source: src,
        destination: dst,
        ether_type: EtherType(et),
    }
    .to_bytes()
}

/// Ethernet II frame around an IP packet; MACs derived from the IP addresses.
pub fn eth(l3: &[u8]) -> Vec<u8> {
    eth_tagged(l3, &[], ethertype_of(l3), l3)
}

/// Ethernet frame with VLAN tags `(tpid, tci)` and the given payload ethertype. `addr_src`
/// is the IP packet the MAC addresses are derived from.
pub fn eth_tagged(addr_src: &[u8], tags: &[(u16, u16)], et: u16, payload: &[u8]) -> Vec<u8> {
    let (s, d) = l3_addrs(addr_src);
    let first_et = tags.first().map(|t| t.0).unwrap_or(et);
    let mut v = eth_header(mac_of(s), mac_of(d), first_et).to_vec();
    for (i, (_, tci)) in tags.iter().enumerate() {
        v.extend_from_slice(&tci.to_be_bytes());
        let next = tags.get(i + 1).map(|t| t.0).unwrap_or(et);
        v.extend_from_slice(&next.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// Outer IPv4 header (with checksum) for tunnels.
fn outer_v4(src: [u8; 4], dst: [u8; 4], proto: u8, ipid: u16, payload_len: usize) -> Vec<u8> {
    let mut h = Ipv4Header::new(payload_len as u16, 64, IpNumber(proto), src, dst)
        .expect("tunnel payload fits");
    h.identification = ipid;
    h.dont_fragment = false;
    let mut v = Vec::new();
    h.write(&mut v).expect("write to vec");
    v
}

/// How a layer-3 packet reaches the capture.
pub enum Encap {
    /// Ethernet II (link type 1).
    Eth,
    /// Ethernet with a stack of VLAN tags: (TPID, VLAN id).
    Vlan(Vec<(u16, u16)>),
    /// Ethernet, MPLS unicast label stack (bottom-of-stack on the last label).
    Mpls(Vec<u32>),
    /// Ethernet, PPPoE session stage.
    Pppoe(u16),
    /// Raw IP, no link header (link types 12, 101, 228, 229).
    Raw,
    /// DLT_NULL: 4-byte family in little-endian host order; the IPv6 family value to use.
    Null(u32),
    /// Linux cooked capture v1 (113).
    Sll,
    /// Linux cooked capture v2 (276).
    Sll2,
    /// A tunnel between two outer IPv4 endpoints, in Ethernet.
    Tunnel(Tunnel),
}

pub struct Tunnel {
    pub kind: TunnelKind,
    pub outer_a: [u8; 4],
    pub outer_b: [u8; 4],
    ipid: u16,
    seq: u32,
}

pub enum TunnelKind {
    /// GRE carrying IP (0x0800/0x86dd); optional key and sequence number.
    Gre { key: Option<u32>, seq: bool },
    /// GRE transparent Ethernet bridging (0x6558).
    GreTeb,
    /// ERSPAN type II (GRE 0x88be with sequence number).
    Erspan2 { session: u16 },
    /// ERSPAN type III (GRE 0x22eb with sequence number), optionally with the 8-byte
    /// platform-specific subheader (O bit).
    Erspan3 { session: u16, subheader: bool },
    /// VXLAN in UDP to port 4789.
    Vxlan { vni: u32, sport: u16 },
}

impl Tunnel {
    pub fn new(kind: TunnelKind, outer_a: [u8; 4], outer_b: [u8; 4]) -> Self {
        Tunnel {
            kind,
            outer_a,
            outer_b,
            ipid: 0x1000,
            seq: 0,
        }
    }
}

impl Encap {
    pub fn tunnel(kind: TunnelKind, outer_a: [u8; 4], outer_b: [u8; 4]) -> Self {
        Encap::Tunnel(Tunnel::new(kind, outer_a, outer_b))
    }

    /// Wraps a layer-3 packet sent by side a (`from_a`) or b into a captured frame.
    pub fn wrap(&mut self, l3: &[u8], from_a: bool) -> Vec<u8> {
        match self {
            Encap::Eth => eth(l3),
            Encap::Vlan(tags) => {
                let t: Vec<(u16, u16)> = tags.iter().map(|&(tpid, vid)| (tpid, vid)).collect();
                eth_tagged(l3, &t, ethertype_of(l3), l3)
            }
            Encap::Mpls(labels) => {
                let mut p = Vec::new();
                for (i, &label) in labels.iter().enumerate() {
                    let bos = u32::from(i + 1 == labels.len());
                    let entry = (label << 12) | (bos << 8) | 64;
                    p.extend_from_slice(&entry.to_be_bytes());
                }
                p.extend_from_slice(l3);
                eth_tagged(l3, &[], 0x8847, &p)
            }
            Encap::Pppoe(session) => {
                let mut p = vec![0x11, 0x00];
                p.extend_from_slice(&session.to_be_bytes());
                p.extend_from_slice(&((l3.len() + 2) as u16).to_be_bytes());
                let ppp: u16 = if ethertype_of(l3) == ET_IPV6 {
                    0x0057
                } else {
                    0x0021
                };
                p.extend_from_slice(&ppp.to_be_bytes());
                p.extend_from_slice(l3);
                eth_tagged(l3, &[], 0x8864, &p)
            }
            Encap::Raw => l3.to_vec(),
            Encap::Null(af6) => {
                let af: u32 = if ethertype_of(l3) == ET_IPV6 { *af6 } else { 2 };
                let mut v = af.to_le_bytes().to_vec();
                v.extend_from_slice(l3);
                v
            }
            Encap::Sll => {
                // packet type: 0 = to us, 4 = sent by us
                let ptype: u16 = if from_a { 4 } else { 0 };
                let (s, _) = l3_addrs(l3);
                let mut v = ptype.to_be_bytes().to_vec();
                v.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                v.extend_from_slice(&6u16.to_be_bytes());
                v.extend_from_slice(&mac_of(s));
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&ethertype_of(l3).to_be_bytes());
                v.extend_from_slice(l3);
                v
            }
            Encap::Sll2 => {
                let (s, _) = l3_addrs(l3);
                let mut v = ethertype_of(l3).to_be_bytes().to_vec();
                v.extend_from_slice(&[0, 0]); // reserved
                v.extend_from_slice(&2u32.to_be_bytes()); // interface index
                v.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                v.push(if from_a { 4 } else { 0 });
                v.push(6);
                v.extend_from_slice(&mac_of(s));
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(l3);
                v
            }
            Encap::Tunnel(t) => t.wrap(l3, from_a),
        }
    }
}

impl Tunnel {
    fn wrap(&mut self, l3: &[u8], from_a: bool) -> Vec<u8> {
        let (osrc, odst) = if from_a {
            (self.outer_a, self.outer_b)
        } else {
            (self.outer_b, self.outer_a)
        };
        self.seq += 1;
        let seq = self.seq;
        let (proto, tpayload) = match &self.kind {
            TunnelKind::Gre { key, seq: with_seq } => {
                let mut flags: u16 = 0;
                if key.is_some() {
                    flags |= 0x2000;
                }
                if *with_seq {
                    flags |= 0x1000;
                }
                let mut g = flags.to_be_bytes().to_vec();
                g.extend_from_slice(&ethertype_of(l3).to_be_bytes());
                if let Some(k) = key {
                    g.extend_from_slice(&k.to_be_bytes());
                }
                if *with_seq {
                    g.extend_from_slice(&seq.to_be_bytes());
                }
                g.extend_from_slice(l3);
                (47u8, g)
            }
            TunnelKind::GreTeb => {
                let mut g = vec![0, 0, 0x65, 0x58];
                g.extend(eth(l3));
                (47, g)
            }
            TunnelKind::Erspan2 { session } => {
                let mut g = vec![0x10, 0x00, 0x88, 0xbe];
                g.extend_from_slice(&seq.to_be_bytes());
                // Ver 1, VLAN 0 | COS 0, En 0, T 0, session id | reserved, index
                g.extend_from_slice(&0x1000u16.to_be_bytes());
                g.extend_from_slice(&(session & 0x3ff).to_be_bytes());
                g.extend_from_slice(&7u32.to_be_bytes()); // index 7
                g.extend(eth(l3));
                (47, g)
            }
            TunnelKind::Erspan3 { session, subheader } => {
                let mut g = vec![0x10, 0x00, 0x22, 0xeb];
                g.extend_from_slice(&seq.to_be_bytes());
                // Ver 2, VLAN 0 | COS 0, BSO 0, T 0, session id
                g.extend_from_slice(&0x2000u16.to_be_bytes());
                g.extend_from_slice(&(session & 0x3ff).to_be_bytes());
                // timestamp (granularity 100 µs ticks, any 32-bit value)
                g.extend_from_slice(&(0x0100_0000u32 + seq * 10).to_be_bytes());
                // SGT 0 | P 0, FT 0 (Ethernet), HW id 1, D 0, Gra 01, O
                g.extend_from_slice(&0u16.to_be_bytes());
                let last: u16 = (1 << 4) | (0b01 << 1) | u16::from(*subheader);
                g.extend_from_slice(&last.to_be_bytes());
                if *subheader {
                    // Platform-specific subheader, Platf ID 3: port id and timestamp high.
                    let w0: u32 = (3 << 26) | 0x2a;
                    g.extend_from_slice(&w0.to_be_bytes());
                    g.extend_from_slice(&0u32.to_be_bytes());
                }
                g.extend(eth(l3));
                (47, g)
            }
            TunnelKind::Vxlan { vni, sport } => {
                let mut vx = vec![0x08, 0, 0, 0];
                vx.extend_from_slice(&(vni << 8).to_be_bytes());
                vx.extend(eth(l3));
                let mut out = Vec::new();
                PacketBuilder::ethernet2(mac_of(&osrc), mac_of(&odst))
                    .ipv4(osrc, odst, 64)
                    .udp(*sport, 4789)
                    .write(&mut out, &vx)
                    .expect("vxlan builds");
                return out;
            }
        };
        self.ipid = self.ipid.wrapping_add(1);
        let mut ip = outer_v4(osrc, odst, proto, self.ipid, tpayload.len());
        ip.extend_from_slice(&tpayload);
        eth(&ip)
    }
}
