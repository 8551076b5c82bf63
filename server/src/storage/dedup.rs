//! Idempotency keys of stream appends and queue enqueues: an in-memory map on the writer
//! thread, stored as one value per commit.
//!
//! Every keyed append or enqueue would otherwise cost B-tree inserts (the key and its expiry)
//! and, when the window ends, as many removals. Here a commit's keys are stored together in one
//! row, keyed by (expires at ms, a sequence number), in the same transaction as what they
//! answer; the writer keeps every key in memory and answers repeats from there. At start the map
//! is rebuilt from the stored rows, so a repeat within the window gets the original answer
//! across restarts too. Expiry deletes the rows whose time has passed (and their keys from
//! memory). The window is checked on lookup, so a row not yet deleted never extends it.
//!
//! Streams and queues each have their own table ([`STREAM_DEDUP`], [`QUEUE_DEDUP`]) and answer
//! type ([`Answer`]): a position for an append, a task id for an enqueue. The scope of a key is
//! the stream's or queue's id.
//!
//! Memory: each remembered key costs its length plus about 90 bytes, for as long as the window
//! keeps it (the hub's `dedup_window_ms` for streams, each queue's own window for queues): keys
//! arriving at a steady rate R with a window of W seconds hold about R × W keys. Every
//! transaction also expires up to [`EXPIRE_PER_COMMIT`] due rows of each table, so expiry keeps
//! pace with any rate (one row per commit comes in).
//!
//! Keys are hashed once, with foldhash seeded at random per [`Dedup`] (a fraction of SipHash's
//! cost on these short keys, while an outsider still cannot choose keys that collide), and each
//! entry keeps its hash beside the key. A map that grows then moves its entries by their stored
//! hashes without reading a single key again: with the keys behind pointers, rehashing cost a
//! cache miss per entry, and it was a tenth of the storage writer's time while appends filled the
//! window.
//!
//! Each scope's keys are split over [`SHARDS`] maps by bits of that hash: a map that grows moves
//! everything it holds on the writer thread, and a smaller map makes that pause smaller (one map
//! of a million keys would stall every operation for milliseconds).
//!
//! [`STREAM_DEDUP`]: super::tables::STREAM_DEDUP
//! [`QUEUE_DEDUP`]: super::tables::QUEUE_DEDUP

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::HashMap;
use foldhash::HashMapExt;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition};

use super::OpError;
use super::streams::Appended;

/// Maps per scope; a power of two.
const SHARDS: usize = 256;

/// Most due rows each transaction expires by itself, per table.
pub const EXPIRE_PER_COMMIT: usize = 2;

/// A table of stored keys: (expires at ms, sequence) → one commit's keys.
pub type KeysTable = TableDefinition<'static, (u64, u64), &'static [u8]>;

/// An open table of stored keys.
pub type OpenKeys<'txn> = Table<'txn, (u64, u64), &'static [u8]>;

/// The shard of a key's hash: bits that neither the bucket index of a small map (the low bits)
/// nor the tag byte hashbrown keeps per entry (the top seven) use.
fn shard(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// What a repeated key is answered with, and how a commit's keys are stored.
pub trait Answer: Copy + std::fmt::Debug {
    /// Encodes one commit's keys: (scope, key, answer).
    ///
    /// # Errors
    /// The encoder fails.
    fn encode(keys: &[(u64, &str, Self)]) -> Result<Vec<u8>, OpError>;

    /// Decodes what [`Answer::encode`] stored.
    ///
    /// # Errors
    /// The value cannot be decoded.
    fn decode(bytes: &[u8]) -> Result<Vec<(u64, String, Self)>, OpError>;
}

/// An append's position, stored as MessagePack `[(stream id, key, partition, offset,
/// timestamp)]`.
impl Answer for Appended {
    fn encode(keys: &[(u64, &str, Self)]) -> Result<Vec<u8>, OpError> {
        let room: usize = keys.iter().map(|(_, k, _)| k.len() + 40).sum();
        let mut out = Vec::with_capacity(room + 5);
        rows_header(&mut out, keys.len())?;
        for (scope, key, a) in keys {
            row(&mut out, *scope, key, &[u64::from(a.partition), a.offset, a.timestamp])?;
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Vec<(u64, String, Self)>, OpError> {
        let rows: Vec<OwnedKey> = rmp_serde::from_slice(bytes).map_err(corrupt)?;
        Ok(rows
            .into_iter()
            .map(|(s, k, partition, offset, timestamp)| {
                (s, k, Appended { partition, offset, timestamp })
            })
            .collect())
    }
}

/// A task id, stored as MessagePack `[(queue id, key, task id)]`.
impl Answer for u64 {
    fn encode(keys: &[(u64, &str, Self)]) -> Result<Vec<u8>, OpError> {
        let room: usize = keys.iter().map(|(_, k, _)| k.len() + 24).sum();
        let mut out = Vec::with_capacity(room + 5);
        rows_header(&mut out, keys.len())?;
        for (scope, key, task) in keys {
            row(&mut out, *scope, key, &[*task])?;
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Vec<(u64, String, Self)>, OpError> {
        rmp_serde::from_slice(bytes).map_err(corrupt)
    }
}

/// The array header of a commit's stored keys. Rows are written with `rmp` directly, in the
/// bytes `rmp_serde` writes for the same tuples (arrays, integers in their smallest form), which
/// still decodes them: serde's generic encoding was most of the cost of storing keys.
fn rows_header(out: &mut Vec<u8>, rows: usize) -> Result<(), OpError> {
    let rows = u32::try_from(rows).map_err(corrupt)?;
    rmp::encode::write_array_len(out, rows).map_err(corrupt)?;
    Ok(())
}

/// One stored key: `[scope, key, answer...]`.
fn row(out: &mut Vec<u8>, scope: u64, key: &str, answer: &[u64]) -> Result<(), OpError> {
    rmp::encode::write_array_len(out, 2 + answer.len() as u32).map_err(corrupt)?;
    rmp::encode::write_uint(out, scope).map_err(corrupt)?;
    rmp::encode::write_str(out, key).map_err(corrupt)?;
    for &n in answer {
        rmp::encode::write_uint(out, n).map_err(corrupt)?;
    }
    Ok(())
}

/// A remembered key, with its hash.
#[derive(Debug)]
struct Slot<A> {
    hash: u64,
    key: Arc<str>,
    remembered: Remembered<A>,
}

impl<A> Slot<A> {
    fn is(&self, hash: u64, key: &str) -> bool {
        self.hash == hash && *self.key == *key
    }
}

/// One scope's keys.
#[derive(Debug)]
struct Shards<A>(Vec<HashTable<Slot<A>>>);

impl<A> Default for Shards<A> {
    fn default() -> Self {
        Shards((0..SHARDS).map(|_| HashTable::new()).collect())
    }
}

impl<A> Shards<A> {
    fn of(&self, hash: u64) -> Option<&HashTable<Slot<A>>> {
        self.0.get(shard(hash))
    }

    fn of_mut(&mut self, hash: u64) -> Option<&mut HashTable<Slot<A>>> {
        self.0.get_mut(shard(hash))
    }
}

/// One stored stream key: (stream id, idempotency key, partition, offset, timestamp).
pub(crate) type OwnedKey = (u64, String, u32, u64, u64);

#[derive(Debug, Clone, Copy)]
struct Remembered<A> {
    answer: A,
    expires: u64,
}

/// Every scope's remembered idempotency keys, and the keys of the current transaction.
#[derive(Debug)]
pub struct Dedup<A> {
    by_scope: HashMap<u64, Shards<A>>,
    /// Keys remembered in the current transaction, stored by [`Dedup::flush`]: (scope, key,
    /// answer, expires).
    pending: Vec<(u64, Arc<str>, A, u64)>,
    next_seq: u64,
    hasher: foldhash::fast::RandomState,
}

impl<A> Default for Dedup<A> {
    fn default() -> Self {
        Dedup {
            by_scope: HashMap::new(),
            pending: Vec::new(),
            next_seq: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> OpError {
    OpError::Corrupt(e.to_string())
}

impl<A: Answer> Dedup<A> {
    /// Rebuilds the map from every row stored in `table`, skipping scopes that no longer exist.
    ///
    /// # Errors
    /// redb fails or a row cannot be decoded.
    pub fn load(
        txn: &ReadTransaction,
        table: KeysTable,
        exists: impl Fn(u64) -> bool,
    ) -> Result<Dedup<A>, OpError> {
        let table = txn.open_table(table)?;
        let mut dedup = Dedup::default();
        // Rows go in order of expiry, so a key used again after it expired ends up with its
        // later answer.
        for row in table.iter()? {
            let (key, value) = row?;
            let (expires, seq) = key.value();
            dedup.next_seq = dedup.next_seq.max(seq + 1);
            for (scope, key, answer) in A::decode(value.value())? {
                if exists(scope) {
                    dedup.put(scope, &key, Remembered { answer, expires });
                }
            }
        }
        Ok(dedup)
    }

    /// The original answer of `key` in `scope` if it is remembered and its window has not
    /// passed at `now`.
    pub fn find(&self, scope: u64, key: &str, now: u64) -> Option<A> {
        let hash = self.hasher.hash_one(key);
        let found = self.by_scope.get(&scope)?.of(hash)?.find(hash, |s| s.is(hash, key))?;
        (found.remembered.expires > now).then_some(found.remembered.answer)
    }

    /// Remembers `key` in `scope`, replacing what it held.
    fn put(&mut self, scope: u64, key: &str, remembered: Remembered<A>) {
        let hash = self.hasher.hash_one(key);
        if let Some(map) = self.by_scope.entry(scope).or_default().of_mut(hash) {
            match map.entry(hash, |s| s.is(hash, key), |s| s.hash) {
                Entry::Occupied(mut found) => found.get_mut().remembered = remembered,
                Entry::Vacant(new) => {
                    new.insert(Slot { hash, key: key.into(), remembered });
                }
            }
        }
    }

    /// The original answer of `key` in `scope` if its window has not passed at `now`;
    /// otherwise remembers `answer` for it until `expires` (stored by the next
    /// [`Dedup::flush`]) and returns `None`. One hash lookup either way.
    pub fn find_or_remember(
        &mut self,
        scope: u64,
        key: &str,
        now: u64,
        answer: A,
        expires: u64,
    ) -> Option<A> {
        let remembered = Remembered { answer, expires };
        let hash = self.hasher.hash_one(key);
        let map = self.by_scope.entry(scope).or_default().of_mut(hash)?;
        let key = match map.entry(hash, |s| s.is(hash, key), |s| s.hash) {
            Entry::Occupied(found) if found.get().remembered.expires > now => {
                return Some(found.get().remembered.answer);
            }
            Entry::Occupied(mut expired) => {
                expired.get_mut().remembered = remembered;
                expired.get().key.clone()
            }
            Entry::Vacant(new) => {
                let key: Arc<str> = key.into();
                new.insert(Slot { hash, key: key.clone(), remembered });
                key
            }
        };
        self.pending.push((scope, key, answer, expires));
        None
    }

    /// Forgets a deleted scope's keys. Its stored rows are left to expire.
    pub fn forget(&mut self, scope: u64) {
        self.by_scope.remove(&scope);
        self.pending.retain(|(s, ..)| *s != scope);
    }

    /// Stores the keys remembered since the last flush as one row (one per expiry time: the
    /// operations of a transaction with one window share one, so that is one row).
    ///
    /// # Errors
    /// redb fails.
    pub fn flush(&mut self, table: &mut OpenKeys<'_>) -> Result<(), OpError> {
        for group in self.pending.chunk_by(|a, b| a.3 == b.3) {
            let keys: Vec<(u64, &str, A)> =
                group.iter().map(|(s, k, a, _)| (*s, &**k, *a)).collect();
            let value = A::encode(&keys)?;
            table.insert((group[0].3, self.next_seq), value.as_slice())?;
            self.next_seq += 1;
        }
        self.pending.clear();
        Ok(())
    }

    /// Deletes stored rows whose window has passed at `now` (about `max` keys and `max_rows`
    /// rows at most) and forgets their keys, unless a key was used again since. Returns how
    /// many keys went.
    ///
    /// # Errors
    /// redb fails or a stored row cannot be decoded.
    pub fn expire(
        &mut self,
        table: &mut OpenKeys<'_>,
        now: u64,
        max: usize,
        max_rows: usize,
    ) -> Result<usize, OpError> {
        let mut rows = Vec::new();
        let mut count = 0;
        for row in table.range((0, 0)..(now.saturating_add(1), 0))? {
            let (key, value) = row?;
            let (expires, seq) = key.value();
            let keys = A::decode(value.value())?;
            count += keys.len();
            rows.push((expires, seq, keys));
            if count >= max || rows.len() >= max_rows {
                break;
            }
        }
        for (expires, seq, keys) in rows {
            table.remove((expires, seq))?;
            for (scope, key, _) in keys {
                let hash = self.hasher.hash_one(key.as_str());
                if let Some(map) = self.by_scope.get_mut(&scope).and_then(|s| s.of_mut(hash))
                    && let Ok(found) = map.find_entry(hash, |s| s.is(hash, &key))
                    && found.get().remembered.expires == expires
                {
                    found.remove();
                }
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTableMetadata};

    use super::*;
    use crate::storage::tables::tests::memory_db;
    use crate::storage::tables::{QUEUE_DEDUP, STREAM_DEDUP, Tables};

    fn at(offset: u64) -> Appended {
        Appended { partition: 0, offset, timestamp: offset }
    }

    impl<A> Dedup<A> {
        fn len(&self) -> usize {
            self.by_scope.values().flat_map(|s| s.0.iter()).map(HashTable::len).sum()
        }
    }

    #[test]
    fn stored_keys_should_be_the_bytes_rmp_serde_writes_and_decode_back() {
        let numbers = [0, 1, 127, 128, 255, 256, 65_535, 65_536, u64::from(u32::MAX), u64::MAX];
        let lengths = [0, 1, 31, 32, 255, 256, 65_535, 65_536];
        for count in [0, 1, 2, 15, 16, 300] {
            let keys: Vec<String> = (0..count).map(|i| "k".repeat(lengths[i % 8])).collect();
            let appended: Vec<(u64, &str, Appended)> = (0..count)
                .map(|i| {
                    let n = |j: usize| numbers[(i + j) % numbers.len()];
                    let partition = n(1) as u32;
                    (n(0), keys[i].as_str(), Appended { partition, offset: n(2), timestamp: n(3) })
                })
                .collect();
            let tuples: Vec<(u64, &str, u32, u64, u64)> = appended
                .iter()
                .map(|(s, k, a)| (*s, *k, a.partition, a.offset, a.timestamp))
                .collect();
            let bytes = Appended::encode(&appended).unwrap();
            assert_eq!(bytes, rmp_serde::to_vec(&tuples).unwrap(), "{count} stream keys");
            let back = Appended::decode(&bytes).unwrap();
            assert_eq!(back.len(), count);
            for ((s, k, a), (s2, k2, a2)) in appended.iter().zip(&back) {
                assert_eq!(
                    (s, *k, a.partition, a.offset, a.timestamp),
                    (s2, k2.as_str(), a2.partition, a2.offset, a2.timestamp)
                );
            }

            let tasks: Vec<(u64, &str, u64)> = (0..count)
                .map(|i| (numbers[i % 10], keys[i].as_str(), numbers[(i + 3) % 10]))
                .collect();
            let bytes = u64::encode(&tasks).unwrap();
            assert_eq!(bytes, rmp_serde::to_vec(&tasks).unwrap(), "{count} queue keys");
            let back = u64::decode(&bytes).unwrap();
            let back: Vec<(u64, &str, u64)> =
                back.iter().map(|(s, k, t)| (*s, k.as_str(), *t)).collect();
            assert_eq!(back, tasks);
        }
    }

    #[test]
    fn expired_rows_should_forget_only_keys_not_used_again_and_a_reload_should_agree() {
        let db = memory_db();
        let mut dedup = Dedup::default();
        let txn = db.begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            let t = &mut t.stream_dedup;
            assert_eq!(dedup.find_or_remember(1, "a", 0, at(0), 10), None);
            assert_eq!(dedup.find_or_remember(1, "b", 0, at(1), 10), None);
            dedup.flush(t).unwrap();
            assert_eq!(dedup.find_or_remember(1, "a", 5, at(2), 15), Some(at(0)), "a repeat");
            assert_eq!(dedup.find_or_remember(1, "c", 5, at(3), 15), None);
            dedup.flush(t).unwrap();
            assert_eq!(dedup.find_or_remember(1, "a", 20, at(4), 30), None, "past its window");
            dedup.flush(t).unwrap();
            assert_eq!(dedup.len(), 3);
            assert_eq!(dedup.expire(t, 20, usize::MAX, 1).unwrap(), 2);
            assert_eq!(dedup.len(), 2, "b went, a was used again");
            assert_eq!(dedup.expire(t, 20, usize::MAX, 1).unwrap(), 1);
            assert_eq!(dedup.len(), 1);
            assert_eq!(dedup.expire(t, 20, usize::MAX, 1).unwrap(), 0, "a is not due");
        }
        txn.commit().unwrap();
        let reloaded: Dedup<Appended> =
            Dedup::load(&db.begin_read().unwrap(), STREAM_DEDUP, |_| true).unwrap();
        assert_eq!(reloaded.len(), 1);
        assert_eq!(reloaded.find(1, "a", 25), Some(at(4)));
        assert_eq!(reloaded.find(1, "a", 30), None);
    }

    #[test]
    fn task_ids_should_be_stored_per_queue_and_reloaded_for_queues_that_exist() {
        let db = memory_db();
        let mut dedup: Dedup<u64> = Dedup::default();
        let txn = db.begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            assert_eq!(dedup.find_or_remember(7, "k", 0, 100, 50), None);
            assert_eq!(dedup.find_or_remember(8, "k", 0, 200, 50), None, "another queue");
            assert_eq!(dedup.find_or_remember(7, "k", 1, 300, 51), Some(100));
            dedup.flush(&mut t.queue_dedup).unwrap();
            assert_eq!(t.queue_dedup.len().unwrap(), 1, "one row for the commit");
        }
        txn.commit().unwrap();
        let reloaded: Dedup<u64> =
            Dedup::load(&db.begin_read().unwrap(), QUEUE_DEDUP, |q| q == 7).unwrap();
        assert_eq!(reloaded.find(7, "k", 10), Some(100));
        assert_eq!(reloaded.find(8, "k", 10), None, "queue 8 was deleted");
        assert_eq!(reloaded.find(7, "k", 50), None, "the window ended");
    }

    #[test]
    fn shards_should_spread_client_keys() {
        let dedup: Dedup<u64> = Dedup::default();
        let mut used = std::collections::HashSet::new();
        for i in 0..10_000u64 {
            let key = format!("0193a1b2c3d4{:016x}{:016x}", i * 7919, i * 104_729);
            used.insert(shard(dedup.hasher.hash_one(key.as_str())));
        }
        assert!(used.len() > SHARDS * 3 / 4, "{} shards used", used.len());
    }
}
