//! Per-minute counters: the series (which partition the input), the port view and capture
//! health. Minutes are UTC minutes of packet time.

pub mod health;
pub mod hll;
pub mod ledger;
pub mod members;
pub mod packed;
pub mod range;

pub use crate::flow::home::{Direction, HomeNet};
pub use health::{Health, SflowHealth};
pub use ledger::PortRow;
pub use members::Tag;
pub use range::BtRange;

use std::borrow::Cow;
use std::fmt;

use crate::classify::{Method, Proto};

pub const NS_PER_MIN: i64 = 60_000_000_000;

/// The UTC minute (minutes since the epoch) of a timestamp in nanoseconds.
#[inline]
pub fn minute_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(NS_PER_MIN)
}

/// When to pack finished minutes ([`Aggregator::pack_before`]): each time packet time
/// enters a new minute, every minute before the previous one is packed, so what is kept grows
/// with the traffic, not with the time the input spans. (A minute credited after it was packed
/// is unpacked again: the outputs do not depend on when packing happens.)
#[derive(Default)]
pub struct Packer {
    newest: Option<i64>,
}

impl Packer {
    /// The minute to pack before, when packet time `ts_ns` enters a new minute.
    pub fn due(&mut self, ts_ns: i64) -> Option<i64> {
        let m = minute_of(ts_ns);
        if self.newest.is_some_and(|n| m <= n) {
            return None;
        }
        self.newest = Some(m);
        Some(m.saturating_sub(1))
    }
}

/// The start of a minute in nanoseconds since the epoch, saturating at the ends of `i64`
/// (never reached by packet times, which the readers keep within
/// [`crate::capture::TS_MIN`]..=[`crate::capture::TS_MAX`]).
#[inline]
pub fn minute_start_ns(minute: i64) -> i64 {
    minute.saturating_mul(NS_PER_MIN)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
}

impl Counts {
    #[inline]
    pub fn add(&mut self, packets: u64, bytes: u64) {
        self.packets += packets;
        self.bytes += bytes;
    }
}

/// What sampled packets add to a counter besides packets and bytes: the number of samples
/// and the variance of the byte estimate. Each sample of a frame of `L` wire bytes taken at
/// 1 in `w` stands for `w` packets and `w·L` bytes, and adds `w·(w−1)·L²` to the variance
/// (the Horvitz–Thompson estimator's unbiased variance estimate for independent 1-in-`w`
/// sampling). With equal frame sizes and one rate that is sFlow's usual 1.96·√(1/c) relative
/// error for `c` samples; with mixed sizes (acknowledgements and full frames) it is wider, as
/// it must be. Captured packets (`w` = 1) add no variance: their counts are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sampled {
    pub samples: u64,
    pub var: f64,
}

impl Sampled {
    /// One sample of a frame of `wire` bytes at 1 in `weight`.
    #[inline]
    pub fn one(wire: u64, weight: u32) -> Sampled {
        let (w, l) = (f64::from(weight), wire as f64);
        Sampled {
            samples: 1,
            var: w * (w - 1.0) * l * l,
        }
    }

    /// Held counts of `samples` samples standing for `packets` packets and `bytes` bytes
    /// (their sizes are no longer known: the variance assumes equal sizes and one rate).
    pub fn held(samples: u64, packets: u64, bytes: u64) -> Sampled {
        if samples == 0 || packets <= samples {
            return Sampled { samples, var: 0.0 };
        }
        let w = packets as f64 / samples as f64;
        let b = bytes as f64;
        Sampled {
            samples,
            var: (w - 1.0) / w * b * b / samples as f64,
        }
    }

    #[inline]
    pub fn add(&mut self, o: Sampled) {
        self.samples += o.samples;
        self.var += o.var;
    }

    /// Half-width of the 95 % interval of the byte estimate (1.96 standard deviations).
    pub fn half_width(&self) -> u64 {
        (1.96 * self.var.max(0.0).sqrt()).round() as u64
    }
}

/// What one packet (or packets held together) adds to the counters: packets, wire bytes
/// and their samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    pub packets: u32,
    pub bytes: u64,
    pub est: Sampled,
}

impl Amount {
    /// A frame of `wire` bytes standing for `weight` frames (1 for a captured frame).
    #[inline]
    pub fn sample(wire: u64, weight: u32) -> Amount {
        Amount {
            packets: weight,
            bytes: wire.saturating_mul(u64::from(weight)),
            est: Sampled::one(wire, weight),
        }
    }

    /// Held counts (see [`Sampled::held`]).
    #[inline]
    pub fn held(packets: u32, bytes: u64, samples: u16) -> Amount {
        Amount {
            packets,
            bytes,
            est: Sampled::held(u64::from(samples), u64::from(packets), bytes),
        }
    }
}

const N_PROTO: usize = Proto::ALL.len();
const N_METHOD: usize = Method::ALL.len();
const N_DIR: usize = Direction::ALL.len();
const SLOTS: usize = N_PROTO * N_METHOD * N_DIR;

#[inline]
fn slot(proto: Proto, method: Method, dir: Direction) -> usize {
    ((proto as usize) * N_METHOD + method as usize) * N_DIR + dir as usize
}

/// Everything counted for one minute.
#[derive(Clone)]
pub struct MinuteBucket {
    series: [Counts; SLOTS],
    /// Samples and variance of each series counter (sampled input; for captures, samples
    /// equal packets and the variance is 0).
    series_est: [Sampled; SLOTS],
    /// Port view: index `rule * N_DIR + direction`.
    port: Vec<Counts>,
    port_est: Vec<Sampled>,
    pub health: Health,
    /// sFlow input's own health (zero for captures).
    pub sflow: SflowHealth,
    /// Distinct hosts (both ends of BitTorrent flows) seen this minute, as a sketch.
    pub hosts: hll::Hll,
    /// The series and port view again by member (sFlow `--members`; empty without).
    members: members::MemberCounts,
}

impl MinuteBucket {
    /// The minute's BitTorrent range (sampled input; see [`BtRange`]).
    pub fn bt_range(&self) -> BtRange {
        bt_range_of(|i| (self.series[i], self.series_est[i]))
    }

    pub fn new(port_rules: usize) -> Box<Self> {
        Box::new(MinuteBucket {
            series: [Counts::default(); SLOTS],
            series_est: [Sampled::default(); SLOTS],
            port: vec![Counts::default(); port_rules * N_DIR],
            port_est: vec![Sampled::default(); port_rules * N_DIR],
            health: Health::default(),
            sflow: SflowHealth::default(),
            hosts: hll::Hll::default(),
            members: members::MemberCounts::default(),
        })
    }

    /// Adds exactly counted packets (each its own sample).
    #[inline]
    pub fn add(&mut self, proto: Proto, method: Method, dir: Direction, packets: u64, bytes: u64) {
        let est = Sampled {
            samples: packets,
            var: 0.0,
        };
        self.add_sampled(proto, method, dir, packets, bytes, est);
    }

    /// Adds estimated packets and bytes with the samples they come from.
    #[inline]
    pub fn add_sampled(
        &mut self,
        proto: Proto,
        method: Method,
        dir: Direction,
        packets: u64,
        bytes: u64,
        est: Sampled,
    ) {
        let i = slot(proto, method, dir);
        self.series[i].add(packets, bytes);
        self.series_est[i].add(est);
    }

    #[inline]
    pub fn add_amount(&mut self, proto: Proto, method: Method, dir: Direction, a: Amount) {
        self.add_sampled(proto, method, dir, u64::from(a.packets), a.bytes, a.est);
    }

    /// [`MinuteBucket::add_amount`] for a packet's [`Tag`]: by member too, if it has one.
    #[inline]
    pub fn add_tagged(&mut self, proto: Proto, method: Method, tag: Tag, a: Amount) {
        let dir = tag.dir();
        self.add_amount(proto, method, dir, a);
        if tag.member() != members::MEMBER_NONE {
            self.members
                .add_series(tag.member(), slot(proto, method, dir), a);
        }
    }

    /// Adds everything another worker counted for the same minute (same rule set). A new
    /// field of the bucket needs one line here.
    pub fn merge(&mut self, o: &MinuteBucket) {
        for (a, b) in self.series.iter_mut().zip(o.series.iter()) {
            a.add(b.packets, b.bytes);
        }
        for (a, b) in self.series_est.iter_mut().zip(o.series_est.iter()) {
            a.add(*b);
        }
        for (a, b) in self.port.iter_mut().zip(o.port.iter()) {
            a.add(b.packets, b.bytes);
        }
        for (a, b) in self.port_est.iter_mut().zip(o.port_est.iter()) {
            a.add(*b);
        }
        self.health.merge(&o.health);
        self.sflow.merge(&o.sflow);
        self.hosts.merge(&o.hosts);
        self.members.merge(&o.members);
    }

    /// Packets and wire bytes in the series (each packet is in exactly one series counter).
    pub fn series_total(&self) -> Counts {
        let mut t = Counts::default();
        for c in &self.series {
            t.add(c.packets, c.bytes);
        }
        t
    }
}

/// One row of the series: a minute and a tag set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRow {
    pub minute: i64,
    pub proto: Proto,
    pub method: Method,
    pub direction: Direction,
    pub counts: Counts,
    /// Samples behind the counts (equal to packets for captures).
    pub samples: u64,
    /// Half-width of the 95 % interval of `counts.bytes` (0 for captures).
    pub bytes_err: u64,
    /// Member index (sFlow `--members`; [`members::MEMBER_NONE`] without).
    pub member: u16,
}

/// Per-minute counters, kept until written.
///
/// Minutes are kept sorted in a vector: packets mostly arrive in time order, so finding a
/// minute is a comparison with the current one, a new minute is a push, and switching between
/// minutes (a late verdict crediting an earlier minute) allocates nothing.
///
/// Live capture takes finished minutes out ([`Aggregator::take_before`]); anything counted
/// later for a minute already taken (a verdict reached late for packets held in a flow, a
/// flow ending, a packet arriving late) is credited to the oldest minute still open, so
/// nothing counted is lost or counted twice.
pub struct Aggregator {
    minutes: Vec<(i64, Entry)>,
    cur: usize,
    port_rules: usize,
    /// The oldest minute still open: minutes before it were taken out.
    floor: i64,
    /// Entries before this index are packed ([`Aggregator::pack_before`]).
    packed_upto: usize,
}

/// A minute being counted, or a finished one packed for keeping.
enum Entry {
    Open(Box<MinuteBucket>),
    Packed(Box<packed::PackedBucket>),
}

impl Entry {
    /// The minute's bucket, unpacked into a copy if it is packed.
    fn view(&self, port_rules: usize) -> Cow<'_, MinuteBucket> {
        match self {
            Entry::Open(b) => Cow::Borrowed(&**b),
            Entry::Packed(p) => Cow::Owned(*p.unpack(port_rules)),
        }
    }

    /// The minute's health, without unpacking it.
    fn health(&self) -> Health {
        match self {
            Entry::Open(b) => b.health,
            Entry::Packed(p) => p.health(),
        }
    }

    /// The minute's distinct-host estimate, without unpacking it.
    fn hosts_count(&self) -> u64 {
        match self {
            Entry::Open(b) => b.hosts.count(),
            Entry::Packed(p) => p.hosts_count(),
        }
    }

    fn open(&mut self, port_rules: usize) -> &mut MinuteBucket {
        if let Entry::Packed(p) = self {
            *self = Entry::Open(p.unpack(port_rules));
        }
        match self {
            Entry::Open(b) => b,
            Entry::Packed(_) => unreachable!("unpacked above"),
        }
    }

    fn into_bucket(self, port_rules: usize) -> Box<MinuteBucket> {
        match self {
            Entry::Open(b) => b,
            Entry::Packed(p) => p.unpack(port_rules),
        }
    }
}

impl Aggregator {
    pub fn new(port_rules: usize) -> Self {
        Aggregator {
            minutes: Vec::new(),
            cur: 0,
            port_rules,
            floor: i64::MIN,
            packed_upto: 0,
        }
    }

    fn of(minutes: Vec<(i64, Entry)>, port_rules: usize, packed_upto: usize) -> Aggregator {
        Aggregator {
            minutes,
            cur: 0,
            port_rules,
            floor: i64::MIN,
            packed_upto,
        }
    }

    /// The bucket of one minute, created when first needed. A minute already taken out
    /// stands for the oldest open one.
    #[inline]
    pub fn bucket(&mut self, minute: i64) -> &mut MinuteBucket {
        let minute = minute.max(self.floor);
        if self.minutes.get(self.cur).map(|m| m.0) != Some(minute) {
            self.cur = self.find_or_insert(minute);
        }
        let entry = &mut self.minutes[self.cur].1;
        if matches!(entry, Entry::Packed(_)) {
            self.packed_upto = self.packed_upto.min(self.cur);
        }
        entry.open(self.port_rules)
    }

    #[cold]
    fn find_or_insert(&mut self, minute: i64) -> usize {
        match self.minutes.binary_search_by_key(&minute, |m| m.0) {
            Ok(i) => i,
            Err(i) => {
                self.minutes
                    .insert(i, (minute, Entry::Open(MinuteBucket::new(self.port_rules))));
                // A new minute is open: packing looks at it again.
                self.packed_upto = self.packed_upto.min(i);
                i
            }
        }
    }

    /// Takes out every minute before `minute` (in order) and closes them: later counts for
    /// them go to the oldest open minute.
    pub fn take_before(&mut self, minute: i64) -> Vec<(i64, Box<MinuteBucket>)> {
        self.floor = self.floor.max(minute);
        let n = self.minutes.partition_point(|m| m.0 < minute);
        self.cur = 0;
        self.packed_upto = self.packed_upto.saturating_sub(n);
        let rules = self.port_rules;
        self.minutes
            .drain(..n)
            .map(|(m, e)| (m, e.into_bucket(rules)))
            .collect()
    }

    /// Takes out every minute (end of input).
    pub fn take_all(&mut self) -> Vec<(i64, Box<MinuteBucket>)> {
        self.cur = 0;
        self.packed_upto = 0;
        let rules = self.port_rules;
        std::mem::take(&mut self.minutes)
            .into_iter()
            .map(|(m, e)| (m, e.into_bucket(rules)))
            .collect()
    }

    /// Packs every minute before `minute` ([`packed::PackedBucket`]): offline, a minute no
    /// open flow is likely to credit any more is kept in a few hundred bytes instead of a
    /// whole bucket. A packed minute credited again is unpacked first, so counts stay exact.
    pub fn pack_before(&mut self, minute: i64) {
        let n = self.minutes.partition_point(|m| m.0 < minute);
        for (_, e) in self.minutes.iter_mut().take(n).skip(self.packed_upto) {
            if let Entry::Open(b) = e {
                *e = Entry::Packed(Box::new(packed::PackedBucket::pack(b)));
            }
        }
        self.packed_upto = self.packed_upto.max(n);
    }

    /// Takes out every minute before `minute` (as [`Aggregator::take_before`]) into an
    /// aggregator of their own.
    pub fn split_before(&mut self, minute: i64) -> Aggregator {
        self.floor = self.floor.max(minute);
        let n = self.minutes.partition_point(|m| m.0 < minute);
        self.cur = 0;
        let packed = self.packed_upto.min(n);
        self.packed_upto = self.packed_upto.saturating_sub(n);
        Aggregator::of(self.minutes.drain(..n).collect(), self.port_rules, packed)
    }

    /// Takes out every minute into an aggregator of their own (end of input), packed
    /// minutes still packed.
    pub fn split_all(&mut self) -> Aggregator {
        self.cur = 0;
        let packed = std::mem::take(&mut self.packed_upto);
        Aggregator::of(std::mem::take(&mut self.minutes), self.port_rules, packed)
    }

    /// Adds a minute counted elsewhere (another worker) into this one.
    pub fn absorb(&mut self, minute: i64, b: &MinuteBucket) {
        self.bucket(minute).merge(b);
    }

    /// Whether no minute is held.
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }

    /// All minutes, in order (packed ones unpacked one at a time).
    pub fn minutes(&self) -> impl Iterator<Item = (i64, Cow<'_, MinuteBucket>)> {
        self.minutes
            .iter()
            .map(|(m, e)| (*m, e.view(self.port_rules)))
    }

    /// Series rows with packets, ordered by minute, then (with members) member, then proto,
    /// method and direction.
    pub fn series_rows(&self) -> Vec<SeriesRow> {
        let mut out = Vec::new();
        for (minute, e) in &self.minutes {
            // A packed minute without members gives its rows as it is.
            if let Entry::Packed(p) = e {
                if !p.has_members() {
                    series_rows_of(&mut out, *minute, members::MEMBER_NONE, |i| p.series_at(i));
                    continue;
                }
            }
            let (minute, b) = (*minute, e.view(self.port_rules));
            let by_member = b.members.members();
            if by_member.is_empty() {
                series_rows_of(&mut out, minute, members::MEMBER_NONE, |i| {
                    (b.series[i], b.series_est[i])
                });
            }
            for m in by_member {
                series_rows_of(&mut out, minute, m, |i| {
                    b.members.series(m, i).copied().unwrap_or_default()
                });
            }
        }
        out
    }

    /// Health per minute, in order.
    pub fn health_rows(&self) -> Vec<(i64, Health)> {
        self.minutes.iter().map(|(m, e)| (*m, e.health())).collect()
    }

    /// sFlow health per minute, in order (the same minutes as [`Aggregator::health_rows`]).
    /// Each row also has the minute's BitTorrent range ([`BtRange`]).
    pub fn sflow_rows(&self) -> Vec<(i64, SflowHealth)> {
        self.minutes
            .iter()
            .map(|(m, e)| {
                let (mut h, range) = match e {
                    Entry::Open(b) => (b.sflow, b.bt_range()),
                    Entry::Packed(p) => (p.sflow(), bt_range_of(|i| p.series_at(i))),
                };
                h.set_range(&range);
                (*m, h)
            })
            .collect()
    }
}

/// A minute's BitTorrent range ([`BtRange`]) from its series counters by slot.
fn bt_range_of(at: impl Fn(usize) -> (Counts, Sampled)) -> BtRange {
    let mut r = BtRange::default();
    for proto in Proto::ALL {
        for method in Method::ALL {
            for direction in Direction::ALL {
                let (counts, est) = at(slot(proto, method, direction));
                r.add(proto, method, counts.bytes, est.var);
            }
        }
    }
    r
}

/// The series rows of one minute and member, from its counters by slot.
fn series_rows_of(
    out: &mut Vec<SeriesRow>,
    minute: i64,
    member: u16,
    at: impl Fn(usize) -> (Counts, Sampled),
) {
    for proto in Proto::ALL {
        for method in Method::ALL {
            for direction in Direction::ALL {
                let (counts, est) = at(slot(proto, method, direction));
                if counts.packets > 0 {
                    out.push(SeriesRow {
                        minute,
                        proto,
                        method,
                        direction,
                        counts,
                        samples: est.samples,
                        bytes_err: est.half_width(),
                        member,
                    });
                }
            }
        }
    }
}

/// RFC 3339 UTC timestamp of a time in nanoseconds, with `frac_digits` (0, 3, 6 or 9)
/// fractional digits.
pub struct Rfc3339 {
    pub ts_ns: i64,
    pub frac_digits: u8,
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.ts_ns.div_euclid(1_000_000_000);
        let nanos = self.ts_ns.rem_euclid(1_000_000_000);
        write_civil(f, secs, nanos, self.frac_digits)
    }
}

/// RFC 3339 UTC start of a minute, for any minute an `i64` holds (the time in nanoseconds
/// would not fit beyond 2262).
pub struct MinuteStart(pub i64);

impl fmt::Display for MinuteStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_civil(f, self.0.saturating_mul(60), 0, 0)
    }
}

fn write_civil(f: &mut fmt::Formatter<'_>, secs: i64, nanos: i64, frac_digits: u8) -> fmt::Result {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    write!(
        f,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )?;
    match frac_digits {
        3 => write!(f, ".{:03}", nanos / 1_000_000)?,
        6 => write!(f, ".{:06}", nanos / 1_000)?,
        9 => write!(f, ".{nanos:09}")?,
        _ => {}
    }
    f.write_str("Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_minutes_give_the_same_rows_and_reopen_exactly() {
        let fill = |a: &mut Aggregator, late: bool| {
            for m in 0..500i64 {
                let b = a.bucket(m);
                b.add(
                    Proto::Dht,
                    Method::Signature,
                    Direction::Up,
                    1,
                    100 + m as u64,
                );
                b.health.packets += 1;
                if m % 7 == 0 {
                    b.hosts.insert_hash(m as u64);
                }
                if m % 3 == 0 {
                    b.add_port((m % 2) as usize, Direction::Down, 2, 120 + m as u64);
                }
            }
            if late {
                // A late verdict crediting a minute long packed, and a minute never seen.
                a.pack_before(499);
                a.bucket(3)
                    .add(Proto::Utp, Method::Correlation, Direction::Down, 2, 50);
                a.bucket(-5).health.packets += 1;
            }
        };
        let (mut whole, mut packed) = (Aggregator::new(2), Aggregator::new(2));
        fill(&mut whole, false);
        whole
            .bucket(3)
            .add(Proto::Utp, Method::Correlation, Direction::Down, 2, 50);
        whole.bucket(-5).health.packets += 1;
        fill(&mut packed, true);
        packed.pack_before(i64::MAX);
        assert!(packed
            .minutes
            .iter()
            .all(|(_, e)| matches!(e, Entry::Packed(_))));
        assert_eq!(packed.series_rows(), whole.series_rows());
        assert_eq!(packed.health_rows(), whole.health_rows());
        assert_eq!(packed.hosts_rows(), whole.hosts_rows());
        assert!(!whole.port_rows().is_empty());
        assert_eq!(packed.port_rows(), whole.port_rows());
        assert!(whole
            .sflow_rows()
            .iter()
            .any(|(_, h)| *h != SflowHealth::default()));
        assert_eq!(packed.sflow_rows(), whole.sflow_rows());
        let (a, b) = (packed.split_all(), whole.split_all());
        assert_eq!(a.series_rows(), b.series_rows());
    }

    #[test]
    fn rfc3339() {
        let t = |ns, d| {
            Rfc3339 {
                ts_ns: ns,
                frac_digits: d,
            }
            .to_string()
        };
        assert_eq!(t(0, 0), "1970-01-01T00:00:00Z");
        // The Pirate Bay raid, 2006-05-31 10:00 UTC.
        assert_eq!(t(1_149_069_600_000_000_000, 0), "2006-05-31T10:00:00Z");
        assert_eq!(
            t(1_717_149_600_123_456_789, 6),
            "2024-05-31T10:00:00.123456Z"
        );
        assert_eq!(t(951_782_400_000_000_000, 3), "2000-02-29T00:00:00.000Z");
        assert_eq!(t(-1, 9), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn minutes_floor_toward_negative() {
        assert_eq!(minute_of(59_999_999_999), 0);
        assert_eq!(minute_of(60_000_000_000), 1);
        assert_eq!(minute_of(-1), -1);
        assert_eq!(minute_of(i64::MIN), -153_722_868);
        assert_eq!(minute_start_ns(minute_of(i64::MIN)), i64::MIN);
        assert_eq!(minute_start_ns(minute_of(i64::MAX) + 1), i64::MAX);
        assert_eq!(MinuteStart(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            MinuteStart(minute_of(i64::MAX)).to_string(),
            "2262-04-11T23:47:00Z"
        );
        assert_eq!(
            MinuteStart(minute_of(i64::MIN)).to_string(),
            "1677-09-21T00:12:00Z"
        );
        // A report's input may name any year up to 9999.
        assert_eq!(
            MinuteStart(4_223_371_679).to_string(),
            "9999-12-31T23:59:00Z"
        );
    }

    #[test]
    fn taken_minutes_are_closed_and_merge_adds_up() {
        let mut agg = Aggregator::new(1);
        agg.bucket(1)
            .add(Proto::Dht, Method::Signature, Direction::Up, 1, 10);
        agg.bucket(2)
            .add(Proto::Dht, Method::Signature, Direction::Up, 2, 20);
        let taken = agg.take_before(2);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, 1);
        // A late count for minute 1 goes to minute 2, the oldest open one.
        agg.bucket(1)
            .add(Proto::Dht, Method::Signature, Direction::Up, 4, 40);
        agg.bucket(0).health.flows_ended += 1;
        let rest = agg.take_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, 2);
        assert_eq!(
            rest[0].1.series_total(),
            Counts {
                packets: 6,
                bytes: 60
            }
        );
        assert_eq!(rest[0].1.health.flows_ended, 1);
        let mut merged = Aggregator::new(1);
        merged.absorb(1, &taken[0].1);
        merged.absorb(1, &rest[0].1);
        merged.bucket(1).health.flows_tracked = 3;
        let mut other = MinuteBucket::new(1);
        other.health.flows_tracked = 4;
        other.health.spool_bytes = 9;
        other.add_port(0, Direction::Up, 1, 5);
        merged.absorb(1, &other);
        let b = merged.minutes().next().expect("minute").1;
        assert_eq!(b.series_total().packets, 7);
        assert_eq!((b.health.flows_tracked, b.health.spool_bytes), (7, 9));
        assert_eq!(merged.port_rows()[0].counts.bytes, 5);
    }

    #[test]
    fn remapped_port_view_follows_rule_ids() {
        let mut b = MinuteBucket::new(2);
        b.add_port(0, Direction::Up, 1, 10);
        b.add_port(1, Direction::Down, 2, 20);
        // Rule 0 is gone, rule 1 becomes rule 0 of a set of three.
        b.remap_ports(&[None, Some(0)], 3);
        let mut agg = Aggregator::new(3);
        agg.absorb(0, &b);
        let rows = agg.port_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].rule, rows[0].direction, rows[0].counts.bytes),
            (0, Direction::Down, 20)
        );
    }

    #[test]
    fn buckets_survive_minute_switches() {
        let mut agg = Aggregator::new(1);
        agg.bucket(5)
            .add(Proto::Peerwire, Method::Signature, Direction::Up, 1, 100);
        agg.bucket(4)
            .add(Proto::Other, Method::None, Direction::Up, 2, 50);
        agg.bucket(5)
            .add(Proto::Peerwire, Method::Signature, Direction::Up, 1, 10);
        agg.bucket(5).add_port(0, Direction::Down, 3, 30);
        let rows = agg.series_rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].minute, rows[0].counts),
            (
                4,
                Counts {
                    packets: 2,
                    bytes: 50
                }
            )
        );
        assert_eq!(
            (rows[1].minute, rows[1].counts),
            (
                5,
                Counts {
                    packets: 2,
                    bytes: 110
                }
            )
        );
        let ports = agg.port_rows();
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].rule, ports[0].direction), (0, Direction::Down));
    }
}
