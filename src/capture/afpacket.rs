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

mod block;
mod bpf;

use block::{walk_block, BLK_HDR_LEN, BLK_STATUS, PKT_HDR_LEN};
pub use bpf::{address_pair_program, compile_filter};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
