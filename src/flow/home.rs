//! The home network (`--home-net`) and the direction it gives a packet.

use crate::decode::Addr;

/// Which way a packet crossed the link, seen from the home network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Direction {
    /// From home to elsewhere.
    Up,
    /// From elsewhere to home.
    Down,
    /// Both ends at home.
    Local,
    /// Neither end at home.
    Transit,
    /// No home network configured, or no addresses (non-IP frames).
    Unknown,
}

impl Direction {
    pub const ALL: [Direction; 5] = [
        Direction::Up,
        Direction::Down,
        Direction::Local,
        Direction::Transit,
        Direction::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Local => "local",
            Direction::Transit => "transit",
            Direction::Unknown => "unknown",
        }
    }
}

/// The home network (`--home-net`), as a list of CIDR prefixes.
#[derive(Debug, Clone, Default)]
pub struct HomeNet {
    nets: Vec<(Addr, Addr)>,
}

impl HomeNet {
    /// Parses `CIDR,CIDR,…` (IPv4 or IPv6; a bare address is a host).
    pub fn parse(s: &str) -> Result<HomeNet, String> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (addr, len) = match part.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (part, None),
            };
            let ip: std::net::IpAddr = addr
                .parse()
                .map_err(|_| format!("`{part}`: `{addr}` is not an IP address"))?;
            let (value, max, offset) = match ip {
                std::net::IpAddr::V4(v4) => (crate::decode::v4_addr(v4.octets()), 32u32, 96u32),
                std::net::IpAddr::V6(v6) => (u128::from(v6), 128, 0),
            };
            let len = match len {
                Some(l) => l
                    .parse::<u32>()
                    .ok()
                    .filter(|&l| l <= max)
                    .ok_or_else(|| format!("`{part}`: prefix length must be 0-{max}"))?,
                None => max,
            };
            let bits = len + offset;
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            nets.push((value & mask, mask));
        }
        Ok(HomeNet { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, a: Addr) -> bool {
        self.nets.iter().any(|&(net, mask)| a & mask == net)
    }

    pub fn direction(&self, src: Addr, dst: Addr) -> Direction {
        if self.nets.is_empty() {
            return Direction::Unknown;
        }
        match (self.contains(src), self.contains(dst)) {
            (true, false) => Direction::Up,
            (false, true) => Direction::Down,
            (true, true) => Direction::Local,
            (false, false) => Direction::Transit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_net_directions() {
        let h = HomeNet::parse("10.0.0.0/8, 2001:db8::/32").expect("parse");
        let a = |s: &str| match s.parse::<std::net::IpAddr>().expect("ip") {
            std::net::IpAddr::V4(v) => crate::decode::v4_addr(v.octets()),
            std::net::IpAddr::V6(v) => u128::from(v),
        };
        assert_eq!(h.direction(a("10.1.2.3"), a("8.8.8.8")), Direction::Up);
        assert_eq!(h.direction(a("8.8.8.8"), a("10.1.2.3")), Direction::Down);
        assert_eq!(h.direction(a("10.1.2.3"), a("10.3.2.1")), Direction::Local);
        assert_eq!(
            h.direction(a("2001:db9::1"), a("8.8.8.8")),
            Direction::Transit
        );
        assert_eq!(
            h.direction(a("2001:db8::1"), a("2001:db9::1")),
            Direction::Up
        );
        // 0/0 in IPv4 covers all of IPv4 but no IPv6.
        let all4 = HomeNet::parse("0.0.0.0/0").expect("parse");
        assert_eq!(all4.direction(a("1.2.3.4"), a("::1")), Direction::Up);
        assert!(HomeNet::parse("10.0.0.0/33").is_err());
        assert!(HomeNet::parse("ten/8").is_err());
        assert_eq!(
            HomeNet::default().direction(a("10.0.0.1"), a("1.1.1.1")),
            Direction::Unknown
        );
    }
}
