//! The queue operations of [`Client`]: creating, listing and deleting queues, enqueueing,
//! pulling, consuming and redriving. Settles live on [`TaskHandle`].

use std::sync::Arc;

use switchboard_protocol::frame::{LeaseRef, ReplyBody, SettleFailure};
use switchboard_protocol::queues::{QueueInfo, QueueOptions, QueueStats};
use switchboard_protocol::{ErrorCode, Payload};

use super::client::{Client, Command, unexpected};
use super::consumer::{Consumer, TaskHandle};
use crate::core::{ClientError, EnqueueOptions, PullOptions};

impl Client {
    /// Creates a queue, or confirms one that exists with the same options. It is resent after
    /// a reconnect.
    ///
    /// # Errors
    /// `invalid_name`, `already_exists` (it exists with other options), `invalid_argument`,
    /// `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn create_queue(
        &self,
        queue: &str,
        options: QueueOptions,
    ) -> Result<QueueInfo, ClientError> {
        let queue = queue.to_owned();
        match self.call(move |core, now| core.create_queue(now, &queue, options)).await? {
            Some(ReplyBody::Queue(info)) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Enqueues a task (creating the queue with defaults if needed) and returns its id once it
    /// is durable. The enqueue carries an idempotency key — the caller's, or a random one — and
    /// is resent with it after a reconnect, so one call never creates two tasks.
    ///
    /// # Errors
    /// `invalid_name`, `payload_too_large`, `frame_too_large`, `queue_full`, `backlogged`,
    /// `timeout` (it may still have been enqueued: retry with your own `idempotency_key` to be
    /// sure), `closed`, or the hub's error.
    pub async fn enqueue(
        &self,
        queue: &str,
        data: impl Into<Payload>,
        options: EnqueueOptions,
    ) -> Result<u64, ClientError> {
        let queue = queue.to_owned();
        let data = data.into();
        match self.call(move |core, now| core.enqueue(now, &queue, data, options)).await? {
            Some(ReplyBody::Enqueued { task }) => Ok(task),
            other => Err(unexpected(other)),
        }
    }

    /// Leases up to `options.max` tasks, waiting up to `options.wait_ms` for the first;
    /// possibly none. Settle each through its handle before its deadline.
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument`, `backlogged`, `timeout` (after `wait_ms` plus the
    /// request timeout), `closed`, the hub's error, and `disconnected` when the connection
    /// dropped while the pull was waiting: it is not resent, because the hub may already have
    /// leased tasks to the lost connection; those return to the queue when their leases expire.
    /// Pull again.
    pub async fn pull(
        &self,
        queue: &str,
        options: PullOptions,
    ) -> Result<Vec<TaskHandle>, ClientError> {
        let queue = queue.to_owned();
        match self.call(move |core, now| core.pull(now, &queue, options)).await? {
            Some(ReplyBody::Tasks { tasks }) => Ok(tasks
                .into_iter()
                .map(|task| {
                    TaskHandle::new(task, Arc::clone(&self.shared), self.commands.downgrade())
                })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Acknowledges `tasks`, all of one queue, in one request that the hub settles in one
    /// commit: cheaper than an [`TaskHandle::ack`] each. Returns the tasks the hub could not
    /// ack, each with the error its own `ack` would have had (`lease_expired` for a lease
    /// that ended); the others are done. Acking no tasks asks nothing and returns none.
    ///
    /// # Errors
    /// `invalid_argument` (tasks of more than one queue, or more than
    /// [`MAX_ACK_MANY`](switchboard_protocol::frame::MAX_ACK_MANY)), `backlogged`, `timeout`,
    /// `closed`, or the hub's error for the whole request.
    pub async fn ack_many(&self, tasks: &[TaskHandle]) -> Result<Vec<SettleFailure>, ClientError> {
        let Some(first) = tasks.first() else {
            return Ok(Vec::new());
        };
        let queue = first.task.queue.clone();
        if tasks.iter().any(|t| t.task.queue != queue) {
            let message = "ack_many takes tasks of one queue; call it once per queue";
            return Err(ClientError::new(ErrorCode::InvalidArgument, message));
        }
        let refs: Vec<LeaseRef> =
            tasks.iter().map(|t| LeaseRef { task: t.task.id, lease: t.task.lease }).collect();
        match self.call(move |core, now| core.ack_many(now, &queue, &refs)).await? {
            Some(ReplyBody::AckedMany { failed }) => Ok(failed),
            other => Err(unexpected(other)),
        }
    }

    /// Starts a push consumer that holds at most `prefetch` unsettled tasks. It survives
    /// reconnects; see [`Consumer`].
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument` (a zero prefetch, or more than the hub allows),
    /// `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn consume(&self, queue: &str, prefetch: u32) -> Result<Consumer, ClientError> {
        let queue = queue.to_owned();
        self.request(|reply| Command::Consume { queue, prefetch, reply }).await
    }

    /// Moves dead tasks of dead-letter queue `queue` back to the queues they failed in: those
    /// in `ids`, or every one when `ids` is empty. Returns how many moved.
    ///
    /// # Errors
    /// `invalid_name`, `not_found`, `disconnected` (the connection dropped before the answer;
    /// it is not resent), `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn redrive(&self, queue: &str, ids: Vec<u64>) -> Result<u64, ClientError> {
        let queue = queue.to_owned();
        match self.call(move |core, now| core.redrive(now, &queue, ids)).await? {
            Some(ReplyBody::Redriven { count }) => Ok(count),
            other => Err(unexpected(other)),
        }
    }

    /// Counts and rates of a queue.
    ///
    /// # Errors
    /// `invalid_name`, `not_found`, `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats, ClientError> {
        let queue = queue.to_owned();
        match self.call(move |core, now| core.queue_stats(now, &queue)).await? {
            Some(ReplyBody::QueueStats(stats)) => Ok(stats),
            other => Err(unexpected(other)),
        }
    }

    /// Lists every queue.
    ///
    /// # Errors
    /// `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, ClientError> {
        match self.call(|core, now| core.list_queues(now)).await? {
            Some(ReplyBody::Queues { queues }) => Ok(queues),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a queue and its tasks; its consumers end with `not_found`.
    ///
    /// # Errors
    /// `invalid_name`, `not_found`, `disconnected` (the connection dropped before the answer;
    /// the delete may or may not have happened and is not resent), `backlogged`, `timeout`,
    /// `closed`, or the hub's error.
    pub async fn delete_queue(&self, queue: &str) -> Result<(), ClientError> {
        let queue = queue.to_owned();
        self.call(move |core, now| core.delete_queue(now, &queue)).await.map(|_| ())
    }
}
