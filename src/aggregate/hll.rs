//! HyperLogLog sketch of distinct hosts (Flajolet et al. 2007, with the small-range
//! correction): 2^12 one-byte registers, a fixed-seed 64-bit hash, standard error
//! 1.04/√4096 ≈ 1.6 %. Only register maxima are kept, so no address can be read back from a
//! sketch; inserting allocates nothing, and sketches of the same minute from several workers
//! merge by register maximum.

/// Index bits: m = 2^P registers.
pub const P: u32 = 12;
pub const M: usize = 1 << P;

/// Relative standard error of the estimate, 1.04/√m.
pub fn standard_error() -> f64 {
    1.04 / (M as f64).sqrt()
}

#[derive(Clone, PartialEq, Eq)]
pub struct Hll {
    regs: [u8; M],
}

impl Default for Hll {
    fn default() -> Self {
        Hll { regs: [0; M] }
    }
}

impl std::fmt::Debug for Hll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hll(~{:.0})", self.estimate())
    }
}

/// A 64-bit finaliser (splitmix64): every input bit affects every output bit, which the
/// register index (top bits) and rank (the rest) both need.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fixed seed, so a capture analysed twice gives the same estimates.
const SEED: u64 = 0x6269_7474_6170_6869;

/// The hash of an address (IPv4 is mapped into IPv6, as everywhere in bittap).
#[inline]
pub fn hash_addr(a: u128) -> u64 {
    mix(mix((a >> 64) as u64 ^ SEED) ^ a as u64)
}

impl Hll {
    #[inline]
    pub fn insert_hash(&mut self, h: u64) {
        let idx = (h >> (64 - P)) as usize;
        // Rank of the remaining 52 bits: position of the first 1, at most 53.
        let rest = (h << P) | (1 << (P - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let r = &mut self.regs[idx];
        if rank > *r {
            *r = rank;
        }
    }

    #[inline]
    pub fn insert_addr(&mut self, a: u128) {
        self.insert_hash(hash_addr(a));
    }

    /// Union with another sketch (register maximum).
    pub fn merge(&mut self, other: &Hll) {
        for (a, b) in self.regs.iter_mut().zip(other.regs.iter()) {
            *a = (*a).max(*b);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.regs.iter().all(|&r| r == 0)
    }

    /// The estimated number of distinct items inserted.
    pub fn estimate(&self) -> f64 {
        let m = M as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in &self.regs {
            // 2^-r exactly, from its exponent bits (r is at most 53): `exp2` through libm
            // cost most of a minute's work on sparse captures.
            sum += f64::from_bits((1023 - u64::from(r)) << 52);
            zeros += usize::from(r == 0);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 {
            // Small range: linear counting on the empty registers.
            m * (m / zeros as f64).ln()
        } else {
            // A 64-bit hash needs no large-range correction at these sizes.
            raw
        }
    }

    /// The estimate rounded to a whole count.
    pub fn count(&self) -> u64 {
        self.estimate().round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(range: std::ops::Range<u128>) -> Hll {
        let mut h = Hll::default();
        for a in range {
            // Addresses as bittap keys them: IPv4-mapped.
            h.insert_addr(0xffff_0000_0000 | (0x0a00_0000 + a));
        }
        h
    }

    #[test]
    fn register_weights_are_exact_powers_of_two() {
        for r in 0..=53u8 {
            assert_eq!(
                f64::from_bits((1023 - u64::from(r)) << 52),
                f64::from(-(i32::from(r))).exp2()
            );
        }
    }

    #[test]
    fn estimates_within_three_standard_errors() {
        let se = standard_error();
        for n in [10u128, 1_000, 100_000] {
            let est = sketch(0..n).estimate();
            let err = (est - n as f64).abs() / n as f64;
            eprintln!("n={n}: estimate {est:.1}, error {:.2} %", 100.0 * err);
            assert!(err <= 3.0 * se, "n={n}: estimate {est:.1}, error {err:.4}");
        }
        // Small sets are counted exactly (linear counting without collisions).
        assert_eq!(sketch(0..10).count(), 10);
        assert_eq!(Hll::default().count(), 0);
        assert!(Hll::default().is_empty());
    }

    #[test]
    fn duplicates_do_not_count() {
        let mut h = sketch(0..500);
        let before = h.clone();
        for a in 0..500u128 {
            h.insert_addr(0xffff_0000_0000 | (0x0a00_0000 + a));
        }
        assert_eq!(h, before);
    }

    #[test]
    fn merge_is_union() {
        let mut a = sketch(0..60_000);
        let b = sketch(40_000..100_000);
        a.merge(&b);
        assert_eq!(a, sketch(0..100_000));
        let err = (a.estimate() - 100_000.0).abs() / 100_000.0;
        assert!(err <= 3.0 * standard_error(), "{err}");
    }

    #[test]
    fn ipv6_and_ipv4_hash_apart() {
        // The same low bits in IPv4-mapped and native IPv6 space are different hosts.
        assert_ne!(
            hash_addr(0xffff_0a00_0001),
            hash_addr(0x2001_0db8_u128 << 96 | 0x0a00_0001)
        );
    }
}
