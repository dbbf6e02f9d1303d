//! Live capture through libpcap: one non-blocking handle per interface, read in turn after a
//! `poll(2)` on all of them, so one thread serves every interface and still wakes up on an
//! idle link to flush minutes.

use std::fmt;
use std::os::unix::io::AsRawFd;

use pcap::{Active, Capture, Precision};

use super::RawPacket;

/// Default snap length: the largest frame libpcap captures whole (262144 bytes), so GRO/TSO
/// super-frames and every byte a detector may look at (handshake, MSE key exchange, tracker
/// replies with peer lists) are kept; wire lengths are exact whatever the snap length.
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// Default kernel buffer: 64 MiB, about half a second of a saturated 1 Gbit/s link.
pub const DEFAULT_BUFFER_BYTES: u32 = 64 << 20;

/// How to open the interfaces.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interfaces: Vec<String>,
    pub snaplen: u32,
    pub buffer_bytes: u32,
    pub promisc: bool,
    /// BPF filter expression, applied in the kernel.
    pub filter: Option<String>,
}

/// An interface that could not be opened or read, with libpcap's reason.
#[derive(Debug)]
pub struct LiveError {
    pub interface: String,
    pub what: &'static str,
    pub reason: String,
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interface {}: {}: {}",
            self.interface, self.what, self.reason
        )?;
        if self.reason.contains("ermission") || self.reason.contains("not permitted") {
            write!(
                f,
                " (run as root, or give the binary CAP_NET_RAW: setcap cap_net_raw,cap_net_admin=eip bittap)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LiveError {}

/// Drop counters of all interfaces, as pcap reports them (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// Packets the kernel received for us, including those it dropped.
    pub received: u64,
    /// Dropped by the kernel: the capture buffer was full.
    pub kernel: u64,
    /// Dropped by the interface or its driver.
    pub interface: u64,
}

struct Iface {
    name: String,
    cap: Capture<Active>,
    linktype: u32,
    /// Last pcap statistics (32-bit, wrapping) and their running 64-bit totals.
    last: (u32, u32, u32),
    total: Drops,
}

/// All interfaces of a live run.
pub struct LiveCapture {
    ifaces: Vec<Iface>,
}

fn err(interface: &str, what: &'static str, e: impl fmt::Display) -> LiveError {
    LiveError {
        interface: interface.to_string(),
        what,
        reason: e.to_string(),
    }
}

impl LiveCapture {
    /// Opens every interface (promiscuous if asked, with the snap length, buffer and filter).
    pub fn open(opts: &LiveOptions) -> Result<LiveCapture, LiveError> {
        let mut ifaces = Vec::new();
        for name in &opts.interfaces {
            let inactive =
                Capture::from_device(name.as_str()).map_err(|e| err(name, "no such device", e))?;
            let cap = inactive
                .promisc(opts.promisc)
                .snaplen(i32::try_from(opts.snaplen).unwrap_or(i32::MAX))
                .buffer_size(i32::try_from(opts.buffer_bytes).unwrap_or(i32::MAX))
                .precision(Precision::Nano)
                // The ring hands over a block at least this often on a quiet link.
                .timeout(100)
                .open()
                .map_err(|e| err(name, "cannot open for capture", e))?;
            let mut cap = cap
                .setnonblock()
                .map_err(|e| err(name, "cannot set non-blocking mode", e))?;
            if let Some(f) = &opts.filter {
                cap.filter(f, true)
                    .map_err(|e| err(name, "invalid BPF filter", e))?;
            }
            let linktype = cap.get_datalink().0 as u32;
            ifaces.push(Iface {
                name: name.clone(),
                cap,
                linktype,
                last: (0, 0, 0),
                total: Drops::default(),
            });
        }
        Ok(LiveCapture { ifaces })
    }

    /// Waits up to `timeout_ms` for any interface to have packets.
    pub fn wait(&self, timeout_ms: i32) {
        let mut fds: Vec<libc::pollfd> = self
            .ifaces
            .iter()
            .map(|i| libc::pollfd {
                fd: i.cap.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
        }
    }

    /// Reads what is waiting, at most `budget` packets per interface, handing each to `f`.
    /// Returns how many were read.
    pub fn read(
        &mut self,
        budget: usize,
        mut f: impl FnMut(&RawPacket<'_>),
    ) -> Result<usize, LiveError> {
        let mut n = 0;
        for i in &mut self.ifaces {
            for _ in 0..budget {
                match i.cap.next_packet() {
                    Ok(p) => {
                        // Nanosecond precision: tv_usec holds nanoseconds.
                        #[allow(clippy::useless_conversion)]
                        // time_t and suseconds_t differ by platform.
                        let (ts, _) = super::clamp_ts(
                            i128::from(p.header.ts.tv_sec) * 1_000_000_000
                                + i128::from(p.header.ts.tv_usec),
                        );
                        f(&RawPacket {
                            ts_ns: ts,
                            wire_len: p.header.len,
                            linktype: i.linktype,
                            data: p.data,
                        });
                        n += 1;
                    }
                    Err(pcap::Error::TimeoutExpired) => break,
                    Err(e) => return Err(err(&i.name, "read failed", e)),
                }
            }
        }
        Ok(n)
    }

    /// Cumulative drop counters of all interfaces (pcap's 32-bit counters, unwrapped).
    pub fn drops(&mut self) -> Drops {
        let mut sum = Drops::default();
        for i in &mut self.ifaces {
            if let Ok(s) = i.cap.stats() {
                let (r, k, d) = i.last;
                i.total.received += u64::from(s.received.wrapping_sub(r));
                i.total.kernel += u64::from(s.dropped.wrapping_sub(k));
                i.total.interface += u64::from(s.if_dropped.wrapping_sub(d));
                i.last = (s.received, s.dropped, s.if_dropped);
            }
            sum.received += i.total.received;
            sum.kernel += i.total.kernel;
            sum.interface += i.total.interface;
        }
        sum
    }

    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.ifaces.iter().map(|i| i.name.as_str())
    }

    /// Each interface's cumulative drop counters as of the last [`LiveCapture::drops`].
    pub fn drops_by_interface(&self) -> Vec<(String, Drops)> {
        self.ifaces
            .iter()
            .map(|i| (i.name.clone(), i.total))
            .collect()
    }
}
