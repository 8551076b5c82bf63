//! Stream tables: the writer-side state and operations applied inside a write transaction, and
//! (in `segments`) the read-side queries run in read transactions on blocking threads.

pub mod segments;

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::streams::{Durability, Record, Retention, StreamInfo, partition_for_key};
use switchboard_protocol::{Headers, Payload};

use super::OpError;
use super::dedup::{self, Dedup};
use super::tables::*;
use segments::PendingSegments;
pub use segments::{offset_for_bytes, offset_for_time, read_records};

/// A stream's settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub id: u64,
    pub name: String,
    pub partitions: u32,
    pub epoch: u64,
    pub retention: Retention,
    pub durability: Durability,
    pub created: u64,
}

impl StreamMeta {
    /// The public view.
    pub fn info(&self) -> StreamInfo {
        StreamInfo {
            stream: self.name.clone(),
            partitions: self.partitions,
            epoch: self.epoch,
            retention: self.retention,
            durability: self.durability,
            created: self.created,
        }
    }
}

/// One partition's committed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartState {
    /// First offset stored.
    pub low: u64,
    /// Next offset to write.
    pub high: u64,
    pub bytes: u64,
    pub last_ts: u64,
}

/// Options of a stream to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    pub partitions: u32,
    pub retention: Retention,
    pub durability: Durability,
}

/// A record to append.
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    pub key: Option<String>,
    pub headers: Headers,
    pub data: Payload,
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    pub partition: u32,
    pub offset: u64,
    pub timestamp: u64,
}

/// What changed, told to the stream engine right after the commit that made it durable.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    Created { meta: StreamMeta, parts: Vec<PartState> },
    Appended { stream: u64, partition: u32, offset: u64, record: Bytes },
    Trimmed { stream: u64, partition: u32, low: u64, bytes: u64 },
    Deleted { stream: u64, name: String },
}

/// The writer thread's view of every stream: the sequencer for offsets and timestamps.
#[derive(Debug, Default)]
pub struct StreamsState {
    by_name: HashMap<String, Entry>,
    names: HashMap<u64, String>,
    /// Records appended in the current transaction, stored as one segment per partition.
    pending: PendingSegments,
    dedup: Dedup<Appended>,
}

#[derive(Debug)]
struct Entry {
    meta: StreamMeta,
    parts: Vec<PartState>,
    round_robin: u32,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of integers and strings always encode.
    codec::encode(value, Format::MsgPack).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, OpError> {
    rmp_serde::from_slice(bytes).map_err(|e| OpError::Corrupt(e.to_string()))
}

impl StreamsState {
    /// Loads every stream from the database.
    ///
    /// # Errors
    /// redb fails or a stored value cannot be decoded.
    pub fn load(txn: &ReadTransaction) -> Result<StreamsState, OpError> {
        let streams = txn.open_table(STREAMS)?;
        let partitions = txn.open_table(PARTITIONS)?;
        let mut state = StreamsState::default();
        for row in streams.iter()? {
            let (_, value) = row?;
            let meta: StreamMeta = decode(value.value())?;
            let mut parts = Vec::with_capacity(meta.partitions as usize);
            for p in 0..meta.partitions {
                let (low, high, bytes, last_ts) =
                    partitions.get((meta.id, p))?.map(|v| v.value()).unwrap_or_default();
                parts.push(PartState { low, high, bytes, last_ts });
            }
            state.names.insert(meta.id, meta.name.clone());
            state.by_name.insert(meta.name.clone(), Entry { meta, parts, round_robin: 0 });
        }
        state.dedup = Dedup::load(txn, STREAM_DEDUP, |id| state.names.contains_key(&id))?;
        Ok(state)
    }

    /// Every stream with its partitions, for the engine to build its live view at start.
    pub fn snapshot(&self) -> Vec<(StreamMeta, Vec<PartState>)> {
        self.by_name.values().map(|e| (e.meta.clone(), e.parts.clone())).collect()
    }

    /// The durability of a stream's appends (`Immediate` for unknown streams).
    pub fn durability(&self, name: &str) -> Durability {
        self.by_name.get(name).map(|e| e.meta.durability).unwrap_or_default()
    }

    /// Creates a stream, or returns the existing one if the options match.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        name: &str,
        options: &StreamOptions,
        now: u64,
        epoch: u64,
        events: &mut Vec<StreamEvent>,
    ) -> Result<StreamMeta, OpError> {
        if let Some(e) = self.by_name.get(name) {
            let same = e.meta.partitions == options.partitions
                && e.meta.retention == options.retention
                && e.meta.durability == options.durability;
            return if same {
                Ok(e.meta.clone())
            } else {
                Err(OpError::AlreadyExists(format!("stream {name} exists with other options")))
            };
        }
        let meta = StreamMeta {
            id: *next_id,
            name: name.to_owned(),
            partitions: options.partitions,
            epoch,
            retention: options.retention,
            durability: options.durability,
            created: now,
        };
        *next_id += 1;
        t.streams.insert(name, encode(&meta).as_slice())?;
        let parts = vec![PartState::default(); options.partitions as usize];
        for p in 0..options.partitions {
            t.partitions.insert((meta.id, p), (0, 0, 0, 0))?;
        }
        events.push(StreamEvent::Created { meta: meta.clone(), parts: parts.clone() });
        self.names.insert(meta.id, name.to_owned());
        self.by_name.insert(name.to_owned(), Entry { meta: meta.clone(), parts, round_robin: 0 });
        Ok(meta)
    }

    /// Whether a stream exists.
    pub fn exists(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Appends one record. A repeated idempotency key within its window answers the original
    /// position and writes nothing.
    #[allow(clippy::too_many_arguments)]
    /// The record is stored by the next [`StreamsState::flush_appends`].
    pub fn append(
        &mut self,
        name: &str,
        record: NewRecord,
        idempotency_key: Option<&str>,
        now: u64,
        dedup_window_ms: u64,
        dirty: &mut BTreeSet<(u64, u32)>,
    ) -> Result<Appended, OpError> {
        let entry = self
            .by_name
            .get_mut(name)
            .ok_or_else(|| OpError::NotFound(format!("no stream named {name}")))?;
        let id = entry.meta.id;
        let partitions = entry.meta.partitions;
        let partition = match &record.key {
            Some(key) => partition_for_key(key, partitions),
            None => entry.round_robin % partitions,
        };
        let part = &mut entry.parts[partition as usize];
        let timestamp = now.max(part.last_ts);
        let offset = part.high;
        let appended = Appended { partition, offset, timestamp };
        if let Some(key) = idempotency_key {
            let expires = now.saturating_add(dedup_window_ms);
            if let Some(original) = self.dedup.find_or_remember(id, key, now, appended, expires) {
                return Ok(original);
            }
        }
        if record.key.is_none() {
            entry.round_robin = entry.round_robin.wrapping_add(1);
        }
        let part = &mut entry.parts[partition as usize];
        let record = Record {
            offset,
            timestamp,
            key: record.key,
            headers: record.headers,
            data: record.data,
        };
        let len = self.pending.push(id, partition, &record);
        part.high += 1;
        part.bytes += len;
        part.last_ts = timestamp;
        dirty.insert((id, partition));
        Ok(appended)
    }

    /// Stores the records and idempotency keys appended since the last flush, and queues their
    /// `Appended` events. Called before anything that reads or removes stored records in the
    /// same transaction (a trim, a deletion) and at the end of every transaction.
    ///
    /// # Errors
    /// redb fails.
    pub fn flush_appends(
        &mut self,
        t: &mut Tables<'_>,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), OpError> {
        self.pending.flush(t, events)?;
        self.dedup.flush(&mut t.stream_dedup)
    }

    /// Writes the partition rows changed in this batch.
    pub fn flush_dirty(
        &self,
        t: &mut Tables<'_>,
        dirty: &BTreeSet<(u64, u32)>,
    ) -> Result<(), OpError> {
        for &(id, p) in dirty {
            let Some(name) = self.names.get(&id) else {
                continue;
            };
            let Some(entry) = self.by_name.get(name) else {
                continue;
            };
            let s = entry.parts[p as usize];
            t.partitions.insert((id, p), (s.low, s.high, s.bytes, s.last_ts))?;
        }
        Ok(())
    }

    /// Stores a group's committed offset.
    pub fn commit(
        &self,
        t: &mut Tables<'_>,
        name: &str,
        group: &str,
        partition: u32,
        offset: u64,
        generation: u64,
    ) -> Result<(), OpError> {
        let entry = self
            .by_name
            .get(name)
            .ok_or_else(|| OpError::NotFound(format!("no stream named {name}")))?;
        let part = entry.parts.get(partition as usize).ok_or_else(|| {
            OpError::Invalid(format!("stream {name} has no partition {partition}"))
        })?;
        if offset > part.high {
            return Err(OpError::OutOfRange {
                message: format!("offset {offset} is past the high watermark {}", part.high),
                low: part.low,
            });
        }
        t.groups.insert((entry.meta.id, group, partition), (offset, generation))?;
        Ok(())
    }

    /// Removes records below `below` (at most `max` of them) from one partition.
    #[allow(clippy::too_many_arguments)]
    pub fn trim(
        &mut self,
        t: &mut Tables<'_>,
        stream: u64,
        partition: u32,
        below: u64,
        max: u64,
        dirty: &mut BTreeSet<(u64, u32)>,
        events: &mut Vec<StreamEvent>,
    ) -> Result<u64, OpError> {
        let Some(name) = self.names.get(&stream) else {
            return Ok(0);
        };
        let Some(entry) = self.by_name.get_mut(name) else {
            return Ok(0);
        };
        let Some(part) = entry.parts.get_mut(partition as usize) else {
            return Ok(0);
        };
        let new_low = below.min(part.high).min(part.low.saturating_add(max));
        if new_low <= part.low {
            return Ok(0);
        }
        let freed = segments::trim(t, stream, partition, part.low, new_low)?;
        let removed = new_low - part.low;
        part.low = new_low;
        part.bytes = part.bytes.saturating_sub(freed);
        dirty.insert((stream, partition));
        events.push(StreamEvent::Trimmed { stream, partition, low: new_low, bytes: part.bytes });
        Ok(removed)
    }

    /// Deletes a stream and everything stored for it.
    pub fn delete(
        &mut self,
        t: &mut Tables<'_>,
        name: &str,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), OpError> {
        let entry = self
            .by_name
            .remove(name)
            .ok_or_else(|| OpError::NotFound(format!("no stream named {name}")))?;
        let id = entry.meta.id;
        self.names.remove(&id);
        self.pending.discard(id);
        self.dedup.forget(id);
        t.streams.remove(name)?;
        for p in 0..entry.meta.partitions {
            t.partitions.remove((id, p))?;
        }
        t.segments.retain_in((id, 0, 0)..=(id, u32::MAX, u64::MAX), |_, _| false)?;
        t.times.retain_in((id, 0, 0, 0)..=(id, u32::MAX, u64::MAX, u64::MAX), |_, _| false)?;
        t.groups.retain_in((id, "", 0)..(id + 1, "", 0), |_, _| false)?;
        events.push(StreamEvent::Deleted { stream: id, name: name.to_owned() });
        Ok(())
    }
}

impl StreamsState {
    /// Removes stream idempotency keys whose window ended at or before `now`, about `max` at
    /// most. Returns how many.
    ///
    /// # Errors
    /// redb fails or a stored row cannot be decoded.
    pub fn expire_dedup(
        &mut self,
        t: &mut Tables<'_>,
        now: u64,
        max: usize,
    ) -> Result<usize, OpError> {
        self.dedup.expire(&mut t.stream_dedup, now, max, usize::MAX)
    }

    /// Expires a few of the stream idempotency keys that are due (at most
    /// [`dedup::EXPIRE_PER_COMMIT`] commits' worth): called in every transaction, so expiry
    /// keeps pace with appends whatever their rate.
    ///
    /// # Errors
    /// redb fails or a stored row cannot be decoded.
    pub fn expire_some_keys(&mut self, t: &mut Tables<'_>, now: u64) -> Result<(), OpError> {
        let t = &mut t.stream_dedup;
        self.dedup.expire(t, now, usize::MAX, dedup::EXPIRE_PER_COMMIT).map(|_| ())
    }
}

/// Every committed offset of a stream's groups: (group, partition, offset, generation).
///
/// # Errors
/// redb fails.
pub fn group_offsets(
    txn: &ReadTransaction,
    stream: u64,
) -> Result<Vec<(String, u32, u64, u64)>, OpError> {
    let groups = txn.open_table(GROUP_OFFSETS)?;
    let mut out = Vec::new();
    for row in groups.range((stream, "", 0)..(stream + 1, "", 0))? {
        let (key, value) = row?;
        let (_, group, partition) = key.value();
        let (offset, generation) = value.value();
        out.push((group.to_owned(), partition, offset, generation));
    }
    Ok(out)
}
