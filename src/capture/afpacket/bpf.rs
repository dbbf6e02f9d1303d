//! The two classic BPF programs of a ring: the socket filter (libpcap's compilation of
//! `--filter`) and the fanout program that picks the worker.

use super::ETHERNET;

/// The socket filter: the user's expression compiled by libpcap for Ethernet (on a dead
/// handle), its accepting returns raised to the snap length (a dead handle compiles them to
/// 65535, and the return value is what the kernel keeps of a frame). No expression: accept
/// every frame, cut at the snap length.
pub fn compile_filter(expr: Option<&str>, snaplen: u32) -> Result<Vec<libc::sock_filter>, String> {
    const RET_K: u16 = 0x06;
    let Some(expr) = expr.filter(|e| !e.trim().is_empty()) else {
        return Ok(vec![libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: snaplen,
        }]);
    };
    if expr.contains("vlan") || expr.contains("mpls") || expr.contains("pppoe") {
        // The kernel strips the outer VLAN tag before the filter runs; libpcap handles that
        // only for a live Linux handle.
        return Err(format!("filter `{expr}` needs libpcap's live handle"));
    }
    let dead = pcap::Capture::dead(pcap::Linktype(ETHERNET as i32)).map_err(|e| e.to_string())?;
    let prog = dead.compile(expr, true).map_err(|e| e.to_string())?;
    let insns = prog.get_instructions();
    // SAFETY: BpfInstruction is #[repr(transparent)] over libpcap's `struct bpf_insn`
    // (u16 code, u8 jt, u8 jf, u32 k), the layout of the kernel's `struct sock_filter`
    // (libpcap passes its programs to SO_ATTACH_FILTER as they are); len is the program's.
    let raw: &[libc::sock_filter] =
        unsafe { std::slice::from_raw_parts(insns.as_ptr().cast(), insns.len()) };
    Ok(raw
        .iter()
        .map(|i| libc::sock_filter {
            k: if i.code == RET_K && i.k != 0 {
                snaplen
            } else {
                i.k
            },
            ..*i
        })
        .collect())
}

/// Classic BPF opcodes of the fanout program.
mod op {
    pub const LDH: u16 = 0x28; // ldh [k]
    pub const LDW: u16 = 0x20; // ld [k]
    pub const LD_MEM: u16 = 0x60; // ld M[k]
    pub const LDX_MEM: u16 = 0x61; // ldx M[k]
    pub const ST: u16 = 0x02; // st M[k]
    pub const JEQ: u16 = 0x15; // jeq #k, jt, jf
    pub const JA: u16 = 0x05; // ja k
    pub const TAX: u16 = 0x07;
    pub const XOR_X: u16 = 0xac;
    pub const MUL_K: u16 = 0x24;
    pub const RSH_K: u16 = 0x74;
    pub const RET_A: u16 = 0x16;
    pub const RET_K: u16 = 0x06;
    /// `ldh [SKF_AD_OFF + SKF_AD_PROTOCOL]`: the frame's EtherType (after the tag the
    /// kernel strips).
    pub const PROTOCOL: u32 = (-0x1000i32) as u32;
    /// Loads at `SKF_NET_OFF + k` are relative to the network header, wherever the
    /// frame's data starts (the fanout runs before the link header is pushed back).
    pub const NET: u32 = (-0x10_0000i32) as u32;
}

/// The fanout program: a hash of the unordered address pair of an IPv4 or IPv6 packet (XOR
/// of the two addresses, mixed); other frames, and packets too short (a load past the end
/// returns 0), go to socket 0. The kernel takes the result modulo the group size.
pub fn address_pair_program() -> Vec<libc::sock_filter> {
    use op::*;
    let i = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // IPv4: source (12) ^ destination (16).
    let v4 = [
        i(LDW, 0, 0, NET + 12),
        i(ST, 0, 0, 0),
        i(LDW, 0, 0, NET + 16),
        i(LDX_MEM, 0, 0, 0),
        i(XOR_X, 0, 0, 0),
    ];
    // IPv6: the eight words of source (8..24) and destination (24..40) into M[0..8], XORed.
    let mut v6 = Vec::new();
    for w in 0..8u32 {
        v6.extend([i(LDW, 0, 0, NET + 8 + 4 * w), i(ST, 0, 0, w)]);
    }
    v6.push(i(LD_MEM, 0, 0, 0));
    for w in 1..8u32 {
        v6.extend([i(LDX_MEM, 0, 0, w), i(XOR_X, 0, 0, 0)]);
    }
    // Mix: A *= golden ratio; A ^= A >> 16.
    let mix = [
        i(MUL_K, 0, 0, 0x9e37_79b1),
        i(TAX, 0, 0, 0),
        i(RSH_K, 0, 0, 16),
        i(XOR_X, 0, 0, 0),
        i(RET_A, 0, 0, 0),
    ];
    let mut p = vec![
        i(LDH, 0, 0, PROTOCOL),
        i(JEQ, 0, v4.len() as u8 + 1, 0x0800),
    ];
    p.extend(v4);
    p.push(i(JA, 0, 0, 1 + v6.len() as u32));
    p.push(i(JEQ, 0, (v6.len() + mix.len()) as u8, 0x86dd));
    p.extend(v6);
    p.extend(mix);
    p.push(i(RET_K, 0, 0, 0));
    p
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A classic BPF interpreter for the opcodes libpcap and [`address_pair_program`] use.
    /// `base`: where the kernel's data pointer is in `frame` (0 for a socket filter, the
    /// network header for the fanout program); the network header is at 14.
    fn run_bpf(prog: &[libc::sock_filter], frame: &[u8], base: usize) -> u32 {
        let (mut a, mut x, mut m) = (0u32, 0u32, [0u32; 16]);
        let load = |off: usize, size: usize| -> Option<u32> {
            let s = frame.get(off..off + size)?;
            Some(s.iter().fold(0u32, |v, &b| v << 8 | u32::from(b)))
        };
        let abs = |k: u32, size: usize| -> Option<u32> {
            if k == op::PROTOCOL {
                load(12, 2)
            } else if k >= op::NET {
                load(14 + (k - op::NET) as usize, size)
            } else {
                load(base + k as usize, size)
            }
        };
        let mut pc = 0;
        loop {
            let i = prog[pc];
            pc += 1;
            let size = match i.code & 0x18 {
                0x00 => 4,
                0x08 => 2,
                _ => 1,
            };
            match i.code {
                0x20 | 0x28 | 0x30 => match abs(i.k, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                0x40 | 0x48 | 0x50 => match load(base + (x + i.k) as usize, size) {
                    Some(v) => a = v,
                    None => return 0,
                },
                0xb1 => match load(base + i.k as usize, 1) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return 0,
                },
                0x00 => a = i.k,
                0x01 => x = i.k,
                0x60 => a = m[i.k as usize],
                0x61 => x = m[i.k as usize],
                0x02 => m[i.k as usize] = a,
                0x03 => m[i.k as usize] = x,
                0x07 => x = a,
                0x87 => a = x,
                0x05 => pc += i.k as usize,
                0x15 | 0x25 | 0x35 | 0x45 | 0x1d => {
                    let v = if i.code == 0x1d { x } else { i.k };
                    let t = match i.code {
                        0x15 | 0x1d => a == v,
                        0x25 => a > v,
                        0x35 => a >= v,
                        _ => a & v != 0,
                    };
                    pc += usize::from(if t { i.jt } else { i.jf });
                }
                0x04 => a = a.wrapping_add(i.k),
                0x14 => a = a.wrapping_sub(i.k),
                0x24 => a = a.wrapping_mul(i.k),
                0x54 => a &= i.k,
                0x44 => a |= i.k,
                0x64 => a <<= i.k,
                0x74 => a >>= i.k,
                0xa4 => a ^= i.k,
                0xac => a ^= x,
                0x0c => a = a.wrapping_add(x),
                0x5c => a &= x,
                0x06 => return i.k,
                0x16 => return a,
                c => panic!("opcode {c:#x} not interpreted"),
            }
        }
    }

    pub(in crate::capture::afpacket) fn udp4(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
    ) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f
    }

    pub(in crate::capture::afpacket) fn udp6(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&[0x1a, 0xe1, 0x1a, 0xe1, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn fanout_program_hashes_the_unordered_address_pair() {
        let prog = address_pair_program();
        let pick = |f: &[u8], n: u32| run_bpf(&prog, f, 14) % n;
        let mut spread = [0u32; 4];
        for i in 0..=255u8 {
            let (a, b) = ([10, 0, i, 1], [192, 0, 2, i.wrapping_mul(7)]);
            let w = pick(&udp4(a, b, 6881, 51413), 4);
            // Both directions, other ports (a later fragment has none): the same worker.
            assert_eq!(w, pick(&udp4(b, a, 51413, 6881), 4));
            assert_eq!(w, pick(&udp4(a, b, 1, 2), 4));
            spread[w as usize] += 1;
            let mut s6 = [0u8; 16];
            s6[0] = 0x20;
            s6[15] = i;
            let mut d6 = [0u8; 16];
            d6[0] = 0xfd;
            d6[7] = i ^ 0x5a;
            assert_eq!(
                pick(&udp6(s6, d6), 4),
                pick(&udp6(d6, s6), 4),
                "IPv6 pair {i}"
            );
        }
        assert!(spread.iter().all(|&c| c > 40), "{spread:?}");
        // ARP, and an IPv4 frame cut before its addresses: worker 0.
        let mut arp = udp4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(run_bpf(&prog, &arp, 14), 0);
        assert_eq!(run_bpf(&prog, &udp4([1; 4], [2; 4], 1, 2)[..28], 14), 0);
    }

    #[test]
    fn filters_compile_with_libpcap_and_keep_the_snap_length() {
        let all = compile_filter(None, 262_144).expect("no filter");
        assert_eq!(all.len(), 1);
        assert_eq!(run_bpf(&all, &udp4([1; 4], [2; 4], 1, 2), 0), 262_144);
        let f = compile_filter(Some("udp port 6881"), 1000).expect("compiles");
        assert_eq!(run_bpf(&f, &udp4([1; 4], [2; 4], 6881, 9), 0), 1000);
        assert_eq!(run_bpf(&f, &udp4([1; 4], [2; 4], 9, 6881), 0), 1000);
        assert_eq!(run_bpf(&f, &udp4([1; 4], [2; 4], 9, 9), 0), 0);
        assert!(compile_filter(Some("udp port"), 1000).is_err());
        assert!(compile_filter(Some("vlan 10 and udp"), 1000).is_err());
    }
}
