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
//! Memory: each remembered key costs its length plus about 90 bytes (its entry, its share of
//! the index, and the shared copy's header), for as long as the window
//! keeps it (the hub's `dedup_window_ms` for streams, each queue's own window for queues): keys
//! arriving at a steady rate R with a window of W seconds hold about R × W keys. Every
//! transaction also expires up to [`EXPIRE_PER_COMMIT`] due rows of each table, so expiry keeps
//! pace with any rate (one row per commit comes in).
//!
//! Keys are hashed once, with foldhash seeded at random per [`Dedup`] (a fraction of SipHash's
//! cost on these short keys, while an outsider still cannot choose keys that collide).
//!
//! Per scope the keys are entries of a log, in the order they were remembered (with one window
//! per scope, the order their windows end), and a `KeyIndex` maps each key's hash to its
//! entry's sequence number: a 16-byte slot probed linearly, so looking up a new key reads one
//! cache line of the index and remembering it writes that same line and appends to the log.
//! With maps of up to rate × window keys, far larger than the caches, that miss is what a lookup
//! costs; the index of control bytes beside 56-byte entries it replaced missed twice (a quarter
//! more of the writer's time). The key itself is read only when a slot's whole 64-bit hash
//! matches. The log is a queue of fixed chunks of `CHUNK` entries: it grows without moving an
//! entry, and a chunk whose entries are all forgotten is freed from the front.
//!
//! Each scope's index is split over `SHARDS` tables by bits of the hash: a table that grows
//! moves every slot it holds on the writer thread (by the stored hashes, without reading a key),
//! and a smaller table makes that pause smaller (one table of a million keys would stall every
//! operation for milliseconds).
//!
//! [`STREAM_DEDUP`]: super::tables::STREAM_DEDUP
//! [`QUEUE_DEDUP`]: super::tables::QUEUE_DEDUP

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::HashMap;
use foldhash::HashMapExt;

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition};

use super::OpError;
use super::key_index::KeyIndex;
use super::streams::Appended;

/// Maps per scope; a power of two.
const SHARDS: usize = 256;

/// Most due rows each transaction expires by itself, per table.
pub const EXPIRE_PER_COMMIT: usize = 2;

/// A table of stored keys: (expires at ms, sequence) → one commit's keys.
pub type KeysTable = TableDefinition<'static, (u64, u64), &'static [u8]>;

/// An open table of stored keys.
pub type OpenKeys<'txn> = Table<'txn, (u64, u64), &'static [u8]>;

/// The shard of a key's hash: bits above those a shard's index takes a key's first slot from
/// (the low bits, fewer than 32 for any index that fits in memory).
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

/// A remembered key: `key` is `None` once it is forgotten (its slot is gone too).
#[derive(Debug)]
struct Entry<A> {
    key: Option<Arc<str>>,
    remembered: Remembered<A>,
}

/// Entries per chunk of a scope's log.
const CHUNK: usize = 4096;

/// A stretch of a scope's log, allocated whole and never grown, with how many of its entries
/// are still remembered.
#[derive(Debug)]
struct Chunk<A> {
    entries: Vec<Entry<A>>,
    live: usize,
}

/// One scope's keys: the entries in the order they were remembered (which is the order their
/// windows end, one window per scope), and [`SHARDS`] indexes from a key's hash to its entry's
/// sequence number. The log is a queue of fixed chunks, so growing it never moves an entry, and
/// a chunk whose every entry is forgotten is freed from the front.
#[derive(Debug)]
struct Scope<A> {
    index: Vec<KeyIndex>,
    chunks: VecDeque<Chunk<A>>,
    /// The sequence number of the first entry of the first chunk.
    first: u64,
    /// The sequence number the next entry gets.
    next: u64,
}

impl<A> Default for Scope<A> {
    fn default() -> Self {
        Scope {
            index: (0..SHARDS).map(|_| KeyIndex::default()).collect(),
            chunks: VecDeque::new(),
            first: 0,
            next: 0,
        }
    }
}

/// The entry of `seq` in a log that starts at `first`.
fn entry_at<A>(chunks: &VecDeque<Chunk<A>>, first: u64, seq: u64) -> Option<&Entry<A>> {
    let at = usize::try_from(seq.checked_sub(first)?).ok()?;
    chunks.get(at / CHUNK)?.entries.get(at % CHUNK)
}

/// Whether the entry of `seq` holds `key`.
fn holds<A>(chunks: &VecDeque<Chunk<A>>, first: u64, seq: u64, key: &str) -> bool {
    entry_at(chunks, first, seq).and_then(|e| e.key.as_deref()) == Some(key)
}

impl<A: Copy> Scope<A> {
    fn entry(&self, seq: u64) -> Option<&Entry<A>> {
        entry_at(&self.chunks, self.first, seq)
    }

    /// Appends an entry, returning its sequence number.
    fn push(&mut self, key: Arc<str>, remembered: Remembered<A>) -> u64 {
        if self.chunks.back().is_none_or(|c| c.entries.len() == CHUNK) {
            self.chunks.push_back(Chunk { entries: Vec::with_capacity(CHUNK), live: 0 });
        }
        if let Some(chunk) = self.chunks.back_mut() {
            chunk.entries.push(Entry { key: Some(key), remembered });
            chunk.live += 1;
        }
        self.next += 1;
        self.next - 1
    }

    /// Forgets the entry of `seq` (its slot is the caller's), freeing whole chunks at the
    /// front that hold nothing remembered any more. Returns its key.
    fn forget(&mut self, seq: u64) -> Option<Arc<str>> {
        let at = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        let chunk = self.chunks.get_mut(at / CHUNK)?;
        let key = chunk.entries.get_mut(at % CHUNK)?.key.take()?;
        chunk.live -= 1;
        while self.chunks.front().is_some_and(|c| c.live == 0 && c.entries.len() == CHUNK) {
            self.chunks.pop_front();
            self.first += CHUNK as u64;
        }
        Some(key)
    }

    /// Remembers `key` (hashed to `hash`) with `remembered`, or finds it. Returns the entry it
    /// already had, if its window had not passed at `now` (then nothing changes); otherwise
    /// the key is remembered anew (replacing an expired entry) and `None` is returned with the
    /// key's shared copy.
    fn find_or_remember(
        &mut self,
        hash: u64,
        key: &str,
        now: u64,
        remembered: Remembered<A>,
    ) -> Result<A, Arc<str>> {
        let seq = self.next;
        let Scope { index, chunks, first, .. } = self;
        let first = *first;
        let slots = &mut index[shard(hash)];
        match slots.find_or_insert(hash, seq, |s| holds(chunks, first, s, key)) {
            None => {
                let key: Arc<str> = key.into();
                self.push(key.clone(), remembered);
                Err(key)
            }
            Some(found) => {
                if let Some(e) = self.entry(found)
                    && e.remembered.expires > now
                {
                    return Ok(e.remembered.answer);
                }
                let key = self.forget(found).unwrap_or_else(|| key.into());
                let seq = self.push(key.clone(), remembered);
                self.index[shard(hash)].repoint(hash, found, seq);
                Err(key)
            }
        }
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
    by_scope: HashMap<u64, Scope<A>>,
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
        let scope = self.by_scope.get(&scope)?;
        let seq =
            scope.index[shard(hash)].find(hash, |s| holds(&scope.chunks, scope.first, s, key))?;
        let found = scope.entry(seq)?;
        (found.remembered.expires > now).then_some(found.remembered.answer)
    }

    /// Remembers `key` in `scope`, replacing what it held.
    fn put(&mut self, scope: u64, key: &str, remembered: Remembered<A>) {
        let hash = self.hasher.hash_one(key);
        // At `now` = u64::MAX no window is still open, so whatever the key held is replaced.
        let scope = self.by_scope.entry(scope).or_default();
        let _ = scope.find_or_remember(hash, key, u64::MAX, remembered);
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
        let entries = self.by_scope.entry(scope).or_default();
        match entries.find_or_remember(hash, key, now, remembered) {
            Ok(original) => Some(original),
            Err(key) => {
                self.pending.push((scope, key, answer, expires));
                None
            }
        }
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
                let Some(entries) = self.by_scope.get_mut(&scope) else { continue };
                let Scope { index, chunks, first, .. } = &*entries;
                let slots = &index[shard(hash)];
                let Some(seq) = slots.find(hash, |s| holds(chunks, *first, s, &key)) else {
                    continue;
                };
                if entries.entry(seq).is_some_and(|e| e.remembered.expires == expires) {
                    entries.index[shard(hash)].remove(hash, seq);
                    entries.forget(seq);
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
            self.by_scope.values().flat_map(|s| s.index.iter()).map(KeyIndex::len).sum()
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

    impl<A> Dedup<A> {
        /// Chunks of the log held, over every scope.
        fn chunks(&self) -> usize {
            self.by_scope.values().map(|s| s.chunks.len()).sum()
        }
    }

    #[test]
    fn many_keys_should_be_found_until_their_rows_expire_and_then_free_their_memory() {
        let db = memory_db();
        let mut dedup = Dedup::default();
        let txn = db.begin_write().unwrap();
        let mut t = Tables::open(&txn).unwrap();
        let t = &mut t.stream_dedup;
        let n = 5 * CHUNK as u64 + 123;
        // Commits of 1,000 keys, each commit's window ending 1 ms after the previous one's.
        for i in 0..n {
            let (now, expires) = (i / 1000, 100 + i / 1000);
            assert_eq!(dedup.find_or_remember(1, &format!("key-{i}"), now, at(i), expires), None);
            if i % 1000 == 999 {
                dedup.flush(t).unwrap();
            }
        }
        dedup.flush(t).unwrap();
        assert_eq!(dedup.len(), n as usize);
        assert_eq!(dedup.chunks(), 6);
        for i in (0..n).step_by(7) {
            assert_eq!(dedup.find_or_remember(1, &format!("key-{i}"), 50, at(0), 200), Some(at(i)));
            assert_eq!(dedup.find(1, &format!("key-{i}"), 50), Some(at(i)));
            assert_eq!(dedup.find(2, &format!("key-{i}"), 50), None, "another scope");
        }
        // Half the keys past their window: used again, each is remembered anew.
        for i in (0..n / 2).step_by(2) {
            let key = format!("key-{i}");
            assert_eq!(dedup.find_or_remember(1, &key, 150, at(n + i), 250), None, "{key}");
            assert_eq!(dedup.find(1, &key, 150), Some(at(n + i)));
        }
        dedup.flush(t).unwrap();
        assert_eq!(dedup.len(), n as usize, "replaced, not added");
        // Expiring every row of the first window forgets every key not used again.
        let gone = dedup.expire(t, 150, usize::MAX, usize::MAX).unwrap();
        assert_eq!(gone, n as usize);
        let again = (0..n / 2).step_by(2).count();
        assert_eq!(dedup.len(), again);
        for i in 0..n {
            let found = dedup.find(1, &format!("key-{i}"), 150);
            let want = (i < n / 2 && i % 2 == 0).then(|| at(n + i));
            assert_eq!(found, want, "key-{i}");
        }
        // The later window's rows free everything, chunks included.
        assert_eq!(dedup.expire(t, 250, usize::MAX, usize::MAX).unwrap(), again);
        assert_eq!(dedup.len(), 0);
        assert!(dedup.chunks() <= 1, "only the unfilled last chunk is kept");
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
