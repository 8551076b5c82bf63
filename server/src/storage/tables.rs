//! Every redb table, its key layout and value encoding.
//!
//! Keys are tuples of fixed-width integers (and strings last), so range scans follow the order
//! the engines need: a partition's records by offset, a partition's time index by timestamp,
//! idempotency keys by expiry time.

use redb::{Table, TableDefinition};

/// `"format_version"`, `"next_id"` (the id allocator for streams and queues) and
/// `"next_task"` (task and lease ids).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Stream name → [`crate::storage::streams::StreamMeta`] (MessagePack).
pub const STREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("streams");

/// (stream id, partition) → (low watermark, high watermark, bytes stored, last timestamp).
pub const PARTITIONS: TableDefinition<(u64, u32), (u64, u64, u64, u64)> =
    TableDefinition::new("partitions");

/// Format 1 only: (stream id, partition, offset) → one record. Opening a format 1 file moves
/// these rows into [`SEGMENTS`] and deletes the table.
pub const RECORDS_V1: TableDefinition<(u64, u32, u64), &[u8]> = TableDefinition::new("records");

/// (stream id, partition, first offset) → a segment: the records one commit appended to the
/// partition, each as its MessagePack `Record` (the wire encoding) behind a `u32` length (see
/// `storage::streams::segments`).
pub const SEGMENTS: TableDefinition<(u64, u32, u64), &[u8]> = TableDefinition::new("segments");

/// (stream id, partition, timestamp ms of its first record, first offset) → (): one entry per
/// segment, the time index.
pub const RECORD_TIMES: TableDefinition<(u64, u32, u64, u64), ()> =
    TableDefinition::new("record_times");

/// (stream id, group, partition) → (committed next offset, generation of the commit).
pub const GROUP_OFFSETS: TableDefinition<(u64, &str, u32), (u64, u64)> =
    TableDefinition::new("group_offsets");

/// (expires at ms, sequence) → the idempotency keys of stream appends one commit stored, with
/// their answers: MessagePack `[(stream id, key, partition, offset, timestamp)]`.
pub const STREAM_DEDUP: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("stream_dedup");

/// (expires at ms, sequence) → the idempotency keys of enqueues one commit stored, with their
/// task ids: MessagePack `[(queue id, key, task id)]`.
pub const QUEUE_DEDUP: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("queue_dedup");

/// Formats 1 and 2 only: (scope id, idempotency key) → (original answer, MessagePack; expires at
/// ms), one row per key (format 1: stream and queue keys, format 2: queue keys). Opening such a
/// file moves the keys into [`STREAM_DEDUP`] and [`QUEUE_DEDUP`] and deletes the table.
pub const DEDUP_V2: TableDefinition<(u64, &str), (&[u8], u64)> = TableDefinition::new("dedup");

/// Formats 1 and 2 only: (expires at ms, scope id, idempotency key) → (), deleted on upgrade.
pub const DEDUP_EXPIRY_V2: TableDefinition<(u64, u64, &str), ()> =
    TableDefinition::new("dedup_expiry");

/// Queue name → `QueueMeta` (MessagePack).
pub const QUEUES: TableDefinition<&str, &[u8]> = TableDefinition::new("queues");

/// (queue id, task id) → the task: its state and its body (data and headers), MessagePack
/// `[state, body]`, rewritten on every transition, so a task costs one B-tree write per
/// transition. The state holds the task's phase with its due time (a scheduled task's time, a
/// lease's deadline), from which the writer rebuilds its in-memory timer at start.
pub const TASKS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("tasks");

/// Formats 1 and 2 only: (queue id, task id) → the task's body, joined into its [`TASKS`] row on
/// upgrade and deleted.
pub const TASK_DATA_V2: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("task_data");

/// Formats 1 and 2 only: (due ms, queue id, task id) → (), an index the rows already hold;
/// deleted on upgrade.
pub const TASK_DUE_V2: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("task_due");

/// Creates every table so read transactions never meet a missing one.
pub fn create_all(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(META)?;
    txn.open_table(STREAMS)?;
    txn.open_table(PARTITIONS)?;
    txn.open_table(SEGMENTS)?;
    txn.open_table(RECORD_TIMES)?;
    txn.open_table(STREAM_DEDUP)?;
    txn.open_table(GROUP_OFFSETS)?;
    txn.open_table(QUEUE_DEDUP)?;
    txn.open_table(QUEUES)?;
    txn.open_table(TASKS)?;
    Ok(())
}

/// Every table, opened once per write transaction (redb allows one open handle per table).
pub struct Tables<'txn> {
    pub streams: Table<'txn, &'static str, &'static [u8]>,
    pub partitions: Table<'txn, (u64, u32), (u64, u64, u64, u64)>,
    pub segments: Table<'txn, (u64, u32, u64), &'static [u8]>,
    pub times: Table<'txn, (u64, u32, u64, u64), ()>,
    pub groups: Table<'txn, (u64, &'static str, u32), (u64, u64)>,
    pub stream_dedup: Table<'txn, (u64, u64), &'static [u8]>,
    pub queue_dedup: Table<'txn, (u64, u64), &'static [u8]>,
    pub queues: Table<'txn, &'static str, &'static [u8]>,
    pub tasks: Table<'txn, (u64, u64), &'static [u8]>,
}

impl<'txn> Tables<'txn> {
    /// Opens every table in `txn`.
    ///
    /// # Errors
    /// redb fails to open a table.
    pub fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Tables {
            streams: txn.open_table(STREAMS)?,
            partitions: txn.open_table(PARTITIONS)?,
            segments: txn.open_table(SEGMENTS)?,
            times: txn.open_table(RECORD_TIMES)?,
            groups: txn.open_table(GROUP_OFFSETS)?,
            stream_dedup: txn.open_table(STREAM_DEDUP)?,
            queue_dedup: txn.open_table(QUEUE_DEDUP)?,
            queues: txn.open_table(QUEUES)?,
            tasks: txn.open_table(TASKS)?,
        })
    }
}
