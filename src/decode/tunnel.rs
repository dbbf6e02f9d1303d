//! Small checked parsers for what etherparse does not cover: MPLS, PPPoE sessions, GRE
//! (with ERSPAN types I/II/III and PPTP's enhanced GRE) and VXLAN.

use super::{ethernet, ip, ip_any, Decoded, IpPacket};

pub const VXLAN_PORT: u16 = 4789;

/// An MPLS label stack; after the bottom label, IPv4 or IPv6 by version nibble, or an
/// Ethernet pseudowire behind a zero control word.
pub fn mpls(mut data: &[u8], depth: u8) -> Decoded<'_> {
    loop {
        let Some(label) = data.get(0..4) else {
            return Decoded::Undecodable;
        };
        let bottom = label[2] & 0x01 != 0;
        data = &data[4..];
        if bottom {
            break;
        }
    }
    match data.first().map(|b| b >> 4) {
        Some(4) | Some(6) => ip(data, depth + 1),
        Some(0) if data.len() > 4 => ethernet(&data[4..], depth + 1),
        _ => Decoded::Undecodable,
    }
}

/// PPPoE session stage (EtherType 0x8864): 6-byte header, then the PPP protocol.
pub fn pppoe_session(data: &[u8], depth: u8) -> Decoded<'_> {
    let Some(h) = data.get(0..8) else {
        return Decoded::Undecodable;
    };
    if h[0] != 0x11 {
        return Decoded::Undecodable;
    }
    ppp_protocol(u16::from_be_bytes([h[6], h[7]]), &data[8..], depth)
}

/// A PPP frame (LINKTYPE_PPP, PPP_HDLC, or inside PPTP's GRE): optional address and control
/// bytes, then a one- or two-byte protocol.
pub fn ppp_frame(data: &[u8], depth: u8) -> Decoded<'_> {
    let mut ppp = data;
    if ppp.starts_with(&[0xff, 0x03]) {
        ppp = &ppp[2..];
    }
    let Some(&first) = ppp.first() else {
        return Decoded::Undecodable;
    };
    if first & 0x01 != 0 {
        ppp_protocol(u16::from(first), &ppp[1..], depth)
    } else {
        match ppp.get(0..2) {
            Some(p) => ppp_protocol(u16::from_be_bytes([p[0], p[1]]), &ppp[2..], depth),
            None => Decoded::Undecodable,
        }
    }
}

fn ppp_protocol(proto: u16, data: &[u8], depth: u8) -> Decoded<'_> {
    match proto {
        0x0021 | 0x0057 => ip_any(data, depth + 1),
        _ => Decoded::NonIp,
    }
}

/// GRE (RFC 2784/2890) and enhanced GRE (RFC 2637). Returns the inner IP packet, or `None`
/// when there is none to be had (the caller then keeps the outer packet).
pub fn gre(data: &[u8], depth: u8) -> Option<IpPacket<'_>> {
    let h = data.get(0..4)?;
    let (flags, version) = (h[0], h[1] & 0x07);
    let proto = u16::from_be_bytes([h[2], h[3]]);
    let seq = flags & 0x10 != 0;
    let inner = match version {
        0 => {
            if flags & 0x40 != 0 {
                return None; // source routing (RFC 1701): obsolete, not followed
            }
            let mut hlen = 4;
            if flags & 0x80 != 0 {
                hlen += 4;
            }
            if flags & 0x20 != 0 {
                hlen += 4;
            }
            if seq {
                hlen += 4;
            }
            let body = data.get(hlen..)?;
            match proto {
                0x0800 | 0x86dd => ip_any(body, depth + 1),
                0x6558 => ethernet(body, depth + 1),
                // ERSPAN type II carries an 8-byte header and always sets the sequence
                // bit; type I has neither.
                0x88be if seq => ethernet(body.get(8..)?, depth + 1),
                0x88be => ethernet(body, depth + 1),
                0x22eb => {
                    let h3 = body.get(0..12)?;
                    let skip = if h3[11] & 0x01 != 0 { 20 } else { 12 };
                    ethernet(body.get(skip..)?, depth + 1)
                }
                _ => return None,
            }
        }
        1 => {
            // PPTP: key present, payload length and call id, then optional sequence and
            // acknowledgement numbers, then PPP.
            if proto != 0x880b {
                return None;
            }
            let mut hlen = 8;
            if seq {
                hlen += 4;
            }
            if h[1] & 0x80 != 0 {
                hlen += 4;
            }
            ppp_frame(data.get(hlen..)?, depth)
        }
        _ => return None,
    };
    match inner {
        Decoded::Ip(p) => Some(p),
        _ => None,
    }
}

/// VXLAN (RFC 7348): 8-byte header with the I flag, then an Ethernet frame.
pub fn vxlan(data: &[u8], depth: u8) -> Option<IpPacket<'_>> {
    let h = data.get(0..8)?;
    if h[0] & 0x08 == 0 {
        return None;
    }
    match ethernet(&data[8..], depth + 1) {
        Decoded::Ip(p) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INNER_V4_UDP: [u8; 30] = [
        0x45, 0, 0, 30, 0, 1, 0, 0, 64, 17, 0, 0, 10, 9, 9, 1, 10, 9, 9, 2, //
        0x1a, 0xe1, 0x1a, 0xe2, 0, 10, 0, 0, b'h', b'i',
    ];

    fn inner_eth() -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&[0x08, 0x00]);
        v.extend_from_slice(&INNER_V4_UDP);
        v
    }

    #[test]
    fn mpls_stack_to_ipv4() {
        let mut v = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
        v.extend_from_slice(&INNER_V4_UDP);
        let Decoded::Ip(p) = mpls(&v, 0) else {
            panic!("mpls")
        };
        assert_eq!((p.sport, p.dport), (6881, 6882));
        // A stack without a bottom label is undecodable.
        assert!(matches!(mpls(&[0, 1, 0, 64], 0), Decoded::Undecodable));
    }

    #[test]
    fn pppoe_ipv4_and_lcp() {
        let mut v = vec![0x11, 0x00, 0x12, 0x34, 0x00, 32, 0x00, 0x21];
        v.extend_from_slice(&INNER_V4_UDP);
        assert!(matches!(pppoe_session(&v, 0), Decoded::Ip(_)));
        let lcp = [0x11, 0x00, 0x12, 0x34, 0x00, 4, 0xc0, 0x21, 1, 1, 0, 4];
        assert!(matches!(pppoe_session(&lcp, 0), Decoded::NonIp));
    }

    #[test]
    fn gre_variants() {
        // Plain GRE with key and sequence number, IPv4 inside.
        let mut v = vec![0x30, 0x00, 0x08, 0x00, 0, 0, 0, 7, 0, 0, 0, 1];
        v.extend_from_slice(&INNER_V4_UDP);
        assert_eq!(gre(&v, 0).map(|p| p.dport), Some(6882));
        // ERSPAN II: sequence bit, 8-byte ERSPAN header, Ethernet.
        let mut v = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        v.extend_from_slice(&[0x10, 0x01, 0x00, 0x05, 0, 0, 0, 0]);
        v.extend_from_slice(&inner_eth());
        assert_eq!(gre(&v, 0).map(|p| p.sport), Some(6881));
        // ERSPAN III with the O bit: 12 + 8 bytes of headers.
        let mut v = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
        v.extend_from_slice(&[0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
        v.extend_from_slice(&[0u8; 8]);
        v.extend_from_slice(&inner_eth());
        assert_eq!(gre(&v, 0).map(|p| p.sport), Some(6881));
        // Unknown GRE protocol, and a header longer than the packet.
        assert!(gre(&[0, 0, 0x12, 0x34, 1, 2], 0).is_none());
        assert!(gre(&[0xb0, 0, 0x08, 0x00], 0).is_none());
    }

    #[test]
    fn vxlan_needs_the_i_flag() {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 0x64, 0];
        v.extend_from_slice(&inner_eth());
        assert!(vxlan(&v, 0).is_some());
        v[0] = 0;
        assert!(vxlan(&v, 0).is_none());
    }
}
