//! Every redb table, its key layout and value encoding.
//!
//! Keys are tuples of fixed-width integers (and strings last), so range scans follow the order
//! the engines need: a partition's records by offset, a partition's time index by timestamp,
//! idempotency keys by expiry time.

use redb::{Table, TableDefinition};

/// `"format_version"`, `"next_id"` (the id allocator for streams and queues) and
/// `"next_task"` (the end of the block of task and lease ids reserved so far).
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
    /// Task rows to delete before the commit: see [`Tables::remove_task`].
    removed_tasks: Vec<(u64, u64)>,
}

/// Task rows whose ids are at most this far apart are deleted by one scan over their range.
const REMOVAL_GAP: u64 = 64;

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
            removed_tasks: Vec::new(),
        })
    }

    /// Deletes a task's row before the transaction commits. Nothing reads task rows during a
    /// write transaction, so the deletions wait and go together: acks of one queue mostly take
    /// neighbouring ids, and one scan deleting a run of rows costs far less than a B-tree
    /// descent per row (each of which would also copy the old row out).
    pub fn remove_task(&mut self, queue: u64, task: u64) {
        self.removed_tasks.push((queue, task));
    }

    /// Applies the deletions of [`Tables::remove_task`]: ids of a queue no more than
    /// [`REMOVAL_GAP`] apart are deleted by one scan over their range, which visits the rows
    /// between them too, so the rows it passes over stay bounded.
    ///
    /// # Errors
    /// redb fails.
    pub fn flush_removed_tasks(&mut self) -> Result<(), redb::StorageError> {
        let mut removed = std::mem::take(&mut self.removed_tasks);
        removed.sort_unstable();
        removed.dedup();
        let mut rest = removed.as_slice();
        while let Some(&(queue, first)) = rest.first() {
            let mut end = 1;
            while let Some(&(q, id)) = rest.get(end)
                && q == queue
                && id - rest[end - 1].1 <= REMOVAL_GAP
            {
                end += 1;
            }
            let (run, after) = rest.split_at(end);
            let last = run[end - 1].1;
            if end == 1 {
                self.tasks.remove((queue, first))?;
            } else {
                self.tasks.retain_in((queue, first)..=(queue, last), |(_, id), _| {
                    run.binary_search_by_key(&id, |(_, t)| *t).is_err()
                })?;
            }
            rest = after;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

    use super::*;

    /// An in-memory database with every table created.
    pub(crate) fn memory_db() -> redb::Database {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        create_all(&txn).unwrap();
        txn.commit().unwrap();
        db
    }

    #[test]
    fn removed_tasks_should_go_at_the_flush_and_only_they() {
        let db = memory_db();
        let txn = db.begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            let rows = (1..=10).map(|id| (1, id)).chain([(1, 1_000), (2, 1), (2, 2), (2, 3)]);
            for key in rows {
                t.tasks.insert(key, &b"row"[..]).unwrap();
            }
            for (queue, task) in [(1, 9), (1, 2), (1, 4), (2, 1), (1, 1_000), (1, 4), (1, 77)] {
                t.remove_task(queue, task);
            }
            assert_eq!(t.tasks.len().unwrap(), 14, "nothing goes before the flush");
            t.flush_removed_tasks().unwrap();
        }
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let left: Vec<(u64, u64)> =
            read.open_table(TASKS).unwrap().iter().unwrap().map(|r| r.unwrap().0.value()).collect();
        let expected = [(1, 1), (1, 3), (1, 5), (1, 6), (1, 7), (1, 8), (1, 10), (2, 2), (2, 3)];
        assert_eq!(left, expected);
    }
}
