//! The flow table's index: positions in its vector, found by key hash. Open addressing with
//! linear probing over one `u64` per slot, the key's 32-bit hash beside the position, so a
//! lookup reads one cache line of the index (a general hash table keeps its tags and its
//! entries apart: two) and compares keys only when the hashes agree, and growing rehashes
//! from the stored hashes without reading the entries.

/// A slot: the key's hash in the high half, its position + 1 in the low half; 0 is empty.
type Slot = u64;

/// Growth keeps at least a quarter of the slots empty (linear probing slows down when full).
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 4;

/// Slots above which [`Index::clear`] takes fresh ones.
const FRESH_ABOVE: usize = 1 << 16;

pub struct Index {
    slots: Vec<Slot>,
    len: usize,
}

/// The 32 bits of a 64-bit hash the index keeps.
#[inline]
pub fn fold(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// `n` zeroed slots; a large index asks for huge pages (a lookup lands anywhere in it, and
/// with 4 KiB pages nearly every one misses the TLB too).
fn fresh(n: usize) -> Vec<Slot> {
    let v: Vec<Slot> = vec![0; n];
    super::advise_huge(&v);
    v
}

impl Index {
    /// An index with room for `n` positions before it grows.
    pub fn with_capacity(n: usize) -> Index {
        Index {
            slots: fresh(Self::slots_for(n)),
            len: 0,
        }
    }

    fn slots_for(n: usize) -> usize {
        (n.max(4) * LOAD_DEN / LOAD_NUM + 1).next_power_of_two()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn home(&self, h: u32) -> usize {
        h as usize & self.mask()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Asks for the cache line a lookup of hash `h` starts at (a hint, ahead of the lookup).
    #[inline]
    pub fn prefetch(&self, h: u32) {
        if let Some(s) = self.slots.get(self.home(h)) {
            crate::capture::prefetch((s as *const Slot).cast());
        }
    }

    /// The position with hash `h` that `is` accepts (the caller compares keys).
    #[inline]
    pub fn find(&self, h: u32, mut is: impl FnMut(usize) -> bool) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == h {
                let pos = (s as u32 - 1) as usize;
                if is(pos) {
                    return Some(pos);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot holding position `pos`, whose hash is `h`.
    fn slot_of(&self, h: u32, pos: usize) -> Option<usize> {
        let want = (u64::from(h) << 32) | (pos as u64 + 1);
        let mask = self.mask();
        let mut i = self.home(h);
        loop {
            match self.slots[i] {
                0 => return None,
                s if s == want => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds position `pos` (below `u32::MAX`) with hash `h`; it must not be in the index.
    pub fn insert(&mut self, h: u32, pos: usize) {
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            self.grow();
        }
        self.place((u64::from(h) << 32) | (pos as u64 + 1));
        self.len += 1;
    }

    fn place(&mut self, s: Slot) {
        let mask = self.mask();
        let mut i = self.home((s >> 32) as u32);
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }

    #[cold]
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, fresh(n));
        for s in old.into_iter().filter(|&s| s != 0) {
            self.place(s);
        }
    }

    /// Removes position `pos` (hash `h`).
    pub fn remove(&mut self, h: u32, pos: usize) {
        let Some(mut hole) = self.slot_of(h, pos) else {
            return;
        };
        self.len -= 1;
        // Backward shift: later slots of the run move into the hole unless their home lies
        // cyclically after it (then they would become unreachable).
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home((s >> 32) as u32);
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
    }

    /// Position `from` (hash `h`) is now at `to`.
    pub fn moved(&mut self, h: u32, from: usize, to: usize) {
        if let Some(i) = self.slot_of(h, from) {
            self.slots[i] = (u64::from(h) << 32) | (to as u64 + 1);
        }
    }

    /// Empties the index. A large one takes fresh zeroed slots (untouched pages cost no
    /// memory until used); a small one zeroes its own.
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.slots.len() > FRESH_ABOVE {
            self.slots = fresh(self.slots.len());
        } else {
            self.slots.fill(0);
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A tiny deterministic generator.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn agrees_with_a_map_through_inserts_moves_and_removals() {
        // Positions 0..n of a vector of keys, kept dense like the flow table's (the last one
        // moves into a removed one's place); few hash bits, so runs collide and wrap.
        let mut idx = Index::with_capacity(4);
        let mut keys: Vec<u64> = Vec::new();
        let mut want: HashMap<u64, usize> = HashMap::new();
        let h = |k: u64| (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as u32;
        let mut x = 0x1234_5678_9abc_def0u64;
        for step in 0..20_000u32 {
            let r = next(&mut x);
            if !r.is_multiple_of(3) || keys.is_empty() {
                let k = r >> 8;
                if want.contains_key(&k) {
                    continue;
                }
                idx.insert(h(k), keys.len());
                want.insert(k, keys.len());
                keys.push(k);
            } else {
                let i = (r >> 8) as usize % keys.len();
                let k = keys[i];
                idx.remove(h(k), i);
                want.remove(&k);
                let last = keys.len() - 1;
                if i != last {
                    let moved = keys[last];
                    idx.moved(h(moved), last, i);
                    want.insert(moved, i);
                }
                keys.swap_remove(i);
            }
            if step.is_multiple_of(97) {
                for (&k, &p) in &want {
                    assert_eq!(idx.find(h(k), |q| keys[q] == k), Some(p), "step {step}");
                }
                let absent = next(&mut x);
                if !want.contains_key(&absent) {
                    assert_eq!(idx.find(h(absent), |q| keys[q] == absent), None);
                }
            }
            assert_eq!(idx.len(), want.len());
        }
        idx.clear();
        assert!(idx.is_empty() && idx.find(h(keys[0]), |_| true).is_none());
    }

    #[test]
    fn grows_to_stay_a_quarter_empty() {
        let mut idx = Index::with_capacity(16);
        assert_eq!(idx.slots.len(), 32);
        for p in 0..2_100_000 {
            idx.insert(p as u32, p);
        }
        // 4 Mi slots of 8 bytes: under three quarters full at 2.1 M.
        assert_eq!((idx.slots.len(), idx.len()), (1 << 22, 2_100_000));
        assert_eq!(idx.find(77, |p| p == 77), Some(77));
    }
}
