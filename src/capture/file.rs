//! Streaming reader for one pcap or pcapng file, optionally gzip-compressed.
//!
//! A file on disk that is not compressed is memory-mapped and read in place; otherwise the
//! reader owns a refillable buffer. A packet is a view into the map or the buffer that stays
//! valid until the next call to [`CaptureFile::advance`]. Nothing is allocated per packet. Formats and byte
//! orders are detected from magic numbers, never from file names.
//!
//! pcap-parser was tried first: its pcapng reader allocates a `Vec` of options for every
//! enhanced packet block that carries options (dumpcap writes them) and does not read the
//! obsolete Packet Block, so this small reader replaced it.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::{clamp_ts, CaptureError, ErrorKind};

mod pcapng;
use pcapng::to_ns;

/// Initial buffer size; grown only for a record larger than it.
const BUF_SIZE: usize = 1 << 20;
/// A record larger than this is taken as corruption, not as a packet.
const MAX_RECORD: usize = 16 << 20;

const PCAP_USEC: u32 = 0xa1b2_c3d4;
const PCAP_NSEC: u32 = 0xa1b2_3c4d;
const PCAP_KUZNETZOV: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

/// A whole file mapped read-only into memory: reading it costs no copy, and workers on other
/// threads read the packets the reader framed in place (offline `--threads`, [`SharedMap`]).
/// (A file truncated by another process while mapped would fault on the missing pages; a
/// capture being archived is not rewritten in place.)
///
/// Only a window around the reading position is resident: the pages ahead are populated a
/// window at a time (one call instead of a fault per page) and those a window behind are
/// given back, so the process's memory does not grow with the size of the file (issue 17:
/// memory flat in time). Given-back pages stay in the page cache and are faulted in again
/// if read, so a view into the map stays valid whatever the window.
struct Mapped {
    ptr: *const u8,
    len: usize,
    /// End of the populated part (moved by the reader alone).
    populated: AtomicUsize,
    /// Start of the part not given back (moved by the reader alone).
    released: AtomicUsize,
}

/// The resident window of a mapped file (a multiple of the page size).
const MAP_WINDOW: usize = 8 << 20;

// SAFETY: the mapping is read-only and owned by this value alone until it is unmapped in
// `drop`; reading it from any thread is sound.
unsafe impl Send for Mapped {}
// SAFETY: shared, the mapping is only read (its bytes never change: read-only and private),
// and the window's bounds are atomics.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps a regular, non-empty file; `None` when it cannot be (the caller streams it).
    fn of(file: &File) -> Option<Mapped> {
        use std::os::fd::AsRawFd;
        let meta = file.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of `len` bytes of an open file; the result
        // is checked before use and unmapped exactly once, in `drop`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        let m = Mapped {
            ptr: ptr as *const u8,
            len,
            populated: AtomicUsize::new(0),
            released: AtomicUsize::new(0),
        };
        m.slide(0);
        Some(m)
    }

    /// Keeps the window around `pos` resident: populates up to the end of the next window and gives
    /// back what lies more than a window behind. Advice only: a kernel without
    /// `MADV_POPULATE_READ` (before 5.14) faults the pages in as they are read.
    fn slide(&self, pos: usize) {
        let ahead = (pos / MAP_WINDOW)
            .saturating_add(2)
            .saturating_mul(MAP_WINDOW)
            .min(self.len);
        let populated = self.populated.load(Ordering::Relaxed);
        if ahead > populated {
            self.advise(populated, ahead, libc::MADV_POPULATE_READ);
            self.populated.store(ahead, Ordering::Relaxed);
        }
        let behind = (pos.saturating_sub(MAP_WINDOW) / MAP_WINDOW) * MAP_WINDOW;
        let released = self.released.load(Ordering::Relaxed);
        if behind > released {
            self.advise(released, behind, libc::MADV_DONTNEED);
            self.released.store(behind, Ordering::Relaxed);
        }
    }

    /// `madvise` on the bytes `start..end` of the map, `start` a multiple of the window.
    fn advise(&self, start: usize, end: usize, advice: libc::c_int) {
        debug_assert!(start.is_multiple_of(MAP_WINDOW) && start < end && end <= self.len);
        // SAFETY: a page-aligned range inside the live, read-only, private file mapping. The
        // advice changes no byte of it: MADV_POPULATE_READ fills page table entries, and
        // MADV_DONTNEED drops them, a later read faulting the same file bytes in again (a
        // read-only mapping has no private copies).
        unsafe {
            libc::madvise(
                self.ptr.add(start) as *mut libc::c_void,
                end - start,
                advice,
            );
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `of`, once; no slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

/// How far ahead of the reading position a mapped file's lines are prefetched.
const PREFETCH: usize = 16 << 10;

/// Asks for the cache line at `p` (any address: a hint never faults).
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A mapped capture shared with other threads: a packet the reader framed is read there in
/// place, by its offset. Pages the reader's window has given back are faulted in again.
#[derive(Clone)]
pub struct SharedMap(Arc<Mapped>);

impl SharedMap {
    pub fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }

    /// Whether both are the same mapping.
    pub fn same(&self, other: &SharedMap) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Length of the frame on the wire (the capture's original length).
    pub wire_len: u32,
    /// LINKTYPE_* value of the interface it was captured on.
    pub linktype: u32,
    /// The captured bytes (possibly fewer than `wire_len`).
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Current {
    ts_ns: i64,
    wire_len: u32,
    linktype: u32,
    start: usize,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second (10^n or 2^n).
    units_per_sec: u64,
    offset_s: i64,
    snaplen: u32,
}

#[derive(Debug)]
enum Format {
    Pcap {
        big: bool,
        nanos: bool,
        linktype: u32,
        record_hdr: usize,
    },
    PcapNg {
        big: bool,
        ifaces: Vec<Iface>,
    },
}

/// Counts bytes read from the file on disk (compressed bytes for gzip), for the progress bar.
struct Counting<R> {
    inner: R,
    counter: Option<Arc<AtomicU64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(c) = &self.counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// What a file looks like from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Pcap,
    PcapNg,
    Gzip,
    Unknown,
}

/// Classifies a file by its magic bytes without reading it whole.
pub fn sniff(path: &Path) -> io::Result<Sniffed> {
    let mut f = File::open(path)?;
    let mut m = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = f.read(&mut m[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(sniff_bytes(&m[..got]))
}

fn sniff_bytes(m: &[u8]) -> Sniffed {
    if m.len() >= 2 && m[0] == 0x1f && m[1] == 0x8b {
        return Sniffed::Gzip;
    }
    if m.len() < 4 {
        return Sniffed::Unknown;
    }
    let le = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
    let be = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    if le == PCAPNG_SHB {
        return Sniffed::PcapNg;
    }
    for v in [le, be] {
        if v == PCAP_USEC || v == PCAP_NSEC || v == PCAP_KUZNETZOV {
            return Sniffed::Pcap;
        }
    }
    Sniffed::Unknown
}

/// A capture file being read.
pub struct CaptureFile {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    gzip: bool,
    buf: Vec<u8>,
    /// The whole file, when it is mapped (then `buf` is unused and `end` is its length).
    map: Option<SharedMap>,
    /// Bytes of the map not yet added to the progress counter.
    counter: Option<Arc<AtomicU64>>,
    counted: usize,
    /// Lines of the map asked for ahead of `pos` (see `prefetch`).
    prefetched: usize,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]` (in the decompressed stream for gzip files).
    base: u64,
    eof: bool,
    format: Format,
    cur: Option<Current>,
    last_ts: i64,
    /// A warning about the end of the file (a truncated last record).
    pub warning: Option<CaptureError>,
    /// The first timestamp out of range (offset, value) and how many there were.
    clamped: Option<(u64, i128)>,
    clamped_count: u64,
    /// Frames in this file with a link type that has no decoder are still returned; this
    /// counts records that claimed an interface the file never described.
    packets: u64,
}

impl CaptureFile {
    /// Opens a capture; `counter` receives the number of bytes read from disk.
    pub fn open(path: &Path, counter: Option<Arc<AtomicU64>>) -> Result<Self, CaptureError> {
        let err = |offset, kind| CaptureError::new(path, offset, kind);
        let file = File::open(path).map_err(|e| err(0, ErrorKind::Io(e.to_string())))?;
        if let Some(map) = Mapped::of(&file) {
            if !map.bytes().starts_with(&[0x1f, 0x8b]) {
                let mut cf = Self::with_reader(path, Box::new(io::empty()), false);
                cf.end = map.len;
                cf.eof = true;
                cf.buf = Vec::new();
                cf.map = Some(SharedMap(Arc::new(map)));
                cf.counter = counter;
                cf.read_header()?;
                return Ok(cf);
            }
        }
        let head = Counting {
            inner: file,
            counter,
        };
        Self::from_reader(path, Box::new(head))
    }

    /// Opens a capture to be read through a buffer, never mapped (for a look at its start).
    pub fn open_streamed(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path)
            .map_err(|e| CaptureError::new(path, 0, ErrorKind::Io(e.to_string())))?;
        Self::from_reader(path, Box::new(file))
    }

    /// Reads a capture from any byte stream (gzip detected as for files); `path` names it in
    /// errors and warnings.
    pub fn from_reader(path: &Path, mut head: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        let err = |offset, kind| CaptureError::new(path, offset, kind);
        let mut magic = [0u8; 2];
        let n =
            read_full(&mut head, &mut magic).map_err(|e| err(0, ErrorKind::Io(e.to_string())))?;
        let prefix = magic[..n].to_vec();
        let gzip = n == 2 && magic == [0x1f, 0x8b];
        let reader: Box<dyn Read + Send> = if gzip {
            Box::new(MultiGzDecoder::new(io::Cursor::new(prefix).chain(head)))
        } else {
            Box::new(io::Cursor::new(prefix).chain(head))
        };
        let mut cf = Self::with_reader(path, reader, gzip);
        cf.read_header()?;
        Ok(cf)
    }

    fn with_reader(path: &Path, reader: Box<dyn Read + Send>, gzip: bool) -> Self {
        CaptureFile {
            path: path.to_path_buf(),
            reader,
            gzip,
            buf: vec![0u8; BUF_SIZE],
            map: None,
            counter: None,
            counted: 0,
            prefetched: 0,
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            format: Format::Pcap {
                big: false,
                nanos: false,
                linktype: 0,
                record_hdr: 16,
            },
            cur: None,
            last_ts: 0,
            warning: None,
            clamped: None,
            clamped_count: 0,
            packets: 0,
        }
    }

    /// The bytes read so far (`buf`, or the whole map).
    fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m.0.bytes(),
            None => &self.buf,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Number of packets returned so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Stream offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn error(&self, offset: u64, kind: ErrorKind) -> CaptureError {
        let mut e = CaptureError::new(&self.path, offset, kind);
        e.gzip = self.gzip;
        e
    }

    /// Makes `n` bytes available at `pos`. Returns how many are available (less than `n` only
    /// at the end of the stream).
    fn fill(&mut self, n: usize) -> Result<usize, CaptureError> {
        if let Some(SharedMap(m)) = &self.map {
            // Framing touches a record header every few hundred bytes, which the hardware
            // prefetcher does not follow across pages: the lines ahead are asked for here.
            let ahead = (self.pos + PREFETCH).min(m.len);
            while self.prefetched < ahead {
                prefetch(m.ptr.wrapping_add(self.prefetched));
                self.prefetched += 64;
            }
            if self.pos - self.counted >= 1 << 20 {
                m.slide(self.pos);
                if let Some(c) = &self.counter {
                    c.fetch_add((self.pos - self.counted) as u64, Ordering::Relaxed);
                }
                self.counted = self.pos;
            }
            return Ok((self.end - self.pos).min(n));
        }
        if self.end - self.pos >= n {
            return Ok(n);
        }
        if n > self.buf.len() {
            let mut bigger = vec![0u8; n.next_power_of_two()];
            bigger[..self.end - self.pos].copy_from_slice(&self.buf[self.pos..self.end]);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
            self.buf = bigger;
        } else if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < n && !self.eof {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let at = self.base + self.end as u64;
                    let kind = if self.gzip && e.kind() == io::ErrorKind::UnexpectedEof {
                        // A gzip stream cut short, as when a `tcpdump | gzip` is killed.
                        self.eof = true;
                        self.warning = Some(self.error(at, ErrorKind::TruncatedGzip));
                        continue;
                    } else if self.gzip {
                        ErrorKind::Gzip(e.to_string())
                    } else {
                        ErrorKind::Io(e.to_string())
                    };
                    return Err(self.error(at, kind));
                }
            }
        }
        Ok((self.end - self.pos).min(n))
    }

    fn u32_at(&self, at: usize, big: bool) -> u32 {
        let buf = self.bytes();
        word(&buf[at..at + 4], big)
    }

    fn u16_at(&self, at: usize, big: bool) -> u16 {
        let buf = self.bytes();
        let b = [buf[at], buf[at + 1]];
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn read_header(&mut self) -> Result<(), CaptureError> {
        let got = self.fill(4)?;
        let kind = sniff_bytes(&self.bytes()[self.pos..self.pos + got]);
        match kind {
            Sniffed::Pcap => self.read_pcap_header(),
            Sniffed::PcapNg => {
                self.format = Format::PcapNg {
                    big: false,
                    ifaces: Vec::new(),
                };
                // The section header is read as the first block.
                Ok(())
            }
            Sniffed::Gzip | Sniffed::Unknown => Err(self.error(0, ErrorKind::NotACapture)),
        }
    }

    fn read_pcap_header(&mut self) -> Result<(), CaptureError> {
        if self.fill(24)? < 24 {
            return Err(self.error(0, ErrorKind::TruncatedHeader));
        }
        let p = self.pos;
        let le = self.u32_at(p, false);
        let big = !(le == PCAP_USEC || le == PCAP_NSEC || le == PCAP_KUZNETZOV);
        let magic = self.u32_at(p, big);
        let linktype = self.u32_at(p + 20, big) & 0xffff;
        self.format = Format::Pcap {
            big,
            nanos: magic == PCAP_NSEC,
            linktype,
            record_hdr: if magic == PCAP_KUZNETZOV { 24 } else { 16 },
        };
        self.pos += 24;
        Ok(())
    }

    /// Reads the next packet; `Ok(false)` at the end of the file. A truncated last record ends
    /// the file with `warning` set; corruption is an error naming the offset.
    pub fn advance(&mut self) -> Result<bool, CaptureError> {
        self.cur = None;
        let r = match self.format {
            Format::Pcap { .. } => self.advance_pcap(),
            Format::PcapNg { .. } => self.advance_pcapng(),
        };
        if let Ok(true) = r {
            self.packets += 1;
        }
        r
    }

    /// The packet read by the last successful [`advance`](Self::advance).
    pub fn current(&self) -> Option<RawPacket<'_>> {
        self.cur.map(|c| RawPacket {
            ts_ns: c.ts_ns,
            wire_len: c.wire_len,
            linktype: c.linktype,
            data: &self.bytes()[c.start..c.start + c.len],
        })
    }

    /// The link type and bytes of the record after the current one, when it is a classic
    /// pcap record or a pcapng enhanced packet block already in memory (mapped, or in the
    /// buffer): a look ahead for prefetching, which reads nothing and checks nothing more.
    pub fn peek(&self) -> Option<(u32, &[u8])> {
        let bytes = self.bytes().get(self.pos..self.end)?;
        let u32_at = |at: usize, big: bool| Some(word(bytes.get(at..at + 4)?, big));
        let (linktype, start, caplen) = match &self.format {
            Format::Pcap {
                big,
                linktype,
                record_hdr,
                ..
            } => (*linktype, *record_hdr, u32_at(8, *big)?),
            Format::PcapNg { big, ifaces } => {
                if u32_at(0, *big)? != 6 {
                    return None;
                }
                let iface = ifaces.get(u32_at(8, *big)? as usize)?;
                (iface.linktype, 28, u32_at(20, *big)?)
            }
        };
        Some((
            linktype,
            bytes.get(start..start.checked_add(caplen as usize)?)?,
        ))
    }

    /// The map the current packet lies in and its offset there, when the file is mapped.
    pub fn current_in_map(&self) -> Option<(&SharedMap, usize)> {
        Some((self.map.as_ref()?, self.cur?.start))
    }

    /// The warning for timestamps out of range, once per file (taken).
    pub fn clamp_warning(&mut self) -> Option<CaptureError> {
        let (at, first_ns) = self.clamped.take()?;
        let count = std::mem::take(&mut self.clamped_count);
        Some(self.error(at, ErrorKind::TimestampsClamped { first_ns, count }))
    }

    /// A timestamp of the record at `at` within [`super::TS_MIN`]..=[`super::TS_MAX`].
    fn stamp(&mut self, at: u64, ns: i128) -> i64 {
        let (ts, clamped) = clamp_ts(ns);
        if clamped {
            self.clamped_count += 1;
            self.clamped.get_or_insert((at, ns));
        }
        ts
    }

    /// Timestamp of the current packet.
    pub fn current_ts(&self) -> Option<i64> {
        self.cur.map(|c| c.ts_ns)
    }

    fn truncated(&mut self, at: u64, wanted: usize, had: usize) -> Result<bool, CaptureError> {
        self.warning = Some(self.error(at, ErrorKind::TruncatedRecord { wanted, had }));
        self.pos = self.end;
        Ok(false)
    }

    /// A pcapng file cut inside its last block: an enhanced packet block whose fixed fields
    /// are all there is counted with what data there is; anything else ends the file.
    fn truncated_block(
        &mut self,
        at: u64,
        btype: u32,
        big: bool,
        blen: usize,
        got: usize,
    ) -> Result<bool, CaptureError> {
        if btype != 6 || got < 28 {
            return self.truncated(at, blen, got);
        }
        let p = self.pos;
        let if_id = self.u32_at(p + 8, big) as usize;
        let units =
            (u64::from(self.u32_at(p + 12, big)) << 32) | u64::from(self.u32_at(p + 16, big));
        let caplen = (self.u32_at(p + 20, big) as usize).min(got - 28);
        let origlen = self.u32_at(p + 24, big);
        let iface = self.iface(if_id, at)?;
        self.warning = Some(self.error(
            at,
            ErrorKind::TruncatedRecord {
                wanted: blen,
                had: got,
            },
        ));
        let ts_ns = self.stamp(at, to_ns(units, iface.units_per_sec, iface.offset_s));
        self.cur = Some(Current {
            ts_ns,
            wire_len: origlen.max(caplen as u32),
            linktype: iface.linktype,
            start: p + 28,
            len: caplen,
        });
        self.pos = self.end;
        Ok(true)
    }

    fn advance_pcap(&mut self) -> Result<bool, CaptureError> {
        let Format::Pcap {
            big,
            nanos,
            linktype,
            record_hdr,
        } = self.format
        else {
            return Ok(false);
        };
        let at = self.offset();
        let got = self.fill(record_hdr)?;
        if got == 0 {
            return Ok(false);
        }
        if got < record_hdr {
            return self.truncated(at, record_hdr, got);
        }
        // The record header read at once: one bounds check, four fields.
        let field = |h: &[u8], i: usize| word(&h[i..i + 4], big);
        let Some(h) = self.bytes().get(self.pos..self.pos + 16) else {
            return self.truncated(at, record_hdr, got);
        };
        let (sec, frac, caplen, origlen) =
            (field(h, 0), field(h, 4), field(h, 8) as usize, field(h, 12));
        if caplen > MAX_RECORD {
            return Err(self.error(at, ErrorKind::BadRecordLength(caplen as u64)));
        }
        let need = record_hdr + caplen;
        // Mapped, or buffered far enough: no refill needed.
        let got = if self.end - self.pos >= need {
            need
        } else {
            self.fill(need)?
        };
        let header_caplen = caplen as u32;
        let caplen = if got < need {
            // The last record of a killed capture: its header says what was on the wire, so
            // it is counted with the bytes that are there, and the file ends with a warning.
            self.warning = Some(self.error(
                at,
                ErrorKind::TruncatedRecord {
                    wanted: need,
                    had: got,
                },
            ));
            got - record_hdr
        } else {
            caplen
        };
        let need = record_hdr + caplen;
        let frac_ns = if nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        // u32 seconds and fractions are always within TS_MIN..=TS_MAX: nothing to clamp.
        const _: () = assert!(
            super::TS_MIN <= 0
                && (u32::MAX as i64) * 1_000_000_000 + (u32::MAX as i64) * 1000 <= super::TS_MAX
        );
        let ts_ns = i64::from(sec) * 1_000_000_000 + frac_ns;
        self.cur = Some(Current {
            ts_ns,
            wire_len: origlen.max(header_caplen),
            linktype,
            start: self.pos + record_hdr,
            len: caplen,
        });
        self.last_ts = ts_ns;
        self.pos += need;
        Ok(true)
    }
}

/// The 32-bit word in the first four bytes of `b`, in the file's byte order.
#[inline]
fn word(b: &[u8], big: bool) -> u32 {
    let b = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_numbers() {
        let cases: &[(&[u8], Sniffed)] = &[
            (&[0xd4, 0xc3, 0xb2, 0xa1], Sniffed::Pcap),
            (&[0xa1, 0xb2, 0xc3, 0xd4], Sniffed::Pcap),
            (&[0x4d, 0x3c, 0xb2, 0xa1], Sniffed::Pcap),
            (&[0xa1, 0xb2, 0x3c, 0x4d], Sniffed::Pcap),
            (&[0x0a, 0x0d, 0x0d, 0x0a], Sniffed::PcapNg),
            (&[0x1f, 0x8b, 0x08, 0x00], Sniffed::Gzip),
            (b"GET ", Sniffed::Unknown),
            (&[0xd4, 0xc3], Sniffed::Unknown),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff_bytes(bytes), *want, "{bytes:02x?}");
        }
    }

    #[test]
    fn converts_timestamp_resolutions() {
        assert_eq!(to_ns(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(to_ns(7, 1_000_000_000, 2), 2_000_000_007);
        assert_eq!(to_ns(1 << 20, 1 << 20, 0), 1_000_000_000);
        assert_eq!(to_ns(12, 10, 0), 1_200_000_000);
        // The bounds of the fields, exactly.
        assert_eq!(to_ns(u64::MAX, 1, 0), i128::from(u64::MAX) * 1_000_000_000);
        assert_eq!(to_ns(0, 1, i64::MIN), i128::from(i64::MIN) * 1_000_000_000);
        assert_eq!(
            to_ns(u64::MAX, u64::MAX, i64::MAX),
            (i128::from(i64::MAX) + 1) * 1_000_000_000
        );
        assert_eq!(to_ns(u64::MAX, 0, 0), i128::from(u64::MAX) * 1_000_000_000);
    }

    #[test]
    fn out_of_range_timestamps_are_clamped_and_said_once() {
        use super::super::{TS_MAX, TS_MIN};
        // pcapng: one interface with if_tsresol 10^0 (seconds) and if_tsoffset -2^63 s, then
        // two packets at 0 and 2^64-1 units.
        let mut f = Vec::new();
        let block = |f: &mut Vec<u8>, btype: u32, body: &[u8]| {
            let len = (12 + body.len()) as u32;
            f.extend_from_slice(&btype.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(body);
            f.extend_from_slice(&len.to_le_bytes());
        };
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        block(&mut f, 0x0a0d_0d0a, &shb);
        let mut idb = vec![1, 0, 0, 0, 0, 0, 0, 0];
        idb.extend_from_slice(&[9, 0, 1, 0, 0, 0, 0, 0]);
        idb.extend_from_slice(&[14, 0, 8, 0]);
        idb.extend_from_slice(&i64::MIN.to_le_bytes());
        idb.extend_from_slice(&[0, 0, 0, 0]);
        block(&mut f, 1, &idb);
        for units in [0u64, u64::MAX] {
            let mut epb = vec![0u8; 4];
            epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(units as u32).to_le_bytes());
            epb.extend_from_slice(&4u32.to_le_bytes());
            epb.extend_from_slice(&60u32.to_le_bytes());
            epb.extend_from_slice(&[0xaa; 4]);
            block(&mut f, 6, &epb);
        }
        let mut cf = CaptureFile::from_reader(Path::new("x.pcapng"), Box::new(io::Cursor::new(f)))
            .expect("opens");
        let mut seen = Vec::new();
        while cf.advance().expect("reads") {
            seen.push(cf.current_ts());
        }
        // -2^63 s is long before 1970; 2^64-1 s after it is -2^63 + 2^64-1 = 2^63-1 s, long
        // after 2262.
        assert_eq!(seen, [Some(TS_MIN), Some(TS_MAX)]);
        let w = cf.clamp_warning().expect("a warning");
        assert!(w.is_warning() && !w.is_truncation());
        assert!(
            matches!(w.kind, ErrorKind::TimestampsClamped { count: 2, .. }),
            "{w}"
        );
        assert!(w.to_string().contains("x.pcapng: at byte offset 72"), "{w}");
        assert!(cf.clamp_warning().is_none());
    }

    /// A mapped file several windows long is read record for record as the stream reader
    /// reads it, while the map gives back the pages behind the window.
    #[test]
    fn mapped_file_reads_like_the_stream_through_its_window() {
        let mut f = Vec::new();
        f.extend_from_slice(&PCAP_USEC.to_le_bytes());
        f.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        let records = 3 * MAP_WINDOW / 1000 + 17;
        for i in 0..records {
            let len = 900 + (i % 97) as u32;
            f.extend_from_slice(&(i as u32).to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend((0..len).map(|b| (b as usize ^ i) as u8));
        }
        let path = std::env::temp_dir().join(format!("bittap-map-{}.pcap", std::process::id()));
        std::fs::write(&path, &f).expect("writes");
        let mut mapped = CaptureFile::open(&path, None).expect("opens");
        assert!(mapped.map.is_some(), "a regular file is mapped");
        let mut stream =
            CaptureFile::from_reader(&path, Box::new(io::Cursor::new(f.clone()))).expect("opens");
        let mut n = 0;
        // What the look ahead said the next record holds.
        let mut peeked: Option<Vec<u8>> = None;
        while mapped.advance().expect("reads") {
            assert!(stream.advance().expect("reads"));
            let (a, b) = (
                mapped.current().expect("a packet"),
                stream.current().expect("a packet"),
            );
            assert_eq!(
                (a.ts_ns, a.wire_len, a.data),
                (b.ts_ns, b.wire_len, b.data),
                "record {n}"
            );
            if let Some(p) = peeked.take() {
                assert_eq!(p, a.data, "peek before record {n}");
            }
            peeked = mapped.peek().map(|(lt, d)| {
                assert_eq!(lt, 1);
                d.to_vec()
            });
            n += 1;
        }
        assert_eq!(peeked, None, "nothing after the last record");
        assert!(!stream.advance().expect("reads"));
        assert_eq!(n, records);
        let m = &mapped.map.as_ref().expect("mapped").0;
        let released = m.released.load(Ordering::Relaxed);
        assert_eq!(
            m.populated.load(Ordering::Relaxed),
            m.len,
            "populated to the end"
        );
        assert!(
            released >= m.len - 2 * MAP_WINDOW && released > 0,
            "{released}"
        );
        // A page given back reads the same bytes again.
        assert_eq!(m.bytes()[..64], f[..64]);
        let _ = std::fs::remove_file(&path);
    }
}
