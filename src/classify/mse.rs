//! MSE/PE ("BEP 8") on a TCP stream: the key exchange's turn structure, followed in sequence
//! space, and the peer-wire rhythm that shows through RC4 afterwards.
//!
//! Nothing in MSE is fixed on the wire, but its first four turns are (BEP 8, the Vuze spec):
//!
//! 0. initiator: Ya (96 bytes) + PadA (0–512): 96–608 bytes, uniformly random;
//! 1. responder: Yb + PadB: 96–608 bytes, uniformly random;
//! 2. initiator: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S), then encrypted VC,
//!    crypto_provide, len(PadC), PadC, len(IA), IA: at least 56 bytes;
//! 3. responder: encrypted VC, crypto_select, len(PadD), PadD: at least 14 bytes.
//!
//! A turn is what one side sends before the other side sends anything. Bytes are counted once
//! by sequence number (retransmissions and a mirror port's duplicates do not add), and a side
//! that is not captured is still followed through the acknowledgement numbers of the other
//! side, so an exchange seen in one direction only has the same four turns.
//!
//! Many protocols open with random-looking requests and replies of a few hundred bytes
//! (obfuscated proxies, messengers, VPNs over TCP), so the turn sizes alone prove nothing.
//! What does: the plaintext handshake after the exchange (both ends selected plaintext), or
//! the peer-wire rhythm of the encrypted stream — RC4 keeps message lengths, and clients write
//! messages whole: 4-byte keep-alives, 5-byte interested/unchoke, 9-byte haves, 17-byte
//! requests sent in batches, a 68-byte handshake.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::peerwire::HANDSHAKE;
use super::{Answer, Evidence, Method, Packet, Probe, Proto, Rules};

/// Shortest and longest first turn: a 96-byte key plus up to 512 bytes of padding.
pub const KEY_MIN: u32 = 96;
pub const KEY_MAX: u32 = 96 + 512;
/// Shortest third turn: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S), VC, crypto
/// provide, len(PadC), len(IA).
pub const THIRD_MIN: u32 = 20 + 20 + 8 + 4 + 2 + 2;
/// Shortest fourth turn: VC, crypto_select, len(PadD).
pub const FOURTH_MIN: u32 = 8 + 4 + 2;
/// Rhythm segments needed to confirm an exchange.
pub const RHYTHM_CONFIRM: u8 = 3;
/// Rhythm writes that confirm a stream joined mid-way, and small writes looked at for them.
const MIDSTREAM_CONFIRM: u32 = 4;
const MIDSTREAM_MAX: u32 = 32;
/// Segments after the exchange looked at before giving up on confirming it.
const MAX_AFTER: u8 = 48;
/// Segments of at least this many new bytes are bulk data (pieces cut by the MSS): they say
/// nothing about the rhythm either way.
const BULK: u32 = 1024;

/// Whether a segment holds the plaintext handshake's opening (a searcher built once).
fn has_handshake(segment: &[u8]) -> bool {
    static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(HANDSHAKE));
    FINDER.find(segment).is_some()
}

/// The four turns fit and the plaintext handshake followed them: proof.
pub const BY_HANDSHAKE: Answer = Answer::bittorrent(
    Proto::PeerwireMse,
    Method::Signature,
    Evidence::MseHandshake,
);
/// The four turns fit and the encrypted stream has the peer-wire rhythm.
pub const BY_RHYTHM: Answer =
    Answer::bittorrent(Proto::PeerwireMse, Method::Heuristic, Evidence::MseRhythm);
/// A stream joined after its opening whose writes have the peer-wire rhythm: weaker than an
/// exchange seen whole.
pub const BY_MIDSTREAM: Answer = Answer::bittorrent(
    Proto::PeerwireMse,
    Method::Heuristic,
    Evidence::MseMidstream,
);

/// One TCP segment as the tracker needs it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// 0 for packets from the flow's first sender, 1 for the reverse.
    pub dir: usize,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Payload length from the IP and TCP headers (whole even when the capture cut it).
    pub len: u32,
    /// The payload bytes captured (a prefix of `len` bytes).
    pub payload: &'a [u8],
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stage {
    #[default]
    Turns,
    /// The opening was not seen (no SYN): only the rhythm can speak.
    Midstream,
    /// The four turns fit: looking for the handshake or the rhythm.
    Exchanged,
    Done,
}

/// Follows the opening of one TCP flow in sequence space.
#[derive(Debug, Clone, Copy, Default)]
pub struct MseTracker {
    /// Sequence number of each side's first payload byte, once known.
    base: [Option<u32>; 2],
    /// The side that sent the SYN (the initiator), when seen.
    initiator: Option<u8>,
    /// Bytes each side is known to have sent (its own segments, or the other side's acks).
    sent: [u32; 2],
    /// Index of the current turn and its side.
    turn: u8,
    turn_side: Option<u8>,
    /// `sent` of the current turn's side when the turn began.
    turn_start: u32,
    /// Captured segments with new bytes in the current turn.
    turn_segments: u8,
    stage: Stage,
    answer: Option<Answer>,
    /// Length of the initiator's second turn.
    turn_bytes_2: u32,
    /// A 68-byte segment (the encrypted handshake) first after the exchange, or an initial
    /// payload of exactly the handshake.
    structural: bool,
    rhythm: u8,
    after: u8,
}

/// Whether bytes look uniformly random: enough distinct values for their number (at least
/// three quarters of what uniform bytes give) and bits set about half the time.
pub fn looks_random(b: &[u8]) -> bool {
    let n = b.len();
    if n < 32 {
        return false;
    }
    let mut seen = [0u64; 4];
    let mut ones = 0u64;
    for &x in b {
        seen[usize::from(x >> 6)] |= 1 << (x & 63);
        ones += u64::from(x.count_ones());
    }
    let distinct: u32 = seen.iter().map(|w| w.count_ones()).sum();
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

/// A key turn's first segment: uniformly random, with no length framing.
/// Randomness is judged on the first 128 bytes (as telling as all of them); framing on the
/// whole segment, since it compares a length prefix with the segment's length.
fn key_like(b: &[u8]) -> bool {
    looks_random(&b[..b.len().min(128)]) && !looks_framed(b)
}

/// Lengths of single peer-wire messages (and their common pairs) that clients write on their
/// own: keep-alive, the one-byte-id messages (choke … not interested, have all/none), the
/// 13-byte piece header libtorrent writes before the block, have, request, two requests, a
/// 16 KiB block, a whole piece message.
pub fn rhythmic(n: u32) -> bool {
    matches!(n, 4 | 5 | 9 | 13 | 17 | 34 | 16_384 | 16_397)
}

impl Probe for MseTracker {
    /// Follows TCP packets with or without payload (acknowledgements count); `NotThis` for
    /// other transports.
    fn probe(&mut self, _: &Rules, pkt: &Packet<'_>) -> Answer {
        let Some(t) = pkt.tcp else {
            return Answer::NotThis;
        };
        self.on_segment(Segment {
            dir: pkt.dir,
            flags: t.flags,
            seq: t.seq,
            ack: t.ack,
            len: t.len.max(pkt.payload.len() as u32),
            payload: pkt.payload,
        })
    }
}

/// Largest sequence distance taken as progress (anything else is a wrapped or stale number).
const MAX_REL: u32 = 1 << 30;

impl MseTracker {
    /// Feeds one TCP packet of the flow. A verdict and `NotThis` are final.
    /// After `NotThis`, or once given up, it still counts what each side sent (see
    /// [`MseTracker::silent_responder`]).
    pub fn on_segment(&mut self, s: Segment<'_>) -> Answer {
        if matches!(self.answer, Some(Answer::Verdict(..))) {
            return self.answer.unwrap_or(Answer::Undecided);
        }
        let d = (s.dir & 1) as u8;
        let o = d ^ 1;
        if s.flags & SYN != 0 {
            self.base[usize::from(d)].get_or_insert(s.seq.wrapping_add(1));
            if s.flags & ACK == 0 {
                self.initiator.get_or_insert(d);
            } else {
                self.initiator.get_or_insert(o);
                self.base[usize::from(o)].get_or_insert(s.ack);
            }
            return Answer::Undecided;
        }
        if s.flags & ACK != 0 {
            match self.base[usize::from(o)] {
                // The first acknowledgement of a side that has sent nothing seen: its start.
                None if self.sent[usize::from(o)] == 0 => self.base[usize::from(o)] = Some(s.ack),
                None => {}
                Some(b) => {
                    let rel = s.ack.wrapping_sub(b);
                    // One byte more than known is the other side's FIN (it takes a sequence
                    // number), or a window probe: no turn.
                    if rel < MAX_REL && rel != self.sent[usize::from(o)].wrapping_add(1) {
                        self.progress(o, rel, None);
                    }
                }
            }
        }
        if s.len > 0 {
            let b = *self.base[usize::from(d)].get_or_insert(s.seq);
            let start = s.seq.wrapping_sub(b);
            let end = start.wrapping_add(s.len);
            if start < MAX_REL && end < MAX_REL && end > start {
                self.progress(d, end, Some((start, &s)));
            }
        }
        self.answer.unwrap_or(Answer::Undecided)
    }

    /// Whether the tracker still wants packets (no final answer, not given up).
    pub fn active(&self) -> bool {
        self.answer.is_none() && self.stage != Stage::Done
    }

    /// Whether feeding more packets can change anything: while active, and afterwards while
    /// the responder is still silent and [`MseTracker::silent_responder`] is below `limit`.
    pub fn wants_packets(&self, limit: u32) -> bool {
        if self.active() {
            return true;
        }
        !matches!(self.answer, Some(Answer::Verdict(..)))
            && self.initiator.is_some_and(|i| {
                self.sent[usize::from(i ^ 1)] == 0 && self.sent[usize::from(i)] <= limit
            })
    }

    /// Bytes the initiator is known to have sent while the responder has sent nothing, when
    /// the connection's start was seen. BitTorrent's initiator can send no more than its
    /// handshake, extension handshake and bitfield (or an MSE key) before the responder
    /// answers.
    pub fn silent_responder(&self) -> u32 {
        match self.initiator {
            Some(i) if self.sent[usize::from(i ^ 1)] == 0 => self.sent[usize::from(i)],
            _ => 0,
        }
    }

    /// Whether the opening has been seen to be something other than MSE.
    pub fn failed(&self) -> bool {
        self.answer == Some(Answer::NotThis)
    }

    fn fail(&mut self) {
        self.answer = Some(Answer::NotThis);
    }

    /// Side `side` is now known to have sent `total` bytes; `seg` is the captured segment
    /// (with its start) when the knowledge comes from its own bytes.
    fn progress(&mut self, side: u8, total: u32, seg: Option<(u32, &Segment<'_>)>) {
        let si = usize::from(side);
        let before = self.sent[si];
        if total <= before {
            return;
        }
        if self.answer.is_some() || self.stage == Stage::Done {
            self.sent[si] = total;
            return;
        }
        // Whether the segment continues the stream exactly (no overlap, nothing missing).
        let exact = seg.is_some_and(|(start, _)| start == before);
        let new = total - before;
        match self.stage {
            Stage::Turns => {
                if self.turn_side != Some(side) {
                    match self.turn_side {
                        None => {
                            // MSE's initiator speaks first; without the SYN the opening is
                            // unknown and the exchange cannot be followed.
                            if self.initiator.is_none() {
                                self.stage = Stage::Midstream;
                                self.sent[si] = total;
                                if let Some((_, s)) = seg.filter(|_| exact) {
                                    self.midstream(new, Some(s.payload));
                                }
                                return;
                            }
                            if self.initiator != Some(side) || before != 0 {
                                return self.fail();
                            }
                        }
                        Some(_) => {
                            if !self.close_turn() {
                                return self.fail();
                            }
                            self.turn += 1;
                        }
                    }
                    self.turn_side = Some(side);
                    self.turn_start = before;
                    self.turn_segments = 0;
                }
                self.sent[si] = total;
                let bytes = total - self.turn_start;
                if let Some((_, s)) = seg {
                    self.turn_segments = self.turn_segments.saturating_add(1);
                    let first = self.turn_segments == 1;
                    // Clients write a key and its padding at once (at most 608 bytes).
                    if self.turn <= 1 && !first {
                        return self.fail();
                    }
                    // A key turn is one write of 96–608 bytes.
                    if self.turn <= 1 && (bytes > KEY_MAX || (first && s.len < KEY_MIN)) {
                        return self.fail();
                    }
                    // The statistics of the first 128 bytes are as telling as all of them.
                    let head = &s.payload[..s.payload.len().min(128)];
                    if first && head.len() >= 32 {
                        let ok = match self.turn {
                            0 | 1 => key_like(s.payload),
                            _ => looks_random(head),
                        };
                        if !ok {
                            return self.fail();
                        }
                    }
                    if self.turn >= 2 && has_handshake(s.payload) {
                        self.answer = Some(BY_HANDSHAKE);
                        return;
                    }
                }
                if self.turn <= 1 && bytes > KEY_MAX {
                    return self.fail();
                }
                if self.turn == 3 && bytes >= FOURTH_MIN {
                    self.stage = Stage::Exchanged;
                }
            }
            Stage::Exchanged => {
                self.sent[si] = total;
                if let Some((_, s)) = seg {
                    if has_handshake(s.payload) {
                        self.answer = Some(BY_HANDSHAKE);
                        return;
                    }
                    if !exact {
                        return;
                    }
                }
                // A side seen only through the other's acknowledgements counts too: an
                // advance of one small message is a write of that size.
                self.after = self.after.saturating_add(1);
                // The encrypted handshake written on its own right after the exchange, or an
                // initial payload that is exactly the handshake (PadC empty).
                if self.after == 1 && (new == 68 || self.turn_bytes_2 == THIRD_MIN + 68) {
                    self.structural = true;
                }
                if new < BULK && rhythmic(new) {
                    self.rhythm = self.rhythm.saturating_add(1);
                }
                self.check_confirmed();
                if self.answer.is_none() && self.after >= MAX_AFTER {
                    self.stage = Stage::Done;
                }
            }
            Stage::Midstream => {
                self.sent[si] = total;
                match seg {
                    Some((_, s)) if exact => self.midstream(new, Some(s.payload)),
                    _ => {}
                }
            }
            Stage::Done => {}
        }
    }

    /// One write of a stream joined mid-way, seen whole and in order. Four writes of a single
    /// message's length, two thirds of the small writes at least, confirm it; after 32 small
    /// writes it gives up, and at once on a write that is not ciphertext: a small write with
    /// two zero bytes or more (the length prefixes of plaintext binary protocols; RC4 output
    /// of 17 bytes has two with a chance below 0.4 %), or a longer one that does not look
    /// random.
    fn midstream(&mut self, new: u32, payload: Option<&[u8]>) {
        let Some(bytes) = payload else { return };
        if new >= BULK {
            return;
        }
        let head = &bytes[..bytes.len().min(64)];
        let zeros = head.iter().filter(|&&b| b == 0).count();
        if (new < 32 && zeros >= 2) || (head.len() >= 32 && !looks_random(head)) {
            self.stage = Stage::Done;
            return;
        }
        self.after = self.after.saturating_add(1);
        if rhythmic(new) {
            self.rhythm = self.rhythm.saturating_add(1);
        }
        let (hits, small) = (u32::from(self.rhythm), u32::from(self.after));
        if hits >= MIDSTREAM_CONFIRM && 3 * hits >= 2 * small {
            self.answer = Some(BY_MIDSTREAM);
        } else if small >= MIDSTREAM_MAX {
            self.stage = Stage::Done;
        }
    }

    /// The exchange is confirmed by the encrypted handshake and one more message of the
    /// rhythm, or by three messages of the rhythm.
    fn check_confirmed(&mut self) {
        let hits = self.rhythm + u8::from(self.structural);
        if (self.structural && hits >= 2) || self.rhythm >= RHYTHM_CONFIRM {
            self.answer = Some(BY_RHYTHM);
        }
    }

    /// Checks the length of the turn that just ended.
    fn close_turn(&mut self) -> bool {
        let side = usize::from(self.turn_side.unwrap_or(0));
        let bytes = self.sent[side] - self.turn_start;
        match self.turn {
            0 | 1 => (KEY_MIN..=KEY_MAX).contains(&bytes),
            2 => {
                self.turn_bytes_2 = bytes;
                bytes >= THIRD_MIN
            }
            _ => true,
        }
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

    /// A conversation: writes of (side, bytes), side 0 the initiator; each write one segment.
    /// Returns the packets as (dir, flags, seq, ack, len) with a SYN, SYN-ACK and ACK first.
    fn conversation(writes: &[(usize, usize)]) -> Vec<(usize, u8, u32, u32, usize)> {
        let isn = [1_000u32, 7_000_000u32];
        let mut next = [isn[0] + 1, isn[1] + 1];
        let mut pk = vec![
            (0, SYN, isn[0], 0, 0),
            (1, SYN | ACK, isn[1], next[0], 0),
            (0, ACK, next[0], next[1], 0),
        ];
        for &(side, n) in writes {
            pk.push((side, ACK | 0x08, next[side], next[side ^ 1], n));
            next[side] += n as u32;
        }
        pk
    }

    /// Feeds a conversation, keeping only the packets of `only` when given.
    fn run(
        writes: &[(usize, usize)],
        only: Option<usize>,
        seed: u32,
        plain_at: Option<usize>,
    ) -> Answer {
        let mut t = MseTracker::default();
        let mut last = Answer::Undecided;
        for (i, (dir, flags, seq, ack, len)) in conversation(writes).into_iter().enumerate() {
            if only.is_some_and(|o| o != dir) {
                continue;
            }
            let mut payload = random(len, seed.wrapping_add(i as u32 * 7919));
            if plain_at == Some(i) {
                payload[..HANDSHAKE.len()].copy_from_slice(HANDSHAKE);
            }
            last = t.on_segment(Segment {
                dir,
                flags,
                seq,
                ack,
                len: len as u32,
                payload: &payload,
            });
            if last != Answer::Undecided {
                break;
            }
        }
        last
    }

    #[test]
    fn exchanges_in_both_directions_and_in_one() {
        // Sizes of real exchanges (lab captures of libtorrent and Transmission): the four
        // turns, the encrypted handshake alone, extension handshakes, requests, piece headers.
        let lt = [
            (0, 594),
            (1, 539),
            (0, 164),
            (1, 426),
            (0, 68),
            (1, 294),
            (0, 131),
            (0, 81),
            (1, 41),
            (1, 13),
            (1, 1448),
            (1, 13),
            (0, 17),
            (0, 34),
        ];
        let tr = [
            (0, 444),
            (1, 339),
            (0, 124),
            (1, 82),
            (0, 117),
            (1, 135),
            (0, 4),
            (0, 5),
            (1, 43),
            (1, 5),
            (0, 17),
        ];
        for (name, w) in [("libtorrent", &lt[..]), ("transmission", &tr[..])] {
            for only in [None, Some(0), Some(1)] {
                assert_eq!(run(w, only, 3, None), BY_RHYTHM, "{name} only={only:?}");
            }
        }
        // nDPI's bittorrent_tcp_miss sizes: the peers select plaintext after the exchange.
        let plain = [(0, 198), (1, 424), (0, 471), (1, 240), (0, 68)];
        assert_eq!(run(&plain, None, 5, Some(7)), BY_HANDSHAKE);
        // Four turns that fit and nothing after them: no answer either way.
        assert_eq!(run(&plain[..4], None, 5, None), Answer::Undecided);
    }

    #[test]
    fn openings_that_are_not_mse() {
        let cases: &[&[(usize, usize)]] = &[
            // First turn too short or too long; the responder speaking first.
            &[(0, 80), (1, 424), (0, 471), (1, 20)],
            &[(0, 1448), (0, 1448)],
            &[(1, 198), (0, 424)],
            // A key turn in two segments; the responder's key too long.
            &[(0, 96), (1, 60), (1, 36), (0, 40)],
            &[(0, 198), (1, 1448), (0, 471)],
            // A third turn too short for the hashes and VC.
            &[(0, 300), (1, 300), (0, 40), (1, 300)],
        ];
        for (i, w) in cases.iter().enumerate() {
            for only in [None, Some(0), Some(1)] {
                let got = run(w, only, i as u32, None);
                // Seen from the side that is not at fault, a single direction may stay undecided.
                assert_ne!(got, BY_RHYTHM, "case {i} only={only:?}");
                if only.is_none() {
                    assert_eq!(got, Answer::NotThis, "case {i}");
                }
            }
        }
    }

    #[test]
    fn retransmitted_key_counts_once() {
        let mut pk = conversation(&[
            (0, 300),
            (1, 200),
            (0, 124),
            (1, 30),
            (0, 5),
            (0, 17),
            (1, 9),
        ]);
        // The initiator's key sent twice (a retransmission, or a mirror's duplicate).
        pk.insert(4, pk[3]);
        let mut t = MseTracker::default();
        let mut last = Answer::Undecided;
        for (i, (dir, flags, seq, ack, len)) in pk.into_iter().enumerate() {
            let payload = random(len, 40 + i as u32);
            last = t.on_segment(Segment {
                dir,
                flags,
                seq,
                ack,
                len: len as u32,
                payload: &payload,
            });
        }
        assert_eq!(last, BY_RHYTHM);
    }

    #[test]
    fn random_request_response_protocols_are_not_confirmed() {
        // Random-looking requests and replies of 50–700 bytes, 24 turns per flow, each turn a
        // few writes at times: the sizes alone pass the four-turn test often, the rhythm never.
        let mut x = 0x1234_5678u32;
        let mut rnd = |m: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % m
        };
        let (mut fit, mut confirmed) = (0, 0);
        for flow in 0..2000u32 {
            let mut w = Vec::new();
            for turn in 0..24 {
                let writes = if turn < 2 { 1 } else { 1 + rnd(3) as usize };
                for _ in 0..writes {
                    w.push((turn % 2, 50 + rnd(651) as usize));
                }
            }
            let ex = &w;
            let got = run(ex, None, flow, None);
            if got != Answer::NotThis {
                fit += 1;
            }
            if matches!(got, BY_RHYTHM | BY_HANDSHAKE) {
                confirmed += 1;
            }
        }
        eprintln!("random request/response flows: {fit} of 2000 fit the four turns, {confirmed} confirmed");
        assert!(fit > 800, "the four-turn shape alone fits {fit} of 2000");
        assert!(
            confirmed <= 2,
            "{confirmed} of 2000 random flows confirmed as MSE"
        );
    }

    #[test]
    fn framed_openings_are_rejected() {
        // Openings of real non-BitTorrent handshakes (first bytes, then random filler to the
        // segment length): Ethereum RLPx EIP-8 auth (u16 length), Spotify (u32 length after a
        // version), a chat protocol with a little-endian u32 length, a TLS application data
        // record, and a header with zero bytes.
        let cases: &[(&[u8], usize)] = &[
            (&[0x01, 0x9d, 0x04, 0xf8], 415),
            // RLPx EIP-8 auth of nDPI's ethereum capture: u16 length 571, then 571 bytes.
            (&[0x02, 0x3b], 573),
            (&[0x00, 0x04, 0x00, 0x00, 0x01, 0x49], 329),
            (&[0xca, 0x00, 0x00, 0x00, 0xa0, 0x59], 206),
            (&[0x17, 0x03, 0x03, 0x00, 0x7a], 127),
            (&[0x00, 0x01, 0x00, 0x00, 0x05], 589),
        ];
        for (i, (head, n)) in cases.iter().enumerate() {
            let mut b = random(*n, i as u32 + 11);
            b[..head.len()].copy_from_slice(head);
            assert!(looks_framed(&b), "case {i}");
            assert!(!key_like(&b), "case {i}: a key turn must not be framed");
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
        let mut text = b"POST /rpc HTTP/1.1\r\n".repeat(8);
        text.truncate(150);
        assert!(!key_like(&text));
    }

    /// Feeds the writes of a stream joined mid-way (no SYN), each one segment.
    fn midstream_run(writes: &[(usize, usize)], seed: u32) -> Answer {
        let mut t = MseTracker::default();
        let mut next = [50_000u32, 9_000_000u32];
        let mut last = Answer::Undecided;
        for (i, &(side, n)) in writes.iter().enumerate() {
            let payload = random(n, seed.wrapping_add(i as u32));
            last = t.on_segment(Segment {
                dir: side,
                flags: ACK | 0x08,
                seq: next[side],
                ack: next[side ^ 1],
                len: n as u32,
                payload: &payload,
            });
            next[side] += n as u32;
            if last != Answer::Undecided {
                break;
            }
        }
        last
    }

    #[test]
    fn streams_joined_mid_way() {
        // An encrypted download joined mid-way: requests and haves one way, piece headers and
        // blocks cut by the MSS the other.
        let bt = [
            (0, 34),
            (1, 13),
            (1, 1448),
            (1, 1448),
            (0, 17),
            (1, 13),
            (1, 1448),
            (0, 9),
            (0, 17),
        ];
        assert_eq!(midstream_run(&bt, 1), BY_MIDSTREAM);
        // Random-looking request/response traffic of 20–700 bytes joined mid-way.
        let mut x = 0x9e37_79b9u32;
        let mut confirmed = 0;
        for flow in 0..2000u32 {
            let w: Vec<(usize, usize)> = (0..40)
                .map(|k| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (k % 2, 20 + (x % 681) as usize)
                })
                .collect();
            if midstream_run(&w, flow) == BY_MIDSTREAM {
                confirmed += 1;
            }
        }
        assert_eq!(confirmed, 0, "{confirmed} of 2000 random streams confirmed");
    }
}
