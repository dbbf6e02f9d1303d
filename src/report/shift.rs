//! Level shifts in per-minute series: binary segmentation with Pettitt's rank test.
//!
//! Pettitt's statistic K = max_t |2·Σ_{i≤t} r_i − t(n+1)| over the ranks r_i of a segment is
//! distribution-free, so bursty traffic (heavy tails, long runs of zeros) does not inflate it
//! the way a mean-and-variance CUSUM is inflated; its significance is
//! p ≈ 2·exp(−6K²/(n³+n²)) (Pettitt 1979). A split is a change point when p < `alpha` and the
//! medians on its two sides differ by at least `min_change`; both sides are then searched
//! again. Levels are medians, so a burst does not move them.
//!
//! A BitTorrent change point is then judged against the rest of the series:
//! - **daily rhythm**: with two days or more, the same minute of the day on the other days
//!   (earlier ones and later ones, up to a week each way; with two weeks or more, the same
//!   minute of the week on up to four other weeks each way) is looked at with the same windows;
//!   when the change there is about the same (the residual change is below `min_change`),
//!   the shift is the usual rhythm, not an event;
//! - **link event**: when total load has a change point within `tolerance` minutes in the
//!   same direction and BitTorrent's share of the link did not move (or the link carried
//!   nothing afterwards), the whole link changed: an outage or a reroute, not BitTorrent.

use super::{Series, BT_PROTOS};
use crate::classify::Proto;

pub const DAY: usize = 1440;

/// Detection settings; `Default` gives the documented ones.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Significance of one Pettitt test (false-alarm probability of one tested segment of
    /// independent minutes).
    pub alpha: f64,
    /// Fewest minutes on either side of a change point.
    pub min_segment: usize,
    /// Smallest relative change of the median level that is reported (0.2 = 20 %).
    pub min_change: f64,
    /// Minutes either side of a change point whose median gives its before/after levels.
    pub window: usize,
    /// Minutes apart that count as the same time (BitTorrent vs total load).
    pub tolerance: usize,
    /// Most segments tested (bounds the work on long, wavy series).
    pub max_tests: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            alpha: 1e-3,
            min_segment: 5,
            min_change: 0.2,
            window: 60,
            tolerance: 2,
            max_tests: 512,
        }
    }
}

/// The best split of a segment: the first index after it, and the test's p-value.
pub fn pettitt(x: &[f64], min_segment: usize) -> Option<(usize, f64)> {
    let n = x.len();
    if n < 2 * min_segment.max(1) {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    // Ranks from 1, ties given their average rank.
    let mut rank = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            rank[o] = r;
        }
        i = j + 1;
    }
    let nf = n as f64;
    let mut sum = 0.0;
    let mut best = (0usize, -1.0f64);
    for (t, r) in rank.iter().enumerate().take(n - min_segment) {
        sum += r;
        let left = t + 1;
        if left < min_segment {
            continue;
        }
        let u = (2.0 * sum - left as f64 * (nf + 1.0)).abs();
        if u > best.1 {
            best = (left, u);
        }
    }
    if best.1 < 0.0 {
        return None;
    }
    let k = best.1;
    // Minutes of real traffic are autocorrelated, which widens the statistic's spread by
    // (1+ρ)/(1−ρ) for lag-1 correlation ρ. ρ is taken from the ranks less their side's mean
    // at the split, so that the step itself does not count as correlation.
    let split = best.0;
    let mean_l = rank[..split].iter().sum::<f64>() / split as f64;
    let mean_r = rank[split..].iter().sum::<f64>() / (n - split) as f64;
    let res: Vec<f64> = rank
        .iter()
        .enumerate()
        .map(|(i, r)| r - if i < split { mean_l } else { mean_r })
        .collect();
    let var: f64 = res.iter().map(|v| v * v).sum();
    let cov: f64 = res.windows(2).map(|w| w[0] * w[1]).sum();
    let rho = if var > 0.0 {
        (cov / var).clamp(0.0, 0.95)
    } else {
        0.0
    };
    let inflation = (1.0 + rho) / (1.0 - rho);
    let p = (2.0 * (-6.0 * k * k / ((nf * nf * nf + nf * nf) * inflation)).exp()).min(1.0);
    Some((best.0, p))
}

pub fn median(x: &[f64]) -> f64 {
    let mut v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Relative difference of two levels, in [0, 1]: 0 for equal, 1 when one is zero.
pub fn rel_diff(a: f64, b: f64) -> f64 {
    let m = a.abs().max(b.abs());
    if m == 0.0 {
        0.0
    } else {
        (a - b).abs() / m
    }
}

/// Change points of a series (indices of the first minute after each), in order, with the
/// p-value of the test that found each. Binary segmentation runs over the whole series and
/// over windows of `2·window` minutes every `window/2` minutes: on a long series a short
/// dip moves the ranks of the whole too little to be significant, but not those of a window.
pub fn change_points(x: &[f64], p: &Params) -> Vec<(usize, f64)> {
    let mut all = segment(x, 0, x.len(), p);
    let w = 2 * p.window;
    if x.len() > w {
        let step = (p.window / 2).max(1);
        let mut s = 0;
        loop {
            let e = (s + w).min(x.len());
            all.extend(segment(x, s, e, p));
            if e == x.len() {
                break;
            }
            s += step;
        }
    }
    // The same step seen from several windows: keep the most significant.
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut kept: Vec<(usize, f64)> = Vec::new();
    for c in all {
        if !kept.iter().any(|k| k.0.abs_diff(c.0) < p.min_segment) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|f| f.0);
    kept
}

fn segment(x: &[f64], lo: usize, hi: usize, p: &Params) -> Vec<(usize, f64)> {
    let mut found = Vec::new();
    let mut stack = vec![(lo, hi)];
    let mut tests = 0;
    while let Some((lo, hi)) = stack.pop() {
        if tests >= p.max_tests {
            break;
        }
        tests += 1;
        let Some((k, pv)) = pettitt(&x[lo..hi], p.min_segment) else {
            continue;
        };
        if pv >= p.alpha {
            continue;
        }
        let at = refine(x, lo, hi, lo + k, p);
        let before = median(&x[at.saturating_sub(p.window).max(lo)..at]);
        let after = median(&x[at..(at + p.window).min(hi)]);
        if rel_diff(before, after) >= p.min_change {
            found.push((at, pv));
        }
        // Search both sides even when this split is small: a dip has two edges whose
        // medians may cancel out at the first split.
        stack.push((at, hi));
        stack.push((lo, at));
    }
    found
}

/// Where exactly a step is: Pettitt's maximum is a test statistic, and its location drifts
/// toward the middle of an unbalanced segment. Near it, the split with the least absolute
/// deviation from the two sides' medians (a robust least-squares) is taken.
fn refine(x: &[f64], lo: usize, hi: usize, at: usize, p: &Params) -> usize {
    let l = at.saturating_sub(p.window).max(lo);
    let h = (at + p.window).min(hi);
    let cost = |a: usize, b: usize| {
        let m = median(&x[a..b]);
        x[a..b].iter().map(|v| (v - m).abs()).sum::<f64>()
    };
    let first = (l + p.min_segment).max(at.saturating_sub(p.window / 2));
    let last = (h.saturating_sub(p.min_segment)).min(at + p.window / 2);
    let mut best = (at, f64::INFINITY);
    for t in first..=last {
        if t <= l || t >= h {
            continue;
        }
        let c = cost(l, t) + cost(t, h);
        if c < best.1 {
            best = (t, c);
        }
    }
    best.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// BitTorrent changed: the event the report is about.
    Bittorrent,
    /// The whole link changed at the same time (outage, reroute).
    Link,
    /// The same change happens at this time on other days.
    Rhythm,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bittorrent => "BitTorrent shift",
            Kind::Link => "link event",
            Kind::Rhythm => "daily rhythm",
        }
    }
}

/// One proto's level either side of a shift (mean bit/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtoMove {
    pub proto: Proto,
    pub before_bps: f64,
    pub after_bps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// The first minute at the new level (UTC minutes since the epoch).
    pub minute: i64,
    pub kind: Kind,
    /// BitTorrent bit/s, median of the windows before and after.
    pub before_bps: f64,
    pub after_bps: f64,
    /// BitTorrent share of bytes (%), median over minutes with traffic; `None` when the link
    /// carried nothing in a window.
    pub share_before: Option<f64>,
    pub share_after: Option<f64>,
    /// Total load bit/s, medians.
    pub total_before_bps: f64,
    pub total_after_bps: f64,
    /// Protos whose change is at least a tenth of BitTorrent's, largest first.
    pub protos: Vec<ProtoMove>,
    /// The smaller p-value of the volume and share tests that found it.
    pub p_value: f64,
    /// The change usually seen at this time of day on other days (%), when there were any.
    pub usual_change_pct: Option<f64>,
}

impl Shift {
    /// BitTorrent's change, in % of the level before.
    pub fn change_pct(&self) -> f64 {
        pct_change(self.before_bps, self.after_bps)
    }
}

pub fn pct_change(before: f64, after: f64) -> f64 {
    if before == 0.0 {
        if after == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        100.0 * (after - before) / before
    }
}

/// Bit/s per minute of BitTorrent, of total load, and BitTorrent's share (NaN when the link
/// carried nothing).
pub struct Signals {
    pub bt: Vec<f64>,
    pub total: Vec<f64>,
    pub share: Vec<f64>,
}

impl Signals {
    pub fn of(s: &Series) -> Signals {
        let bps = |b: u64| super::bits_per_s(b as f64);
        Signals {
            bt: s.minutes.iter().map(|m| bps(m.bt_bytes())).collect(),
            total: s.minutes.iter().map(|m| bps(m.bytes)).collect(),
            share: s
                .minutes
                .iter()
                .map(|m| {
                    if m.bytes == 0 {
                        f64::NAN
                    } else {
                        100.0 * m.bt_bytes() as f64 / m.bytes as f64
                    }
                })
                .collect(),
        }
    }
}

/// Level shifts of BitTorrent in a series, each judged as described in the module notes.
pub fn detect(series: &Series, p: &Params) -> Vec<Shift> {
    let sig = Signals::of(series);
    let n = sig.bt.len();
    // Minutes without traffic have no share; the share test runs on the others.
    let valid: Vec<usize> = (0..n).filter(|&i| sig.share[i].is_finite()).collect();
    let share_x: Vec<f64> = valid.iter().map(|&i| sig.share[i]).collect();
    let mut cands: Vec<(usize, f64)> = change_points(&sig.bt, p);
    for (k, pv) in change_points(&share_x, p) {
        let at = valid[k];
        match cands.iter_mut().find(|c| c.0.abs_diff(at) <= p.tolerance) {
            Some(c) => c.1 = c.1.min(pv),
            None => cands.push((at, pv)),
        }
    }
    cands.sort_by_key(|c| c.0);
    let total_cps = change_points(&sig.total, p);

    let mut out = Vec::new();
    for (ci, &(at, pv)) in cands.iter().enumerate() {
        let lo = if ci == 0 { 0 } else { cands[ci - 1].0 };
        let hi = cands.get(ci + 1).map(|c| c.0).unwrap_or(n);
        let b0 = at.saturating_sub(p.window).max(lo);
        let a1 = (at + p.window).min(hi);
        let before = median(&sig.bt[b0..at]);
        let after = median(&sig.bt[at..a1]);
        // A change of share alone means the rest of the traffic moved, not BitTorrent.
        if rel_diff(before, after) < p.min_change {
            continue;
        }
        let share_before = finite(median(&sig.share[b0..at]));
        let share_after = finite(median(&sig.share[at..a1]));
        let total_before = median(&sig.total[b0..at]);
        let total_after = median(&sig.total[at..a1]);

        let usual = usual_change(&sig.bt, at, (at - b0).min(a1 - at));
        let observed = ln_ratio(before, after, &sig.bt);
        let kind = if usual.is_some_and(|u| {
            (observed - u).exp() > 1.0 - p.min_change
                && (observed - u).exp() < 1.0 / (1.0 - p.min_change)
        }) {
            Kind::Rhythm
        } else if total_cps.iter().any(|&(t, _)| {
            t.abs_diff(at) <= p.tolerance
                && (total_after - total_before).signum() == (after - before).signum()
        }) && match (share_before, share_after) {
            (Some(a), Some(b)) => rel_diff(a, b) < p.min_change,
            _ => true,
        } {
            Kind::Link
        } else {
            Kind::Bittorrent
        };

        let mut protos: Vec<ProtoMove> = BT_PROTOS
            .iter()
            .map(|&proto| {
                let v: Vec<f64> = series.minutes[b0..a1]
                    .iter()
                    .map(|m| super::bits_per_s(m.bt_proto[proto as usize] as f64))
                    .collect();
                ProtoMove {
                    proto,
                    before_bps: mean(&v[..at - b0]),
                    after_bps: mean(&v[at - b0..]),
                }
            })
            .collect();
        let moved: f64 = protos
            .iter()
            .map(|m| (m.after_bps - m.before_bps).abs())
            .sum();
        protos.retain(|m| moved > 0.0 && (m.after_bps - m.before_bps).abs() >= 0.1 * moved);
        protos.sort_by(|a, b| {
            (b.after_bps - b.before_bps)
                .abs()
                .total_cmp(&(a.after_bps - a.before_bps).abs())
        });
        out.push(Shift {
            minute: series.start + at as i64,
            kind,
            before_bps: before,
            after_bps: after,
            share_before,
            share_after,
            total_before_bps: total_before,
            total_after_bps: total_after,
            protos,
            p_value: pv,
            usual_change_pct: usual.map(|u| 100.0 * (u.exp() - 1.0)),
        });
    }
    out
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// ln(after/before), with a floor of 1 % of the series' median (at least 1 bit/s) so that a
/// level of zero gives a large but finite change.
fn ln_ratio(before: f64, after: f64, x: &[f64]) -> f64 {
    let eps = (0.01 * median(x)).max(1.0);
    ((after.max(0.0) + eps) / (before.max(0.0) + eps)).ln()
}

/// The median log change at this minute of the day on the other days (up to 7 each way), or
/// of the week on other weeks (up to 4 each way) with two weeks of data, with `w` minutes
/// either side; `None` with fewer than two days of data.
fn usual_change(x: &[f64], at: usize, w: usize) -> Option<f64> {
    if x.len() < 2 * DAY || w == 0 {
        return None;
    }
    // With two weeks or more, the same weekday of other weeks (which also has the daily
    // rhythm, and the weekend's); else the other days.
    let (period, count) = if x.len() >= 14 * DAY {
        (7 * DAY, 4)
    } else {
        (DAY, 7)
    };
    let mut changes = Vec::new();
    for k in 1..=count {
        for d in [at.checked_sub(k * period), Some(at + k * period)]
            .into_iter()
            .flatten()
        {
            if d >= w && d + w <= x.len() {
                changes.push(ln_ratio(median(&x[d - w..d]), median(&x[d..d + w]), x));
            }
        }
    }
    (!changes.is_empty()).then(|| median(&changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a seeded generator for reproducible noise.
    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Bursty multiplicative noise: mostly ±20 %, sometimes a 3× burst.
        fn noise(&mut self) -> f64 {
            let base = 0.8 + 0.4 * self.unit();
            if self.unit() < 0.03 {
                base * 3.0
            } else {
                base
            }
        }
    }

    /// Heavier and autocorrelated noise, closer to real links: log level an AR(1) process
    /// (φ = 0.7, σ = 0.3 per minute) with 5× bursts in 2 % of minutes.
    #[test]
    fn false_alarms_on_autocorrelated_noise() {
        let mut rng = Rng(7);
        let p = Params::default();
        let gauss = |r: &mut Rng| {
            let (u, v) = (r.unit().max(1e-12), r.unit());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let (days, mut alarms) = (50, 0);
        for _ in 0..days {
            let mut l = 0.0;
            let x: Vec<f64> = (0..DAY)
                .map(|_| {
                    l = 0.7 * l + 0.3 * gauss(&mut rng);
                    let burst = if rng.unit() < 0.02 { 5.0 } else { 1.0 };
                    1e6 * l.exp() * burst
                })
                .collect();
            alarms += change_points(&x, &p).len();
        }
        eprintln!("false alarms: {alarms} in {days} days of AR(1) noise");
        assert!(alarms <= 20, "{alarms} in {days} days");
    }

    #[test]
    fn pettitt_finds_a_clean_step() {
        let x: Vec<f64> = (0..100).map(|i| if i < 37 { 10.0 } else { 2.0 }).collect();
        let (k, p) = pettitt(&x, 5).expect("split");
        assert_eq!(k, 37);
        assert!(p < 1e-6, "{p}");
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn noisy_steps_found_within_two_minutes() {
        let mut rng = Rng(0x5eed);
        let p = Params::default();
        for (at, from, to) in [(90usize, 40e6, 10e6), (50, 5e6, 9e6), (150, 2e6, 0.0)] {
            let x: Vec<f64> = (0..200)
                .map(|i| if i < at { from } else { to } * rng.noise())
                .collect();
            let cps = change_points(&x, &p);
            assert_eq!(cps.len(), 1, "{at}: {cps:?}");
            assert!(cps[0].0.abs_diff(at) <= 2, "{at}: {cps:?}");
        }
    }

    /// The false-alarm rate on series without a shift, stated in the README.
    #[test]
    fn false_alarms_on_bursty_noise_are_rare() {
        let mut rng = Rng(42);
        let p = Params::default();
        let (runs, mut alarms) = (1000, 0);
        for _ in 0..runs {
            let x: Vec<f64> = (0..240).map(|_| 1e6 * rng.noise()).collect();
            alarms += usize::from(!change_points(&x, &p).is_empty());
        }
        eprintln!("false alarms: {alarms} of {runs} four-hour series");
        assert!(alarms <= runs / 100, "{alarms} of {runs}");
        // Whole days: every window of two hours is tested too.
        let (days, mut alarms) = (100, 0);
        for _ in 0..days {
            let x: Vec<f64> = (0..DAY).map(|_| 1e6 * rng.noise()).collect();
            alarms += change_points(&x, &p).len();
        }
        eprintln!("false alarms: {alarms} in {days} days of noise");
        assert!(alarms <= days / 10, "{alarms} in {days} days");
    }
}
