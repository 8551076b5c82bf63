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
use switchboard_protocol::queues::{DeadLetter, QueueInfo, QueueStats, Task};
use switchboard_protocol::{Headers, Payload};

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

    /// Enqueues a task; a repeated idempotency key within the window answers the first id.
    pub fn enqueue(
        &mut self,
        t: &mut Tables<'_>,
        name: &str,
        task: NewTask,
        idempotency_key: Option<&str>,
        now: u64,
        changes: &mut Changes,
    ) -> Result<u64, OpError> {
        let q = self.queue(name)?;
        let qid = q.meta.id;
        if let Some(key) = idempotency_key
            && let Some(found) = t.dedup.get((qid, key))?
        {
            let (answer, expires) = found.value();
            if expires > now {
                return decode(answer);
            }
        }
        if q.tasks.len() as u64 >= q.meta.info.max_length {
            return Err(OpError::Full(format!(
                "queue {name} holds its maximum of {} tasks",
                q.meta.info.max_length
            )));
        }
        let window = q.meta.info.dedup_window_ms;
        let id = self.next_task;
        self.next_task += 1;
        let at =
            task.not_before.or(task.delay_ms.map(|d| now.saturating_add(d))).filter(|at| *at > now);
        let row = Row {
            priority: task.priority,
            key: task.key,
            enqueued: now,
            attempts: 0,
            failures: 0,
            phase: match at {
                Some(at) => Phase::Scheduled { at },
                None => Phase::Available,
            },
            reason: None,
            dead_letter: None,
        };
        let body = Body { data: task.data, headers: task.headers };
        t.task_data.insert((qid, id), encode(&body).as_slice())?;
        let q = self.queue(name)?;
        q.insert(t, id, Mem { row, body, consumer: 0 })?;
        if let Some(at) = at {
            t.task_due.insert((at, qid, id), ())?;
            self.due.insert((at, qid, id));
        }
        if let Some(key) = idempotency_key {
            let expires = now.saturating_add(window);
            t.dedup.insert((qid, key), (encode(&id).as_slice(), expires))?;
            t.dedup_expiry.insert((expires, qid, key), ())?;
        }
        changes.touched.insert(qid);
        Ok(id)
    }

    /// Leases up to `max` dispatchable tasks to `consumer`.
    pub fn lease(
        &mut self,
        t: &mut Tables<'_>,
        name: &str,
        max: u32,
        consumer: u64,
        now: u64,
        changes: &mut Changes,
    ) -> Result<Vec<Task>, OpError> {
        let mut leased = Vec::new();
        let q = self
            .by_name
            .get_mut(name)
            .ok_or_else(|| OpError::NotFound(format!("no queue named {name}")))?;
        let qid = q.meta.id;
        let lease_ms = q.meta.info.lease_ms;
        for _ in 0..max {
            let Some((_, id)) = q.ready.pop_first() else { break };
            let lease = self.next_task;
            self.next_task += 1;
            let deadline = now.saturating_add(lease_ms);
            let Some(m) = q.tasks.get_mut(&id) else { continue };
            m.row.attempts += 1;
            if m.row.attempts > 1 {
                q.redeliveries += 1;
            }
            m.row.phase = Phase::Leased { lease, deadline, since: now };
            m.consumer = consumer;
            t.tasks.insert((qid, id), encode(&m.row).as_slice())?;
            t.task_due.insert((deadline, qid, id), ())?;
            self.due.insert((deadline, qid, id));
            leased.push(Task {
                queue: name.to_owned(),
                id,
                lease,
                deadline,
                attempt: m.row.attempts,
                priority: m.row.priority,
                key: m.row.key.clone(),
                headers: m.body.headers.clone(),
                data: m.body.data.clone(),
                enqueued: m.row.enqueued,
                dead_letter: m.row.dead_letter.clone(),
            });
        }
        // Always report the count after a lease, even an empty one: dispatchers rely on it to
        // correct their estimate.
        changes.touched.insert(qid);
        Ok(leased)
    }

    /// Settles a leased task. Returns the new deadline for `Extend`.
    #[allow(clippy::too_many_arguments)]
    pub fn settle(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        name: &str,
        task: u64,
        lease: u64,
        how: Settlement,
        now: u64,
        changes: &mut Changes,
    ) -> Result<Option<u64>, OpError> {
        let q = self.queue(name)?;
        let qid = q.meta.id;
        let Some(m) = q.tasks.get(&task) else {
            // A repeated ack of the same lease must not fail; any other settle of a task that
            // left the queue (acked under another lease, dead-lettered) finds no valid lease.
            return match how {
                Settlement::Ack if q.recently_acked.contains(&(task, lease)) => Ok(None),
                _ => {
                    Err(OpError::LeaseExpired(format!("task {task} is no longer in queue {name}")))
                }
            };
        };
        let (deadline, since) = match m.row.phase {
            Phase::Leased { lease: current, deadline, since }
                if current == lease && deadline > now =>
            {
                (deadline, since)
            }
            _ => {
                return Err(OpError::LeaseExpired(format!(
                    "lease {lease} of task {task} is no longer valid"
                )));
            }
        };
        let consumer = m.consumer;
        let info = q.meta.info.clone();
        changes.touched.insert(qid);
        t.task_due.remove((deadline, qid, task))?;
        self.due.remove(&(deadline, qid, task));
        if consumer != 0 && !matches!(how, Settlement::Extend { .. }) {
            changes.events.push(QueueEvent::LeaseEnded { queue: name.to_owned(), consumer });
        }
        match how {
            Settlement::Ack => {
                let q = self.queue(name)?;
                q.remove(t, task)?;
                q.remember_ack(task, lease);
                let second = now / 1000;
                match q.acks.back_mut() {
                    Some((s, n)) if *s == second => *n += 1,
                    _ => q.acks.push_back((second, 1)),
                }
                while q.acks.front().is_some_and(|(s, _)| *s + 5 < second) {
                    q.acks.pop_front();
                }
                Ok(None)
            }
            Settlement::Extend { ms } => {
                let new_deadline = now
                    .saturating_add(ms)
                    .min(since.saturating_add(info.max_lease_ms))
                    .max(deadline);
                let q = self.queue(name)?;
                if let Some(m) = q.tasks.get_mut(&task) {
                    m.row.phase = Phase::Leased { lease, deadline: new_deadline, since };
                    t.tasks.insert((qid, task), encode(&m.row).as_slice())?;
                }
                t.task_due.insert((new_deadline, qid, task), ())?;
                self.due.insert((new_deadline, qid, task));
                Ok(Some(new_deadline))
            }
            Settlement::Release => {
                let q = self.queue(name)?;
                q.set_phase(t, task, Phase::Available)?;
                Ok(None)
            }
            Settlement::Nack { delay_ms, reason } => {
                self.fail(t, next_id, name, task, delay_ms, reason, now, changes)?;
                Ok(None)
            }
            Settlement::Reject { reason } => {
                self.dead_letter(t, next_id, name, task, Some(reason), now, changes)?;
                Ok(None)
            }
        }
    }

    /// Counts a failure: redeliver after a delay, or dead-letter after `max_attempts`.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        name: &str,
        task: u64,
        delay_ms: Option<u64>,
        reason: Option<String>,
        now: u64,
        changes: &mut Changes,
    ) -> Result<(), OpError> {
        let q = self.queue(name)?;
        let qid = q.meta.id;
        let info = q.meta.info.clone();
        let Some(m) = q.tasks.get_mut(&task) else { return Ok(()) };
        m.row.failures += 1;
        m.row.reason = reason.clone();
        let failures = m.row.failures;
        if info.max_attempts > 0 && failures >= info.max_attempts {
            return self.dead_letter(t, next_id, name, task, reason, now, changes);
        }
        let step =
            (failures as usize).saturating_sub(1).min(info.backoff_ms.len().saturating_sub(1));
        let delay = delay_ms.unwrap_or_else(|| info.backoff_ms.get(step).copied().unwrap_or(0));
        if delay == 0 {
            return q.set_phase(t, task, Phase::Available);
        }
        let at = now.saturating_add(delay);
        q.set_phase(t, task, Phase::Scheduled { at })?;
        t.task_due.insert((at, qid, task), ())?;
        self.due.insert((at, qid, task));
        Ok(())
    }

    /// Moves a task to its queue's dead-letter queue (created if needed) with its history, or
    /// parks it as dead when the queue has none.
    #[allow(clippy::too_many_arguments)]
    fn dead_letter(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        name: &str,
        task: u64,
        reason: Option<String>,
        now: u64,
        changes: &mut Changes,
    ) -> Result<(), OpError> {
        let q = self.queue(name)?;
        q.meta.dead += 1;
        t.queues.insert(name, encode(&q.meta).as_slice())?;
        let target = q.meta.info.dead_letter.clone();
        let Some(target) = target.filter(|t| t != name) else {
            if let Some(m) = q.tasks.get_mut(&task) {
                m.row.reason = reason;
            }
            return q.set_phase(t, task, Phase::Dead);
        };
        if !self.exists(&target) {
            let info = dead_letter_queue_info(&target, &self.by_name[name].meta.info, now);
            self.create(t, next_id, info, false)?;
        }
        let dlq = &self.by_name[&target];
        if dlq.tasks.len() as u64 >= dlq.meta.info.max_length {
            // A full dead-letter queue must not lose the task: it stays here, dead.
            tracing::warn!(queue = name, task, dead_letter = %target, "dead-letter queue full; task parked as dead");
            let q = self.queue(name)?;
            if let Some(m) = q.tasks.get_mut(&task) {
                m.row.reason = reason;
            }
            return q.set_phase(t, task, Phase::Dead);
        }
        let q = self.queue(name)?;
        let Some(m) = q.tasks.get(&task) else { return Ok(()) };
        let history = DeadLetter {
            queue: name.to_owned(),
            task,
            attempts: m.row.attempts,
            failures: m.row.failures,
            reason: reason.or_else(|| m.row.reason.clone()),
            enqueued: m.row.enqueued,
            died: now,
        };
        let new_task = NewTask {
            data: m.body.data.clone(),
            headers: m.body.headers.clone(),
            key: m.row.key.clone(),
            priority: m.row.priority,
            not_before: None,
            delay_ms: None,
        };
        q.remove(t, task)?;
        let moved = self.enqueue(t, &target, new_task, None, now, changes)?;
        let dlq = self.queue(&target)?;
        if let Some(m) = dlq.tasks.get_mut(&moved) {
            m.row.dead_letter = Some(history);
            t.tasks.insert((dlq.meta.id, moved), encode(&m.row).as_slice())?;
        }
        Ok(())
    }

    /// Applies every transition due at or before `now`: scheduled tasks become available,
    /// expired leases count a failure. At most `max` per call.
    pub fn apply_due(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        now: u64,
        max: usize,
        changes: &mut Changes,
    ) -> Result<usize, OpError> {
        let mut done = 0;
        while done < max {
            let Some(&(at, qid, task)) = self.due.first() else { break };
            if at > now {
                break;
            }
            self.due.remove(&(at, qid, task));
            t.task_due.remove((at, qid, task))?;
            done += 1;
            let Some(name) = self.names.get(&qid).cloned() else { continue };
            let Some(q) = self.by_name.get_mut(&name) else { continue };
            let Some(m) = q.tasks.get(&task) else { continue };
            match m.row.phase {
                Phase::Scheduled { at: when } if when == at => {
                    q.set_phase(t, task, Phase::Available)?;
                    changes.touched.insert(qid);
                }
                Phase::Leased { deadline, .. } if deadline == at => {
                    if m.consumer != 0 {
                        changes.events.push(QueueEvent::LeaseEnded {
                            queue: name.clone(),
                            consumer: m.consumer,
                        });
                    }
                    changes.touched.insert(qid);
                    self.fail(
                        t,
                        next_id,
                        &name,
                        task,
                        None,
                        Some("lease expired".to_owned()),
                        now,
                        changes,
                    )?;
                }
                _ => {}
            }
        }
        Ok(done)
    }

    /// Moves dead tasks of `name` back to the queues they failed in (tasks kept dead in place
    /// become available again). An unknown origin queue is created from `template`, with
    /// `name` as its dead-letter queue. Checks every target has room first, so a redrive either
    /// moves everything it picked or nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn redrive(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        name: &str,
        ids: &[u64],
        all: bool,
        template: &QueueInfo,
        now: u64,
        changes: &mut Changes,
    ) -> Result<u64, OpError> {
        let q = self.queue(name)?;
        let candidates: Vec<u64> = if all {
            let mut v: Vec<u64> = q.tasks.keys().copied().collect();
            v.sort_unstable();
            v
        } else {
            ids.to_vec()
        };
        // (task, origin queue or None for in place)
        let mut picked: Vec<(u64, Option<String>)> = Vec::new();
        for id in candidates {
            let Some(m) = q.tasks.get(&id) else { continue };
            if matches!(m.row.phase, Phase::Leased { .. }) {
                continue;
            }
            match (&m.row.dead_letter, m.row.phase) {
                (Some(history), _) => picked.push((id, Some(history.queue.clone()))),
                (None, Phase::Dead) => picked.push((id, None)),
                _ => {}
            }
        }
        let mut incoming: HashMap<String, u64> = HashMap::new();
        for (_, origin) in &picked {
            if let Some(origin) = origin {
                *incoming.entry(origin.clone()).or_default() += 1;
            }
        }
        for (origin, count) in &incoming {
            let (held, max) = match self.by_name.get(origin) {
                Some(o) => (o.tasks.len() as u64, o.meta.info.max_length),
                None => (0, template.max_length),
            };
            if held + count > max {
                return Err(OpError::Full(format!(
                    "queue {origin} has no room for {count} redriven tasks"
                )));
            }
        }
        let mut moved = 0;
        for (id, origin) in picked {
            let q = self.queue(name)?;
            let qid = q.meta.id;
            let ordered = q.meta.info.ordered_by_key;
            let Some(m) = q.tasks.get(&id) else { continue };
            let Some(origin) = origin else {
                // Dead in place: back in its key's line (in order) and available.
                let key = m.row.key.clone();
                if ordered && let Some(k) = key {
                    q.keys.entry(k).or_default().insert(id);
                }
                if let Some(m) = q.tasks.get_mut(&id) {
                    m.row.failures = 0;
                    m.row.reason = None;
                }
                q.set_phase(t, id, Phase::Available)?;
                changes.touched.insert(qid);
                moved += 1;
                continue;
            };
            let task = NewTask {
                data: m.body.data.clone(),
                headers: m.body.headers.clone(),
                key: m.row.key.clone(),
                priority: m.row.priority,
                not_before: None,
                delay_ms: None,
            };
            if let Phase::Scheduled { at } = m.row.phase {
                t.task_due.remove((at, qid, id))?;
                self.due.remove(&(at, qid, id));
            }
            if !self.exists(&origin) {
                let info = QueueInfo {
                    queue: origin.clone(),
                    dead_letter: Some(name.to_owned()),
                    created: now,
                    ..template.clone()
                };
                self.create(t, next_id, info, false)?;
            }
            self.enqueue(t, &origin, task, None, now, changes)?;
            let q = self.queue(name)?;
            q.remove(t, id)?;
            changes.touched.insert(qid);
            moved += 1;
        }
        Ok(moved)
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

impl QueueState {
    fn new(meta: QueueMeta) -> QueueState {
        QueueState {
            meta,
            tasks: HashMap::new(),
            ready: BTreeSet::new(),
            keys: HashMap::new(),
            redeliveries: 0,
            acks: VecDeque::new(),
            recently_acked: Default::default(),
            recent_order: VecDeque::new(),
        }
    }

    fn remember_ack(&mut self, task: u64, lease: u64) {
        if self.recently_acked.insert((task, lease)) {
            self.recent_order.push_back((task, lease));
        }
        while self.recent_order.len() > RECENT_ACKS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recently_acked.remove(&old);
            }
        }
    }

    fn eligible(&self, task: u64) -> bool {
        let Some(m) = self.tasks.get(&task) else { return false };
        if m.row.phase != Phase::Available {
            return false;
        }
        match (&m.row.key, self.meta.info.ordered_by_key) {
            // The first of its key's line, and no task of the key leased (a redriven task
            // rejoins the line ahead of one that may be leased already).
            (Some(k), true) => self.keys.get(k).is_some_and(|line| {
                line.first() == Some(&task)
                    && !line.iter().any(|t| {
                        self.tasks
                            .get(t)
                            .is_some_and(|m| matches!(m.row.phase, Phase::Leased { .. }))
                    })
            }),
            _ => true,
        }
    }

    fn ready_key(&self, task: u64) -> Option<(u8, u64)> {
        self.tasks.get(&task).map(|m| (9u8.saturating_sub(m.row.priority), task))
    }

    fn refresh_ready(&mut self, task: u64) {
        let Some(key) = self.ready_key(task) else { return };
        if self.eligible(task) {
            self.ready.insert(key);
        } else {
            self.ready.remove(&key);
        }
    }

    fn insert(&mut self, t: &mut Tables<'_>, id: u64, m: Mem) -> Result<(), OpError> {
        t.tasks.insert((self.meta.id, id), encode(&m.row).as_slice())?;
        if self.meta.info.ordered_by_key
            && let Some(k) = &m.row.key
        {
            self.keys.entry(k.clone()).or_default().insert(id);
        }
        self.tasks.insert(id, m);
        self.refresh_ready(id);
        Ok(())
    }

    fn set_phase(&mut self, t: &mut Tables<'_>, task: u64, phase: Phase) -> Result<(), OpError> {
        let Some(m) = self.tasks.get_mut(&task) else { return Ok(()) };
        m.row.phase = phase;
        if phase != Phase::Available && !matches!(phase, Phase::Leased { .. }) {
            m.consumer = 0;
        }
        t.tasks.insert((self.meta.id, task), encode(&m.row).as_slice())?;
        let dead = phase == Phase::Dead;
        let key = m.row.key.clone();
        if dead && self.meta.info.ordered_by_key {
            self.release_key(key.as_deref(), task);
        }
        self.refresh_ready(task);
        Ok(())
    }

    /// A task left its key's line (acked, dead): the next one may go.
    fn release_key(&mut self, key: Option<&str>, task: u64) {
        let Some(k) = key else { return };
        let next = match self.keys.get_mut(k) {
            Some(line) => {
                line.remove(&task);
                let next = line.first().copied();
                if line.is_empty() {
                    self.keys.remove(k);
                }
                next
            }
            None => None,
        };
        if let Some(next) = next {
            self.refresh_ready(next);
        }
    }

    fn remove(&mut self, t: &mut Tables<'_>, task: u64) -> Result<(), OpError> {
        if let Some(key) = self.ready_key(task) {
            self.ready.remove(&key);
        }
        let Some(m) = self.tasks.remove(&task) else { return Ok(()) };
        t.tasks.remove((self.meta.id, task))?;
        t.task_data.remove((self.meta.id, task))?;
        if self.meta.info.ordered_by_key {
            self.release_key(m.row.key.as_deref(), task);
        }
        Ok(())
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
