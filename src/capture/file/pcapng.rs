//! pcapng blocks: section headers, interface descriptions (timestamp resolution and offset),
//! enhanced, simple and obsolete packet blocks.

use super::{CaptureFile, Current, Format, Iface, MAX_RECORD, PCAPNG_BOM, PCAPNG_SHB};
use crate::capture::{CaptureError, ErrorKind};

impl CaptureFile {
    pub(super) fn advance_pcapng(&mut self) -> Result<bool, CaptureError> {
        loop {
            let at = self.offset();
            let got = self.fill(12)?;
            if got == 0 {
                return Ok(false);
            }
            if got < 12 {
                return self.truncated(at, 12, got);
            }
            let p = self.pos;
            let big = match &self.format {
                Format::PcapNg { big, .. } => *big,
                Format::Pcap { .. } => false,
            };
            let btype = self.u32_at(p, false);
            let big = if btype == PCAPNG_SHB {
                // A new section: its byte-order magic decides how the rest is read.
                match self.u32_at(p + 8, false) {
                    PCAPNG_BOM => false,
                    v if v.swap_bytes() == PCAPNG_BOM => true,
                    _ => return Err(self.error(at + 8, ErrorKind::BadByteOrderMagic)),
                }
            } else {
                big
            };
            let btype = self.u32_at(p, big);
            let blen = self.u32_at(p + 4, big) as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD {
                return Err(self.error(at, ErrorKind::BadBlockLength(blen as u64)));
            }
            let got = self.fill(blen)?;
            if got < blen {
                return self.truncated_block(at, btype, big, blen, got);
            }
            let p = self.pos;
            if self.u32_at(p + blen - 4, big) as usize != blen {
                return Err(self.error(at + blen as u64 - 4, ErrorKind::BlockLengthMismatch));
            }
            let body = p + 8;
            let body_len = blen - 12;
            self.pos += blen;
            match btype {
                PCAPNG_SHB => {
                    if body_len < 16 {
                        return Err(self.error(at, ErrorKind::ShortBlock("section header")));
                    }
                    self.format = Format::PcapNg {
                        big,
                        ifaces: Vec::new(),
                    };
                }
                1 => {
                    if body_len < 8 {
                        return Err(self.error(at, ErrorKind::ShortBlock("interface description")));
                    }
                    let linktype = u32::from(self.u16_at(body, big));
                    let snaplen = self.u32_at(body + 4, big);
                    let (units_per_sec, offset_s) =
                        self.idb_options(body + 8, body + body_len, big);
                    if let Format::PcapNg { ifaces, .. } = &mut self.format {
                        ifaces.push(Iface {
                            linktype,
                            units_per_sec,
                            offset_s,
                            snaplen,
                        });
                    }
                }
                6 | 2 => {
                    // Enhanced Packet Block, or the obsolete Packet Block (16-bit interface
                    // id and drop count instead of a 32-bit interface id).
                    if body_len < 20 {
                        return Err(self.error(at, ErrorKind::ShortBlock("packet")));
                    }
                    let if_id = if btype == 6 {
                        self.u32_at(body, big) as usize
                    } else {
                        usize::from(self.u16_at(body, big))
                    };
                    let ts_hi = self.u32_at(body + 4, big);
                    let ts_lo = self.u32_at(body + 8, big);
                    let caplen = self.u32_at(body + 12, big) as usize;
                    let origlen = self.u32_at(body + 16, big);
                    if caplen > body_len - 20 {
                        return Err(self.error(at + 20, ErrorKind::BadRecordLength(caplen as u64)));
                    }
                    let iface = self.iface(if_id, at)?;
                    let units = (u64::from(ts_hi) << 32) | u64::from(ts_lo);
                    let ts_ns = self.stamp(at, to_ns(units, iface.units_per_sec, iface.offset_s));
                    self.cur = Some(Current {
                        ts_ns,
                        wire_len: origlen.max(caplen as u32),
                        linktype: iface.linktype,
                        start: body + 20,
                        len: caplen,
                    });
                    self.last_ts = ts_ns;
                    return Ok(true);
                }
                3 => {
                    // Simple Packet Block: interface 0, no timestamp (the previous one is
                    // kept, so the packet lands in the minute it was captured in).
                    if body_len < 4 {
                        return Err(self.error(at, ErrorKind::ShortBlock("simple packet")));
                    }
                    let origlen = self.u32_at(body, big);
                    let iface = self.iface(0, at)?;
                    let mut caplen = (origlen as usize).min(body_len - 4);
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    self.cur = Some(Current {
                        ts_ns: self.last_ts,
                        wire_len: origlen.max(caplen as u32),
                        linktype: iface.linktype,
                        start: body + 4,
                        len: caplen,
                    });
                    return Ok(true);
                }
                _ => {} // statistics, name resolution, custom and unknown blocks: skipped
            }
        }
    }

    pub(super) fn iface(&self, if_id: usize, at: u64) -> Result<Iface, CaptureError> {
        match &self.format {
            Format::PcapNg { ifaces, .. } => ifaces
                .get(if_id)
                .copied()
                .ok_or_else(|| self.error(at, ErrorKind::UnknownInterface(if_id as u32))),
            Format::Pcap { .. } => Err(self.error(at, ErrorKind::UnknownInterface(if_id as u32))),
        }
    }

    /// Reads if_tsresol (9) and if_tsoffset (14) from an interface description's options.
    fn idb_options(&self, mut p: usize, end: usize, big: bool) -> (u64, i64) {
        let mut units = 1_000_000u64;
        let mut offset = 0i64;
        while p + 4 <= end {
            let code = self.u16_at(p, big);
            let len = usize::from(self.u16_at(p + 2, big));
            let v = p + 4;
            if code == 0 || v + len > end {
                break;
            }
            if code == 9 && len >= 1 {
                let r = self.bytes()[v];
                let exp = u32::from(r & 0x7f);
                units = if r & 0x80 == 0 {
                    10u64.checked_pow(exp).unwrap_or(u64::MAX)
                } else {
                    1u64.checked_shl(exp).unwrap_or(u64::MAX)
                };
            } else if code == 14 && len >= 8 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.bytes()[v..v + 8]);
                offset = if big {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                };
            }
            p = v + len.div_ceil(4) * 4;
        }
        (units.max(1), offset)
    }
}

/// Converts a pcapng timestamp in `units_per_sec` to nanoseconds since the epoch (exact:
/// the widest inputs, 2^64-1 units at one per second plus an offset of ±2^63 s, fit in i128).
pub(super) fn to_ns(units: u64, units_per_sec: u64, offset_s: i64) -> i128 {
    let ns = if units_per_sec == 1_000_000_000 {
        u128::from(units)
    } else {
        u128::from(units) * 1_000_000_000 / u128::from(units_per_sec.max(1))
    };
    // At most (2^64-1)·10^9 < 2^94: exact in i128.
    ns as i128 + i128::from(offset_s) * 1_000_000_000
}
