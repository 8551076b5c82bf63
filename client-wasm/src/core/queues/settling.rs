//! Settling leases: `ack`, `nack`, `extend`, `release`, `reject`, what their answers do to the
//! lease table, and leases expiring.
//!
//! Every settle is resent after a reconnect while its lease may still be valid: the hub keeps a
//! lost session's leases until their deadlines. A settle that is still waiting for a
//! connection when the lease's deadline passes locally fails with `lease_expired`, as does one
//! made after it. A settle on a live socket is always left to the hub to decide.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{
    AckMany, ClientFrame, Extend, LeaseRef, MAX_ACK_MANY, Nack, Reject, ReplyBody, Settle,
};

use super::LeaseKey;
use super::leases::Owner;
use crate::core::requests::{OnDisconnect, Purpose};
use crate::core::{ClientCore, ClientError, OpId};

/// Which settle, with its arguments.
enum How {
    Ack,
    Nack { delay_ms: Option<u64>, reason: Option<String> },
    Extend { ms: u64 },
    Release,
    Reject { reason: String },
}

fn lease_expired(key: &LeaseKey) -> ClientError {
    ClientError::new(
        ErrorCode::LeaseExpired,
        format!(
            "the lease {} of task {} in {} passed its deadline before the settle reached the hub",
            key.lease, key.task, key.queue
        ),
    )
}

impl ClientCore {
    /// Acknowledges a task: it is done and removed. Completes with `Ok(None)`, also when the
    /// task is already gone.
    ///
    /// Settles are resent after a reconnect. They fail with `invalid_name`, `backlogged`,
    /// `timeout`, `closed`, `lease_expired` (from the hub, or locally once the lease's deadline
    /// passed before the settle could be sent), or the hub's error.
    pub fn ack(&mut self, now_ms: u64, queue: &str, task: u64, lease: u64) -> OpId {
        self.settle(now_ms, queue, task, lease, How::Ack)
    }

    /// Hands a task back as a failure: it is redelivered after `delay_ms`, or after the
    /// queue's next backoff step, unless it has failed too often and is dead-lettered. Fails
    /// like [`ClientCore::ack`].
    pub fn nack(
        &mut self,
        now_ms: u64,
        queue: &str,
        task: u64,
        lease: u64,
        delay_ms: Option<u64>,
        reason: Option<String>,
    ) -> OpId {
        self.settle(now_ms, queue, task, lease, How::Nack { delay_ms, reason })
    }

    /// Extends a lease to `ms` from now (capped by the queue's `max_lease_ms`). Completes with
    /// [`ReplyBody::Extended`] and its new wall-clock deadline. Fails like
    /// [`ClientCore::ack`].
    pub fn extend(&mut self, now_ms: u64, queue: &str, task: u64, lease: u64, ms: u64) -> OpId {
        self.settle(now_ms, queue, task, lease, How::Extend { ms })
    }

    /// Hands a task back at once without counting a failure. Fails like [`ClientCore::ack`].
    pub fn release(&mut self, now_ms: u64, queue: &str, task: u64, lease: u64) -> OpId {
        self.settle(now_ms, queue, task, lease, How::Release)
    }

    /// Sends a task straight to the dead-letter queue. Fails like [`ClientCore::ack`].
    pub fn reject(
        &mut self,
        now_ms: u64,
        queue: &str,
        task: u64,
        lease: u64,
        reason: &str,
    ) -> OpId {
        self.settle(now_ms, queue, task, lease, How::Reject { reason: reason.to_owned() })
    }

    /// Acknowledges many tasks of one queue in one request, settled by the hub in one commit.
    /// Completes with [`ReplyBody::AckedMany`] listing the tasks the hub could not ack, each
    /// with the error its own `ack` would have had; the others are done and removed.
    ///
    /// Resent after a reconnect like every settle. The hub decides each task, so a lease that
    /// passes its deadline while the request waits for a connection comes back in the list
    /// as `lease_expired` instead of failing the others. Fails as a whole with `invalid_name`,
    /// `invalid_argument` (no tasks, or more than [`MAX_ACK_MANY`]), `backlogged`, `timeout`,
    /// `closed`, or the hub's error.
    pub fn ack_many(&mut self, now_ms: u64, queue: &str, tasks: &[LeaseRef]) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        if tasks.is_empty() || tasks.len() > MAX_ACK_MANY {
            let message = format!("ack_many takes 1 to {MAX_ACK_MANY} tasks, not {}", tasks.len());
            self.complete(op, Err(ClientError::new(ErrorCode::InvalidArgument, message)));
            return op;
        }
        let purpose = Purpose::AckMany { op, queue: queue.clone(), tasks: tasks.to_vec() };
        let timeout = self.config.request_timeout_ms;
        let tasks = tasks.to_vec();
        let build = |id| ClientFrame::AckMany(AckMany { id, queue, tasks });
        self.submit_as(now_ms, op, purpose, OnDisconnect::Resend, timeout, build);
        op
    }

    /// An `ack_many` was answered: the leases the hub acked, or says are gone, end.
    pub(crate) fn on_ack_many_reply(
        &mut self,
        now_ms: u64,
        op: OpId,
        queue: String,
        tasks: &[LeaseRef],
        result: Result<Option<ReplyBody>, ClientError>,
    ) {
        let gone = [ErrorCode::LeaseExpired.as_u16(), ErrorCode::NotFound.as_u16()];
        let mut key = LeaseKey { queue, task: 0, lease: 0 };
        match &result {
            Ok(Some(ReplyBody::AckedMany { failed })) => {
                // Usually empty: a linear search is enough.
                let kept = |t: &LeaseRef| {
                    failed
                        .iter()
                        .any(|f| (f.task, f.lease) == (t.task, t.lease) && !gone.contains(&f.code))
                };
                for t in tasks.iter().filter(|t| !kept(t)) {
                    (key.task, key.lease) = (t.task, t.lease);
                    self.end_lease(now_ms, &key);
                }
            }
            Err(e) if e.is(ErrorCode::NotFound) => {
                for t in tasks {
                    (key.task, key.lease) = (t.task, t.lease);
                    self.end_lease(now_ms, &key);
                }
            }
            _ => {}
        }
        self.complete(op, result);
    }

    fn settle(&mut self, now_ms: u64, queue: &str, task: u64, lease: u64, how: How) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        let key = LeaseKey { queue, task, lease };
        if self.queues.leases.is_past(&key, now_ms) {
            self.complete(op, Err(lease_expired(&key)));
            return op;
        }
        let extend = matches!(how, How::Extend { .. });
        let purpose = Purpose::Settle { op: Some(op), lease: key.clone(), extend };
        let timeout = self.config.request_timeout_ms;
        let LeaseKey { queue, task, lease } = key.clone();
        let build = |id| match how {
            How::Ack => ClientFrame::Ack(Settle { id, queue, task, lease }),
            How::Release => ClientFrame::Release(Settle { id, queue, task, lease }),
            How::Nack { delay_ms, reason } => {
                ClientFrame::Nack(Nack { id, queue, task, lease, delay_ms, reason })
            }
            How::Extend { ms } => ClientFrame::Extend(Extend { id, queue, task, lease, ms }),
            How::Reject { reason } => {
                ClientFrame::Reject(Reject { id, queue, task, lease, reason })
            }
        };
        if let Some(id) = self.submit_as(now_ms, op, purpose, OnDisconnect::Resend, timeout, build)
        {
            self.queues.leases.add_settle(&key, id);
        }
        op
    }

    /// Hands a task nobody will process back to the hub; nobody waits for the answer. Resent
    /// after a reconnect like the application's settles.
    pub(crate) fn release_internal(&mut self, now_ms: u64, key: LeaseKey) {
        let LeaseKey { queue, task, lease } = key.clone();
        let build = |id| ClientFrame::Release(Settle { id, queue, task, lease });
        let purpose = Purpose::Settle { op: None, lease: key.clone(), extend: false };
        let id = self.enqueue_internal_as(now_ms, build, purpose, false, OnDisconnect::Resend);
        self.queues.leases.add_settle(&key, id);
    }

    /// A settle request `id` of `key` was answered.
    pub(crate) fn on_settle_reply(
        &mut self,
        now_ms: u64,
        id: u64,
        op: Option<OpId>,
        key: &LeaseKey,
        extend: bool,
        result: Result<Option<ReplyBody>, ClientError>,
    ) {
        self.queues.leases.remove_settle(key, id);
        match &result {
            Ok(Some(ReplyBody::Extended { deadline })) if extend => {
                if let Some(owner) = self.queues.leases.extend(key, *deadline) {
                    self.queues.consumers.lease_started(owner);
                }
            }
            // An extend answered without a deadline leaves the lease as it was.
            Ok(_) if extend => {}
            Ok(_) => self.end_lease(now_ms, key),
            Err(e) if e.is(ErrorCode::LeaseExpired) || e.is(ErrorCode::NotFound) => {
                self.end_lease(now_ms, key);
            }
            Err(_) => {}
        }
        if let Some(op) = op {
            self.complete(op, result);
        }
    }

    /// A settle request timed out or was dropped: only the table forgets it.
    pub(crate) fn forget_settle(&mut self, key: &LeaseKey, id: u64) {
        self.queues.leases.remove_settle(key, id);
    }

    fn end_lease(&mut self, now_ms: u64, key: &LeaseKey) {
        if let Some(owner) = self.queues.leases.end(key) {
            self.lease_ended(now_ms, owner);
        }
    }

    /// A lease of a consumer stopped counting against its prefetch.
    fn lease_ended(&mut self, now_ms: u64, owner: Owner) {
        self.queues.consumers.lease_ended(owner);
        self.top_up(now_ms, owner.consumer);
    }

    /// Leases whose deadline passed: they stop counting against their consumers, and settles
    /// of them still waiting for a connection fail.
    pub(crate) fn on_lease_timers(&mut self, now_ms: u64) {
        while let Some(expired) = self.queues.leases.take_expired(now_ms) {
            for id in expired.settles {
                self.fail_unsent_settle(id, &expired.key);
            }
            if let Some(owner) = expired.owner {
                self.lease_ended(now_ms, owner);
            }
        }
    }

    /// After a lost socket put settles back in the queue: those of leases already past their
    /// deadline fail now.
    pub(crate) fn fail_past_settles(&mut self, now_ms: u64) {
        for (key, id) in self.queues.leases.past_settles(now_ms) {
            self.fail_unsent_settle(id, &key);
        }
    }

    fn fail_unsent_settle(&mut self, id: u64, key: &LeaseKey) {
        if self.requests.is_sent(id) {
            return;
        }
        if let Some(request) = self.requests.take(id) {
            self.queues.leases.remove_settle(key, id);
            if let Purpose::Settle { op: Some(op), .. } = request.purpose {
                self.complete(op, Err(lease_expired(key)));
            }
        }
    }
}
