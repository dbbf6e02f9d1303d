//! Minimal pcap and pcapng writers (written here; no capture-writing crate).

use std::net::IpAddr;

use crate::model::Rec;

/// Options of a classic pcap file.
#[derive(Clone, Copy)]
pub struct PcapOpts {
    pub linktype: u32,
    pub snaplen: u32,
    pub big_endian: bool,
    pub nsec: bool,
}

impl PcapOpts {
    pub fn le_usec(linktype: u32) -> Self {
        PcapOpts {
            linktype,
            snaplen: 262_144,
            big_endian: false,
            nsec: false,
        }
    }
}

/// A written file and where each packet record's 16-byte header begins.
pub struct Written {
    pub bytes: Vec<u8>,
    pub rec_offsets: Vec<usize>,
}

fn put32(v: &mut Vec<u8>, be: bool, x: u32) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn put16(v: &mut Vec<u8>, be: bool, x: u16) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

/// Classic pcap: 24-byte global header, then records (caplen = min(len, snaplen)).
pub fn pcap(o: &PcapOpts, recs: &[Rec]) -> Written {
    let be = o.big_endian;
    let mut v = Vec::new();
    put32(&mut v, be, if o.nsec { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    put16(&mut v, be, 2);
    put16(&mut v, be, 4);
    put32(&mut v, be, 0); // thiszone
    put32(&mut v, be, 0); // sigfigs
    put32(&mut v, be, o.snaplen);
    put32(&mut v, be, o.linktype);
    let mut offs = Vec::new();
    for r in recs {
        offs.push(v.len());
        let sec = (r.ts_ns / 1_000_000_000) as u32;
        let frac = if o.nsec {
            (r.ts_ns % 1_000_000_000) as u32
        } else {
            ((r.ts_ns % 1_000_000_000) / 1000) as u32
        };
        let cap = r.data.len().min(o.snaplen as usize);
        put32(&mut v, be, sec);
        put32(&mut v, be, frac);
        put32(&mut v, be, cap as u32);
        put32(&mut v, be, r.data.len() as u32);
        v.extend_from_slice(&r.data[..cap]);
    }
    Written {
        bytes: v,
        rec_offsets: offs,
    }
}

/// pcapng option: (code, value).
pub type Opt = (u16, Vec<u8>);

/// A pcapng file being written, one or more sections.
#[derive(Default)]
pub struct Ng {
    pub buf: Vec<u8>,
    be: bool,
    /// Offset of every block written.
    pub block_offsets: Vec<usize>,
}

pub const BT_SHB: u32 = 0x0A0D_0D0A;
pub const BT_IDB: u32 = 1;
pub const BT_PB: u32 = 2;
pub const BT_SPB: u32 = 3;
pub const BT_NRB: u32 = 4;
pub const BT_ISB: u32 = 5;
pub const BT_EPB: u32 = 6;

impl Ng {
    pub fn new() -> Self {
        Ng::default()
    }

    pub fn u16(&self, v: &mut Vec<u8>, x: u16) {
        put16(v, self.be, x);
    }

    pub fn u32(&self, v: &mut Vec<u8>, x: u32) {
        put32(v, self.be, x);
    }

    fn u64(&self, v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&if self.be {
            x.to_be_bytes()
        } else {
            x.to_le_bytes()
        });
    }

    /// Serialises options followed by opt_endofopt (nothing if there are none).
    pub fn opts(&self, opts: &[Opt]) -> Vec<u8> {
        let mut v = Vec::new();
        if opts.is_empty() {
            return v;
        }
        for (code, val) in opts {
            self.u16(&mut v, *code);
            self.u16(&mut v, val.len() as u16);
            v.extend_from_slice(val);
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        }
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    /// Writes a block: type, total length, body (padded to 4), total length.
    pub fn block(&mut self, btype: u32, body: &[u8]) {
        let mut b = body.to_vec();
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        let total = (12 + b.len()) as u32;
        self.block_offsets.push(self.buf.len());
        let mut v = Vec::new();
        self.u32(&mut v, btype);
        self.u32(&mut v, total);
        v.extend_from_slice(&b);
        self.u32(&mut v, total);
        self.buf.extend_from_slice(&v);
    }

    /// Section Header Block; starts a section in the given byte order.
    pub fn shb(&mut self, big_endian: bool, opts: &[Opt]) {
        self.be = big_endian;
        let mut b = Vec::new();
        self.u32(&mut b, 0x1A2B_3C4D);
        self.u16(&mut b, 1);
        self.u16(&mut b, 0);
        self.u64(&mut b, u64::MAX); // section length unknown (-1)
        b.extend(self.opts(opts));
        self.block(BT_SHB, &b);
    }

    pub fn idb(&mut self, linktype: u16, snaplen: u32, opts: &[Opt]) {
        let mut b = Vec::new();
        self.u16(&mut b, linktype);
        self.u16(&mut b, 0);
        self.u32(&mut b, snaplen);
        b.extend(self.opts(opts));
        self.block(BT_IDB, &b);
    }

    /// Enhanced Packet Block; `ts` is in the interface's units.
    pub fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32, opts: &[Opt]) {
        let mut b = Vec::new();
        self.u32(&mut b, iface);
        self.u32(&mut b, (ts >> 32) as u32);
        self.u32(&mut b, ts as u32);
        self.u32(&mut b, data.len() as u32);
        self.u32(&mut b, orig);
        b.extend_from_slice(data);
        while !b.len().is_multiple_of(4) {
            b.push(0);
        }
        b.extend(self.opts(opts));
        self.block(BT_EPB, &b);
    }

    /// Simple Packet Block (interface 0, no timestamp).
    pub fn spb(&mut self, data: &[u8], orig: u32) {
        let mut b = Vec::new();
        self.u32(&mut b, orig);
        b.extend_from_slice(data);
        self.block(BT_SPB, &b);
    }

    /// Obsolete Packet Block.
    pub fn pb(&mut self, iface: u16, ts: u64, data: &[u8], orig: u32) {
        let mut b = Vec::new();
        self.u16(&mut b, iface);
        self.u16(&mut b, 0); // drops count
        self.u32(&mut b, (ts >> 32) as u32);
        self.u32(&mut b, ts as u32);
        self.u32(&mut b, data.len() as u32);
        self.u32(&mut b, orig);
        b.extend_from_slice(data);
        self.block(BT_PB, &b);
    }

    /// Name Resolution Block with IPv4/IPv6 records.
    pub fn nrb(&mut self, entries: &[(IpAddr, &str)]) {
        let mut b = Vec::new();
        for (ip, name) in entries {
            let (rtype, mut val) = match ip {
                IpAddr::V4(a) => (1u16, a.octets().to_vec()),
                IpAddr::V6(a) => (2u16, a.octets().to_vec()),
            };
            val.extend_from_slice(name.as_bytes());
            val.push(0);
            self.u16(&mut b, rtype);
            self.u16(&mut b, val.len() as u16);
            b.extend_from_slice(&val);
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
        }
        b.extend_from_slice(&[0, 0, 0, 0]); // nrb_record_end
        self.block(BT_NRB, &b);
    }

    /// Interface Statistics Block with isb_ifrecv and isb_ifdrop.
    pub fn isb(&mut self, iface: u32, ts: u64, recv: u64, drop: u64) {
        let mut b = Vec::new();
        self.u32(&mut b, iface);
        self.u32(&mut b, (ts >> 32) as u32);
        self.u32(&mut b, ts as u32);
        let mut r = Vec::new();
        self.u64(&mut r, recv);
        let mut d = Vec::new();
        self.u64(&mut d, drop);
        b.extend(self.opts(&[(4, r), (5, d)]));
        self.block(BT_ISB, &b);
    }
}

pub fn opt_str(code: u16, s: &str) -> Opt {
    (code, s.as_bytes().to_vec())
}

/// Timestamp in units of 10^-exp seconds.
pub fn ts_units(ts_ns: u64, exp: u32) -> u64 {
    if exp >= 9 {
        ts_ns * 10u64.pow(exp - 9)
    } else {
        ts_ns / 10u64.pow(9 - exp)
    }
}

/// Writes all records as EPBs of their interface (helper for plain pcapng files).
/// `tsresol[i]` is the decimal exponent of interface i.
pub fn epbs(ng: &mut Ng, recs: &[Rec], tsresol: &[u32]) {
    for r in recs {
        let exp = tsresol[r.iface as usize];
        let opts: Vec<Opt> = r.comment.iter().map(|c| opt_str(1, c)).collect();
        ng.epb(
            r.iface,
            ts_units(r.ts_ns, exp),
            &r.data,
            r.data.len() as u32,
            &opts,
        );
    }
}
