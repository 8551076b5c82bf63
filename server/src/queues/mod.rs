//! Work queues: each task goes to one consumer under a lease; ack removes it; nack, release and
//! lease expiry bring it back (with backoff); too many failures dead-letter it.
//!
//! Every state change goes through the storage writer (see `storage/queues/`, which holds the
//! state machine) and is answered after its commit. This module validates requests and runs
//! one [`dispatch`]er task per queue in use, which serves waiting pulls and push consumers in
//! turn (round-robin) from what the writer reports as available.

pub mod dispatch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use switchboard_protocol::names;
use switchboard_protocol::queues::{QueueInfo, QueueOptions, QueueStats, Task};
use switchboard_protocol::{ErrorCode, ErrorFrame, LeaseRef, MAX_ACK_MANY, SettleFailure};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::SharedClock;
use crate::session::outbox::Outbox;
use crate::storage::OpError;
use crate::storage::queues::{NewTask, QueueEvent, Settlement};
use crate::storage::writer::{Completions, Ticket, WriteOp, WriteResult, Writer};
use dispatch::Cmd;

/// A queue operation that failed, with what the client needs to know.
pub type QueueError = ErrorFrame;

fn error(code: ErrorCode, message: impl Into<String>) -> QueueError {
    ErrorFrame::new(None, code, message)
}

/// Defaults and limits of the queue engine.
#[derive(Debug, Clone)]
pub struct QueuesConfig {
    pub lease_ms: u64,
    pub max_lease_ms: u64,
    pub max_attempts: u32,
    pub backoff_ms: Vec<u64>,
    pub dedup_window_ms: u64,
    pub max_length: u64,
    /// Largest task (data and headers), in bytes.
    pub max_task_bytes: usize,
    /// Most tasks one pull may take, and most prefetch one consumer may hold.
    pub max_batch: u32,
}

/// Suffix of dead-letter queues. A queue named so defaults to keeping its tasks however often
/// they fail and to having no dead-letter queue of its own.
pub const DLQ_SUFFIX: &str = ".dlq";

/// The longest delay or lease, in milliseconds (a year).
pub const MAX_DELAY_MS: u64 = 365 * 24 * 3600 * 1000;

/// Per-queue channels from the writer's commits to the queue's dispatcher.
#[derive(Default)]
pub struct Signals {
    queues: Mutex<HashMap<String, Signal>>,
}

struct Signal {
    available: watch::Sender<u64>,
    /// Unbounded, but bounded in practice by the number of leases push consumers hold.
    ended: mpsc::UnboundedSender<u64>,
}

impl Signals {
    /// Delivers a commit's queue events to the dispatchers.
    pub fn apply(&self, events: Vec<QueueEvent>) {
        let mut all = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for event in events {
            match event {
                QueueEvent::Available { queue, count } => {
                    if let Some(s) = all.get(&queue) {
                        s.available.send_replace(count);
                    }
                }
                QueueEvent::LeaseEnded { queue, consumer } => {
                    if let Some(s) = all.get(&queue) {
                        let _ = s.ended.send(consumer);
                    }
                }
                QueueEvent::Deleted { queue } => {
                    // Dropping the senders tells the dispatcher its queue is gone.
                    all.remove(&queue);
                }
            }
        }
    }

    fn register(&self, queue: &str) -> (watch::Receiver<u64>, mpsc::UnboundedReceiver<u64>) {
        let (available, available_rx) = watch::channel(u64::MAX);
        let (ended, ended_rx) = mpsc::unbounded_channel();
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(queue.to_owned(), Signal { available, ended });
        (available_rx, ended_rx)
    }
}

type DispatcherHandle = (mpsc::Sender<Cmd>, Arc<AtomicU64>);

/// The queue engine.
pub struct Engine {
    pub config: QueuesConfig,
    pub writer: Writer,
    pub clock: SharedClock,
    signals: Arc<Signals>,
    /// Each queue's dispatcher and its count of waiting pulls and consumers.
    dispatchers: Mutex<HashMap<String, DispatcherHandle>>,
    /// The default settings of queues enqueued to lately (what an enqueue creates a missing
    /// queue with), so that an enqueue does not rebuild and recheck them. At most
    /// [`DEFAULTS_CACHED`] names; when full it is emptied and refills.
    defaults: Mutex<HashMap<String, Arc<QueueInfo>>>,
    next_consumer: AtomicU64,
}

/// Most queue names whose default settings are cached.
const DEFAULTS_CACHED: usize = 1024;

/// The queue engine's handle.
pub type Queues = Arc<Engine>;

/// Builds the queue engine over a running writer.
pub fn new(
    writer: Writer,
    signals: Arc<Signals>,
    config: QueuesConfig,
    clock: SharedClock,
) -> Queues {
    Arc::new(Engine {
        config,
        writer,
        clock,
        signals,
        dispatchers: Mutex::new(HashMap::new()),
        defaults: Mutex::new(HashMap::new()),
        next_consumer: AtomicU64::new(1),
    })
}

fn validate_name(name: &str) -> Result<(), QueueError> {
    names::validate_resource("queue", name)
        .map_err(|e| error(ErrorCode::InvalidName, e.to_string()))
}

/// The task id an enqueue got, from the writer's outcome.
///
/// # Errors
/// The enqueue's error as the client gets it.
pub fn enqueued(outcome: Result<WriteResult, OpError>) -> Result<u64, QueueError> {
    match outcome? {
        WriteResult::Task(id) => Ok(id),
        other => Err(unexpected(other)),
    }
}

fn unexpected(result: WriteResult) -> QueueError {
    error(ErrorCode::Internal, format!("unexpected storage result {result:?}"))
}

impl Engine {
    /// A queue's settings: `options` over the defaults, checked.
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument`.
    pub fn info_for(&self, name: &str, options: &QueueOptions) -> Result<QueueInfo, QueueError> {
        validate_name(name)?;
        let c = &self.config;
        let is_dlq = name.ends_with(DLQ_SUFFIX);
        let dead_letter = match &options.dead_letter {
            Some(d) if d.is_empty() => None,
            Some(d) => {
                validate_name(d)?;
                if d == name {
                    return Err(error(
                        ErrorCode::InvalidArgument,
                        "a queue cannot be its own dead-letter queue",
                    ));
                }
                Some(d.clone())
            }
            None if is_dlq => None,
            None => {
                let dlq = format!("{name}{DLQ_SUFFIX}");
                names::validate_resource("queue", &dlq).map_err(|_| {
                    error(
                        ErrorCode::InvalidName,
                        format!("queue name {name} leaves no room for its dead-letter queue {dlq}; name one with dead_letter"),
                    )
                })?;
                Some(dlq)
            }
        };
        let info = QueueInfo {
            queue: name.to_owned(),
            lease_ms: options.lease_ms.unwrap_or(c.lease_ms),
            max_lease_ms: options.max_lease_ms.unwrap_or(c.max_lease_ms),
            max_attempts: options.max_attempts.unwrap_or(if is_dlq { 0 } else { c.max_attempts }),
            backoff_ms: options.backoff_ms.clone().unwrap_or_else(|| c.backoff_ms.clone()),
            dead_letter,
            dedup_window_ms: options.dedup_window_ms.unwrap_or(c.dedup_window_ms),
            max_length: options.max_length.unwrap_or(c.max_length),
            ordered_by_key: options.ordered_by_key.unwrap_or(false),
            created: 0,
        };
        let bad = |m: &str| Err(error(ErrorCode::InvalidArgument, m));
        if info.lease_ms == 0 || info.lease_ms > MAX_DELAY_MS {
            return bad("lease_ms must be between 1 and a year");
        }
        if info.max_lease_ms < info.lease_ms || info.max_lease_ms > MAX_DELAY_MS {
            return bad("max_lease_ms must be at least lease_ms and at most a year");
        }
        if info.backoff_ms.is_empty()
            || info.backoff_ms.len() > 32
            || info.backoff_ms.iter().any(|d| *d > MAX_DELAY_MS)
        {
            return bad("backoff_ms must have 1 to 32 steps of at most a year");
        }
        if info.max_length == 0 {
            return bad("max_length must be above 0");
        }
        if info.dedup_window_ms > MAX_DELAY_MS {
            return bad("dedup_window_ms must be at most a year");
        }
        Ok(info)
    }

    /// The settings a missing queue is created with by an enqueue, checked (with its name).
    fn defaults_of(&self, name: &str) -> Result<Arc<QueueInfo>, QueueError> {
        let mut cached = self.defaults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = cached.get(name) {
            return Ok(info.clone());
        }
        let info = Arc::new(self.info_for(name, &QueueOptions::default())?);
        if cached.len() >= DEFAULTS_CACHED {
            cached.clear();
        }
        cached.insert(name.to_owned(), info.clone());
        Ok(info)
    }

    /// Creates a queue (a no-op if it exists with the same options).
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument`, `already_exists`, `storage_failure`.
    pub async fn create(
        &self,
        name: &str,
        options: &QueueOptions,
    ) -> Result<QueueInfo, QueueError> {
        let info = self.info_for(name, options)?;
        match self.writer.submit(WriteOp::CreateQueue { info, strict: true }).await? {
            WriteResult::Queue(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Enqueues a task once it is durable; creates the queue with defaults if needed.
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument`, `payload_too_large`, `queue_full`, `storage_failure`.
    pub async fn enqueue(
        &self,
        name: &str,
        task: NewTask,
        idempotency_key: Option<String>,
    ) -> Result<u64, QueueError> {
        let op = self.enqueue_op(name, task, idempotency_key)?;
        enqueued(self.writer.submit(op).await)
    }

    /// Submits an enqueue as [`Engine::enqueue`] does, its outcome going into `to` with
    /// `ticket` (read it with [`enqueued`]) instead of to a future. A request refused before it
    /// reaches the writer is answered here.
    ///
    /// # Errors
    /// As [`Engine::enqueue`], for a request refused at once.
    pub fn enqueue_to(
        &self,
        name: &str,
        task: NewTask,
        idempotency_key: Option<String>,
        to: &Arc<Completions>,
        ticket: Ticket,
    ) -> Result<(), QueueError> {
        let op = self.enqueue_op(name, task, idempotency_key)?;
        self.writer.submit_to(op, to, ticket);
        Ok(())
    }

    /// The writer's operation for an enqueue, after checking the request.
    fn enqueue_op(
        &self,
        name: &str,
        task: NewTask,
        idempotency_key: Option<String>,
    ) -> Result<WriteOp, QueueError> {
        let create = self.defaults_of(name)?;
        if task.priority > 9 {
            return Err(error(ErrorCode::InvalidArgument, "priority must be 0 to 9"));
        }
        if task.delay_ms.is_some() && task.not_before.is_some() {
            return Err(error(ErrorCode::InvalidArgument, "give delay_ms or not_before, not both"));
        }
        if task.delay_ms.is_some_and(|d| d > MAX_DELAY_MS)
            || task.not_before.is_some_and(|t| t > self.clock.now_ms().saturating_add(MAX_DELAY_MS))
        {
            return Err(error(
                ErrorCode::InvalidArgument,
                "a task may be delayed by at most a year",
            ));
        }
        let size =
            task.data.len() + task.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if size > self.config.max_task_bytes {
            return Err(error(
                ErrorCode::PayloadTooLarge,
                format!(
                    "task of {size} bytes exceeds the maximum of {}",
                    self.config.max_task_bytes
                ),
            ));
        }
        if idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
            return Err(error(
                ErrorCode::InvalidArgument,
                "idempotency_key must be 1 to 256 bytes",
            ));
        }
        Ok(WriteOp::Enqueue { queue: name.to_owned(), task, idempotency_key, create })
    }

    /// Leases up to `max` tasks, waiting up to `wait_ms` for the first. An unknown queue is
    /// created with defaults, so workers may start before producers.
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument`, `not_found` if the queue is deleted meanwhile,
    /// `storage_failure`.
    pub async fn pull(
        self: &Arc<Self>,
        name: &str,
        max: u32,
        wait_ms: u64,
    ) -> Result<Vec<Task>, QueueError> {
        validate_name(name)?;
        if max == 0 || max > self.config.max_batch {
            return Err(error(
                ErrorCode::InvalidArgument,
                format!("max must be 1 to {}", self.config.max_batch),
            ));
        }
        if wait_ms > 5 * 60 * 1000 {
            return Err(error(ErrorCode::InvalidArgument, "wait_ms must be at most 300000"));
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
        let (reply, answer) = oneshot::channel();
        self.dispatcher(name)?
            .send(Cmd::Pull { max, deadline, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Checks a consume request and allocates the consumer's id.
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument`.
    pub fn new_consumer(&self, name: &str, prefetch: u32) -> Result<u64, QueueError> {
        validate_name(name)?;
        if prefetch == 0 || prefetch > self.config.max_batch {
            return Err(error(
                ErrorCode::InvalidArgument,
                format!("prefetch must be 1 to {}", self.config.max_batch),
            ));
        }
        Ok(self.next_consumer.fetch_add(1, Ordering::Relaxed))
    }

    /// Starts pushing tasks to a consumer from [`Engine::new_consumer`].
    ///
    /// # Errors
    /// `shutting_down` if the engine is gone.
    pub async fn consume(
        self: &Arc<Self>,
        name: &str,
        consumer: u64,
        prefetch: u32,
        outbox: Arc<Outbox>,
    ) -> Result<(), QueueError> {
        let cmd = Cmd::Consume { consumer, prefetch, outbox };
        self.dispatcher(name)?.send(cmd).await.map_err(|_| closed())
    }

    /// Stops a push consumer. Its leases run to their deadlines.
    pub async fn stop_consume(&self, name: &str, consumer: u64) {
        let sender = self
            .dispatchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|(s, _)| s.clone());
        if let Some(sender) = sender {
            let _ = sender.send(Cmd::Stop { consumer }).await;
        }
    }

    /// Settles a leased task; `extend` answers the new deadline.
    ///
    /// # Errors
    /// `lease_expired`, `not_found`, `invalid_argument`, `storage_failure`.
    pub async fn settle(
        &self,
        name: &str,
        task: u64,
        lease: u64,
        how: Settlement,
    ) -> Result<Option<u64>, QueueError> {
        validate_name(name)?;
        match &how {
            Settlement::Nack { delay_ms: Some(d), .. } if *d > MAX_DELAY_MS => {
                return Err(error(ErrorCode::InvalidArgument, "delay_ms must be at most a year"));
            }
            Settlement::Extend { ms } if *ms == 0 || *ms > MAX_DELAY_MS => {
                return Err(error(ErrorCode::InvalidArgument, "ms must be between 1 and a year"));
            }
            Settlement::Nack { reason: Some(r), .. } | Settlement::Reject { reason: r }
                if r.len() > 4096 =>
            {
                return Err(error(ErrorCode::InvalidArgument, "reason must be at most 4096 bytes"));
            }
            _ => {}
        }
        let op = WriteOp::Settle { queue: name.to_owned(), task, lease, how };
        match self.writer.submit(op).await? {
            WriteResult::Deadline(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// Acks many tasks of one queue in one commit. Returns those that were not acked, each with
    /// the error its own `ack` would have had.
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument` (no tasks, or more than [`MAX_ACK_MANY`]),
    /// `not_found` (no such queue), `storage_failure`.
    pub async fn ack_many(
        &self,
        name: &str,
        tasks: &[LeaseRef],
    ) -> Result<Vec<SettleFailure>, QueueError> {
        validate_name(name)?;
        if tasks.is_empty() || tasks.len() > MAX_ACK_MANY {
            let message = format!("tasks must name 1 to {MAX_ACK_MANY} leased tasks");
            return Err(error(ErrorCode::InvalidArgument, message));
        }
        let tasks = tasks.iter().map(|t| (t.task, t.lease)).collect();
        match self.writer.submit(WriteOp::AckMany { queue: name.to_owned(), tasks }).await? {
            WriteResult::Unsettled(failed) => Ok(failed
                .into_iter()
                .map(|(task, lease, e)| {
                    let e = ErrorFrame::from(e);
                    SettleFailure { task, lease, code: e.code, name: e.name, message: e.message }
                })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Moves dead tasks back to the queues they failed in.
    ///
    /// # Errors
    /// `not_found`, `invalid_argument`, `storage_failure`.
    pub async fn redrive(&self, name: &str, ids: Vec<u64>, all: bool) -> Result<u64, QueueError> {
        validate_name(name)?;
        if ids.is_empty() != all {
            return Err(error(ErrorCode::InvalidArgument, "give ids or all, exactly one"));
        }
        // Origins that were deleted meanwhile come back with the default options.
        let template = self.info_for("redriven", &QueueOptions::default())?;
        match self
            .writer
            .submit(WriteOp::Redrive { queue: name.to_owned(), ids, all, template })
            .await?
        {
            WriteResult::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Counts and rates of a queue.
    ///
    /// # Errors
    /// `not_found`, `storage_failure`.
    pub async fn stats(&self, name: &str) -> Result<QueueStats, QueueError> {
        validate_name(name)?;
        match self.writer.submit(WriteOp::QueueStats { queue: name.to_owned() }).await? {
            WriteResult::Stats(mut stats) => {
                let all = self.dispatchers.lock().unwrap_or_else(|p| p.into_inner());
                stats.consumers = all.get(name).map_or(0, |(_, n)| n.load(Ordering::Relaxed));
                Ok(stats)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Every queue.
    ///
    /// # Errors
    /// `storage_failure`.
    pub async fn list(&self) -> Result<Vec<QueueInfo>, QueueError> {
        match self.writer.submit(WriteOp::ListQueues).await? {
            WriteResult::Queues(all) => Ok(all),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a queue and its tasks; its waiting pulls and consumers end with `not_found`.
    ///
    /// # Errors
    /// `not_found`, `storage_failure`.
    pub async fn delete(&self, name: &str) -> Result<(), QueueError> {
        validate_name(name)?;
        self.writer.submit(WriteOp::DeleteQueue { name: name.to_owned() }).await?;
        Ok(())
    }

    /// Applies due transitions now (for tests with a manual clock).
    ///
    /// # Errors
    /// `storage_failure`.
    pub async fn tick(&self) -> Result<(), QueueError> {
        self.writer.submit(WriteOp::Tick).await?;
        Ok(())
    }

    fn dispatcher(self: &Arc<Self>, name: &str) -> Result<mpsc::Sender<Cmd>, QueueError> {
        let mut all = self.dispatchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((sender, _)) = all.get(name)
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let create = self.info_for(name, &QueueOptions::default())?;
        let (available, ended) = self.signals.register(name);
        let (tx, rx) = mpsc::channel(256);
        let active = Arc::new(AtomicU64::new(0));
        let dispatcher = dispatch::Dispatcher::new(
            name.to_owned(),
            create,
            self.writer.clone(),
            rx,
            available,
            ended,
            active.clone(),
        );
        tokio::spawn(dispatcher.run());
        all.insert(name.to_owned(), (tx.clone(), active));
        Ok(tx)
    }
}

fn closed() -> QueueError {
    error(ErrorCode::ShuttingDown, "the hub is shutting down")
}
