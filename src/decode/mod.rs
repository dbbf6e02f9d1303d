//! Frame decoding: link layers, VLAN/QinQ, MPLS, PPPoE, IPv4/IPv6 (via etherparse), tunnels
//! (GRE, ERSPAN, VXLAN, IP-in-IP), TCP and UDP. Flows are keyed on the innermost 5-tuple.
//!
//! Every read is bounds-checked; a frame that cannot be decoded is reported as such, never a
//! panic. A tunnel whose inner packet cannot be decoded falls back to the outer packet, so its
//! bytes still belong to a flow.

mod tunnel;
pub use tunnel::VXLAN_PORT;

use etherparse::LaxIpSlice;

/// LINKTYPE_* values this decoder understands.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const DLT_RAW_12: u32 = 12;
    pub const DLT_RAW_14: u32 = 14;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
    pub const PPP: u32 = 9;
    pub const PPP_HDLC: u32 = 50;
    pub const C_HDLC: u32 = 104;
    pub const PPI: u32 = 192;
}

/// Encapsulations nested deeper than this are not followed.
const MAX_DEPTH: u8 = 8;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// IP addresses are held as 128-bit numbers; IPv4 is mapped into `::ffff:0:0/96`.
pub type Addr = u128;

pub fn v4_addr(b: [u8; 4]) -> Addr {
    0xffff_0000_0000 | u128::from(u32::from_be_bytes(b))
}

pub fn addr_to_ip(a: Addr) -> std::net::IpAddr {
    if a >> 32 == 0xffff {
        std::net::IpAddr::V4(std::net::Ipv4Addr::from(a as u32))
    } else {
        std::net::IpAddr::V6(std::net::Ipv6Addr::from(a))
    }
}

/// Where an IP packet stands in a fragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    Whole,
    /// The first fragment: it carries the transport header.
    First { id: u32 },
    /// A later fragment: no transport header; it belongs to the datagram `id`.
    Later { id: u32 },
}

/// TCP header fields the flow table and the probes use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Payload length by the IP and TCP headers: whole even when the snap length cut the
    /// captured payload.
    pub len: u32,
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// A decoded IP packet (the innermost one).
#[derive(Debug, Clone, Copy)]
pub struct IpPacket<'a> {
    pub src: Addr,
    pub dst: Addr,
    pub v6: bool,
    /// IP protocol number of the transport (after IPv6 extension headers).
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp: Option<TcpInfo>,
    pub frag: Fragment,
    /// Transport payload as captured (may be cut short by the snap length).
    pub payload: &'a [u8],
}

/// What a frame turned out to be.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    Ip(IpPacket<'a>),
    /// A frame of a known link type that carries no IP (ARP, LLDP, STP, …).
    NonIp,
    /// A frame that should carry IP but is malformed or cut too short.
    Undecodable,
    /// A link type with no decoder.
    UnknownLink,
}

/// Decodes one captured frame.
pub fn decode(linktype: u32, data: &[u8]) -> Decoded<'_> {
    use linktype::*;
    match linktype {
        ETHERNET => ethernet(data, 0),
        RAW | DLT_RAW_12 | DLT_RAW_14 => ip_any(data, 0),
        IPV4 => match data.first() {
            Some(b) if b >> 4 == 4 => ip(data, 0),
            _ => Decoded::Undecodable,
        },
        IPV6 => match data.first() {
            Some(b) if b >> 4 == 6 => ip(data, 0),
            _ => Decoded::Undecodable,
        },
        NULL | LOOP => null_loopback(data, linktype == LOOP),
        LINUX_SLL => match data.get(14..16) {
            Some(t) => ethertype(u16::from_be_bytes([t[0], t[1]]), &data[16..], 0),
            None => Decoded::Undecodable,
        },
        LINUX_SLL2 => match data.get(0..2) {
            Some(t) if data.len() >= 20 => {
                ethertype(u16::from_be_bytes([t[0], t[1]]), &data[20..], 0)
            }
            _ => Decoded::Undecodable,
        },
        PPP | PPP_HDLC => tunnel::ppp_frame(data, 0),
        // Cisco HDLC: address, control, then an EtherType.
        C_HDLC => match data.get(2..4) {
            Some(t) => ethertype(u16::from_be_bytes([t[0], t[1]]), &data[4..], 0),
            None => Decoded::Undecodable,
        },
        // Per-Packet Information: a little-endian header giving its length and the link type
        // of the frame behind it.
        PPI => match data.get(2..8) {
            Some(h) => {
                let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
                let inner = u32::from_le_bytes([h[2], h[3], h[4], h[5]]);
                match data.get(len..) {
                    Some(rest) if len >= 8 && inner != PPI => decode(inner, rest),
                    _ => Decoded::Undecodable,
                }
            }
            None => Decoded::Undecodable,
        },
        _ => Decoded::UnknownLink,
    }
}

fn null_loopback(data: &[u8], network_order: bool) -> Decoded<'_> {
    let Some(h) = data.get(0..4) else {
        return Decoded::Undecodable;
    };
    let h = [h[0], h[1], h[2], h[3]];
    // DLT_NULL's family is in the capturing host's byte order: accept either.
    let fams = if network_order {
        [u32::from_be_bytes(h), u32::from_be_bytes(h)]
    } else {
        [u32::from_le_bytes(h), u32::from_be_bytes(h)]
    };
    for fam in fams {
        match fam {
            2 => return ip(&data[4..], 0),
            // AF_INET6 differs between systems: 10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD,
            // 30 macOS.
            10 | 24 | 28 | 30 => return ip(&data[4..], 0),
            _ => {}
        }
    }
    Decoded::NonIp
}

pub(crate) fn ethernet(data: &[u8], depth: u8) -> Decoded<'_> {
    match data.get(12..14) {
        Some(t) => ethertype(u16::from_be_bytes([t[0], t[1]]), &data[14..], depth),
        None => Decoded::Undecodable,
    }
}

/// Follows an EtherType through VLAN tags, MPLS and PPPoE to IP.
pub(crate) fn ethertype(mut et: u16, mut data: &[u8], depth: u8) -> Decoded<'_> {
    if depth > MAX_DEPTH {
        return Decoded::Undecodable;
    }
    // Bounded: every turn consumes at least 4 bytes.
    loop {
        match et {
            0x0800 | 0x86dd => return ip(data, depth),
            // 802.1Q, 802.1ad and the older QinQ types; any depth.
            0x8100 | 0x88a8 | 0x9100 | 0x9200 => {
                let Some(t) = data.get(2..4) else {
                    return Decoded::Undecodable;
                };
                et = u16::from_be_bytes([t[0], t[1]]);
                data = &data[4..];
            }
            0x8847 | 0x8848 => return tunnel::mpls(data, depth),
            0x8864 => return tunnel::pppoe_session(data, depth),
            _ => return Decoded::NonIp,
        }
    }
}

/// The transport's length by the IP header: IPv4 total length, or IPv6 payload length, less
/// the headers before `l4`. 0 when the header gives none (IPv6 jumbograms, TSO frames).
fn declared_l4_len(slice: &LaxIpSlice<'_>, data: &[u8], l4: &[u8]) -> usize {
    let ip_end = match slice {
        LaxIpSlice::Ipv4(s) => usize::from(s.header().total_len()),
        LaxIpSlice::Ipv6(s) => 40 + usize::from(s.header().payload_length()),
    };
    let offset = (l4.as_ptr() as usize).saturating_sub(data.as_ptr() as usize);
    ip_end.saturating_sub(offset)
}

/// IP of either version, by the version nibble.
pub(crate) fn ip_any(data: &[u8], depth: u8) -> Decoded<'_> {
    match data.first() {
        Some(b) if b >> 4 == 4 || b >> 4 == 6 => ip(data, depth),
        _ => Decoded::Undecodable,
    }
}

pub(crate) fn ip(data: &[u8], depth: u8) -> Decoded<'_> {
    if depth > MAX_DEPTH {
        return Decoded::Undecodable;
    }
    let Ok((slice, _ext_err)) = LaxIpSlice::from_slice(data) else {
        return Decoded::Undecodable;
    };
    let (src, dst, v6, frag) = match &slice {
        LaxIpSlice::Ipv4(s) => {
            let h = s.header();
            let off = h.fragments_offset().value();
            let frag = if off > 0 {
                Fragment::Later {
                    id: u32::from(h.identification()),
                }
            } else if h.more_fragments() {
                Fragment::First {
                    id: u32::from(h.identification()),
                }
            } else {
                Fragment::Whole
            };
            (v4_addr(h.source()), v4_addr(h.destination()), false, frag)
        }
        LaxIpSlice::Ipv6(s) => {
            let h = s.header();
            let ext = s.extensions();
            let frag = ipv6_fragment(ext.first_header().map(|n| n.0), ext.slice());
            (
                u128::from_be_bytes(h.source()),
                u128::from_be_bytes(h.destination()),
                true,
                frag,
            )
        }
    };
    let pl = slice.payload();
    let mut pkt = IpPacket {
        src,
        dst,
        v6,
        proto: pl.ip_number.0,
        sport: 0,
        dport: 0,
        tcp: None,
        frag,
        payload: &[],
    };
    if matches!(frag, Fragment::Later { .. }) {
        return Decoded::Ip(pkt);
    }
    let l4 = pl.payload;
    match pkt.proto {
        IPPROTO_TCP => tcp(&mut pkt, l4, declared_l4_len(&slice, data, l4)),
        IPPROTO_UDP => {
            udp(&mut pkt, l4);
            if pkt.dport == tunnel::VXLAN_PORT && frag == Fragment::Whole {
                if let Some(inner) = tunnel::vxlan(pkt.payload, depth) {
                    return Decoded::Ip(inner);
                }
            }
        }
        47 if frag == Fragment::Whole => {
            if let Some(inner) = tunnel::gre(l4, depth) {
                return Decoded::Ip(inner);
            }
            pkt.payload = l4;
        }
        // IP-in-IP and IPv6-in-IP.
        4 | 41 if frag == Fragment::Whole => {
            if let Decoded::Ip(inner) = ip(l4, depth + 1) {
                return Decoded::Ip(inner);
            }
            pkt.payload = l4;
        }
        _ => pkt.payload = l4,
    }
    Decoded::Ip(pkt)
}

/// Where an IPv6 packet stands in a fragmented datagram, from the extension headers
/// etherparse accepted (`first` is the first one's type, `exts` their bytes).
///
/// The chain is walked here, with checked reads, for two reasons: etherparse's iterator over
/// a lax extension slice reads past its end when a later header was cut short (0.18.2 and
/// 0.21.0 alike: `docs/upstream/etherparse-ipv6-ext.md`), and etherparse 0.18 reads the offset
/// and M flag of fragment headers with IPv4's bit layout (RFC 8200 4.5 is used here).
fn ipv6_fragment(first: Option<u8>, mut exts: &[u8]) -> Fragment {
    let Some(mut next) = first else {
        return Fragment::Whole;
    };
    let mut frag = Fragment::Whole;
    // Bounded: every turn consumes at least 8 bytes.
    loop {
        let len = match next {
            // Hop-by-hop, routing, destination options: 8-byte units after the first 8.
            0 | 43 | 60 => match exts.get(1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => break,
            },
            44 => 8,
            // Authentication header: 4-byte units, less 2.
            51 => match exts.get(1) {
                Some(&l) => (usize::from(l) + 2) * 4,
                None => break,
            },
            _ => break,
        };
        let Some(h) = exts.get(..len) else {
            break;
        };
        if next == 44 {
            let off_m = u16::from_be_bytes([h[2], h[3]]);
            let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            if off_m >> 3 > 0 {
                frag = Fragment::Later { id };
            } else if off_m & 1 != 0 {
                frag = Fragment::First { id };
            }
        }
        next = h[0];
        exts = &exts[len..];
    }
    frag
}

/// `l4_declared`: the transport's length by the IP header (0 when unknown).
fn tcp<'a>(pkt: &mut IpPacket<'a>, l4: &'a [u8], l4_declared: usize) {
    if l4.len() >= 4 {
        pkt.sport = u16::from_be_bytes([l4[0], l4[1]]);
        pkt.dport = u16::from_be_bytes([l4[2], l4[3]]);
    }
    let mut info = TcpInfo::default();
    if l4.len() >= 8 {
        info.seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
    }
    if l4.len() >= 12 {
        info.ack = u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]);
    }
    if l4.len() >= 14 {
        info.flags = l4[13];
        let hlen = usize::from(l4[12] >> 4) * 4;
        if hlen >= 20 && l4.len() >= hlen {
            pkt.payload = &l4[hlen..];
        }
        let declared = l4_declared.saturating_sub(hlen);
        info.len = u32::try_from(declared.max(pkt.payload.len())).unwrap_or(u32::MAX);
    }
    pkt.tcp = Some(info);
}

fn udp<'a>(pkt: &mut IpPacket<'a>, l4: &'a [u8]) {
    if l4.len() >= 4 {
        pkt.sport = u16::from_be_bytes([l4[0], l4[1]]);
        pkt.dport = u16::from_be_bytes([l4[2], l4[3]]);
    }
    if l4.len() >= 8 {
        let len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
        // A length of 0 (jumbograms) or beyond the capture: take what is there.
        let end = if len >= 8 {
            len.min(l4.len())
        } else {
            l4.len()
        };
        pkt.payload = &l4[8..end];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(et: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&et.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    fn ipv4_udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut v = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    fn expect_ip(d: Decoded<'_>) -> IpPacket<'_> {
        match d {
            Decoded::Ip(p) => p,
            other => panic!("expected IP, got {other:?}"),
        }
    }

    #[test]
    fn ethernet_vlan_stack_to_udp() {
        let inner = ipv4_udp(1234, 6881, b"hello");
        let mut tagged = vec![0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00];
        tagged.extend_from_slice(&inner);
        let frame = eth(0x88a8, &tagged);
        let p = expect_ip(decode(linktype::ETHERNET, &frame));
        assert_eq!((p.sport, p.dport, p.proto), (1234, 6881, IPPROTO_UDP));
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.src, v4_addr([10, 0, 0, 1]));
    }

    #[test]
    fn non_ip_and_garbage() {
        assert!(matches!(
            decode(linktype::ETHERNET, &eth(0x0806, &[0; 28])),
            Decoded::NonIp
        ));
        assert!(matches!(
            decode(linktype::ETHERNET, &[0u8; 5]),
            Decoded::Undecodable
        ));
        // IPv4 with IHL 3.
        let bad = eth(0x0800, &[0x43, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]);
        assert!(matches!(
            decode(linktype::ETHERNET, &bad),
            Decoded::Undecodable
        ));
        assert!(matches!(decode(147, &[1, 2, 3]), Decoded::UnknownLink));
        assert!(matches!(decode(linktype::RAW, &[]), Decoded::Undecodable));
    }

    #[test]
    fn null_loopback_both_byte_orders() {
        let pkt = ipv4_udp(1, 2, b"x");
        for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut f = fam.to_vec();
            f.extend_from_slice(&pkt);
            let p = expect_ip(decode(linktype::NULL, &f));
            assert_eq!(p.dport, 2);
        }
    }

    #[test]
    fn truncated_tcp_keeps_ports() {
        // IPv4 total length says 60 but only 4 bytes of TCP are present (snaplen cut).
        let mut v = vec![
            0x45, 0, 0, 60, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        v.extend_from_slice(&[0x1a, 0xe1, 0xc3, 0x50]);
        let p = expect_ip(decode(linktype::RAW, &v));
        assert_eq!((p.sport, p.dport), (6881, 50000));
        assert!(p.payload.is_empty());
    }

    #[test]
    fn ipv4_fragments() {
        let mut first = ipv4_udp(5, 6, &[0u8; 16]);
        first[6] = 0x20; // MF
        first[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        let p = expect_ip(decode(linktype::RAW, &first));
        assert_eq!(p.frag, Fragment::First { id: 0x1234 });
        assert_eq!(p.dport, 6);
        let mut later = first.clone();
        later[6] = 0x00;
        later[7] = 0x03; // offset 24 bytes, last fragment
        let p = expect_ip(decode(linktype::RAW, &later));
        assert_eq!(p.frag, Fragment::Later { id: 0x1234 });
        assert_eq!((p.sport, p.dport), (0, 0));
    }

    #[test]
    fn ipv6_fragment_header_layout() {
        // IPv6 header (next header 44), fragment header (next 17, offset 0, M=1, id
        // 0x0badcafe), then a UDP header.
        let mut v = vec![0x60, 0, 0, 0, 0, 24, 44, 64];
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        v.extend_from_slice(&[17, 0, 0x00, 0x01, 0x0b, 0xad, 0xca, 0xfe]);
        v.extend_from_slice(&[0xc5, 0x47, 0xa2, 0x83, 0x07, 0xd8, 0, 0]);
        let p = expect_ip(decode(linktype::RAW, &v));
        assert_eq!(p.frag, Fragment::First { id: 0x0bad_cafe });
        assert_eq!((p.sport, p.dport), (50503, 41603));
        // Offset 1232 bytes (154 units), last fragment.
        v[42..44].copy_from_slice(&(154u16 << 3).to_be_bytes());
        let p = expect_ip(decode(linktype::RAW, &v));
        assert_eq!(p.frag, Fragment::Later { id: 0x0bad_cafe });
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex"))
            .collect()
    }

    /// Issue 18: IPv6 whose payload length (52) claims more than the frame holds, a routing
    /// header, then destination options cut short. etherparse 0.18.2's iterator over the lax
    /// extensions read past the end of the slice here (a debug build aborted).
    #[test]
    fn ipv6_extension_cut_short_is_read_in_bounds() {
        let frame = hex(concat!(
            "02000000000302000000000286dd6000000000342b40",
            "20010db8000200000000000000000002",
            "20010db8000200000000000000000003",
            "3c0202000000000020010db8000200000000000000000003",
            "060001"
        ));
        assert_eq!(frame.len(), 81);
        let p = expect_ip(decode(linktype::ETHERNET, &frame));
        assert!(p.v6);
        assert_eq!(p.frag, Fragment::Whole);
        // The cut destination options header is where etherparse stopped: its number is the
        // transport, the 3 bytes left are the payload.
        assert_eq!(p.proto, 60);
        assert_eq!(p.payload.len(), 3);
        // Every prefix of it too.
        for n in 0..frame.len() {
            let _ = decode(linktype::ETHERNET, &frame[..n]);
        }
    }

    #[test]
    fn ipv6_fragment_after_other_extensions() {
        // Hop-by-hop (8 bytes), authentication header (12 bytes), then a fragment header.
        let mut v = vec![0x60, 0, 0, 0, 0, 36, 0, 64];
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        v.extend_from_slice(&[51, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&[44, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        v.extend_from_slice(&[17, 0, 0x00, 0x09, 0, 0, 0, 7]);
        v.extend_from_slice(&[0u8; 8]);
        let p = expect_ip(decode(linktype::RAW, &v));
        assert_eq!(p.frag, Fragment::Later { id: 7 });
        assert_eq!(p.proto, IPPROTO_UDP);
    }
}
