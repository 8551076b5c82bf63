//! Queue tables and the queue state machine, owned by the writer thread.
//!
//! Every transition — enqueue, lease, ack, nack, extend, release, reject, expiry, schedule,
//! dead-letter, redrive — is applied here inside the writer's transaction and answered only
//! after the commit. The thread keeps in memory what dispatch needs (ready tasks ordered by
//! priority then enqueue order, per-key order for ordered queues, and one time-ordered set of
//! due times across all queues) and rebuilds it from redb at start. Deadlines are wall-clock
//! milliseconds, so leases keep their deadlines across a restart.

use std::collections::{BTreeSet, VecDeque};

use foldhash::{HashMap, HashSet};

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::queues::{DeadLetter, QueueInfo, QueueStats};
use switchboard_protocol::{Headers, Payload};

mod lifecycle;
mod line;
mod redrive;

use super::OpError;
use super::dedup::{self, Dedup};
use super::tables::*;

/// A queue as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    pub id: u64,
    pub info: QueueInfo,
    /// Tasks dead-lettered out of this queue so far.
    pub dead: u64,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    Scheduled {
        at: u64,
    },
    Available,
    Leased {
        lease: u64,
        deadline: u64,
        since: u64,
    },
    /// Dead in a queue without a dead-letter queue: kept, never dispatched, redrivable.
    Dead,
}

/// A task's state row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Row {
    priority: u8,
    key: Option<String>,
    enqueued: u64,
    attempts: u32,
    failures: u32,
    phase: Phase,
    reason: Option<String>,
    dead_letter: Option<DeadLetter>,
}

/// A task's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    data: Payload,
    #[serde(default)]
    headers: Headers,
}

struct Mem {
    row: Row,
    body: Body,
    /// The push consumer holding the lease (0: a pull, or unknown after a restart).
    consumer: u64,
}

impl Mem {
    /// Writes the task's row: its state and body, MessagePack `[Row, Body]`, encoded into one
    /// buffer sized for it up front.
    fn store(&self, t: &mut Tables<'_>, queue: u64, task: u64) -> Result<(), OpError> {
        let headers: usize = self.body.headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut row = Vec::with_capacity(128 + self.body.data.len() + headers);
        rmp_serde::encode::write_named(&mut row, &(&self.row, &self.body))
            .map_err(|e| OpError::Storage(format!("cannot encode task {task}: {e}")))?;
        t.tasks.insert((queue, task), row.as_slice())?;
        Ok(())
    }

    /// The same body, key and priority as a fresh task (for dead-lettering and redrive).
    fn copy_as_new(&self) -> NewTask {
        NewTask {
            data: self.body.data.clone(),
            headers: self.body.headers.clone(),
            key: self.row.key.clone(),
            priority: self.row.priority,
            not_before: None,
            delay_ms: None,
        }
    }
}

struct QueueState {
    meta: QueueMeta,
    tasks: HashMap<u64, Mem>,
    /// Dispatchable tasks: (9 - priority, task id). Task ids grow, so this is priority, then
    /// enqueue order.
    ready: BTreeSet<(u8, u64)>,
    /// Ordered queues: the live tasks of each key, oldest first; only the first may be leased.
    keys: HashMap<String, BTreeSet<u64>>,
    redeliveries: u64,
    /// Acks per second over the last seconds: (second, count).
    acks: VecDeque<(u64, u64)>,
    /// The latest acks (task, lease), so a repeated ack answers ok. Bounded and in memory:
    /// after a restart, or [`RECENT_ACKS`] acks later, a repeat answers `lease_expired`.
    recently_acked: HashSet<(u64, u64)>,
    recent_order: VecDeque<(u64, u64)>,
}

/// How many acks per queue are remembered for idempotent repeats.
pub const RECENT_ACKS: usize = 65_536;

/// A task to enqueue.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub data: Payload,
    pub headers: Headers,
    pub key: Option<String>,
    pub priority: u8,
    /// Absolute time before which it is not available.
    pub not_before: Option<u64>,
    /// Delay from the commit's time, if `not_before` is not given.
    pub delay_ms: Option<u64>,
}

/// How a leased task is settled.
#[derive(Debug, Clone)]
pub enum Settlement {
    Ack,
    Nack { delay_ms: Option<u64>, reason: Option<String> },
    Extend { ms: u64 },
    Release,
    Reject { reason: String },
}

/// What changed, told to the queue engine after the commit.
#[derive(Debug, Clone)]
pub enum QueueEvent {
    /// The queue now has `count` dispatchable tasks.
    Available {
        queue: String,
        count: u64,
    },
    /// A lease held by a push consumer ended (settled, expired, or its task died).
    LeaseEnded {
        queue: String,
        consumer: u64,
    },
    Deleted {
        queue: String,
    },
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value, Format::MsgPack).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, OpError> {
    rmp_serde::from_slice(bytes).map_err(|e| OpError::Corrupt(e.to_string()))
}

/// Per-batch bookkeeping: which queues changed and what to tell the engine.
#[derive(Default)]
pub struct Changes {
    touched: BTreeSet<u64>,
    pub events: Vec<QueueEvent>,
}

/// Every queue, as the writer thread sees it.
#[derive(Default)]
pub struct QueuesState {
    by_name: HashMap<String, QueueState>,
    names: HashMap<u64, String>,
    /// (due ms, queue id, task id) for scheduled tasks and leases, rebuilt from the task rows
    /// at start.
    due: BTreeSet<(u64, u64, u64)>,
    /// Idempotency keys of enqueues, answered with the task id.
    dedup: Dedup<u64>,
    pub next_task: u64,
}

impl QueuesState {
    /// Loads every queue and task.
    ///
    /// # Errors
    /// redb fails or a row cannot be decoded.
    pub fn load(txn: &ReadTransaction, next_task: u64) -> Result<QueuesState, OpError> {
        let queues = txn.open_table(QUEUES)?;
        let tasks = txn.open_table(TASKS)?;
        let mut state = QueuesState { next_task, ..QueuesState::default() };
        for row in queues.iter()? {
            let (_, value) = row?;
            let meta: QueueMeta = decode(value.value())?;
            let id = meta.id;
            let mut q = QueueState::new(meta);
            for t in tasks.range((id, 0)..=(id, u64::MAX))? {
                let (key, value) = t?;
                let task = key.value().1;
                let (row, body): (Row, Body) = decode(value.value())?;
                q.tasks.insert(task, Mem { row, body, consumer: 0 });
            }
            let ids: Vec<u64> = q.tasks.keys().copied().collect();
            for task in ids {
                let row = q.tasks[&task].row.clone();
                if q.meta.info.ordered_by_key
                    && row.phase != Phase::Dead
                    && let Some(k) = &row.key
                {
                    q.keys.entry(k.clone()).or_default().insert(task);
                }
                match row.phase {
                    Phase::Scheduled { at } => {
                        state.due.insert((at, id, task));
                    }
                    Phase::Leased { deadline, .. } => {
                        state.due.insert((deadline, id, task));
                    }
                    Phase::Available | Phase::Dead => {}
                }
            }
            let available: Vec<u64> = q
                .tasks
                .iter()
                .filter(|(_, m)| m.row.phase == Phase::Available)
                .map(|(id, _)| *id)
                .collect();
            for task in available {
                q.refresh_ready(task);
            }
            state.names.insert(id, q.meta.info.queue.clone());
            state.by_name.insert(q.meta.info.queue.clone(), q);
        }
        state.dedup = Dedup::load(txn, QUEUE_DEDUP, |id| state.names.contains_key(&id))?;
        Ok(state)
    }

    /// Deletes the task rows this transaction removed, stores the idempotency keys its enqueues
    /// remembered (one row), and
    /// expires a few stored rows that are due (at most [`dedup::EXPIRE_PER_COMMIT`]), so expiry
    /// keeps pace with enqueues whatever their rate. Called at the end of every transaction.
    ///
    /// # Errors
    /// redb fails or a stored row cannot be decoded.
    pub fn flush_keys(&mut self, t: &mut Tables<'_>, now: u64) -> Result<(), OpError> {
        t.flush_removed_tasks()?;
        self.dedup.flush(&mut t.queue_dedup)?;
        self.dedup.expire(&mut t.queue_dedup, now, usize::MAX, dedup::EXPIRE_PER_COMMIT)?;
        Ok(())
    }

    /// Removes enqueue idempotency keys whose window ended at or before `now`, about `max` at
    /// most. Returns how many.
    ///
    /// # Errors
    /// redb fails or a stored row cannot be decoded.
    pub fn expire_keys(
        &mut self,
        t: &mut Tables<'_>,
        now: u64,
        max: usize,
    ) -> Result<usize, OpError> {
        self.dedup.expire(&mut t.queue_dedup, now, max, usize::MAX)
    }

    /// The earliest due time, for the writer's timer.
    pub fn next_due(&self) -> Option<u64> {
        self.due.first().map(|(at, _, _)| *at)
    }

    /// Whether a queue exists.
    pub fn exists(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Every queue's settings.
    pub fn infos(&self) -> Vec<QueueInfo> {
        let mut all: Vec<QueueInfo> = self.by_name.values().map(|q| q.meta.info.clone()).collect();
        all.sort_by(|a, b| a.queue.cmp(&b.queue));
        all
    }

    /// Creates a queue, or returns it if it exists with the same settings (`strict`) or at
    /// all (not `strict`: lazy creation by enqueue, pull, consume and dead-lettering).
    pub fn create(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        info: QueueInfo,
        strict: bool,
    ) -> Result<QueueInfo, OpError> {
        if let Some(q) = self.by_name.get(&info.queue) {
            let mut wanted = info.clone();
            wanted.created = q.meta.info.created;
            return if !strict || q.meta.info == wanted {
                Ok(q.meta.info.clone())
            } else {
                Err(OpError::AlreadyExists(format!(
                    "queue {} exists with other options",
                    info.queue
                )))
            };
        }
        let meta = QueueMeta { id: *next_id, info, dead: 0 };
        *next_id += 1;
        t.queues.insert(meta.info.queue.as_str(), encode(&meta).as_slice())?;
        let name = meta.info.queue.clone();
        self.names.insert(meta.id, name.clone());
        let info = meta.info.clone();
        self.by_name.insert(name, QueueState::new(meta));
        Ok(info)
    }

    fn queue(&mut self, name: &str) -> Result<&mut QueueState, OpError> {
        self.by_name
            .get_mut(name)
            .ok_or_else(|| OpError::NotFound(format!("no queue named {name}")))
    }

    /// Deletes a queue and all its tasks.
    pub fn delete(
        &mut self,
        t: &mut Tables<'_>,
        name: &str,
        changes: &mut Changes,
    ) -> Result<(), OpError> {
        let q = self
            .by_name
            .remove(name)
            .ok_or_else(|| OpError::NotFound(format!("no queue named {name}")))?;
        let qid = q.meta.id;
        self.names.remove(&qid);
        t.queues.remove(name)?;
        t.tasks.retain_in((qid, 0)..=(qid, u64::MAX), |_, _| false)?;
        self.due.retain(|(_, q, _)| *q != qid);
        self.dedup.forget(qid);
        changes.events.push(QueueEvent::Deleted { queue: name.to_owned() });
        Ok(())
    }

    /// Counts and rates of a queue.
    pub fn stats(&self, name: &str, now: u64) -> Result<QueueStats, OpError> {
        let q = self
            .by_name
            .get(name)
            .ok_or_else(|| OpError::NotFound(format!("no queue named {name}")))?;
        let (mut scheduled, mut available, mut leased, mut oldest) = (0, 0, 0, None::<u64>);
        for m in q.tasks.values() {
            match m.row.phase {
                Phase::Scheduled { .. } => scheduled += 1,
                Phase::Available => {
                    available += 1;
                    oldest = Some(oldest.map_or(m.row.enqueued, |o| o.min(m.row.enqueued)));
                }
                Phase::Leased { .. } => leased += 1,
                Phase::Dead => {}
            }
        }
        let second = now / 1000;
        let recent: u64 =
            q.acks.iter().filter(|(s, _)| *s + 5 >= second && *s < second).map(|(_, n)| n).sum();
        Ok(QueueStats {
            queue: name.to_owned(),
            scheduled,
            available,
            leased,
            dead: q.meta.dead,
            redeliveries: q.redeliveries,
            oldest_available_ms: oldest.map_or(0, |o| now.saturating_sub(o)),
            acks_per_sec: recent as f64 / 5.0,
            consumers: 0,
        })
    }

    /// After a batch: tell the engine how many tasks each changed queue can dispatch.
    pub fn finish(&self, changes: &mut Changes) {
        for qid in std::mem::take(&mut changes.touched) {
            if let Some(name) = self.names.get(&qid)
                && let Some(q) = self.by_name.get(name)
            {
                changes.events.push(QueueEvent::Available {
                    queue: name.clone(),
                    count: q.ready.len() as u64,
                });
            }
        }
    }
}

/// Format 2 → 3: joins each task's state row with its body from the `task_data` table of
/// format 2 into one row, then deletes `task_data`.
///
/// # Errors
/// redb fails or a row cannot be decoded.
pub fn join_bodies(txn: &redb::WriteTransaction) -> Result<(), OpError> {
    {
        let mut tasks = txn.open_table(TASKS)?;
        let data = txn.open_table(TASK_DATA_V2)?;
        let mut joined = Vec::new();
        for row in tasks.iter()? {
            let (key, value) = row?;
            let (queue, task) = key.value();
            let state: Row = decode(value.value())?;
            let Some(body) = data.get((queue, task))? else {
                return Err(OpError::Corrupt(format!("task {task} of queue {queue} has no body")));
            };
            let body: Body = decode(body.value())?;
            joined.push(((queue, task), encode(&(&state, &body))));
        }
        for (key, value) in joined {
            tasks.insert(key, value.as_slice())?;
        }
    }
    txn.delete_table(TASK_DATA_V2)?;
    Ok(())
}

/// Settings of an automatically created dead-letter queue: it keeps its tasks however often
/// they fail, and has no dead-letter queue of its own.
pub fn dead_letter_queue_info(name: &str, origin: &QueueInfo, now: u64) -> QueueInfo {
    QueueInfo {
        queue: name.to_owned(),
        max_attempts: 0,
        dead_letter: None,
        ordered_by_key: false,
        created: now,
        ..origin.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use redb::ReadableDatabase;

    use super::*;
    use crate::storage::tables::tests::memory_db;

    /// Settings of a queue for tests.
    pub(crate) fn info(name: &str) -> QueueInfo {
        QueueInfo {
            queue: name.into(),
            lease_ms: 30_000,
            max_lease_ms: 600_000,
            max_attempts: 5,
            backoff_ms: vec![1_000],
            dead_letter: None,
            dedup_window_ms: 120_000,
            max_length: 1_000,
            ordered_by_key: false,
            created: 1_000,
        }
    }

    fn row(phase: Phase) -> Row {
        Row {
            priority: 0,
            key: None,
            enqueued: 1_000,
            attempts: 1,
            failures: 0,
            phase,
            reason: None,
            dead_letter: None,
        }
    }

    #[test]
    fn format_2_rows_and_bodies_should_join_and_load_with_their_leases() {
        let db = memory_db();
        let txn = db.begin_write().unwrap();
        {
            let meta = QueueMeta { id: 4, info: info("jobs"), dead: 0 };
            txn.open_table(QUEUES).unwrap().insert("jobs", encode(&meta).as_slice()).unwrap();
            let mut tasks = txn.open_table(TASKS).unwrap();
            let mut data = txn.open_table(TASK_DATA_V2).unwrap();
            let leased = Phase::Leased { lease: 9, deadline: 50_000, since: 20_000 };
            tasks.insert((4, 1), encode(&row(Phase::Available)).as_slice()).unwrap();
            tasks.insert((4, 2), encode(&row(leased)).as_slice()).unwrap();
            for (task, bytes) in [(1u64, &b"one"[..]), (2, b"two")] {
                let body = Body { data: bytes.to_vec().into(), headers: Headers::default() };
                data.insert((4, task), encode(&body).as_slice()).unwrap();
            }
        }
        join_bodies(&txn).unwrap();
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        assert!(read.open_table(TASK_DATA_V2).is_err(), "the body table is gone");
        let state = QueuesState::load(&read, 10).unwrap();
        let q = &state.by_name["jobs"];
        assert_eq!(q.tasks[&1].body.data.as_bytes(), b"one");
        assert_eq!(q.tasks[&2].body.data.as_bytes(), b"two");
        assert_eq!(q.ready.iter().map(|(_, id)| *id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(state.next_due(), Some(50_000), "the lease deadline comes from the row");
    }
}
