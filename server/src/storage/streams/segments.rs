//! Record segments: each commit stores a partition's new records as one value, keyed by the
//! offset of its first record, so a commit of N records costs one B-tree insert instead of N.
//!
//! A segment is the records' MessagePack encodings (the wire encoding, as in a `records` frame)
//! back to back, each behind its length as a little-endian `u32`. Offsets inside a segment are
//! dense: the i-th record has offset `first + i`. A lookup by offset takes the last segment
//! starting at or before it. Retention removes whole segments; a segment whose tail is still
//! above the low watermark stays stored, and its records below the watermark are skipped by
//! every read (the low watermark, not the segments, says what exists).

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use switchboard_protocol::codec::lean::encode_record_into;
use switchboard_protocol::streams::Record;

use super::super::OpError;
use super::super::tables::{RECORD_TIMES, SEGMENTS, Tables};
use super::{PartState, StreamEvent};

/// Bytes in front of each record in a segment: its length.
const LEN: usize = 4;

/// A commit's records of one partition go into more than one segment past this size, so that
/// reading from the middle of a segment, or trimming it, stays cheap.
const SEGMENT_BYTES: usize = 64 * 1024;

/// The byte ranges of a segment's records, in offset order; an error if a length runs past
/// the end of the segment.
pub fn ranges(segment: &[u8]) -> impl Iterator<Item = Result<Range<usize>, OpError>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= segment.len() {
            return None;
        }
        let Some(len) = segment.get(pos..pos + LEN) else {
            pos = segment.len();
            return Some(Err(OpError::Corrupt("a segment ends inside a record length".into())));
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let start = pos + LEN;
        let end = start + len;
        if end > segment.len() {
            pos = segment.len();
            return Some(Err(OpError::Corrupt("a segment ends inside a record".into())));
        }
        pos = end;
        Some(Ok(start..end))
    })
}

/// Appends one record, behind its length, to a segment being built.
pub fn push_record(segment: &mut Vec<u8>, record: &[u8]) {
    segment.extend_from_slice(&(record.len() as u32).to_le_bytes());
    segment.extend_from_slice(record);
}

/// The first offset of the segment holding `offset`, or `offset` itself if no stored segment
/// starts at or before it.
fn segment_start<T>(segments: &T, stream: u64, partition: u32, offset: u64) -> Result<u64, OpError>
where
    T: ReadableTable<(u64, u32, u64), &'static [u8]>,
{
    match segments.range((stream, partition, 0)..=(stream, partition, offset))?.next_back() {
        Some(row) => Ok(row?.0.value().2),
        None => Ok(offset),
    }
}

/// A partition's records appended in the current transaction, not yet stored.
#[derive(Debug)]
struct Pending {
    first: u64,
    first_ts: u64,
    buf: Vec<u8>,
}

/// The segments the writer is building in the current transaction: one open per partition,
/// and those already full.
#[derive(Debug, Default)]
pub struct PendingSegments {
    by_part: BTreeMap<(u64, u32), Pending>,
    full: Vec<((u64, u32), Pending)>,
    /// The length of the last segment stored: a new segment starts with room for about as
    /// much, so that it neither grows by doubling nor is copied again to shrink it.
    hint: usize,
}

impl PendingSegments {
    /// Encodes `record` onto its partition's pending segment; returns its encoded length.
    pub fn push(&mut self, stream: u64, partition: u32, record: &Record) -> u64 {
        if let Some(open) = self.by_part.get(&(stream, partition))
            && open.buf.len() >= SEGMENT_BYTES
            && let Some(full) = self.by_part.remove(&(stream, partition))
        {
            self.full.push(((stream, partition), full));
        }
        let room = (self.hint + self.hint / 8).clamp(1024, SEGMENT_BYTES + SEGMENT_BYTES / 8);
        let pending = self.by_part.entry((stream, partition)).or_insert_with(|| Pending {
            first: record.offset,
            first_ts: record.timestamp,
            buf: Vec::with_capacity(room),
        });
        let at = pending.buf.len();
        pending.buf.extend_from_slice(&[0; LEN]);
        encode_record_into(&mut pending.buf, record);
        let len = pending.buf.len() - at - LEN;
        pending.buf[at..at + LEN].copy_from_slice(&(len as u32).to_le_bytes());
        len as u64
    }

    /// Forgets what was pending for a stream (it is being deleted).
    pub fn discard(&mut self, stream: u64) {
        self.by_part.retain(|(s, _), _| *s != stream);
        self.full.retain(|((s, _), _)| *s != stream);
    }

    /// Stores every pending segment with its time-index entry and hands each record to the
    /// engine as an `Appended` event (slices of the stored segment, no copy).
    ///
    /// # Errors
    /// redb fails.
    pub fn flush(
        &mut self,
        t: &mut Tables<'_>,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), OpError> {
        // Full segments were closed before the open ones of their partition: offsets stay in
        // order within each partition.
        let open = std::mem::take(&mut self.by_part);
        for ((stream, partition), pending) in self.full.drain(..).chain(open) {
            t.segments.insert((stream, partition, pending.first), pending.buf.as_slice())?;
            t.times.insert((stream, partition, pending.first_ts, pending.first), ())?;
            // The live ring keeps slices of the segment, which hold its whole allocation: give
            // back more than a quarter unused.
            let mut buf = pending.buf;
            self.hint = buf.len();
            if buf.capacity() - buf.len() > buf.len() / 4 {
                buf.shrink_to_fit();
            }
            let segment = Bytes::from(buf);
            for (i, range) in ranges(&segment).enumerate() {
                events.push(StreamEvent::Appended {
                    stream,
                    partition,
                    offset: pending.first + i as u64,
                    record: segment.slice(range?),
                });
            }
        }
        Ok(())
    }
}

/// Removes a partition's records below `new_low` (they start at `low`): whole segments below
/// it go, with their time-index entries; a segment that straddles it stays. Returns the bytes
/// of the records that went below the watermark.
///
/// # Errors
/// redb fails or a segment cannot be read.
pub fn trim(
    t: &mut Tables<'_>,
    stream: u64,
    partition: u32,
    low: u64,
    new_low: u64,
) -> Result<u64, OpError> {
    let start = segment_start(&t.segments, stream, partition, low)?;
    let mut freed = 0u64;
    let mut gone = Vec::new();
    let mut keep_from = new_low;
    for row in t.segments.range((stream, partition, start)..(stream, partition, new_low))? {
        let (key, value) = row?;
        let first = key.value().2;
        let mut count = 0;
        for (i, range) in ranges(value.value()).enumerate() {
            let offset = first + i as u64;
            if offset >= low && offset < new_low {
                freed += range?.len() as u64;
            }
            count += 1;
        }
        if first + count <= new_low {
            gone.push(first);
        } else {
            keep_from = first;
        }
    }
    for first in gone {
        t.segments.remove((stream, partition, first))?;
    }
    // Timestamps never decrease along offsets, so the time index of the removed segments is
    // a prefix of the partition's time index.
    let mut stale = Vec::new();
    for row in t.times.range((stream, partition, 0, 0)..=(stream, partition, u64::MAX, u64::MAX))? {
        let (key, _) = row?;
        let (_, _, ts, offset) = key.value();
        if offset >= keep_from {
            break;
        }
        stale.push((ts, offset));
    }
    for (ts, offset) in stale {
        t.times.remove((stream, partition, ts, offset))?;
    }
    Ok(freed)
}

/// Visits the stored records of `[from, to)` in order, with each record's offset and the
/// segment holding it, until `visit` says stop.
fn each_record(
    txn: &ReadTransaction,
    stream: u64,
    partition: u32,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, &[u8], Range<usize>) -> Result<bool, OpError>,
) -> Result<(), OpError> {
    let segments = txn.open_table(SEGMENTS)?;
    let start = segment_start(&segments, stream, partition, from)?;
    for row in segments.range((stream, partition, start)..(stream, partition, to))? {
        let (key, value) = row?;
        let first = key.value().2;
        let value = value.value();
        for (i, range) in ranges(value).enumerate() {
            let offset = first + i as u64;
            if offset < from {
                continue;
            }
            if offset >= to || !visit(offset, value, range?)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads up to `max` stored records (and about `max_bytes`) of one partition from `from` on.
///
/// # Errors
/// redb fails or a segment cannot be read.
pub fn read_records(
    txn: &ReadTransaction,
    stream: u64,
    partition: u32,
    from: u64,
    max: usize,
    max_bytes: usize,
) -> Result<Vec<(u64, Bytes)>, OpError> {
    let segments = txn.open_table(SEGMENTS)?;
    let start = segment_start(&segments, stream, partition, from)?;
    let mut out = Vec::with_capacity(max.min(4096));
    let mut bytes = 0;
    let mut picked: Vec<(u64, Range<usize>)> = Vec::new();
    for row in segments.range((stream, partition, start)..=(stream, partition, u64::MAX))? {
        let (key, value) = row?;
        let first = key.value().2;
        let value = value.value();
        let mut done = false;
        picked.clear();
        for (i, range) in ranges(value).enumerate() {
            let offset = first + i as u64;
            if offset < from {
                continue;
            }
            let range = range?;
            bytes += range.len();
            picked.push((offset, range));
            if out.len() + picked.len() >= max || bytes >= max_bytes {
                done = true;
                break;
            }
        }
        // The part of the segment that is read is copied once; its records are slices of it.
        if let (Some((_, a)), Some((_, b))) = (picked.first(), picked.last()) {
            let base = a.start;
            let copy = Bytes::copy_from_slice(&value[base..b.end]);
            for (offset, r) in picked.drain(..) {
                out.push((offset, copy.slice(r.start - base..r.end - base)));
            }
        }
        if done {
            break;
        }
    }
    Ok(out)
}

/// The first offset in `[low, high)` whose record has a timestamp at or after `time`, or
/// `high` if there is none: one index seek, then the records of at most one segment before
/// the answer.
///
/// # Errors
/// redb fails or a record cannot be decoded.
pub fn offset_for_time(
    txn: &ReadTransaction,
    stream: u64,
    partition: u32,
    time: u64,
    low: u64,
    high: u64,
) -> Result<u64, OpError> {
    let times = txn.open_table(RECORD_TIMES)?;
    let start =
        match times.range((stream, partition, 0, 0)..(stream, partition, time, 0))?.next_back() {
            Some(row) => row?.0.value().3.max(low),
            None => low,
        };
    let mut found = high;
    each_record(txn, stream, partition, start, high, |offset, segment, range| {
        let record: RecordTime =
            rmp_serde::from_slice(&segment[range]).map_err(|e| OpError::Corrupt(e.to_string()))?;
        if record.timestamp >= time {
            found = offset;
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

/// Just the timestamp of a stored record.
#[derive(Serialize, Deserialize)]
struct RecordTime {
    timestamp: u64,
}

/// The offset below which records must go so the partition holds at most `max_bytes`.
///
/// # Errors
/// redb fails or a segment cannot be read.
pub fn offset_for_bytes(
    txn: &ReadTransaction,
    stream: u64,
    partition: u32,
    part: PartState,
    max_bytes: u64,
) -> Result<u64, OpError> {
    let mut excess = part.bytes.saturating_sub(max_bytes);
    if excess == 0 {
        return Ok(part.low);
    }
    let mut found = part.high;
    each_record(txn, stream, partition, part.low, part.high, |offset, _, range| {
        if excess == 0 {
            found = offset;
            return Ok(false);
        }
        excess = excess.saturating_sub(range.len() as u64);
        Ok(true)
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    #[test]
    fn ranges_should_give_back_each_pushed_record() {
        let mut segment = Vec::new();
        push_record(&mut segment, b"one");
        push_record(&mut segment, b"");
        push_record(&mut segment, b"three");
        let got: Vec<&[u8]> = ranges(&segment).map(|r| &segment[r.unwrap()]).collect();
        assert_eq!(got, vec![&b"one"[..], b"", b"three"]);
    }

    fn record(offset: u64, size: usize) -> Record {
        let data = vec![offset as u8; size];
        Record {
            offset,
            timestamp: 1_000 + offset,
            key: None,
            headers: Default::default(),
            data: data.into(),
        }
    }

    #[test]
    fn a_large_commit_should_be_split_into_segments_and_read_back_from_any_offset() {
        let db = crate::storage::tables::tests::memory_db();
        let txn = db.begin_write().unwrap();
        let mut events = Vec::new();
        let mut encoded = Vec::new();
        {
            let mut t = Tables::open(&txn).unwrap();
            let mut pending = PendingSegments::default();
            for offset in 0..300 {
                let r = record(offset, 500);
                let len = pending.push(1, 0, &r);
                encoded.push(rmp_serde::to_vec_named(&r).unwrap());
                assert_eq!(len as usize, encoded.last().unwrap().len());
            }
            pending.flush(&mut t, &mut events).unwrap();
            assert!(t.segments.len().unwrap() > 1, "300 records of 500 bytes exceed one segment");
            assert_eq!(t.segments.len().unwrap(), t.times.len().unwrap());
        }
        txn.commit().unwrap();
        let told: Vec<(u64, Vec<u8>)> = events
            .into_iter()
            .map(|e| match e {
                StreamEvent::Appended { offset, record, .. } => (offset, record.to_vec()),
                other => panic!("{other:?}"),
            })
            .collect();
        let all: Vec<(u64, Vec<u8>)> = (0..300).map(|o| (o, encoded[o as usize].clone())).collect();
        assert_eq!(told, all, "one event per record, in offset order");
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        for from in [0, 1, 123, 130, 299] {
            let got = read_records(&txn, 1, 0, from, 1_000, usize::MAX).unwrap();
            let got: Vec<(u64, Vec<u8>)> = got.into_iter().map(|(o, b)| (o, b.to_vec())).collect();
            assert_eq!(got, all[from as usize..].to_vec(), "from {from}");
        }
        let some = read_records(&txn, 1, 0, 10, 7, usize::MAX).unwrap();
        assert_eq!(some.iter().map(|(o, _)| *o).collect::<Vec<_>>(), (10..17).collect::<Vec<_>>());
        assert_eq!(offset_for_time(&txn, 1, 0, 1_000 + 200, 0, 300).unwrap(), 200);
        assert_eq!(offset_for_time(&txn, 1, 0, 1_000 + 200, 250, 300).unwrap(), 250);
        assert_eq!(offset_for_time(&txn, 1, 0, 5_000, 0, 300).unwrap(), 300);
    }

    #[test]
    fn ranges_should_refuse_a_truncated_segment() {
        let mut segment = Vec::new();
        push_record(&mut segment, b"record");
        for cut in 1..segment.len() {
            assert!(ranges(&segment[..cut]).any(|r| r.is_err()), "cut at {cut}");
        }
    }
}
