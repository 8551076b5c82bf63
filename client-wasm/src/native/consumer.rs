//! Queue tasks in the native transport: [`TaskHandle`] (a leased task and its settles),
//! [`Consumer`] (a push consumer's stream of tasks) and the driver's end of consumers.
//!
//! # The consumer buffer
//! Tasks travel from the driver to the handle through a buffer the two share. The hub leases at
//! most `prefetch` tasks to a consumer at once, and the core keeps that true across reconnects
//! (see `core::queues::consumers`), so while the application keeps taking tasks the buffer
//! holds at most `prefetch`. It can still grow when the application stops taking them for
//! longer than a lease: the hub takes back expired leases and sends new tasks in their place.
//! So the buffer is bounded at twice the prefetch; at the bound the driver first drops tasks
//! whose leases have expired by the local clock (the hub already has them back, and any settle
//! of them would fail), and only if that frees nothing hands the new task back with `release`.
//! Nothing is lost either way: the hub still holds every task.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::Stream;
use switchboard_protocol::frame::ReplyBody;
use switchboard_protocol::queues::Task;
use tokio::sync::{mpsc, oneshot};

use super::client::{Command, Shared, call_weak, unexpected};
use crate::core::{ClientCore, ClientError, ConsumerEvent, ConsumerId, OpId};

/// The wall clock in milliseconds since the Unix epoch, as lease deadlines are stated.
pub(crate) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A leased task, from [`super::Client::pull`] or a [`Consumer`], with the settles of its
/// lease. Settle it before `task.deadline` (ms since the Unix epoch; [`TaskHandle::extend`]
/// moves the lease's deadline but not this copy of it). Settles are resent after a reconnect
/// while the lease is valid. Dropping the handle settles nothing: the lease runs out and the
/// hub redelivers the task.
#[derive(Debug, Clone)]
pub struct TaskHandle {
    pub task: Task,
    client: Arc<Shared>,
    /// Weak, so that tasks alone do not keep a client whose handles are all gone open.
    commands: mpsc::WeakSender<Command>,
}

impl TaskHandle {
    pub(crate) fn new(
        task: Task,
        client: Arc<Shared>,
        commands: mpsc::WeakSender<Command>,
    ) -> Self {
        TaskHandle { task, client, commands }
    }

    async fn settle(
        &self,
        call: impl FnOnce(&mut ClientCore, u64, &str, u64, u64) -> OpId + Send + 'static,
    ) -> Result<Option<ReplyBody>, ClientError> {
        let (queue, id, lease) = (self.task.queue.clone(), self.task.id, self.task.lease);
        call_weak(&self.commands, &self.client, move |core, now| call(core, now, &queue, id, lease))
            .await
    }

    /// Acknowledges the task: it is done and removed. Acking a task that is already gone
    /// succeeds.
    ///
    /// # Errors
    /// `lease_expired` (from the hub, or locally when the deadline passed before the ack could
    /// be sent: the task is being redelivered), `timeout`, `backlogged`, `closed`, or the hub's
    /// error.
    pub async fn ack(&self) -> Result<(), ClientError> {
        self.settle(|core, now, queue, id, lease| core.ack(now, queue, id, lease)).await.map(|_| ())
    }

    /// Hands the task back as a failure: redelivered after `delay_ms`, or after the queue's
    /// next backoff step, unless it failed too often and is dead-lettered.
    ///
    /// # Errors
    /// As [`TaskHandle::ack`], and `invalid_argument` for a delay over a year.
    pub async fn nack(
        &self,
        delay_ms: Option<u64>,
        reason: Option<String>,
    ) -> Result<(), ClientError> {
        self.settle(move |core, now, queue, id, lease| {
            core.nack(now, queue, id, lease, delay_ms, reason)
        })
        .await
        .map(|_| ())
    }

    /// Extends the lease to `ms` from now (capped by the queue's `max_lease_ms`) and returns
    /// the new deadline, ms since the Unix epoch.
    ///
    /// # Errors
    /// As [`TaskHandle::ack`], and `invalid_argument` for zero or more than a year.
    pub async fn extend(&self, ms: u64) -> Result<u64, ClientError> {
        let body = self
            .settle(move |core, now, queue, id, lease| core.extend(now, queue, id, lease, ms))
            .await?;
        match body {
            Some(ReplyBody::Extended { deadline }) => Ok(deadline),
            other => Err(unexpected(other)),
        }
    }

    /// Hands the task back at once without counting a failure.
    ///
    /// # Errors
    /// As [`TaskHandle::ack`].
    pub async fn release(&self) -> Result<(), ClientError> {
        self.settle(|core, now, queue, id, lease| core.release(now, queue, id, lease))
            .await
            .map(|_| ())
    }

    /// Sends the task straight to the dead-letter queue.
    ///
    /// # Errors
    /// As [`TaskHandle::ack`].
    pub async fn reject(&self, reason: &str) -> Result<(), ClientError> {
        let reason = reason.to_owned();
        self.settle(move |core, now, queue, id, lease| core.reject(now, queue, id, lease, &reason))
            .await
            .map(|_| ())
    }
}

#[derive(Debug, Default)]
struct Buffer {
    tasks: VecDeque<Task>,
    ended: bool,
    /// Why the consumer ended, handed out once after the last task.
    error: Option<ClientError>,
    waker: Option<Waker>,
}

/// What a consumer handle and the driver share.
#[derive(Debug, Default)]
pub(crate) struct ConsumerShared {
    buffer: Mutex<Buffer>,
}

impl ConsumerShared {
    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // Nothing panics while holding the lock; if something did, the buffer is still usable.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a task; gives it back when the buffer is at `cap` even without expired tasks.
    fn push(&self, task: Task, cap: usize) -> Option<Task> {
        let waker = {
            let mut buffer = self.lock();
            if buffer.tasks.len() >= cap {
                let now = wall_clock_ms();
                buffer.tasks.retain(|t| t.deadline > now);
            }
            if buffer.tasks.len() >= cap {
                return Some(task);
            }
            buffer.tasks.push_back(task);
            buffer.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        None
    }

    fn end(&self, error: Option<ClientError>) {
        let waker = {
            let mut buffer = self.lock();
            buffer.ended = true;
            if error.is_some() {
                buffer.error = error;
            }
            buffer.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn take_all(&self) -> Vec<Task> {
        self.lock().tasks.drain(..).collect()
    }
}

/// The driver's end of one consumer.
#[derive(Debug)]
struct ConsumerSink {
    shared: Arc<ConsumerShared>,
    cap: usize,
}

/// The driver's end of every consumer of one client.
#[derive(Debug, Default)]
pub(crate) struct ConsumerSinks {
    sinks: HashMap<ConsumerId, ConsumerSink>,
}

impl ConsumerSinks {
    /// The handle of a consumer whose `consume` just completed.
    pub(crate) fn open(
        &mut self,
        id: ConsumerId,
        queue: String,
        prefetch: u32,
        client: Arc<Shared>,
        commands: mpsc::WeakSender<Command>,
    ) -> Consumer {
        let shared = Arc::new(ConsumerShared::default());
        let prefetch = usize::try_from(prefetch).unwrap_or(usize::MAX).max(1);
        let cap = prefetch.saturating_mul(2);
        self.sinks.insert(id, ConsumerSink { shared: Arc::clone(&shared), cap });
        Consumer { id, queue, shared, client, commands, done: false }
    }

    /// Stops a consumer the application let go of: the hub stops sending, then the tasks the
    /// application never took go back. Returns the stop operation.
    pub(crate) fn stop(&mut self, core: &mut ClientCore, now_ms: u64, id: ConsumerId) -> OpId {
        let untaken = self.sinks.remove(&id).map(|s| s.shared.take_all()).unwrap_or_default();
        let op = core.stop_consumer(now_ms, id);
        for task in untaken {
            core.release(now_ms, &task.queue, task.id, task.lease);
        }
        op
    }

    /// Carries out one consumer event from the core.
    pub(crate) fn on_event(
        &mut self,
        core: &mut ClientCore,
        now_ms: u64,
        id: ConsumerId,
        event: ConsumerEvent,
    ) {
        let task = match event {
            ConsumerEvent::Task(task) => task,
            ConsumerEvent::Ended { error } => {
                if let Some(sink) = self.sinks.remove(&id) {
                    sink.shared.end(error);
                }
                return;
            }
        };
        let Some(sink) = self.sinks.get(&id) else {
            // Nobody holds the consumer (its `consume` was given up on).
            core.release(now_ms, &task.queue, task.id, task.lease);
            return;
        };
        if Arc::strong_count(&sink.shared) == 1 {
            // The handle was dropped and its stop did not fit in the command channel.
            self.stop(core, now_ms, id);
            core.release(now_ms, &task.queue, task.id, task.lease);
            return;
        }
        if let Some(task) = sink.shared.push(task, sink.cap) {
            tracing::warn!(consumer = id, task = task.id, "consumer buffer full; task released");
            core.release(now_ms, &task.queue, task.id, task.lease);
        }
    }
}

/// The tasks of one push consumer, as a [`Stream`] or through [`Consumer::next`].
///
/// The hub keeps at most `prefetch` tasks leased to the consumer; it sends more as tasks are
/// settled or their leases expire. The consumer survives reconnects: it is re-issued on the new
/// session and tasks delivered before still settle. It ends (`None`) when stopped or when its
/// client closes; when it ends on an error — its queue was deleted, or the hub refused to
/// restore it — that error comes once after the last task.
///
/// Dropping the handle stops the consumer (best effort: if the command channel is full at that
/// moment, the driver notices at its next task). Tasks it never handed out go back to the
/// queue at once.
#[derive(Debug)]
pub struct Consumer {
    id: ConsumerId,
    queue: String,
    shared: Arc<ConsumerShared>,
    client: Arc<Shared>,
    /// Weak, so that consumers alone do not keep a client whose handles are all gone open.
    commands: mpsc::WeakSender<Command>,
    done: bool,
}

impl Consumer {
    /// The consumer's id, unique within its client and stable across reconnects.
    pub fn id(&self) -> ConsumerId {
        self.id
    }

    /// The queue it consumes.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The next task; `Some(Err(_))` once if the consumer ended on an error; `None` once it
    /// ended and every task was taken.
    pub async fn next(&mut self) -> Option<Result<TaskHandle, ClientError>> {
        poll_fn(|cx| self.poll_task(cx)).await
    }

    fn poll_task(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<TaskHandle, ClientError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut buffer = self.shared.lock();
        if let Some(task) = buffer.tasks.pop_front() {
            let handle = TaskHandle::new(task, Arc::clone(&self.client), self.commands.clone());
            return Poll::Ready(Some(Ok(handle)));
        }
        if buffer.ended {
            let error = buffer.error.take();
            drop(buffer);
            self.done = true;
            return Poll::Ready(error.map(Err));
        }
        buffer.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Marks a handle nobody received as stopped, so dropping it sends nothing.
    pub(crate) fn close_quietly(&mut self) {
        self.done = true;
    }

    /// Stops the consumer: the hub sends no more tasks, and tasks it sent that were not handed
    /// out yet go back to the queue. Tasks already handed out stay leased and can still be
    /// settled. Resolves once the hub confirmed, or at once without a connection.
    pub async fn stop(mut self) {
        self.done = true;
        let Some(commands) = self.commands.upgrade() else {
            return;
        };
        let (reply, done) = oneshot::channel();
        let command = Command::StopConsumer { consumer: self.id, reply: Some(reply) };
        if commands.send(command).await.is_ok() {
            let _ = done.await;
        }
    }
}

impl Stream for Consumer {
    type Item = Result<TaskHandle, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_task(cx)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.try_send(Command::StopConsumer { consumer: self.id, reply: None });
        }
    }
}
