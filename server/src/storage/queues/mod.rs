//! Queue tables and the queue state machine, owned by the writer thread.
//!
//! Every transition — enqueue, lease, ack, nack, extend, release, reject, expiry, schedule,
//! dead-letter, redrive — is applied here inside the writer's transaction and answered only
//! after the commit. The thread keeps in memory what dispatch needs (ready tasks ordered by
//! priority then enqueue order, per-key order for ordered queues, and one time-ordered set of
//! due times across all queues) and rebuilds it from redb at start. Deadlines are wall-clock
//! milliseconds, so leases keep their deadlines across a restart.

use std::collections::{BTreeSet, HashMap, VecDeque};

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::queues::{DeadLetter, QueueInfo, QueueStats};
use switchboard_protocol::{Headers, Payload};

mod lifecycle;
mod line;
mod redrive;

use super::OpError;
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
    recently_acked: std::collections::HashSet<(u64, u64)>,
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
    /// (due ms, queue id, task id) for scheduled tasks and leases.
    due: BTreeSet<(u64, u64, u64)>,
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
        let data = txn.open_table(TASK_DATA)?;
        let mut state = QueuesState { next_task, ..QueuesState::default() };
        for row in queues.iter()? {
            let (_, value) = row?;
            let meta: QueueMeta = decode(value.value())?;
            let id = meta.id;
            let mut q = QueueState::new(meta);
            for t in tasks.range((id, 0)..=(id, u64::MAX))? {
                let (key, value) = t?;
                let task = key.value().1;
                let row: Row = decode(value.value())?;
                let body: Body = match data.get((id, task))? {
                    Some(b) => decode(b.value())?,
                    None => {
                        return Err(OpError::Corrupt(format!(
                            "task {task} of queue {id} has no body"
                        )));
                    }
                };
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
        Ok(state)
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
        t.task_data.retain_in((qid, 0)..=(qid, u64::MAX), |_, _| false)?;
        let due: Vec<(u64, u64, u64)> =
            self.due.iter().filter(|(_, q, _)| *q == qid).copied().collect();
        for key in due {
            self.due.remove(&key);
            t.task_due.remove(key)?;
        }
        t.dedup.retain_in((qid, "")..(qid + 1, ""), |_, _| false)?;
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
