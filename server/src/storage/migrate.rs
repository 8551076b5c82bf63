//! Upgrades a database written by an older format, inside the transaction that opens it.
//!
//! Format 1 → 2: stream records move from one row per record (`records`) into segments of up
//! to [`SEGMENT_RECORDS`] consecutive records, the time index is rebuilt with one entry per
//! segment, and the streams' idempotency keys move from `dedup`/`dedup_expiry` (which keep the
//! queues' keys) into `stream_dedup`.
//!
//! Format 2 → 3: the queues' idempotency keys move from one row per key (`dedup`, with its
//! expiry index `dedup_expiry`) into one row per expiry time in `queue_dedup`, and the
//! `task_due` index (which the task rows already hold) is deleted, and each task's body moves
//! from `task_data` into its row in `tasks`.

use std::collections::{BTreeMap, HashSet};

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::Deserialize;

use super::StorageError;
use super::dedup::OwnedKey;
use super::queues::QueueMeta;
use super::streams::segments::push_record;
use super::streams::{Appended, StreamMeta};
use super::tables::{
    DEDUP_EXPIRY_V2, DEDUP_V2, QUEUE_DEDUP, QUEUES, RECORD_TIMES, RECORDS_V1, SEGMENTS,
    STREAM_DEDUP, STREAMS, TASK_DUE_V2,
};

/// Most records per segment made from format 1 rows.
const SEGMENT_RECORDS: u64 = 64;

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

#[derive(Deserialize)]
struct RecordTime {
    timestamp: u64,
}

/// A segment being assembled: (stream, partition, first offset, first timestamp, records, bytes).
type Building = (u64, u32, u64, u64, u64, Vec<u8>);

/// Rewrites a format 1 database as format 2.
///
/// # Errors
/// redb fails or a stored value cannot be decoded.
pub fn v1_to_v2(txn: &WriteTransaction) -> Result<(), StorageError> {
    let mut streams = HashSet::new();
    for row in txn.open_table(STREAMS)?.iter()? {
        let meta: StreamMeta = rmp_serde::from_slice(row?.1.value()).map_err(corrupt)?;
        streams.insert(meta.id);
    }
    {
        let old = txn.open_table(RECORDS_V1)?;
        let mut segments = txn.open_table(SEGMENTS)?;
        let mut times = txn.open_table(RECORD_TIMES)?;
        times.retain(|_, _| false)?;
        let mut building: Option<Building> = None;
        let mut store = |b: Building| -> Result<(), StorageError> {
            let (stream, partition, first, ts, _, buf) = b;
            segments.insert((stream, partition, first), buf.as_slice())?;
            times.insert((stream, partition, ts, first), ())?;
            Ok(())
        };
        for row in old.iter()? {
            let (key, value) = row?;
            let (stream, partition, offset) = key.value();
            let value = value.value();
            let continues = building.as_ref().is_some_and(|(s, p, first, _, n, _)| {
                (*s, *p) == (stream, partition) && first + n == offset && *n < SEGMENT_RECORDS
            });
            if !continues {
                if let Some(done) = building.take() {
                    store(done)?;
                }
                let ts = rmp_serde::from_slice::<RecordTime>(value).map_err(corrupt)?.timestamp;
                building = Some((stream, partition, offset, ts, 0, Vec::new()));
            }
            if let Some((_, _, _, _, n, buf)) = building.as_mut() {
                push_record(buf, value);
                *n += 1;
            }
        }
        if let Some(done) = building.take() {
            store(done)?;
        }
    }
    txn.delete_table(RECORDS_V1)?;
    {
        let mut dedup = txn.open_table(DEDUP_V2)?;
        let mut expiry = txn.open_table(DEDUP_EXPIRY_V2)?;
        let mut stream_dedup = txn.open_table(STREAM_DEDUP)?;
        let mut by_expiry: BTreeMap<u64, Vec<OwnedKey>> = BTreeMap::new();
        for row in dedup.iter()? {
            let (key, value) = row?;
            let (scope, idem) = key.value();
            if !streams.contains(&scope) {
                continue;
            }
            let (answer, expires) = value.value();
            let a: Appended = rmp_serde::from_slice(answer).map_err(corrupt)?;
            by_expiry.entry(expires).or_default().push((
                scope,
                idem.to_owned(),
                a.partition,
                a.offset,
                a.timestamp,
            ));
        }
        let first_seq = stream_dedup.len()?;
        for (seq, (expires, keys)) in (first_seq..).zip(by_expiry) {
            for (scope, idem, ..) in &keys {
                dedup.remove((*scope, idem.as_str()))?;
                expiry.remove((expires, *scope, idem.as_str()))?;
            }
            let value = rmp_serde::to_vec(&keys).map_err(corrupt)?;
            stream_dedup.insert((expires, seq), value.as_slice())?;
        }
    }
    Ok(())
}

/// Rewrites a format 2 database as format 3.
///
/// # Errors
/// redb fails or a stored value cannot be decoded.
pub fn v2_to_v3(txn: &WriteTransaction) -> Result<(), StorageError> {
    let mut queues = HashSet::new();
    for row in txn.open_table(QUEUES)?.iter()? {
        let meta: QueueMeta = rmp_serde::from_slice(row?.1.value()).map_err(corrupt)?;
        queues.insert(meta.id);
    }
    {
        let dedup = txn.open_table(DEDUP_V2)?;
        let mut queue_dedup = txn.open_table(QUEUE_DEDUP)?;
        let mut by_expiry: BTreeMap<u64, Vec<(u64, String, u64)>> = BTreeMap::new();
        for row in dedup.iter()? {
            let (key, value) = row?;
            let (scope, idem) = key.value();
            if !queues.contains(&scope) {
                continue;
            }
            let (answer, expires) = value.value();
            let task: u64 = rmp_serde::from_slice(answer).map_err(corrupt)?;
            by_expiry.entry(expires).or_default().push((scope, idem.to_owned(), task));
        }
        let first_seq = queue_dedup.len()?;
        for (seq, (expires, keys)) in (first_seq..).zip(by_expiry) {
            let value = rmp_serde::to_vec(&keys).map_err(corrupt)?;
            queue_dedup.insert((expires, seq), value.as_slice())?;
        }
    }
    txn.delete_table(DEDUP_V2)?;
    txn.delete_table(DEDUP_EXPIRY_V2)?;
    txn.delete_table(TASK_DUE_V2)?;
    super::queues::join_bodies(txn).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::streams::Record;

    use super::super::dedup::Dedup;
    use super::super::streams::{offset_for_time, read_records};
    use super::super::tables::{META, PARTITIONS};
    use super::super::{DB_FILE, FORMAT_VERSION, Storage};
    use super::*;

    fn record(offset: u64) -> Vec<u8> {
        let data = vec![offset as u8; (offset % 9) as usize];
        let record = Record {
            offset,
            timestamp: 1_000 + offset * 10,
            key: None,
            headers: Default::default(),
            data: data.into(),
        };
        rmp_serde::to_vec_named(&record).unwrap()
    }

    /// Writes a database the way format 1 did: one row per record, a time-index entry every
    /// 64 offsets, stream and queue idempotency keys in `dedup`, lease deadlines in `task_due`.
    fn write_format_1(path: &std::path::Path) {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("format_version", 1).unwrap();
            meta.insert("next_id", 3).unwrap();
            let stream = StreamMeta {
                id: 1,
                name: "old".into(),
                partitions: 1,
                epoch: 7,
                retention: Default::default(),
                durability: Default::default(),
                created: 1_000,
            };
            let mut streams = txn.open_table(STREAMS).unwrap();
            streams.insert("old", rmp_serde::to_vec_named(&stream).unwrap().as_slice()).unwrap();
            let mut records = txn.open_table(RECORDS_V1).unwrap();
            let mut times = txn.open_table(RECORD_TIMES).unwrap();
            let mut bytes = 0;
            for offset in 0..150 {
                let r = record(offset);
                bytes += r.len() as u64;
                records.insert((1, 0, offset), r.as_slice()).unwrap();
                if offset % 64 == 0 {
                    times.insert((1, 0, 1_000 + offset * 10, offset), ()).unwrap();
                }
            }
            let mut parts = txn.open_table(PARTITIONS).unwrap();
            parts.insert((1, 0), (0, 150, bytes, 1_000 + 149 * 10)).unwrap();
            let queue =
                QueueMeta { id: 2, info: crate::storage::queues::tests::info("jobs"), dead: 0 };
            let mut queues = txn.open_table(QUEUES).unwrap();
            queues.insert("jobs", rmp_serde::to_vec_named(&queue).unwrap().as_slice()).unwrap();
            txn.open_table(TASK_DUE_V2).unwrap().insert((95_000, 2, 1), ()).unwrap();
            let mut dedup = txn.open_table(DEDUP_V2).unwrap();
            let mut expiry = txn.open_table(DEDUP_EXPIRY_V2).unwrap();
            let answer = Appended { partition: 0, offset: 5, timestamp: 1_050 };
            let answer = rmp_serde::to_vec_named(&answer).unwrap();
            dedup.insert((1, "key-5"), (answer.as_slice(), 90_000)).unwrap();
            expiry.insert((90_000, 1, "key-5"), ()).unwrap();
            let task = rmp_serde::to_vec_named(&42u64).unwrap();
            dedup.insert((2, "task-key"), (task.as_slice(), 90_000)).unwrap();
            expiry.insert((90_000, 2, "task-key"), ()).unwrap();
            // A key of a queue deleted since: dropped on upgrade.
            dedup.insert((9, "gone"), (task.as_slice(), 90_000)).unwrap();
            expiry.insert((90_000, 9, "gone"), ()).unwrap();
        }
        txn.commit().unwrap();
    }

    #[tokio::test]
    async fn a_format_1_file_should_open_with_its_records_and_keys_in_place() {
        let dir = tempfile::tempdir().unwrap();
        write_format_1(&dir.path().join(DB_FILE));
        let storage = Storage::open(dir.path()).await.unwrap();
        assert_eq!(storage.format_version().await.unwrap(), Some(FORMAT_VERSION));
        let (records, at_time, dedup, queue_keys, queue_rows, old_tables) = storage
            .read(|txn| {
                let records = read_records(txn, 1, 0, 0, 1_000, usize::MAX)?;
                let at_time = offset_for_time(txn, 1, 0, 1_000 + 70 * 10, 0, 150)?;
                let dedup: Dedup<Appended> = Dedup::load(txn, STREAM_DEDUP, |id| id == 1)?;
                let queue_keys: Dedup<u64> = Dedup::load(txn, QUEUE_DEDUP, |_| true)?;
                let queue_rows = txn.open_table(QUEUE_DEDUP)?.len()?;
                let old_tables = [
                    txn.open_table(DEDUP_V2).is_ok(),
                    txn.open_table(DEDUP_EXPIRY_V2).is_ok(),
                    txn.open_table(TASK_DUE_V2).is_ok(),
                ];
                Ok((records, at_time, dedup, queue_keys, queue_rows, old_tables))
            })
            .await
            .unwrap();
        let expected: Vec<(u64, Vec<u8>)> = (0..150).map(|o| (o, record(o))).collect();
        let got: Vec<(u64, Vec<u8>)> = records.into_iter().map(|(o, b)| (o, b.to_vec())).collect();
        assert_eq!(got, expected, "every record back, byte for byte");
        assert_eq!(at_time, 70);
        let answer = dedup.find(1, "key-5", 50_000).unwrap();
        assert_eq!((answer.partition, answer.offset, answer.timestamp), (0, 5, 1_050));
        assert_eq!(dedup.find(1, "key-5", 90_000), None, "the window still ends on time");
        assert_eq!(queue_keys.find(2, "task-key", 50_000), Some(42), "a queue key moved");
        assert_eq!(queue_keys.find(2, "task-key", 90_000), None, "with its window");
        assert_eq!(queue_keys.find(9, "gone", 50_000), None, "a deleted queue's key went");
        assert_eq!(queue_rows, 1, "one row per expiry time");
        assert_eq!(old_tables, [false; 3], "the old key and due tables are deleted");
    }
}
