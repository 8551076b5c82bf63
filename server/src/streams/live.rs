//! The live view of every stream: watermarks, sizes and a ring of recent records per partition,
//! updated by the storage writer right after each commit and read by readers.
//!
//! Readers at the tail take records from the ring without touching the disk; older positions
//! are read from redb in batches. Because the writer updates the ring and the high watermark
//! only after the commit, and readers read strictly by offset, the switch from stored to live
//! records can neither skip nor repeat one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::storage::streams::{PartState, StreamEvent, StreamMeta};

/// How many recent records each partition keeps in memory, at most.
pub const RING_RECORDS: usize = 4096;
/// How many bytes of recent records each partition keeps in memory, at most.
pub const RING_BYTES: usize = 4 * 1024 * 1024;

/// One stream as readers see it.
pub struct LiveStream {
    pub meta: StreamMeta,
    parts: Vec<Mutex<LivePart>>,
    /// Woken after every commit that changed the stream.
    pub changed: Notify,
    deleted: AtomicBool,
}

/// One partition's committed state.
#[derive(Default)]
pub struct LivePart {
    pub low: u64,
    pub high: u64,
    pub bytes: u64,
    ring: VecDeque<(u64, Bytes)>,
    ring_bytes: usize,
}

impl LivePart {
    /// Up to `max` records (and about `max_bytes`) from `from` on, if the ring still holds
    /// `from`.
    pub fn from_ring(&self, from: u64, max: usize, max_bytes: usize) -> Option<Vec<(u64, Bytes)>> {
        let first = self.ring.front()?.0;
        if from < first || from >= self.high {
            return None;
        }
        let start = (from - first) as usize;
        let mut bytes = 0;
        let mut out = Vec::new();
        for (offset, record) in self.ring.iter().skip(start).take(max) {
            if !out.is_empty() && bytes + record.len() > max_bytes {
                break;
            }
            bytes += record.len();
            out.push((*offset, record.clone()));
        }
        Some(out)
    }
}

impl LiveStream {
    fn new(meta: StreamMeta, parts: &[PartState]) -> LiveStream {
        let parts = parts
            .iter()
            .map(|p| {
                Mutex::new(LivePart {
                    low: p.low,
                    high: p.high,
                    bytes: p.bytes,
                    ..LivePart::default()
                })
            })
            .collect();
        LiveStream { meta, parts, changed: Notify::new(), deleted: AtomicBool::new(false) }
    }

    /// Locks one partition's state; `None` if the partition does not exist.
    pub fn part(&self, partition: u32) -> Option<MutexGuard<'_, LivePart>> {
        self.parts.get(partition as usize).map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// (low, high, bytes) of a partition.
    pub fn watermarks(&self, partition: u32) -> Option<(u64, u64, u64)> {
        self.part(partition).map(|p| (p.low, p.high, p.bytes))
    }

    /// Whether the stream was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }
}

/// Every live stream, by name and by id.
#[derive(Default)]
pub struct Registry {
    by_name: RwLock<HashMap<String, Arc<LiveStream>>>,
    by_id: RwLock<HashMap<u64, Arc<LiveStream>>>,
}

impl Registry {
    /// The stream named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LiveStream>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Every stream.
    pub fn all(&self) -> Vec<Arc<LiveStream>> {
        let mut all: Vec<_> =
            self.by_name.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        all
    }

    /// Adds a stream as stored (at start).
    pub fn insert(&self, meta: StreamMeta, parts: &[PartState]) {
        let live = Arc::new(LiveStream::new(meta, parts));
        self.by_id.write().unwrap_or_else(|p| p.into_inner()).insert(live.meta.id, live.clone());
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(live.meta.name.clone(), live);
    }

    /// Applies what one commit changed, then wakes the readers of every changed stream.
    pub fn apply(&self, events: Vec<StreamEvent>) {
        let mut touched: Vec<Arc<LiveStream>> = Vec::new();
        let mut last_id = None;
        let mut last: Option<Arc<LiveStream>> = None;
        for event in events {
            match event {
                StreamEvent::Created { meta, parts } => self.insert(meta, &parts),
                StreamEvent::Appended { stream, partition, offset, record } => {
                    if last_id != Some(stream) {
                        last = self
                            .by_id
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&stream)
                            .cloned();
                        last_id = Some(stream);
                    }
                    let Some(live) = &last else { continue };
                    if let Some(mut part) = live.part(partition) {
                        part.high = offset + 1;
                        part.bytes += record.len() as u64;
                        part.ring_bytes += record.len();
                        part.ring.push_back((offset, record));
                        while part.ring.len() > RING_RECORDS || part.ring_bytes > RING_BYTES {
                            match part.ring.pop_front() {
                                Some((_, r)) => part.ring_bytes -= r.len(),
                                None => break,
                            }
                        }
                    }
                    if !touched.iter().any(|t| Arc::ptr_eq(t, live)) {
                        touched.push(live.clone());
                    }
                }
                StreamEvent::Trimmed { stream, partition, low, bytes } => {
                    let live =
                        self.by_id.read().unwrap_or_else(|p| p.into_inner()).get(&stream).cloned();
                    let Some(live) = live else { continue };
                    if let Some(mut part) = live.part(partition) {
                        part.low = low;
                        part.bytes = bytes;
                        while part.ring.front().is_some_and(|(o, _)| *o < low) {
                            if let Some((_, r)) = part.ring.pop_front() {
                                part.ring_bytes -= r.len();
                            }
                        }
                    }
                    touched.push(live);
                }
                StreamEvent::Deleted { stream, name } => {
                    self.by_name.write().unwrap_or_else(|p| p.into_inner()).remove(&name);
                    let live =
                        self.by_id.write().unwrap_or_else(|p| p.into_inner()).remove(&stream);
                    if let Some(live) = live {
                        live.deleted.store(true, Ordering::Release);
                        touched.push(live);
                    }
                    last_id = None;
                }
            }
        }
        for live in touched {
            live.changed.notify_waiters();
        }
    }
}
