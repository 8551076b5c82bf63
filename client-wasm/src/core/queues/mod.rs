//! Work queues: creating, listing and deleting them, enqueueing with idempotency keys, pulling,
//! settling leases, and push consumers that are re-issued after a reconnect.
//!
//! # Layout
//! - this file: the options types, the plain requests (`create_queue`, `enqueue`, `pull`,
//!   `redrive`, `queue_stats`, `list_queues`, `delete_queue`) and `pull` answers.
//! - `leases`: every lease this client holds, with its deadline on the monotonic clock.
//! - `settling`: `ack`, `nack`, `extend`, `release`, `reject`, and leases expiring.
//! - `consumers`: every consumer, by local id and by the hub's ids, and its prefetch.
//! - `consuming`: the core's consumer operations and what the hub sends consumers.
//!
//! # What a lost connection does to each request
//! - `enqueue` is resent with the same id and idempotency key: the hub answers a repeated key
//!   (within the queue's dedup window) with the original task id and enqueues nothing, so one
//!   call never creates two tasks.
//! - `create_queue`, `queue_stats`, `list_queues` are resent: creating a queue that exists with
//!   the same options is a no-op, and the others only read.
//! - settles (`ack`, `nack`, `extend`, `release`, `reject`) are resent: leases outlive the
//!   session, so the hub still accepts them with the same lease id, and a lease that moved on
//!   is refused with `lease_expired` without changing anything. A settle still waiting for a
//!   connection when its lease's deadline passes fails locally with `lease_expired` instead.
//! - `pull` fails with `disconnected`. Its tasks may already have been leased to the lost
//!   session; resending would lease more while those stay invisible until their leases expire.
//!   Failing says so, and the caller's next `pull` is the retry.
//! - `redrive` fails with `disconnected`: resent, it could move tasks that died again since,
//!   and its count would not be the first attempt's.
//! - `delete_queue` fails with `disconnected`, like `delete_stream`: a resend could delete a
//!   queue created again in between, or report `not_found` for a delete that worked.
//! - `consume` and `stop_consume` name hub consumers of the lost session; consumers are
//!   re-issued as a whole after the next `welcome` instead (see `consuming`).

mod consumers;
mod consuming;
mod leases;
mod settling;

use crate::core::sorted::SortedMap;

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{
    ClientFrame, CreateQueue, Enqueue, ListQueues, Pull, QueueRef, Redrive, ReplyBody,
};
use switchboard_protocol::names::validate_resource;
use switchboard_protocol::payload::{Headers, Payload};
use switchboard_protocol::queues::{QueueOptions, Task};

pub(crate) use leases::LeaseKey;

use super::requests::{OnDisconnect, Purpose, Request};
use super::{ClientCore, ClientError, OpId};
use consumers::Consumers;
use leases::Leases;

/// Longest a `pull` waits for a task when the application does not choose.
pub const DEFAULT_PULL_WAIT_MS: u64 = 30_000;

/// How to enqueue one task; anything left out takes the queue's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// Not available before this many milliseconds from when the hub stores it.
    pub delay_ms: Option<u64>,
    /// Not available before this time, ms since the Unix epoch (exclusive with `delay_ms`).
    pub not_before: Option<u64>,
    /// For queues ordered by key: tasks with the same key are leased one at a time, in order.
    pub key: Option<String>,
    /// 0 (the default) to 9; higher is dispatched first.
    pub priority: Option<u8>,
    pub headers: Headers,
    /// Identifies the enqueue for deduplication. When absent the core makes a random one, so an
    /// enqueue resent after a reconnect never creates a second task. Give your own to make
    /// retries across a timeout, a restart or another client safe too (within the queue's
    /// dedup window).
    pub idempotency_key: Option<String>,
}

/// How to pull tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullOptions {
    /// Most tasks to lease (default 1).
    pub max: u32,
    /// How long the hub waits for a first task before answering with none
    /// ([`DEFAULT_PULL_WAIT_MS`]; the hub allows at most 300,000). The request's own timeout is
    /// this plus the client's request timeout.
    pub wait_ms: u64,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { max: 1, wait_ms: DEFAULT_PULL_WAIT_MS }
    }
}

/// A request whose answer nobody waits for any more, and what its answer would hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abandoned {
    /// Its tasks are released.
    Pull,
    /// The hub consumer it starts is stopped.
    Consume,
}

/// The queue side of the core: leases, consumers and abandoned requests.
#[derive(Debug, Default)]
pub(crate) struct QueueState {
    leases: Leases,
    consumers: Consumers,
    /// Ids of `pull` and `consume` requests sent on this session whose answers nobody waits
    /// for (they timed out, or their consumer stopped first).
    abandoned: SortedMap<u64, Abandoned>,
}

impl QueueState {
    /// The wall clock at monotonic `now_ms`, if the transport gave one.
    pub(crate) fn wall(&self, now_ms: u64) -> Option<u64> {
        self.leases.wall(now_ms)
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        [self.leases.next_deadline(), self.consumers.next_deadline()].into_iter().flatten().min()
    }

    /// Consumers the application waits for without a request in the queue.
    pub(crate) fn waiting(&self) -> usize {
        self.consumers.waiting()
    }
}

impl ClientCore {
    /// The transport's wall clock reads `wall_ms` (ms since the Unix epoch) at `now_ms`. Lease
    /// deadlines are wall-clock times, so the core needs this to expire leases locally: call
    /// it once after creating the core and again whenever the wall clock may have been
    /// corrected (the native driver does so on every socket open). Without it leases never
    /// expire locally; see `queues::leases`.
    pub fn set_wall_clock(&mut self, now_ms: u64, wall_ms: u64) {
        self.queues.leases.set_clock(now_ms, wall_ms);
    }

    /// Creates a queue. Completes with [`ReplyBody::Queue`]; creating an existing queue with
    /// the same options succeeds, with other options fails with `already_exists`.
    pub fn create_queue(&mut self, now_ms: u64, queue: &str, options: QueueOptions) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::CreateQueue(CreateQueue { id, queue, options })
        });
        op
    }

    /// Enqueues a task, creating the queue with defaults if needed. Completes with
    /// [`ReplyBody::Enqueued`] once the task is durable.
    ///
    /// The enqueue carries `options.idempotency_key` or, without one, a fresh random key; if
    /// the connection drops before the answer it is resent with the same id and key, so the hub
    /// creates the task at most once. It fails with `invalid_name`, `frame_too_large`,
    /// `backlogged`, `timeout` (it may still have been enqueued: retry with your own key to be
    /// sure), `closed`, `invalid_argument` (no key given and the transport supplied no
    /// entropy), or the hub's error (`queue_full`, `payload_too_large`, ...).
    pub fn enqueue(
        &mut self,
        now_ms: u64,
        queue: &str,
        data: Payload,
        options: EnqueueOptions,
    ) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        let Some(key) = self.idempotency_key(now_ms, op, options.idempotency_key) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::Enqueue(Enqueue {
                id,
                queue,
                data,
                headers: options.headers,
                delay_ms: options.delay_ms,
                not_before: options.not_before,
                key: options.key,
                priority: options.priority,
                idempotency_key: Some(key),
            })
        });
        op
    }

    /// Leases up to `options.max` tasks, waiting up to `options.wait_ms` for the first.
    /// Completes with [`ReplyBody::Tasks`], possibly empty. Settle each task by its queue, id
    /// and lease before its deadline.
    ///
    /// The request times out after `wait_ms` plus the request timeout. It fails with
    /// `invalid_name`, `invalid_argument` (`max` of zero, or the hub's limits), `backlogged`,
    /// `timeout`, `closed`, and `disconnected` when the connection dropped while it was in
    /// flight: it is not resent (see the module documentation), and tasks it may have leased
    /// return to the queue when their leases expire.
    pub fn pull(&mut self, now_ms: u64, queue: &str, options: PullOptions) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        if options.max == 0 {
            let error = ClientError::new(ErrorCode::InvalidArgument, "a pull takes at least 1");
            self.complete(op, Err(error));
            return op;
        }
        let timeout = options.wait_ms.saturating_add(self.config.request_timeout_ms);
        let PullOptions { max, wait_ms } = options;
        self.submit_as(now_ms, op, Purpose::Pull { op }, OnDisconnect::Fail, timeout, |id| {
            ClientFrame::Pull(Pull { id, queue, max: Some(max), wait_ms: Some(wait_ms) })
        });
        op
    }

    /// Moves dead tasks of dead-letter queue `queue` back to the queues they failed in: those
    /// in `ids`, or every one when `ids` is empty. Completes with [`ReplyBody::Redriven`].
    /// Fails with `disconnected` when the connection dropped before the answer (not resent).
    pub fn redrive(&mut self, now_ms: u64, queue: &str, ids: Vec<u64>) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        let all = ids.is_empty();
        self.submit(now_ms, op, OnDisconnect::Fail, |id| {
            ClientFrame::Redrive(Redrive { id, queue, ids, all })
        });
        op
    }

    /// Counts and rates of a queue. Completes with [`ReplyBody::QueueStats`].
    pub fn queue_stats(&mut self, now_ms: u64, queue: &str) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::QueueStats(QueueRef { id, queue })
        });
        op
    }

    /// Lists every queue. Completes with [`ReplyBody::Queues`].
    pub fn list_queues(&mut self, now_ms: u64) -> OpId {
        let op = self.new_op();
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::ListQueues(ListQueues { id })
        });
        op
    }

    /// Deletes a queue and its tasks; its consumers end with `not_found`. Completes with
    /// `Ok(None)`; fails with `not_found`, and with `disconnected` when the connection dropped
    /// before the answer (it is never resent; see the module documentation).
    pub fn delete_queue(&mut self, now_ms: u64, queue: &str) -> OpId {
        let op = self.new_op();
        let Some(queue) = self.queue_name(op, queue) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Fail, |id| {
            ClientFrame::DeleteQueue(QueueRef { id, queue })
        });
        op
    }

    /// `queue` as an owned name, or `None` after failing `op` with `invalid_name`.
    fn queue_name(&mut self, op: OpId, queue: &str) -> Option<String> {
        match validate_resource("queue", queue) {
            Ok(()) => Some(queue.to_owned()),
            Err(e) => {
                self.complete(op, Err(ClientError::invalid_name(&e)));
                None
            }
        }
    }

    /// A `pull` answered: its leases are recorded, then `op` completes.
    pub(crate) fn on_pull_reply(&mut self, op: OpId, body: Option<ReplyBody>) {
        if let Some(ReplyBody::Tasks { tasks }) = &body {
            for task in tasks {
                self.queues.leases.insert(lease_key(task), task.deadline, None);
            }
        }
        self.complete(op, Ok(body));
    }

    /// A `pull` timed out: if it was sent, the tasks it may still lease are released.
    pub(crate) fn on_pull_timeout(&mut self, id: u64, op: OpId, request: &Request) {
        if request.sent {
            self.queues.abandoned.insert(id, Abandoned::Pull);
        }
        self.complete(op, Err(ClientError::timeout()));
    }

    /// An answer to request `id` nobody waits for; returns whether it was an abandoned queue
    /// request (and has been dealt with).
    pub(crate) fn on_abandoned_queue_reply(
        &mut self,
        now_ms: u64,
        id: u64,
        result: &Result<Option<ReplyBody>, ClientError>,
    ) -> bool {
        let Some(abandoned) = self.queues.abandoned.remove(&id) else {
            return false;
        };
        match (abandoned, result) {
            (Abandoned::Pull, Ok(Some(ReplyBody::Tasks { tasks }))) => {
                for task in tasks {
                    self.release_internal(now_ms, lease_key(task));
                }
            }
            (Abandoned::Consume, Ok(Some(ReplyBody::Consuming { consumer }))) => {
                self.stop_hub_consumer(now_ms, *consumer, None);
            }
            _ => {}
        }
        true
    }

    /// The session ended: requests abandoned on it will never be answered.
    pub(crate) fn queues_disconnected(&mut self) {
        self.queues.abandoned.clear();
        self.queues.consumers.disconnect();
    }

    /// Deadlines of leases and consumers.
    pub(crate) fn on_queue_timers(&mut self, now_ms: u64) {
        self.on_lease_timers(now_ms);
        self.on_consumer_timers(now_ms);
    }
}

/// The lease a task was delivered under.
pub(crate) fn lease_key(task: &Task) -> LeaseKey {
    LeaseKey { queue: task.queue.clone(), task: task.id, lease: task.lease }
}
