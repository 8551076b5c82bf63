//! An open-addressing table from a key's hash to the sequence number of the entry that holds
//! the key, for the idempotency-key maps of [`super::dedup`].
//!
//! A slot is 16 bytes, the hash and the sequence number, in one array probed linearly: looking
//! a new key up reads one cache line and inserting it writes the same line, where a table of
//! control bytes beside a table of entries touched two lines far apart. The keys themselves
//! live in the caller's entries, read only when a slot's whole 64-bit hash matches (a repeat,
//! or a collision the caller's comparison then rejects). Removal shifts the slots that follow
//! back (no tombstones), and the table doubles at three quarters full, moving slots by their
//! stored hashes without reading any key.

/// A slot: a key's hash and its entry's sequence number, `seq == EMPTY` when free.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    seq: u64,
}

const EMPTY: u64 = u64::MAX;
const FREE: Slot = Slot { hash: 0, seq: EMPTY };

/// Slots a table starts with.
const MIN_SLOTS: usize = 16;

/// Hashes to sequence numbers. A sequence number must not be [`u64::MAX`].
#[derive(Debug, Default)]
pub struct KeyIndex {
    slots: Vec<Slot>,
    len: usize,
}

impl KeyIndex {
    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// Probes for a slot of `hash` whose sequence number `is` accepts: `Ok` with its position,
    /// or `Err` with the free position where the probe ended. The table must have slots.
    fn probe(&self, hash: u64, mut is: impl FnMut(u64) -> bool) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot.seq == EMPTY {
                return Err(i);
            }
            if slot.hash == hash && is(slot.seq) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The sequence number stored for `hash` that `is` accepts.
    pub fn find(&self, hash: u64, is: impl FnMut(u64) -> bool) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(hash, is).ok().map(|i| self.slots[i].seq)
    }

    /// The sequence number stored for `hash` that `is` accepts; if there is none, stores
    /// `seq` for `hash` and returns `None`. One probe either way.
    pub fn find_or_insert(
        &mut self,
        hash: u64,
        seq: u64,
        is: impl FnMut(u64) -> bool,
    ) -> Option<u64> {
        debug_assert_ne!(seq, EMPTY);
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        match self.probe(hash, is) {
            Ok(i) => Some(self.slots[i].seq),
            Err(free) => {
                self.slots[free] = Slot { hash, seq };
                self.len += 1;
                None
            }
        }
    }

    /// Stores `new` in place of `old` for `hash`; false if `old` is not stored for it.
    pub fn repoint(&mut self, hash: u64, old: u64, new: u64) -> bool {
        match self.position(hash, old) {
            Some(i) => {
                self.slots[i].seq = new;
                true
            }
            None => false,
        }
    }

    /// Removes `seq` stored for `hash`; false if it is not stored.
    pub fn remove(&mut self, hash: u64, seq: u64) -> bool {
        let Some(mut hole) = self.position(hash, seq) else {
            return false;
        };
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let slot = self.slots[j];
            if slot.seq == EMPTY {
                break;
            }
            // A slot moves back into the hole unless the hole lies before its home position
            // (it would then no longer be found from there).
            let home = self.home(slot.hash);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = FREE;
        self.len -= 1;
        true
    }

    fn position(&self, hash: u64, seq: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(hash, |s| s == seq).ok()
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![FREE; size]);
        let mask = size - 1;
        for slot in old.into_iter().filter(|s| s.seq != EMPTY) {
            let mut i = slot.hash as usize & mask;
            while self.slots[i].seq != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    /// xorshift64*: deterministic, so a failure reproduces.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn it_should_agree_with_a_map_through_inserts_repoints_and_removals() {
        let mut state = 0x1234_5678_9abc_def1;
        let mut index = KeyIndex::default();
        // seq → hash and hash → seq, one seq per hash; hashes from small ranges so that they
        // collide in their low bits and cluster.
        let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
        let mut hashes: HashMap<u64, u64> = HashMap::new();
        let mut next_seq = 0u64;
        for round in 0..300_000u32 {
            let r = next(&mut state);
            let hash = (if round % 3 == 0 { r % 64 } else { r % 100_000 }) << (r % 2 * 20);
            let pick = seqs.range(r % next_seq.max(1)..).next().map(|(s, h)| (*s, *h));
            match r % 10 {
                0..=4 => {
                    let seq = next_seq;
                    next_seq += 1;
                    let found = index.find_or_insert(hash, seq, |s| seqs.get(&s) == Some(&hash));
                    assert_eq!(found, hashes.get(&hash).copied(), "round {round}");
                    if found.is_none() {
                        seqs.insert(seq, hash);
                        hashes.insert(hash, seq);
                    }
                }
                5..=7 => {
                    if let Some((seq, hash)) = pick {
                        assert!(index.remove(hash, seq), "round {round}");
                        assert!(!index.remove(hash, seq));
                        seqs.remove(&seq);
                        hashes.remove(&hash);
                    }
                }
                8 => {
                    if let Some((seq, hash)) = pick {
                        let new = next_seq;
                        next_seq += 1;
                        assert!(index.repoint(hash, seq, new));
                        seqs.remove(&seq);
                        seqs.insert(new, hash);
                        hashes.insert(hash, new);
                    }
                }
                _ => {
                    if let Some((seq, hash)) = pick {
                        assert_eq!(index.find(hash, |s| s == seq), Some(seq), "round {round}");
                    }
                    let present = hashes.contains_key(&hash);
                    assert_eq!(index.find(hash, |_| true).is_some(), present, "round {round}");
                }
            }
            assert_eq!(index.len(), seqs.len());
        }
        assert!(seqs.len() > 1000, "the table grew through several sizes");
        for (&seq, &hash) in &seqs {
            assert_eq!(index.find(hash, |s| s == seq), Some(seq));
        }
    }

    #[test]
    fn removing_everything_should_leave_nothing_to_find() {
        let mut index = KeyIndex::default();
        for seq in 0..10_000u64 {
            assert_eq!(index.find_or_insert(seq * 7 % 97, seq, |_| false), None);
        }
        for seq in (0..10_000u64).rev() {
            assert!(index.remove(seq * 7 % 97, seq));
        }
        assert_eq!(index.len(), 0);
        for seq in 0..10_000u64 {
            assert_eq!(index.find(seq * 7 % 97, |_| true), None);
        }
    }
}
