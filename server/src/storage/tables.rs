//! Every redb table, its key layout and value encoding.
//!
//! Keys are tuples of fixed-width integers (and strings last), so range scans follow the order
//! the engines need: a partition's records by offset, a partition's time index by timestamp,
//! dedup expiries by time.

use redb::TableDefinition;

/// `"format_version"` and `"next_id"` (the id allocator for streams and queues).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Stream name → [`crate::storage::streams::StreamMeta`] (MessagePack).
pub const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");

/// (stream id, partition) → (low watermark, high watermark, bytes stored, last timestamp).
pub const PARTITIONS: TableDefinition<(u64, u32), (u64, u64, u64, u64)> =
    TableDefinition::new("partitions");

/// (stream id, partition, offset) → the record as a MessagePack `Record` (the wire encoding).
pub const RECORDS: TableDefinition<(u64, u32, u64), &[u8]> = TableDefinition::new("records");

/// (stream id, partition, timestamp ms, offset) → (): a sparse time index, one entry every
/// [`TIME_INDEX_EVERY`] offsets.
pub const RECORD_TIMES: TableDefinition<(u64, u32, u64, u64), ()> =
    TableDefinition::new("record_times");

/// One time-index entry per this many offsets: a time lookup reads at most this many records
/// after an O(log n) index seek.
pub const TIME_INDEX_EVERY: u64 = 64;

/// (stream id, group, partition) → (committed next offset, generation of the commit).
pub const GROUP_OFFSETS: TableDefinition<(u64, &str, u32), (u64, u64)> =
    TableDefinition::new("group_offsets");

/// (scope id, idempotency key) → (original answer, MessagePack; expires at ms).
pub const DEDUP: TableDefinition<(u64, &str), (&[u8], u64)> = TableDefinition::new("dedup");

/// (expires at ms, scope id, idempotency key) → (): drives dedup expiry without a scan.
pub const DEDUP_EXPIRY: TableDefinition<(u64, u64, &str), ()> =
    TableDefinition::new("dedup_expiry");

/// Creates every table so read transactions never meet a missing one.
pub fn create_all(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(META)?;
    txn.open_table(STREAMS)?;
    txn.open_table(PARTITIONS)?;
    txn.open_table(RECORDS)?;
    txn.open_table(RECORD_TIMES)?;
    txn.open_table(GROUP_OFFSETS)?;
    txn.open_table(DEDUP)?;
    txn.open_table(DEDUP_EXPIRY)?;
    Ok(())
}
