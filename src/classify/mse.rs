//! The shape of an MSE/PE ("BEP 8") key exchange on a TCP stream.
//!
//! Nothing in MSE is fixed on the wire, but its first four turns are: each side first sends a
//! 768-bit Diffie-Hellman public key (96 bytes) plus 0–512 bytes of random padding, so the
//! first turn in each direction is 96–608 bytes; then the initiator sends at least 56 bytes
//! (hashes, the encrypted verification constant, crypto fields, padding and usually the
//! encrypted handshake). All of it is uniformly random. A turn is what one side sends before
//! the other side sends anything.

/// Shortest and longest first turn: a 96-byte key plus up to 512 bytes of padding.
pub const KEY_MIN: usize = 96;
pub const KEY_MAX: usize = 96 + 512;
/// Shortest third turn: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S), VC, crypto
/// provide, len(PadC), len(IA).
pub const THIRD_MIN: usize = 20 + 20 + 8 + 4 + 2 + 2;

/// What the shape says so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Match,
    NotYet,
    NotMine,
}

/// Follows the first turns of a TCP flow.
#[derive(Debug, Clone, Copy, Default)]
pub struct MseShape {
    /// Direction of the current turn, once there is one.
    turn_dir: Option<u8>,
    /// Index of the current turn (0 = the initiator's key).
    turn: u8,
    /// Bytes in the current turn.
    bytes: u32,
    failed: bool,
}

/// Whether bytes look uniformly random: enough distinct values for their number (at least
/// three quarters of what uniform bytes give) and bits set about half the time.
pub fn looks_random(b: &[u8]) -> bool {
    let n = b.len();
    if n < 32 {
        return false;
    }
    let mut seen = [false; 256];
    let mut distinct = 0usize;
    let mut ones = 0u64;
    for &x in b {
        if !seen[usize::from(x)] {
            seen[usize::from(x)] = true;
            distinct += 1;
        }
        ones += u64::from(x.count_ones());
    }
    let expected = 256.0 * (1.0 - (-(n as f64) / 256.0).exp());
    let bits = ones as f64 / n as f64;
    distinct as f64 >= 0.75 * expected && (3.5..=4.5).contains(&bits)
}

/// Whether a segment begins like a message of a length-prefixed protocol (RLPx, TLS records,
/// XMPP-style chat protocols, …): a 16- or 32-bit length, either byte order, at one of the
/// first four offsets, equal to what follows it give or take a header of up to 8 bytes; or
/// two zero bytes among the first four. Uniform bytes do either with a chance below 0.2%.
pub fn looks_framed(b: &[u8]) -> bool {
    let n = b.len() as u64;
    if b.len() >= 4 && b[..4].iter().filter(|&&x| x == 0).count() >= 2 {
        return true;
    }
    let near = |v: u64| v <= n && v + 8 >= n;
    for o in 0..4 {
        if let Some(w) = b.get(o..o + 2) {
            if near(u64::from(u16::from_be_bytes([w[0], w[1]])))
                || near(u64::from(u16::from_le_bytes([w[0], w[1]])))
            {
                return true;
            }
        }
        if let Some(w) = b.get(o..o + 4) {
            let w = [w[0], w[1], w[2], w[3]];
            if near(u64::from(u32::from_be_bytes(w))) || near(u64::from(u32::from_le_bytes(w))) {
                return true;
            }
        }
    }
    false
}

/// A key-exchange turn's first segment: uniformly random, with no length framing.
fn key_like(b: &[u8]) -> bool {
    (KEY_MIN..=KEY_MAX).contains(&b.len()) && looks_random(b) && !looks_framed(b)
}

impl MseShape {
    /// Feeds one payload segment; `dir` 0 is the side that opened the flow. `first_in_turn`
    /// segments are checked for randomness.
    pub fn on_payload(&mut self, dir: usize, payload: &[u8]) -> Shape {
        if self.failed || payload.is_empty() {
            return if self.failed {
                Shape::NotMine
            } else {
                Shape::NotYet
            };
        }
        let dir = (dir & 1) as u8;
        match self.turn_dir {
            None => {
                // The initiator speaks first in MSE.
                if dir != 0 {
                    return self.fail();
                }
                self.turn_dir = Some(dir);
                if !key_like(payload) {
                    return self.fail();
                }
            }
            Some(d) if d != dir => {
                // The turn ends: check its length.
                let len = self.bytes as usize;
                let ok = match self.turn {
                    0 | 1 => (KEY_MIN..=KEY_MAX).contains(&len),
                    _ => true,
                };
                if !ok {
                    return self.fail();
                }
                self.turn = self.turn.saturating_add(1);
                self.turn_dir = Some(dir);
                self.bytes = 0;
                if self.turn == 1 && !key_like(payload) {
                    return self.fail();
                }
            }
            // Clients write a key and its padding at once (at most 608 bytes, one segment):
            // a second segment in the same key turn is not MSE.
            Some(_) if self.turn <= 1 => return self.fail(),
            Some(_) => {}
        }
        self.bytes = self.bytes.saturating_add(payload.len() as u32);
        if (self.turn <= 1 && self.bytes as usize > KEY_MAX) || self.turn > 3 {
            return self.fail();
        }
        if self.turn == 2 && self.bytes as usize >= THIRD_MIN {
            return Shape::Match;
        }
        Shape::NotYet
    }

    fn fail(&mut self) -> Shape {
        self.failed = true;
        Shape::NotMine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as u8
            })
            .collect()
    }

    #[test]
    fn key_exchange_shapes() {
        // Payload sizes of an exchange as in nDPI's bittorrent_tcp_miss case: 198 →, 424 ←,
        // 471 →; and a minimal one (no padding) split over segments.
        let cases: &[(&[(usize, usize)], Shape)] = &[
            (&[(0, 198), (1, 424), (0, 471)], Shape::Match),
            (&[(0, 96), (1, 96), (0, 40), (0, 40)], Shape::Match),
            // A key turn in two segments.
            (
                &[(0, 96), (1, 60), (1, 36), (0, 40), (0, 40)],
                Shape::NotMine,
            ),
            (&[(0, 608), (1, 608), (0, 56)], Shape::Match),
            (&[(0, 198), (1, 424)], Shape::NotYet),
            // First turn too short or too long.
            (&[(0, 80), (1, 424), (0, 471)], Shape::NotMine),
            (&[(0, 1448), (0, 1448)], Shape::NotMine),
            (&[(0, 500), (0, 500)], Shape::NotMine),
            // The responder speaking first.
            (&[(1, 198), (0, 424)], Shape::NotMine),
            // Responder's key too long.
            (&[(0, 198), (1, 1448), (0, 471)], Shape::NotMine),
        ];
        for (i, (turns, want)) in cases.iter().enumerate() {
            let mut s = MseShape::default();
            let mut last = Shape::NotYet;
            for (k, &(dir, n)) in turns.iter().enumerate() {
                last = s.on_payload(dir, &random(n, (i * 31 + k) as u32 + 7));
                if last != Shape::NotYet {
                    break;
                }
            }
            assert_eq!(last, *want, "case {i}: {turns:?}");
        }
    }

    #[test]
    fn framed_openings_are_rejected() {
        // Openings of real non-BitTorrent handshakes (first bytes, then random filler to the
        // segment length): Ethereum RLPx EIP-8 auth (u16 length), Spotify (u32 length after a
        // version), a chat protocol with a little-endian u32 length, a TLS application data
        // record, and a header with zero bytes.
        let cases: &[(&[u8], usize)] = &[
            (&[0x01, 0x9d, 0x04, 0xf8], 415),
            (&[0x00, 0x04, 0x00, 0x00, 0x01, 0x49], 329),
            (&[0xca, 0x00, 0x00, 0x00, 0xa0, 0x59], 206),
            (&[0x17, 0x03, 0x03, 0x00, 0x7a], 127),
            (&[0x00, 0x01, 0x00, 0x00, 0x05], 589),
        ];
        for (i, (head, n)) in cases.iter().enumerate() {
            let mut b = random(*n, i as u32 + 11);
            b[..head.len()].copy_from_slice(head);
            assert!(looks_framed(&b), "case {i}");
        }
        let framed = (0..200)
            .filter(|&i| looks_framed(&random(300, i + 1000)))
            .count();
        assert!(framed <= 2, "{framed} of 200 random segments look framed");
    }

    #[test]
    fn structured_payloads_are_not_random() {
        assert!(looks_random(&random(96, 3)));
        assert!(looks_random(&random(608, 5)));
        assert!(!looks_random(&[0u8; 200]));
        assert!(!looks_random(
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n0123456789abcdefghijklmnopqrstuvwxyz"
        ));
        let mut s = MseShape::default();
        let mut text = b"POST /rpc HTTP/1.1\r\n".repeat(8);
        text.truncate(150);
        assert_eq!(s.on_payload(0, &text), Shape::NotMine);
    }
}
