//! Idempotency keys of stream appends: an in-memory map on the writer thread, stored as one
//! value per commit.
//!
//! Every append with a key would otherwise cost B-tree inserts (the key and its expiry). Here a
//! commit's keys are stored together in one `stream_dedup` row, keyed by (expires at ms, a
//! sequence number), in the same transaction as their records; the writer keeps every key
//! in memory and answers repeats from there. At start the map is rebuilt from the stored rows,
//! so a repeat within the window answers the original position across restarts too. The
//! retention pass deletes the rows whose time has passed (and their keys from memory). The
//! window is checked on lookup, so a row not yet deleted never extends it.
//!
//! Memory: each remembered key costs its length plus about 80 bytes, for as long as the window
//! (`dedup_window_ms`) keeps it. Every transaction also expires up to [`EXPIRE_PER_COMMIT`]
//! rows that are due, so expiry keeps pace with any append rate (one row per commit comes in).
//!
//! Each stream's keys are split over [`SHARDS`] maps by the key's last bytes: a map that grows
//! rehashes everything it holds on the writer thread, and a smaller map makes that pause
//! smaller (one map of a million keys would stall every append for tens of milliseconds).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable};

use super::super::OpError;
use super::super::tables::{STREAM_DEDUP, Tables};
use super::Appended;

/// Maps per stream; a power of two.
const SHARDS: usize = 256;

/// Most due rows each transaction expires by itself.
pub const EXPIRE_PER_COMMIT: usize = 2;

/// The shard of a key: a multiplicative hash of its last eight bytes (the random end of the
/// keys clients generate). Keys chosen to collide only make one shard big again.
fn shard(key: &str) -> usize {
    let bytes = key.as_bytes();
    let mut h = bytes.len() as u64;
    for &b in &bytes[bytes.len().saturating_sub(8)..] {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 56) as usize % SHARDS
}

/// One stream's keys.
#[derive(Debug)]
struct Shards(Vec<HashMap<Arc<str>, Remembered>>);

impl Default for Shards {
    fn default() -> Self {
        Shards((0..SHARDS).map(|_| HashMap::new()).collect())
    }
}

impl Shards {
    fn of(&self, key: &str) -> Option<&HashMap<Arc<str>, Remembered>> {
        self.0.get(shard(key))
    }

    fn of_mut(&mut self, key: &str) -> Option<&mut HashMap<Arc<str>, Remembered>> {
        self.0.get_mut(shard(key))
    }
}

/// One stored key: (stream id, idempotency key, partition, offset, timestamp).
type StoredKey<'a> = (u64, &'a str, u32, u64, u64);
pub(crate) type OwnedKey = (u64, String, u32, u64, u64);

#[derive(Debug, Clone, Copy)]
struct Remembered {
    answer: Appended,
    expires: u64,
}

/// Every stream's remembered idempotency keys, and the keys of the current transaction.
#[derive(Debug, Default)]
pub struct Dedup {
    by_stream: HashMap<u64, Shards>,
    /// Keys remembered in the current transaction, stored by [`Dedup::flush`]: (stream id,
    /// key, answer, expires).
    pending: Vec<(u64, Arc<str>, Appended, u64)>,
    next_seq: u64,
}

fn corrupt(e: impl std::fmt::Display) -> OpError {
    OpError::Corrupt(e.to_string())
}

impl Dedup {
    /// Rebuilds the map from every stored row, skipping streams that no longer exist.
    ///
    /// # Errors
    /// redb fails or a row cannot be decoded.
    pub fn load(txn: &ReadTransaction, exists: impl Fn(u64) -> bool) -> Result<Dedup, OpError> {
        let table = txn.open_table(STREAM_DEDUP)?;
        let mut dedup = Dedup::default();
        // Rows go in order of expiry, so a key used again after it expired ends up with its
        // later answer.
        for row in table.iter()? {
            let (key, value) = row?;
            let (expires, seq) = key.value();
            dedup.next_seq = dedup.next_seq.max(seq + 1);
            let keys: Vec<OwnedKey> = rmp_serde::from_slice(value.value()).map_err(corrupt)?;
            for (stream, key, partition, offset, timestamp) in keys {
                if exists(stream) {
                    let answer = Appended { partition, offset, timestamp };
                    let shards = dedup.by_stream.entry(stream).or_default();
                    if let Some(map) = shards.of_mut(&key) {
                        map.insert(key.into(), Remembered { answer, expires });
                    }
                }
            }
        }
        Ok(dedup)
    }

    /// The original answer of `key` on `stream` if it is remembered and its window has not
    /// passed at `now`.
    pub fn find(&self, stream: u64, key: &str, now: u64) -> Option<Appended> {
        let found = self.by_stream.get(&stream)?.of(key)?.get(key)?;
        (found.expires > now).then_some(found.answer)
    }

    /// The original answer of `key` on `stream` if its window has not passed at `now`;
    /// otherwise remembers `answer` for it until `expires` (stored by the next
    /// [`Dedup::flush`]) and returns `None`. One hash lookup either way.
    pub fn find_or_remember(
        &mut self,
        stream: u64,
        key: &str,
        now: u64,
        answer: Appended,
        expires: u64,
    ) -> Option<Appended> {
        let remembered = Remembered { answer, expires };
        let map = self.by_stream.entry(stream).or_default().of_mut(key)?;
        let key: Arc<str> = key.into();
        match map.entry(key.clone()) {
            Entry::Occupied(found) if found.get().expires > now => return Some(found.get().answer),
            Entry::Occupied(mut expired) => {
                expired.insert(remembered);
            }
            Entry::Vacant(new) => {
                new.insert(remembered);
            }
        }
        self.pending.push((stream, key, answer, expires));
        None
    }

    /// Forgets a deleted stream's keys. Its stored rows are left to expire.
    pub fn forget(&mut self, stream: u64) {
        self.by_stream.remove(&stream);
        self.pending.retain(|(s, ..)| *s != stream);
    }

    /// Stores the keys remembered since the last flush as one row (one per expiry time: the
    /// operations of a transaction share one, so that is one row).
    ///
    /// # Errors
    /// redb fails.
    pub fn flush(&mut self, t: &mut Tables<'_>) -> Result<(), OpError> {
        for group in self.pending.chunk_by(|a, b| a.3 == b.3) {
            let keys: Vec<StoredKey<'_>> = group
                .iter()
                .map(|(s, k, a, _)| (*s, &**k, a.partition, a.offset, a.timestamp))
                .collect();
            let value = rmp_serde::to_vec(&keys).map_err(corrupt)?;
            t.stream_dedup.insert((group[0].3, self.next_seq), value.as_slice())?;
            self.next_seq += 1;
        }
        self.pending.clear();
        Ok(())
    }

    /// Deletes stored rows whose window has passed at `now` (about `max` keys and `max_rows`
    /// rows at most) and
    /// forgets their keys, unless a key was used again since. Returns how many keys went.
    ///
    /// # Errors
    /// redb fails or a row cannot be decoded.
    pub fn expire(
        &mut self,
        t: &mut Tables<'_>,
        now: u64,
        max: usize,
        max_rows: usize,
    ) -> Result<usize, OpError> {
        let mut rows = Vec::new();
        let mut count = 0;
        for row in t.stream_dedup.range((0, 0)..(now.saturating_add(1), 0))? {
            let (key, value) = row?;
            let (expires, seq) = key.value();
            let keys: Vec<OwnedKey> = rmp_serde::from_slice(value.value()).map_err(corrupt)?;
            count += keys.len();
            rows.push((expires, seq, keys));
            if count >= max || rows.len() >= max_rows {
                break;
            }
        }
        for (expires, seq, keys) in rows {
            t.stream_dedup.remove((expires, seq))?;
            for (stream, key, ..) in keys {
                if let Some(map) = self.by_stream.get_mut(&stream).and_then(|s| s.of_mut(&key))
                    && map.get(key.as_str()).is_some_and(|r| r.expires == expires)
                {
                    map.remove(key.as_str());
                }
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;
    use crate::storage::tables::create_all;

    fn at(offset: u64) -> Appended {
        Appended { partition: 0, offset, timestamp: offset }
    }

    impl Dedup {
        fn len(&self) -> usize {
            self.by_stream.values().flat_map(|s| s.0.iter()).map(HashMap::len).sum()
        }
    }

    #[test]
    fn expired_rows_should_forget_only_keys_not_used_again_and_a_reload_should_agree() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let mut dedup = Dedup::default();
        let txn = db.begin_write().unwrap();
        create_all(&txn).unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            assert_eq!(dedup.find_or_remember(1, "a", 0, at(0), 10), None);
            assert_eq!(dedup.find_or_remember(1, "b", 0, at(1), 10), None);
            dedup.flush(&mut t).unwrap();
            assert_eq!(dedup.find_or_remember(1, "a", 5, at(2), 15), Some(at(0)), "a repeat");
            assert_eq!(dedup.find_or_remember(1, "c", 5, at(3), 15), None);
            dedup.flush(&mut t).unwrap();
            assert_eq!(dedup.find_or_remember(1, "a", 20, at(4), 30), None, "past its window");
            dedup.flush(&mut t).unwrap();
            assert_eq!(dedup.len(), 3);
            assert_eq!(dedup.expire(&mut t, 20, usize::MAX, 1).unwrap(), 2);
            assert_eq!(dedup.len(), 2, "b went, a was used again");
            assert_eq!(dedup.expire(&mut t, 20, usize::MAX, 1).unwrap(), 1);
            assert_eq!(dedup.len(), 1);
            assert_eq!(dedup.expire(&mut t, 20, usize::MAX, 1).unwrap(), 0, "a is not due");
        }
        txn.commit().unwrap();
        let reloaded = Dedup::load(&db.begin_read().unwrap(), |_| true).unwrap();
        assert_eq!(reloaded.len(), 1);
        assert_eq!(reloaded.find(1, "a", 25), Some(at(4)));
        assert_eq!(reloaded.find(1, "a", 30), None);
    }

    #[test]
    fn shards_should_spread_client_keys() {
        let mut used = std::collections::HashSet::new();
        for i in 0..10_000u64 {
            used.insert(shard(&format!("0193a1b2c3d4{:016x}{:016x}", i * 7919, i * 104_729)));
        }
        assert!(used.len() > SHARDS * 3 / 4, "{} shards used", used.len());
    }
}
