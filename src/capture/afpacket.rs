//! Live capture through AF_PACKET: one TPACKET_V3 ring per worker and interface, the rings
//! of an interface joined in one `PACKET_FANOUT` group, so the kernel spreads flows over the
//! workers and no thread dispatches or copies packets. A worker walks its ring's blocks in
//! place ([`Ring::read`] hands out [`RawPacket`]s borrowing the block) and gives each block
//! back to the kernel once it is done with it.
//!
//! The fanout hashes the unordered address pair (a classic BPF program, `PACKET_FANOUT_CBPF`),
//! as the offline workers do: both directions of a flow, every fragment of a datagram and
//! both directions of a tunnel meet in one worker, and fragments reach us as they were on the
//! wire, so live counts what `analyze` counts. [`Fanout::KernelHash`] is the kernel's
//! symmetric flow hash with IPv4 defragmentation (Suricata's `cluster_flow`, Zeek's
//! af_packet plugin); it counts a fragmented datagram once, reassembled.
//!
//! Block and frame headers are read from a byte slice of the block with every offset and
//! length checked against the block, so a frame header the kernel did not write (or a bug)
//! cannot make us read outside it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::live::{Drops, LiveError, LiveOptions};
use super::RawPacket;

/// How the kernel picks a worker for a packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fanout {
    /// Hash of the unordered IPv4/IPv6 address pair (a cBPF fanout program); frames without
    /// one go to the first worker.
    #[default]
    AddressPair,
    /// `PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG`: the kernel's symmetric 5-tuple hash,
    /// IPv4 fragments reassembled before they reach the ring.
    KernelHash,
}

/// Block retire timeout: a block is handed over at least this often on a quiet link.
const BLOCK_TIMEOUT_MS: u32 = 10;
/// Smallest block: holds hundreds of full-size frames; larger when the snap length needs it.
const MIN_BLOCK: usize = 1 << 20;
const MIN_BLOCKS: usize = 8;
/// Nominal frame size (TPACKET_V3 packs frames by their length; the kernel still checks it).
const FRAME: usize = 2048;
/// LINKTYPE_ETHERNET; loopback frames carry an Ethernet header too.
const ETHERNET: u32 = 1;
const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;

// Offsets in `struct tpacket_block_desc` (version 3 header) and `struct tpacket3_hdr`.
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST: usize = 16;
const BLK_HDR_LEN: usize = 48;
const PKT_NEXT: usize = 0;
const PKT_SEC: usize = 4;
const PKT_NSEC: usize = 8;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_VLAN_TCI: usize = 32;
const PKT_VLAN_TPID: usize = 36;
const PKT_HDR_LEN: usize = 48;
/// `sockaddr_ll` follows the frame header (TPACKET_ALIGN(sizeof(tpacket3_hdr)) = 48);
/// `sll_pkttype` is its byte 10.
const SLL_PKTTYPE: usize = PKT_HDR_LEN + 10;
const _: () = assert!(std::mem::size_of::<libc::tpacket3_hdr>() == PKT_HDR_LEN);
const _: () = assert!(std::mem::size_of::<libc::tpacket_block_desc>() == BLK_HDR_LEN);

/// One socket and its mmapped ring.
pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    block_size: usize,
    blocks: usize,
    next: usize,
    interface: String,
    /// Outgoing frames on loopback are the incoming ones again: skipped, as libpcap does.
    loopback: bool,
    /// A frame whose VLAN tag the kernel took off, with the tag put back.
    scratch: Vec<u8>,
    total: Drops,
    /// Packets handed out.
    pub read: u64,
    /// Frames whose header did not fit the block (should never happen): the rest of that
    /// block was skipped.
    pub malformed: u64,
}

// SAFETY: the mapping belongs to this ring alone (nothing else holds its address) and is
// only touched through `&mut self`; moving it to another thread is moving its owner.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: map/map_len are exactly what mmap returned; no slice of it outlives a
        // `read` call, which borrows `self`.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}

fn os_err(interface: &str, what: &'static str) -> LiveError {
    LiveError {
        interface: interface.to_string(),
        what,
        reason: io::Error::last_os_error().to_string(),
    }
}

fn unsupported(interface: &str, reason: String) -> LiveError {
    LiveError {
        interface: interface.to_string(),
        what: "AF_PACKET capture not supported",
        reason,
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live, initialised T and we pass its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

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

fn interface_type(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/type"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

struct Geometry {
    block_size: usize,
    blocks: usize,
}

fn geometry(snaplen: u32, ring_bytes: u32) -> Geometry {
    // A whole frame of the snap length (plus its headers) fits one block.
    let need = (snaplen as usize + BLK_HDR_LEN + PKT_HDR_LEN + 64).next_power_of_two();
    let block_size = need.max(MIN_BLOCK);
    Geometry {
        block_size,
        blocks: (ring_bytes as usize / block_size).max(MIN_BLOCKS),
    }
}

impl Ring {
    /// Opens a ring on `interface`: TPACKET_V3, the filter attached before the socket is
    /// bound (no frame passes unfiltered), promiscuous if asked. Not yet in a fanout group.
    fn open(
        interface: &str,
        opts: &LiveOptions,
        filter: &[libc::sock_filter],
    ) -> Result<Ring, LiveError> {
        let ty = interface_type(interface);
        if !matches!(ty, Some(ARPHRD_ETHER | ARPHRD_LOOPBACK)) {
            return Err(unsupported(
                interface,
                format!("link type {ty:?} is not Ethernet or loopback"),
            ));
        }
        let cname = std::ffi::CString::new(interface)
            .map_err(|_| unsupported(interface, "name holds a NUL byte".into()))?;
        // SAFETY: cname is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(os_err(interface, "no such device"));
        }
        // Protocol 0: no frame is queued before bind.
        // SAFETY: plain system call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_err(interface, "cannot open for capture"));
        }
        // SAFETY: raw is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let e = |what| {
            move |err: io::Error| LiveError {
                interface: interface.to_string(),
                what,
                reason: err.to_string(),
            }
        };
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(e("TPACKET_V3 not supported"))?;
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
            .map_err(e("cannot attach the BPF filter"))?;
        let g = geometry(opts.snaplen, opts.buffer_bytes);
        let req = libc::tpacket_req3 {
            tp_block_size: g.block_size as u32,
            tp_block_nr: g.blocks as u32,
            tp_frame_size: FRAME as u32,
            tp_frame_nr: (g.block_size / FRAME * g.blocks) as u32,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(e("cannot set up the capture ring"))?;
        let map_len = g.block_size * g.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(os_err(interface, "cannot map the capture ring"));
        }
        let ring = Ring {
            fd,
            map: map.cast(),
            map_len,
            block_size: g.block_size,
            blocks: g.blocks,
            next: 0,
            interface: interface.to_string(),
            loopback: ty == Some(ARPHRD_LOOPBACK),
            scratch: Vec::with_capacity(g.block_size),
            total: Drops::default(),
            read: 0,
            malformed: 0,
        };
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(os_err(interface, "cannot bind to the interface"));
        }
        if opts.promisc {
            // SAFETY: all-zero is a valid packet_mreq.
            let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mr.mr_ifindex = ifindex as i32;
            mr.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(&ring.fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mr)
                .map_err(e("cannot enter promiscuous mode"))?;
        }
        Ok(ring)
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// A pending socket error (the interface went down), if any.
    pub fn error(&self) -> Option<LiveError> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: v and len are valid for writing; len is v's size.
        let r = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0 && v != 0).then(|| LiveError {
            interface: self.interface.clone(),
            what: "read failed",
            reason: io::Error::from_raw_os_error(v).to_string(),
        })
    }

    /// Walks at most `max_blocks` blocks the kernel has handed over, giving each frame to
    /// `f`, and hands each block back after its last frame. Returns the frames handed out.
    pub fn read(&mut self, max_blocks: usize, mut f: impl FnMut(&RawPacket<'_>)) -> usize {
        let mut n = 0;
        for _ in 0..max_blocks {
            // SAFETY: `next < blocks`, so the block lies inside the mapping; block_status is
            // a 4-aligned u32 (blocks are page-aligned) the kernel writes concurrently, so it
            // is read atomically, with Acquire to see the block it published.
            let base = unsafe { self.map.add(self.next * self.block_size) };
            let status = unsafe { &*base.add(BLK_STATUS).cast::<AtomicU32>() };
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the block is ours until its status is set back to TP_STATUS_KERNEL
            // below: the kernel writes none of it meanwhile, and the slice dies before that.
            let block = unsafe { std::slice::from_raw_parts(base, self.block_size) };
            let walked = walk_block(block, self.loopback, &mut self.scratch, &mut f);
            n += walked.frames;
            self.malformed += u64::from(walked.malformed);
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % self.blocks;
        }
        self.read += n as u64;
        n
    }

    /// Cumulative counters of this ring: PACKET_STATISTICS (which resets the kernel's),
    /// added up. `received` counts the dropped frames too.
    pub fn drops(&mut self) -> Drops {
        // SAFETY: all-zero is a valid tpacket_stats_v3.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: st and len are valid for writing; len is st's size.
        let r = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if r == 0 {
            self.total.received += u64::from(st.tp_packets);
            self.total.kernel += u64::from(st.tp_drops);
        }
        self.total
    }
}

fn join_fanout(ring: &OwnedFd, id: u16, mode: Fanout) -> io::Result<()> {
    let ty = match mode {
        Fanout::AddressPair => libc::PACKET_FANOUT_CBPF,
        Fanout::KernelHash => libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG,
    };
    let arg: libc::c_int = (id as libc::c_int) | ((ty as libc::c_int) << 16);
    setsockopt(ring, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
}

/// Opens `workers` rings on every interface of `opts`, each interface's rings in one fanout
/// group. Returns, per worker, its rings (one per interface).
pub fn open(opts: &LiveOptions, workers: usize, mode: Fanout) -> Result<Vec<Vec<Ring>>, LiveError> {
    let workers = workers.max(1);
    let first = opts.interfaces.first().map_or("", String::as_str);
    let filter = compile_filter(opts.filter.as_deref(), opts.snaplen).map_err(|r| LiveError {
        interface: first.to_string(),
        what: "invalid BPF filter",
        reason: r,
    })?;
    let program = address_pair_program();
    let mut per_worker: Vec<Vec<Ring>> = (0..workers).map(|_| Vec::new()).collect();
    for (k, name) in opts.interfaces.iter().enumerate() {
        let mut rings = Vec::with_capacity(workers);
        for _ in 0..workers {
            rings.push(Ring::open(name, opts, &filter)?);
        }
        if workers > 1 {
            // A group id of our own in this namespace: the pid and the interface's place,
            // the next ones if taken (by another process, with other settings).
            let base = (std::process::id() as u16)
                .wrapping_mul(31)
                .wrapping_add(k as u16 * 7);
            let mut id = None;
            for t in 0..64u16 {
                let cand = base.wrapping_add(t.wrapping_mul(613));
                if join_fanout(&rings[0].fd, cand, mode).is_ok() {
                    id = Some(cand);
                    break;
                }
            }
            let Some(id) = id else {
                return Err(os_err(name, "cannot create a PACKET_FANOUT group"));
            };
            if mode == Fanout::AddressPair {
                let prog = libc::sock_fprog {
                    len: program.len() as u16,
                    filter: program.as_ptr().cast_mut(),
                };
                setsockopt(
                    &rings[0].fd,
                    libc::SOL_PACKET,
                    libc::PACKET_FANOUT_DATA,
                    &prog,
                )
                .map_err(|e| unsupported(name, format!("PACKET_FANOUT_CBPF: {e}")))?;
            }
            for r in &rings[1..] {
                join_fanout(&r.fd, id, mode)
                    .map_err(|e| unsupported(name, format!("PACKET_FANOUT: {e}")))?;
            }
        }
        for (w, r) in rings.into_iter().enumerate() {
            per_worker[w].push(r);
        }
    }
    Ok(per_worker)
}

/// Waits up to `timeout_ms` for any of `rings` to have a block (or an error).
pub fn wait(rings: &[Ring], timeout_ms: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 8];
    let n = rings.len().min(fds.len());
    for (p, r) in fds.iter_mut().zip(rings) {
        *p = libc::pollfd {
            fd: r.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
    }
    // SAFETY: fds[..n] is a valid pollfd array for the duration of the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    r > 0
        && fds[..n]
            .iter()
            .any(|p| p.revents & (libc::POLLERR | libc::POLLNVAL) != 0)
}

struct Walked {
    frames: usize,
    malformed: u32,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

/// The frames of one TPACKET_V3 block, every header and slice bounds-checked against the
/// block: a frame that does not fit ends the walk of the block (counted as malformed).
fn walk_block(
    block: &[u8],
    loopback: bool,
    scratch: &mut Vec<u8>,
    f: &mut impl FnMut(&RawPacket<'_>),
) -> Walked {
    let mut w = Walked {
        frames: 0,
        malformed: 0,
    };
    let (Some(num), Some(first)) = (u32_at(block, BLK_NUM_PKTS), u32_at(block, BLK_FIRST)) else {
        w.malformed = 1;
        return w;
    };
    let mut off = first as usize;
    for i in 0..num {
        let Some(frame) = frame_at(block, off) else {
            w.malformed += 1;
            return w;
        };
        if !(loopback && frame.pkttype == libc::PACKET_OUTGOING) {
            let data = frame.data;
            let (data, wire_len) = match frame.vlan {
                Some((tpid, tci)) if data.len() >= 12 => {
                    // Put the tag the kernel took off back in, as libpcap does.
                    scratch.clear();
                    scratch.extend_from_slice(&data[..12]);
                    scratch.extend_from_slice(&tpid.to_be_bytes());
                    scratch.extend_from_slice(&tci.to_be_bytes());
                    scratch.extend_from_slice(&data[12..]);
                    (scratch.as_slice(), frame.wire_len.saturating_add(4))
                }
                _ => (data, frame.wire_len),
            };
            f(&RawPacket {
                ts_ns: frame.ts_ns,
                wire_len,
                linktype: ETHERNET,
                data,
            });
            w.frames += 1;
        }
        if i + 1 < num {
            if frame.next == 0 {
                w.malformed += 1;
                return w;
            }
            off = match off.checked_add(frame.next as usize) {
                Some(o) => o,
                None => {
                    w.malformed += 1;
                    return w;
                }
            };
        }
    }
    w
}

struct Frame<'a> {
    next: u32,
    ts_ns: i64,
    wire_len: u32,
    pkttype: u8,
    vlan: Option<(u16, u16)>,
    data: &'a [u8],
}

fn frame_at(block: &[u8], off: usize) -> Option<Frame<'_>> {
    if off < BLK_HDR_LEN {
        return None;
    }
    let hdr = block.get(off..off.checked_add(SLL_PKTTYPE + 1)?)?;
    let snaplen = u32_at(hdr, PKT_SNAPLEN)? as usize;
    let mac = u16_at(hdr, PKT_MAC)? as usize;
    let start = off.checked_add(mac)?;
    let data = block.get(start..start.checked_add(snaplen)?)?;
    let status = u32_at(hdr, PKT_STATUS)?;
    let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tci = u32_at(hdr, PKT_VLAN_TCI).unwrap_or(0) as u16;
        let tpid = match u16_at(hdr, PKT_VLAN_TPID) {
            Some(t) if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 && t != 0 => t,
            _ => 0x8100,
        };
        (tpid, tci)
    });
    let (ts, _) = super::clamp_ts(
        i128::from(u32_at(hdr, PKT_SEC)?) * 1_000_000_000 + i128::from(u32_at(hdr, PKT_NSEC)?),
    );
    Some(Frame {
        next: u32_at(hdr, PKT_NEXT)?,
        ts_ns: ts,
        wire_len: u32_at(hdr, PKT_LEN)?,
        pkttype: hdr[SLL_PKTTYPE],
        vlan,
        data,
    })
}

#[cfg(test)]
mod tests {
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

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f
    }

    fn udp6(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
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

    #[test]
    fn ring_geometry_holds_a_whole_frame_per_block() {
        let g = geometry(262_144, 64 << 20);
        assert_eq!((g.block_size, g.blocks), (1 << 20, 64));
        let g = geometry(65_535, 0);
        assert_eq!((g.block_size, g.blocks), (1 << 20, MIN_BLOCKS));
        let g = geometry(2 << 20, 64 << 20);
        assert_eq!(g.block_size, 4 << 20);
        assert!(g.block_size >= (2 << 20) + BLK_HDR_LEN + PKT_HDR_LEN);
    }

    struct Fake {
        ts: (u32, u32),
        len: u32,
        status: u32,
        pkttype: u8,
        vlan: (u16, u16),
        data: Vec<u8>,
    }

    fn fake(data: &[u8]) -> Fake {
        Fake {
            ts: (1_700_000_000, 5),
            len: data.len() as u32 + 100,
            status: 0,
            pkttype: libc::PACKET_HOST,
            vlan: (0, 0),
            data: data.to_vec(),
        }
    }

    /// A block as the kernel lays it out: descriptor, then frames at 16-aligned offsets.
    fn block(frames: &[Fake]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, BLK_STATUS, libc::TP_STATUS_USER);
        put32(&mut b, BLK_NUM_PKTS, frames.len() as u32);
        put32(&mut b, BLK_FIRST, BLK_HDR_LEN as u32);
        let mut off = BLK_HDR_LEN;
        for (i, f) in frames.iter().enumerate() {
            let mac = 80usize;
            let next = (mac + f.data.len()).next_multiple_of(16);
            let last = i + 1 == frames.len();
            put32(&mut b, off + PKT_NEXT, if last { 0 } else { next as u32 });
            put32(&mut b, off + PKT_SEC, f.ts.0);
            put32(&mut b, off + PKT_NSEC, f.ts.1);
            put32(&mut b, off + PKT_SNAPLEN, f.data.len() as u32);
            put32(&mut b, off + PKT_LEN, f.len);
            put32(&mut b, off + PKT_STATUS, f.status);
            b[off + PKT_MAC..off + PKT_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
            put32(&mut b, off + PKT_VLAN_TCI, u32::from(f.vlan.1));
            b[off + PKT_VLAN_TPID..off + PKT_VLAN_TPID + 2]
                .copy_from_slice(&f.vlan.0.to_ne_bytes());
            b[off + SLL_PKTTYPE] = f.pkttype;
            b[off + mac..off + mac + f.data.len()].copy_from_slice(&f.data);
            off += next;
        }
        b
    }

    fn walk(b: &[u8], loopback: bool) -> (Vec<(i64, u32, Vec<u8>)>, u32) {
        let mut got = Vec::new();
        let mut scratch = Vec::new();
        let w = walk_block(b, loopback, &mut scratch, &mut |p: &RawPacket<'_>| {
            assert_eq!(p.linktype, ETHERNET);
            got.push((p.ts_ns, p.wire_len, p.data.to_vec()));
        });
        assert_eq!(w.frames, got.len());
        (got, w.malformed)
    }

    #[test]
    fn block_walk_hands_out_each_frame_in_place() {
        let a = udp4([1; 4], [2; 4], 1, 2);
        let b = udp6([3; 16], [4; 16]);
        let (got, bad) = walk(&block(&[fake(&a), fake(&b)]), false);
        assert_eq!(bad, 0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (1_700_000_000_000_000_005, a.len() as u32 + 100, a));
        assert_eq!(got[1].2, b);
    }

    #[test]
    fn block_walk_puts_stripped_vlan_tags_back() {
        let a = udp4([1; 4], [2; 4], 1, 2);
        let mut f = fake(&a);
        f.status = libc::TP_STATUS_VLAN_VALID;
        f.vlan = (0, 0x0064);
        let mut q = fake(&a);
        q.status = libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID;
        q.vlan = (0x88a8, 7);
        let (got, _) = walk(&block(&[f, q]), false);
        let mut want = a[..12].to_vec();
        want.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        want.extend_from_slice(&a[12..]);
        assert_eq!(got[0].2, want);
        assert_eq!(got[0].1, a.len() as u32 + 104);
        assert_eq!(&got[1].2[12..16], &[0x88, 0xa8, 0, 7]);
    }

    #[test]
    fn block_walk_skips_loopbacks_outgoing_copies() {
        let a = udp4([127, 0, 0, 1], [127, 0, 0, 1], 1, 2);
        let mut out = fake(&a);
        out.pkttype = libc::PACKET_OUTGOING;
        let blk = block(&[out, fake(&a)]);
        assert_eq!(walk(&blk, true).0.len(), 1);
        // On another interface an outgoing frame is traffic too.
        assert_eq!(walk(&blk, false).0.len(), 2);
    }

    #[test]
    fn hostile_block_headers_stay_inside_the_block() {
        let a = udp4([1; 4], [2; 4], 1, 2);
        let good = block(&[fake(&a), fake(&a), fake(&a)]);
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        let second = BLK_HDR_LEN + (80 + a.len()).next_multiple_of(16);
        // A snap length past the end of the block: the frames before it only.
        let mut b = good.clone();
        put32(&mut b, second + PKT_SNAPLEN, u32::MAX);
        assert_eq!(
            walk(&b, false),
            (
                vec![(1_700_000_000_000_000_005, a.len() as u32 + 100, a.clone())],
                1
            )
        );
        // A MAC offset past the end.
        let mut b = good.clone();
        b[second + PKT_MAC..second + PKT_MAC + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert_eq!(walk(&b, false).0.len(), 1);
        // More frames claimed than there are, a next offset of 0, or one out of the block.
        let mut b = good.clone();
        put32(&mut b, BLK_NUM_PKTS, u32::MAX);
        assert_eq!(walk(&b, false), (walk(&good, false).0, 1));
        let mut b = good.clone();
        put32(&mut b, BLK_HDR_LEN + PKT_NEXT, 0);
        assert_eq!(walk(&b, false).0.len(), 1);
        let mut b = good.clone();
        put32(&mut b, BLK_HDR_LEN + PKT_NEXT, u32::MAX);
        assert_eq!(walk(&b, false).0.len(), 1);
        // A first frame inside the block descriptor, or past the end.
        for first in [0, 4096 - 8, u32::MAX] {
            let mut b = good.clone();
            put32(&mut b, BLK_FIRST, first);
            assert_eq!(walk(&b, false), (vec![], 1));
        }
        // A block too short for its descriptor.
        assert_eq!(walk(&good[..10], false), (vec![], 1));
    }
}
