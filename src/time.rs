//! Packet time in types: nanoseconds since the epoch and minute indexes, with the checked and
//! saturating conversions the front doors need (flags in seconds or minutes, wall clock,
//! flush delays).
//!
//! Time comes from packets; the wall clock only decides when `live` and `sflow` flush.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds in a second.
pub const NS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds in a minute.
pub const NS_PER_MIN: i64 = 60 * NS_PER_SEC;

/// A point in time or a span, in nanoseconds (since the epoch for points).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub i64);

/// A minute: whole minutes since the epoch (the minute holding `Nanos` t is `t / 60 s`,
/// rounded down, also before the epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minute(pub i64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// A span of whole seconds (a `u32` of seconds always fits).
    pub const fn from_secs(s: u32) -> Nanos {
        Nanos(s as i64 * NS_PER_SEC)
    }

    /// A span of whole seconds from a wider count, saturating at `i64::MAX` ns.
    pub fn from_secs_u64(s: u64) -> Nanos {
        Nanos(i64::try_from(s).map_or(i64::MAX, |s| s.saturating_mul(NS_PER_SEC)))
    }

    /// A span of whole minutes, saturating at `i64::MAX` ns (153.7 million minutes fit, not
    /// all of `u32`'s 4 295 million).
    pub const fn from_minutes(m: u32) -> Nanos {
        Nanos((m as i64).saturating_mul(NS_PER_MIN))
    }

    /// The wall clock now (0 if it is before the epoch; saturating in 2262).
    pub fn now() -> Nanos {
        Nanos(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// The minute this point falls in.
    pub const fn minute(self) -> Minute {
        Minute(self.0.div_euclid(NS_PER_MIN))
    }

    pub const fn saturating_add(self, d: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(d.0))
    }

    pub const fn saturating_sub(self, d: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(d.0))
    }

    pub const fn checked_add(self, d: Nanos) -> Option<Nanos> {
        match self.0.checked_add(d.0) {
            Some(n) => Some(Nanos(n)),
            None => None,
        }
    }
}

impl Minute {
    pub const fn get(self) -> i64 {
        self.0
    }

    /// The first nanosecond of the minute, saturating at the ends of `i64`.
    pub const fn start(self) -> Nanos {
        Nanos(self.0.saturating_mul(NS_PER_MIN))
    }

    /// The minute after this one (saturating).
    pub const fn next(self) -> Minute {
        Minute(self.0.saturating_add(1))
    }
}

/// Where the daemons read the time that decides when a minute is flushed.
pub trait Clock {
    fn now(&self) -> Nanos;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Nanos {
        Nanos::now()
    }
}

/// A clock for tests: starts at `start` and moves on by `step` each time it is read.
#[derive(Debug)]
pub struct FakeClock {
    t: std::sync::atomic::AtomicI64,
    step: i64,
}

impl FakeClock {
    pub fn new(start: Nanos, step: Nanos) -> FakeClock {
        FakeClock {
            t: std::sync::atomic::AtomicI64::new(start.0),
            step: step.0,
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Nanos {
        Nanos(
            self.t
                .fetch_add(self.step, std::sync::atomic::Ordering::Relaxed),
        )
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ns", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_from_flags() {
        assert_eq!(Nanos::from_secs(300).get(), 300_000_000_000);
        assert_eq!(
            Nanos::from_secs(u32::MAX).get(),
            i64::from(u32::MAX) * NS_PER_SEC
        );
        assert_eq!(Nanos::from_minutes(30).get(), 30 * NS_PER_MIN);
        assert_eq!(
            Nanos::from_minutes(153_722_867).get(),
            153_722_867 * NS_PER_MIN
        );
        assert_eq!(Nanos::from_minutes(153_722_868), Nanos(i64::MAX));
        assert_eq!(Nanos::from_minutes(u32::MAX), Nanos(i64::MAX));
        assert_eq!(Nanos::from_secs_u64(2).get(), 2 * NS_PER_SEC);
        assert_eq!(Nanos::from_secs_u64(u64::MAX), Nanos(i64::MAX));
    }

    #[test]
    fn minutes_round_down_also_before_the_epoch() {
        assert_eq!(Nanos(0).minute(), Minute(0));
        assert_eq!(Nanos(NS_PER_MIN - 1).minute(), Minute(0));
        assert_eq!(Nanos(NS_PER_MIN).minute(), Minute(1));
        assert_eq!(Nanos(-1).minute(), Minute(-1));
        assert_eq!(Minute(-1).start(), Nanos(-NS_PER_MIN));
        assert_eq!(Minute(i64::MAX).start(), Nanos(i64::MAX));
        assert_eq!(Minute(i64::MAX).next(), Minute(i64::MAX));
        assert_eq!(Minute(5).next(), Minute(6));
    }

    #[test]
    fn arithmetic_saturates_or_says_so() {
        assert_eq!(Nanos(i64::MAX).saturating_add(Nanos(1)), Nanos(i64::MAX));
        assert_eq!(Nanos(i64::MIN).saturating_sub(Nanos(1)), Nanos(i64::MIN));
        assert_eq!(Nanos(i64::MAX).checked_add(Nanos(1)), None);
        assert_eq!(Nanos(1).checked_add(Nanos(2)), Some(Nanos(3)));
        assert!(Nanos::now() > Nanos(1_600_000_000 * NS_PER_SEC));
    }

    #[test]
    fn fake_clock_steps_each_read() {
        let c = FakeClock::new(Nanos(10), Nanos::from_secs(1));
        assert_eq!(c.now(), Nanos(10));
        assert_eq!(c.now(), Nanos(10 + NS_PER_SEC));
        assert!(WallClock.now() > Nanos(0));
    }
}
