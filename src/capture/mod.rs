//! Capture sources: pcap and pcapng files (gzip too), merged into one packet stream in
//! timestamp order; live interfaces; packets in memory. All are a [`Source`].

pub mod afpacket;
mod file;
pub mod live;
mod source;

pub use file::{prefetch, sniff, CaptureFile, RawPacket, SharedMap, Sniffed};
pub use source::{drain, drain_ahead, MemorySource, OwnedPacket, Source};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What went wrong in a capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Io(String),
    Gzip(String),
    NotACapture,
    TruncatedHeader,
    TruncatedRecord {
        wanted: usize,
        had: usize,
    },
    TruncatedGzip,
    BadRecordLength(u64),
    BadBlockLength(u64),
    BlockLengthMismatch,
    BadByteOrderMagic,
    ShortBlock(&'static str),
    UnknownInterface(u32),
    /// Packet timestamps outside [`TS_MIN`]..=[`TS_MAX`] (a warning): `count` of them, the
    /// first (at the error's offset) `first_ns` nanoseconds since the epoch before clamping.
    TimestampsClamped {
        first_ns: i128,
        count: u64,
    },
}

/// The packet times bittap represents, in nanoseconds since the Unix epoch:
/// 1970-01-01T00:00:00Z to 2262-01-01T00:00:00Z. Within it every difference of two times and
/// the start and end of every minute fit in an `i64`; a capture's timestamp outside it (a
/// pcapng `if_tsoffset` or `if_tsresol` at its bounds, a live clock gone wrong) is counted at
/// the nearest bound, with one warning per file.
pub const TS_MIN: i64 = 0;
pub const TS_MAX: i64 = 9_214_646_400_000_000_000;

/// Clamps a timestamp to [`TS_MIN`]..=[`TS_MAX`]; `true` if it was outside.
pub fn clamp_ts(ns: i128) -> (i64, bool) {
    if ns < i128::from(TS_MIN) {
        (TS_MIN, true)
    } else if ns > i128::from(TS_MAX) {
        (TS_MAX, true)
    } else {
        (ns as i64, false)
    }
}

/// An error (or, for truncation at the end, a warning) about one capture file at one offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    pub path: PathBuf,
    /// Byte offset in the file (in the decompressed stream for gzip files).
    pub offset: u64,
    pub gzip: bool,
    pub kind: ErrorKind,
}

impl CaptureError {
    pub fn new(path: &Path, offset: u64, kind: ErrorKind) -> Self {
        CaptureError {
            path: path.to_path_buf(),
            offset,
            gzip: false,
            kind,
        }
    }

    /// Truncation at the end of a file is what a killed tcpdump leaves: a warning.
    pub fn is_truncation(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::TruncatedRecord { .. } | ErrorKind::TruncatedGzip
        )
    }

    /// A warning (every packet was counted), not an error.
    pub fn is_warning(&self) -> bool {
        self.is_truncation() || matches!(self.kind, ErrorKind::TimestampsClamped { .. })
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stream = if self.gzip {
            " of the decompressed stream"
        } else {
            ""
        };
        write!(
            f,
            "{}: at byte offset {}{}: ",
            self.path.display(),
            self.offset,
            stream
        )?;
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "read error: {e}"),
            ErrorKind::Gzip(e) => write!(f, "corrupt gzip stream: {e}"),
            ErrorKind::NotACapture => {
                write!(f, "not a pcap, pcapng or gzip file (unknown magic number)")
            }
            ErrorKind::TruncatedHeader => write!(f, "file ends inside the pcap file header"),
            ErrorKind::TruncatedRecord { wanted, had } => {
                write!(
                    f,
                    "last record truncated ({had} of {wanted} bytes present; counted when its record header is whole)"
                )
            }
            ErrorKind::TruncatedGzip => write!(f, "gzip stream ends early (truncated file)"),
            ErrorKind::BadRecordLength(n) => {
                write!(f, "corrupt record: captured length {n} is impossible")
            }
            ErrorKind::BadBlockLength(n) => {
                write!(f, "corrupt pcapng block: length {n} is impossible")
            }
            ErrorKind::BlockLengthMismatch => write!(
                f,
                "corrupt pcapng block: trailing length differs from leading length"
            ),
            ErrorKind::BadByteOrderMagic => {
                write!(f, "corrupt pcapng section header: bad byte-order magic")
            }
            ErrorKind::ShortBlock(what) => write!(f, "corrupt pcapng {what} block: too short"),
            ErrorKind::UnknownInterface(i) => {
                write!(f, "corrupt pcapng: packet on undeclared interface {i}")
            }
            ErrorKind::TimestampsClamped { first_ns, count } => write!(
                f,
                "{count} packet timestamp(s) outside 1970-01-01T00:00:00Z..2262-01-01T00:00:00Z \
                 (the first here, {first_ns} ns since the epoch): counted at the nearest bound"
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

/// Expands the command line's paths: a directory means the capture files directly in it
/// (recognised by magic bytes), in name order. Errors name the path.
pub fn expand_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", p.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            let entries = std::fs::read_dir(p)
                .map_err(|e| anyhow::anyhow!("{}: cannot list directory: {e}", p.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                let path = entry.path();
                if path.is_file() && !matches!(sniff(&path), Ok(Sniffed::Unknown) | Err(_)) {
                    found.push(path);
                }
            }
            if found.is_empty() {
                anyhow::bail!(
                    "{}: directory holds no pcap, pcapng or gzip capture files",
                    p.display()
                );
            }
            found.sort();
            out.extend(found);
        } else {
            match sniff(p) {
                Ok(Sniffed::Unknown) => anyhow::bail!(
                    "{}: not a pcap, pcapng or gzip file (unknown magic number at byte offset 0)",
                    p.display()
                ),
                Ok(_) => out.push(p.clone()),
                Err(e) => anyhow::bail!("{}: cannot read: {e}", p.display()),
            }
        }
    }
    Ok(out)
}

struct Pending {
    path: PathBuf,
    first_ts: i64,
}

/// Reads several capture files as one stream in timestamp order.
///
/// Files are ordered by their first packet's time and opened only when the stream reaches
/// that time, so rotated files (`tcpdump -G`/`-C`) are read one at a time while overlapping
/// files are interleaved packet by packet. Ties go to the file whose path sorts first, so the
/// order never depends on the order of the arguments.
pub struct MergedReader {
    pending: Vec<Pending>,
    active: Vec<CaptureFile>,
    current: Option<usize>,
    counter: Arc<AtomicU64>,
    /// Errors and warnings met so far, in the order met.
    pub problems: Vec<CaptureError>,
    total_bytes: u64,
}

impl MergedReader {
    /// Opens `paths` (already expanded). A file that cannot be opened as a capture is an error
    /// before anything is read.
    pub fn new(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        let counter = Arc::new(AtomicU64::new(0));
        let mut pending = Vec::new();
        let mut problems = Vec::new();
        let mut total_bytes = 0;
        let mut sorted: Vec<PathBuf> = paths.to_vec();
        sorted.sort();
        sorted.dedup();
        for path in sorted {
            total_bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            // Streamed, not mapped: only the first packet is wanted here.
            let mut f = CaptureFile::open_streamed(&path)?;
            match f.advance() {
                Ok(true) => pending.push(Pending {
                    path,
                    first_ts: f.current_ts().unwrap_or(0),
                }),
                Ok(false) => {
                    // An empty capture; a truncated one is still worth a warning.
                    if let Some(w) = f.warning.take() {
                        problems.push(w);
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        // Popped from the end: latest first in the vector.
        pending.sort_by(|a, b| {
            b.first_ts
                .cmp(&a.first_ts)
                .then_with(|| b.path.cmp(&a.path))
        });
        Ok(MergedReader {
            pending,
            active: Vec::new(),
            current: None,
            counter,
            problems,
            total_bytes,
        })
    }

    /// Bytes of the input files on disk.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Shared counter of bytes read from disk so far.
    pub fn progress_counter(&self) -> Arc<AtomicU64> {
        self.counter.clone()
    }

    fn open_due(&mut self) {
        loop {
            let Some(next) = self.pending.last() else {
                return;
            };
            let head = self.active.iter().filter_map(|f| f.current_ts()).min();
            if head.is_some_and(|h| next.first_ts > h) {
                return;
            }
            let Some(next) = self.pending.pop() else {
                return;
            };
            match CaptureFile::open(&next.path, Some(self.counter.clone())) {
                Ok(mut f) => match f.advance() {
                    Ok(true) => self.active.push(f),
                    Ok(false) => self.retire(f),
                    Err(e) => {
                        self.problems.push(e);
                        self.retire(f);
                    }
                },
                Err(e) => self.problems.push(e),
            }
        }
    }

    fn retire(&mut self, mut f: CaptureFile) {
        if let Some(w) = f.clamp_warning() {
            self.problems.push(w);
        }
        if let Some(w) = f.warning.take() {
            self.problems.push(w);
        }
    }

    /// Moves to the next packet in time order; `false` when every file is done.
    pub fn advance(&mut self) -> bool {
        if let Some(i) = self.current.take() {
            match self.active[i].advance() {
                Ok(true) => {}
                Ok(false) => {
                    let f = self.active.swap_remove(i);
                    self.retire(f);
                }
                Err(e) => {
                    self.problems.push(e);
                    let f = self.active.swap_remove(i);
                    self.retire(f);
                }
            }
        }
        self.open_due();
        if let [only] = self.active.as_slice() {
            self.current = only.current_ts().map(|_| 0);
            return self.current.is_some();
        }
        let mut best: Option<(i64, &Path, usize)> = None;
        for (i, f) in self.active.iter().enumerate() {
            if let Some(ts) = f.current_ts() {
                let better = match best {
                    None => true,
                    Some((bts, bpath, _)) => ts < bts || (ts == bts && f.path() < bpath),
                };
                if better {
                    best = Some((ts, f.path(), i));
                }
            }
        }
        self.current = best.map(|(_, _, i)| i);
        self.current.is_some()
    }

    /// The packet found by the last [`advance`](Self::advance).
    pub fn packet(&self) -> Option<RawPacket<'_>> {
        self.current.and_then(|i| self.active[i].current())
    }

    /// The link type and bytes of the packet after the current one, when a single file is
    /// open and its next record is in memory ([`CaptureFile::peek`]): a hint, never counted.
    pub fn peek(&self) -> Option<(u32, &[u8])> {
        match self.active.as_slice() {
            [only] if self.pending.is_empty() => only.peek(),
            _ => None,
        }
    }

    /// The packet found by the last [`advance`](Self::advance), with the map it lies in and
    /// its offset there when its file is mapped.
    pub fn packet_in_map(&self) -> Option<(RawPacket<'_>, Option<(&SharedMap, usize)>)> {
        let f = &self.active[self.current?];
        Some((f.current()?, f.current_in_map()))
    }
}
