//! The BitTorrent bytes of sampled input as a range that says what sampling cannot settle.
//!
//! A row's interval ([`super::Sampled`]) is the error of sampling alone: how far the estimate
//! of bytes *with that verdict* may be from the truth. It says nothing about verdicts that
//! the samples could not reach. Under sampling most flows are seen in scattered mid-stream
//! packets: a peer-wire or MSE flow whose handshake was not sampled, whose ends were not
//! learned and which no port rule names shows no evidence either way (`method=unresolved`),
//! and a flow named only by a port rule has none either. So the range is
//!
//! - low: BitTorrent found by payload or by a learned endpoint, minus 1.96 standard
//!   deviations of its sampling error;
//! - high: that, plus every byte with no evidence either way (port rule only, unresolved),
//!   plus 1.96 standard deviations of the sampling error of the sum.
//!
//! It covers the truth unless sampling noise exceeds its 95 % bound or a verdict reached on
//! evidence is wrong. On captures (weight 1) nothing is unresolved.

use crate::classify::{Class, Method, Proto};

/// Sums of one minute's (or a run's) rows, by what their verdicts rest on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BtRange {
    /// BitTorrent bytes as the series count them (every method, port rules included).
    pub bytes: u64,
    /// Bytes of sampled flows with no evidence either way (and no port rule), counted as
    /// other.
    pub unresolved: u64,
    evidenced: u64,
    evidenced_var: f64,
    open: u64,
    open_var: f64,
}

impl BtRange {
    /// Adds a counter of `bytes` whose estimate has variance `var`.
    pub fn add(&mut self, proto: Proto, method: Method, bytes: u64, var: f64) {
        let bt = proto.class() == Class::Bittorrent;
        if bt {
            self.bytes += bytes;
        }
        match method {
            Method::Unresolved => {
                self.unresolved += bytes;
                self.open += bytes;
                self.open_var += var;
            }
            Method::Port if bt => {
                self.open += bytes;
                self.open_var += var;
            }
            _ if bt => {
                self.evidenced += bytes;
                self.evidenced_var += var;
            }
            _ => {}
        }
    }

    /// Adds a series row (its half-width back to a variance).
    pub fn add_row(&mut self, r: &super::SeriesRow) {
        let var = (r.bytes_err as f64 / 1.96).powi(2);
        self.add(r.proto, r.method, r.counts.bytes, var);
    }

    /// The range over rows (e.g. a whole run's series).
    pub fn of_rows<'a>(rows: impl IntoIterator<Item = &'a super::SeriesRow>) -> BtRange {
        let mut r = BtRange::default();
        for row in rows {
            r.add_row(row);
        }
        r
    }

    /// Bytes with no evidence either way: BitTorrent by a port rule alone, and unresolved.
    pub fn open(&self) -> u64 {
        self.open
    }

    /// Lower end of the 95 % range.
    pub fn low(&self) -> u64 {
        let hw = 1.96 * self.evidenced_var.max(0.0).sqrt();
        (self.evidenced as f64 - hw).max(0.0).round() as u64
    }

    /// Upper end of the 95 % range.
    pub fn high(&self) -> u64 {
        let hw = 1.96 * (self.evidenced_var + self.open_var).max(0.0).sqrt();
        let top = self.evidenced.saturating_add(self.open);
        top.saturating_add(hw.round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_rests_on_evidence_and_opens_up_to_what_is_unresolved() {
        let mut r = BtRange::default();
        // 1,000 bytes by signature (variance 100² → ±196), 200 by port rule, 500
        // unresolved, 300 other with evidence against BitTorrent.
        r.add(Proto::Peerwire, Method::Signature, 1000, 10_000.0);
        r.add(Proto::Dht, Method::Port, 200, 0.0);
        r.add(Proto::Other, Method::Unresolved, 500, 0.0);
        r.add(Proto::Other, Method::None, 300, 1e6);
        assert_eq!((r.bytes, r.unresolved), (1200, 500));
        assert_eq!(r.low(), 804);
        assert_eq!(r.high(), 1000 + 200 + 500 + 196);
        // Exact counts (captures): the range is the evidence to everything open.
        let mut c = BtRange::default();
        c.add(Proto::Utp, Method::Correlation, 700, 0.0);
        assert_eq!((c.low(), c.high()), (700, 700));
        // Never below zero.
        let mut z = BtRange::default();
        z.add(Proto::Dht, Method::Signature, 10, 1e6);
        assert_eq!(z.low(), 0);
    }
}
