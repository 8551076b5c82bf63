//! The life of a task: enqueue, lease, settle, failures with backoff, dead-lettering, and the
//! transitions that come due.

use switchboard_protocol::queues::{DeadLetter, Task};

use super::{Body, Row};
use super::{
    Changes, Mem, NewTask, Phase, QueueEvent, QueuesState, Settlement, dead_letter_queue_info,
    encode,
};
use crate::storage::OpError;
use crate::storage::tables::Tables;

impl QueuesState {
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
        let window = q.meta.info.dedup_window_ms;
        let full = q.tasks.len() as u64 >= q.meta.info.max_length;
        let id = self.next_task;
        if let Some(key) = idempotency_key {
            // A repeat within the window is answered even when the queue is full.
            let repeat = if full {
                self.dedup.find(qid, key, now)
            } else {
                let expires = now.saturating_add(window);
                self.dedup.find_or_remember(qid, key, now, id, expires)
            };
            if let Some(original) = repeat {
                return Ok(original);
            }
        }
        if full {
            let max = self.by_name.get(name).map_or(0, |q| q.meta.info.max_length);
            return Err(OpError::Full(format!("queue {name} holds its maximum of {max} tasks")));
        }
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
        let q = self.queue(name)?;
        q.insert(t, id, Mem { row, body, consumer: 0 })?;
        if let Some(at) = at {
            self.due.insert((at, qid, id));
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
            m.store(t, qid, id)?;
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
        let max_lease_ms = q.meta.info.max_lease_ms;
        changes.touched.insert(qid);
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
                let new_deadline =
                    now.saturating_add(ms).min(since.saturating_add(max_lease_ms)).max(deadline);
                let q = self.queue(name)?;
                if let Some(m) = q.tasks.get_mut(&task) {
                    m.row.phase = Phase::Leased { lease, deadline: new_deadline, since };
                    m.store(t, qid, task)?;
                }
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
        let new_task = m.copy_as_new();
        q.remove(t, task)?;
        let moved = self.enqueue(t, &target, new_task, None, now, changes)?;
        let dlq = self.queue(&target)?;
        if let Some(m) = dlq.tasks.get_mut(&moved) {
            m.row.dead_letter = Some(history);
            m.store(t, dlq.meta.id, moved)?;
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
}
