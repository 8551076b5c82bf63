//! The storage writer: one thread owns every redb write transaction (group commit).
//!
//! Engines send [`WriteOp`]s over a bounded channel (a full channel makes them wait:
//! backpressure, never loss). The thread takes everything waiting, up to `max_batch`, applies it
//! in one transaction, commits once — with `Durability::Immediate`, one fsync, unless every
//! operation in the batch belongs to a stream that asked for interval durability — then tells
//! the engines what changed and only then answers each operation. Nothing is visible to readers
//! or acknowledged before its commit. The batch is whatever arrived while the previous commit
//! was running, so batches grow with load and a lone operation is never held back.
//!
//! The thread is also the queues' one timer: it waits for work at most until the earliest due
//! time (a scheduled task or a lease deadline) and applies what is due in the next transaction.
//!
//! Interval durability: such batches commit without fsync; the thread makes an fsynced commit
//! at most `interval` later. A crash before it loses what those batches acknowledged.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase};
use switchboard_protocol::queues::{QueueInfo, QueueStats, Task};
use switchboard_protocol::streams::Durability;
use tokio::sync::oneshot;

use super::queues::{Changes, NewTask, QueueEvent, QueuesState, Settlement};
use super::streams::{Appended, NewRecord, StreamEvent, StreamMeta, StreamOptions, StreamsState};
use super::tables::{META, Tables};
use super::{OpError, Storage};
use crate::clock::SharedClock;

/// Operations waiting for the writer, at most.
const CHANNEL: usize = 16 * 1024;
/// Operations the reused batch vector holds without growing (it grows beyond when needed).
const BATCH_CAPACITY: usize = 1024;

/// Most due queue transitions applied in one transaction.
const DUE_BATCH: usize = 10_000;

/// A write the writer applies in its next batch.
#[derive(Debug)]
pub enum WriteOp {
    CreateStream {
        name: String,
        options: StreamOptions,
    },
    /// Appends a record; creates the stream with `create` first if it is missing and given.
    Append {
        stream: String,
        record: NewRecord,
        idempotency_key: Option<String>,
        create: Option<StreamOptions>,
    },
    Commit {
        stream: String,
        group: String,
        partition: u32,
        offset: u64,
        generation: u64,
    },
    DeleteStream {
        name: String,
    },
    Trim {
        stream: u64,
        partition: u32,
        below: u64,
        max: u64,
    },
    ExpireDedup {
        max: usize,
    },
    /// Creates a queue; `strict` fails if it exists with other settings.
    CreateQueue {
        info: QueueInfo,
        strict: bool,
    },
    /// Enqueues a task, creating the queue with `create` if it is missing.
    Enqueue {
        queue: String,
        task: NewTask,
        idempotency_key: Option<String>,
        create: Arc<QueueInfo>,
    },
    /// Leases up to `max` tasks to `consumer` (0 for a pull), creating the queue if missing.
    Lease {
        queue: String,
        max: u32,
        consumer: u64,
        create: QueueInfo,
    },
    Settle {
        queue: String,
        task: u64,
        lease: u64,
        how: Settlement,
    },
    /// Acks each (task, lease) as its own `Settle` would; one failing does not stop the rest.
    AckMany {
        queue: String,
        tasks: Vec<(u64, u64)>,
    },
    /// Redrives dead tasks; origin queues that no longer exist are created from `template`.
    Redrive {
        queue: String,
        ids: Vec<u64>,
        all: bool,
        template: QueueInfo,
    },
    QueueStats {
        queue: String,
    },
    ListQueues,
    DeleteQueue {
        name: String,
    },
    /// Applies due queue transitions now (the timer does this by itself; tests with a manual
    /// clock call it after moving the clock).
    Tick,
    /// Commits what came before, then ends the thread; later operations fail with `Closed`.
    Stop,
}

/// What a write produced.
#[derive(Debug, Clone)]
pub enum WriteResult {
    Stream(StreamMeta),
    Appended(Appended),
    Queue(QueueInfo),
    Task(u64),
    Tasks(Vec<Task>),
    Deadline(Option<u64>),
    /// The (task, lease) pairs of an `AckMany` that were not acked, and why.
    Unsettled(Vec<(u64, u64, OpError)>),
    Stats(QueueStats),
    Queues(Vec<QueueInfo>),
    Count(u64),
    Done,
}

/// A stream as stored: its settings and each partition's state.
pub type StoredStream = (StreamMeta, Vec<super::streams::PartState>);

/// Receives what each commit changed, on the writer thread, before any operation of that
/// commit is answered. Must be quick and must not block.
pub trait CommitListener: Send + Sync + 'static {
    fn streams(&self, events: Vec<StreamEvent>);
    fn queues(&self, events: Vec<QueueEvent>);
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most operations in one transaction.
    pub max_batch: usize,
    /// How long an idempotency key of a stream append is remembered.
    pub dedup_window_ms: u64,
}

struct Job {
    op: WriteOp,
    done: Done,
}

/// Where the outcome of a job goes. A job dropped unanswered (the writer stopped before it)
/// answers [`OpError::Closed`]: a future sees its sender dropped, and [`Completions`] get it
/// pushed.
struct Done(Option<Target>);

enum Target {
    /// To the one future waiting for it ([`Writer::submit`]).
    Once(oneshot::Sender<Result<WriteResult, OpError>>),
    /// Into a submitter's [`Completions`], with the submitter's ticket ([`Writer::submit_to`]).
    Into(Arc<Completions>, Ticket),
}

impl Done {
    fn send(mut self, result: Result<WriteResult, OpError>) {
        match self.0.take() {
            Some(Target::Once(tx)) => {
                let _ = tx.send(result);
            }
            Some(Target::Into(to, ticket)) => to.push(ticket, result),
            None => {}
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(Target::Into(to, ticket)) = self.0.take() {
            to.push(ticket, Err(OpError::Closed));
        }
    }
}

/// What a submitter needs to answer an outcome delivered to its [`Completions`]: the request's
/// id and one byte of its own (a session keeps the answer's format there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub id: u64,
    pub tag: u8,
}

/// Outcomes of one submitter's operations, collected by the writer as each commit finishes and
/// taken by the submitter in one go. The first outcome takes the submitter's waker, so a
/// session waiting for hundreds of records of one commit is woken once, not once per record,
/// and needs no channel or future per record.
///
/// Unbounded by itself: it holds at most what its submitter has in flight, which the submitter
/// bounds (a session by `max_in_flight`).
#[derive(Debug, Default)]
pub struct Completions {
    ready: std::sync::Mutex<Vec<(Ticket, Result<WriteResult, OpError>)>>,
    waker: futures_util::task::AtomicWaker,
}

impl Completions {
    fn push(&self, ticket: Ticket, result: Result<WriteResult, OpError>) {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).push((ticket, result));
        self.waker.wake();
    }

    /// Moves every outcome delivered so far into `into` (after what it holds). The buffer the
    /// writer pushes into keeps its capacity, so the writer does not grow it again each commit.
    pub fn take(&self, into: &mut Vec<(Ticket, Result<WriteResult, OpError>)>) {
        into.append(&mut self.ready.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Waits until at least one outcome is ready to take.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.ready.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
    }
}

/// What the writer has done since it started.
#[derive(Debug, Default)]
pub struct WriterCounts {
    /// Transactions committed.
    pub commits: std::sync::atomic::AtomicU64,
    /// Operations in those transactions.
    pub writes: std::sync::atomic::AtomicU64,
    /// Commits made durable with an fsync.
    pub fsyncs: std::sync::atomic::AtomicU64,
}

impl WriterCounts {
    fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// (commits, writes, fsyncs).
    pub fn read(&self) -> (u64, u64, u64) {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        (get(&self.commits), get(&self.writes), get(&self.fsyncs))
    }
}

/// A handle to the writer thread. Cloning shares it.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::SyncSender<Job>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    counts: Arc<WriterCounts>,
}

impl Writer {
    /// Starts the writer thread on `storage`, returning the handle and the streams as stored.
    ///
    /// # Errors
    /// The stored state cannot be read.
    pub fn start(
        storage: &Storage,
        config: WriterConfig,
        clock: SharedClock,
        listener: Arc<dyn CommitListener>,
    ) -> Result<(Writer, Vec<StoredStream>), OpError> {
        let db = storage.database();
        let state = load(&db)?;
        let snapshot = state.streams.snapshot();
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let counts = Arc::new(WriterCounts::default());
        let writer =
            WriterThread { db, rx, state, config, clock, listener, counts: counts.clone() };
        let thread = std::thread::Builder::new()
            .name("switchboard-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| OpError::Storage(format!("cannot start the writer thread: {e}")))?;
        let thread = Arc::new(std::sync::Mutex::new(Some(thread)));
        Ok((Writer { tx, thread, counts }, snapshot))
    }

    /// What the writer has done since it started.
    pub fn counts(&self) -> &WriterCounts {
        &self.counts
    }

    /// Commits everything submitted so far, stops the thread and waits for it, releasing its
    /// hold on the database.
    pub async fn stop(&self) {
        let _ = self.submit(WriteOp::Stop).await;
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Submits a write and waits until it is committed (or failed).
    ///
    /// # Errors
    /// The operation's own error, [`OpError::Storage`] if the commit failed, or
    /// [`OpError::Closed`] if the writer has stopped.
    pub async fn submit(&self, op: WriteOp) -> Result<WriteResult, OpError> {
        let (done, wait) = oneshot::channel();
        match self.tx.try_send(Job { op, done: Done(Some(Target::Once(done))) }) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                // The writer is behind: wait for room on a blocking thread, not on the runtime.
                let tx = self.tx.clone();
                let sent = tokio::task::spawn_blocking(move || tx.send(job).is_ok()).await;
                if !matches!(sent, Ok(true)) {
                    return Err(OpError::Closed);
                }
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(OpError::Closed),
        }
        wait.await.map_err(|_| OpError::Closed)?
    }

    /// Submits a write whose outcome goes into `to` with `ticket` once it is committed (or
    /// failed), without waiting. With the writer's channel full, a blocking thread waits for
    /// room; with the writer stopped, the outcome is [`OpError::Closed`] at once.
    pub fn submit_to(&self, op: WriteOp, to: &Arc<Completions>, ticket: Ticket) {
        let job = Job { op, done: Done(Some(Target::Into(to.clone(), ticket))) };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(mpsc::SendError(job)) = tx.send(job) {
                        job.done.send(Err(OpError::Closed));
                    }
                });
            }
            Err(mpsc::TrySendError::Disconnected(job)) => job.done.send(Err(OpError::Closed)),
        }
    }
}

struct State {
    streams: StreamsState,
    queues: QueuesState,
    next_id: u64,
    /// Task and lease ids below this are reserved by the stored `next_task`: until
    /// `queues.next_task` reaches it, commits need not write `next_task` again.
    reserved_task: u64,
}

/// How many task and lease ids one write of `next_task` reserves. The stored value is the end
/// of the reservation, so ids stay unique across restarts; a restart skips what was left of it.
const TASK_ID_BLOCK: u64 = 1 << 16;

fn load(db: &Database) -> Result<State, OpError> {
    let txn = db.begin_read()?;
    let streams = StreamsState::load(&txn)?;
    let meta = txn.open_table(META)?;
    let next_id = meta.get("next_id")?.map(|v| v.value()).unwrap_or(1);
    let next_task = meta.get("next_task")?.map(|v| v.value()).unwrap_or(1);
    let queues = QueuesState::load(&txn, next_task)?;
    Ok(State { streams, queues, next_id, reserved_task: next_task })
}

struct WriterThread {
    db: Arc<Database>,
    rx: mpsc::Receiver<Job>,
    state: State,
    config: WriterConfig,
    clock: SharedClock,
    listener: Arc<dyn CommitListener>,
    counts: Arc<WriterCounts>,
}

impl WriterThread {
    fn run(mut self) {
        // Reused from batch to batch: operations are large, and growing a fresh vector by
        // doubling copied each of them about twice.
        let mut batch: Vec<Job> = Vec::with_capacity(BATCH_CAPACITY);
        let mut unsynced: Option<Instant> = None;
        let mut sync_every = Duration::MAX;
        loop {
            let now = self.clock.now_ms();
            let due_in = self
                .state
                .queues
                .next_due()
                .map(|at| Duration::from_millis(at.saturating_sub(now)));
            let sync_in = unsynced.map(|since| sync_every.saturating_sub(since.elapsed()));
            let wait = match (due_in, sync_in) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match wait {
                None => match self.rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => break,
                },
                Some(wait) => match self.rx.recv_timeout(wait) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            let Some(first) = first else {
                if self.state.queues.next_due().is_some_and(|at| at <= self.clock.now_ms()) {
                    self.commit_batch(&mut batch, true);
                    unsynced = None;
                    sync_every = Duration::MAX;
                } else if unsynced.is_some() && self.sync().is_ok() {
                    unsynced = None;
                    sync_every = Duration::MAX;
                }
                continue;
            };
            let mut stopping = matches!(first.op, WriteOp::Stop);
            batch.push(first);
            while batch.len() < self.config.max_batch && !stopping {
                match self.rx.try_recv() {
                    Ok(job) => {
                        stopping = matches!(job.op, WriteOp::Stop);
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            // An fsync is due if the oldest unsynced commit is older than its interval, however
            // busy the writer is: then this batch commits durably.
            let overdue = unsynced.is_some_and(|since| since.elapsed() >= sync_every);
            let lazy = self.lazy_interval(&batch).filter(|_| !overdue);
            match lazy {
                Some(every) => {
                    unsynced.get_or_insert_with(Instant::now);
                    sync_every = sync_every.min(every);
                }
                None => {
                    unsynced = None;
                    sync_every = Duration::MAX;
                }
            }
            self.commit_batch(&mut batch, lazy.is_none());
            if stopping {
                break;
            }
        }
        if unsynced.is_some() {
            let _ = self.sync();
        }
    }

    /// `Some(interval)` when every operation of the batch may skip the fsync.
    fn lazy_interval(&self, batch: &[Job]) -> Option<Duration> {
        let mut every = Duration::MAX;
        for job in batch {
            let WriteOp::Append { stream, create, .. } = &job.op else { return None };
            let durability = if self.state.streams.exists(stream) {
                self.state.streams.durability(stream)
            } else {
                create.as_ref().map(|o| o.durability).unwrap_or_default()
            };
            match durability {
                Durability::Interval(ms) => every = every.min(Duration::from_millis(ms)),
                Durability::Immediate => return None,
            }
        }
        Some(every)
    }

    fn sync(&mut self) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
        WriterCounts::add(&self.counts.fsyncs, 1);
        Ok(())
    }

    /// Applies and commits `batch`, answers each operation, and leaves `batch` empty.
    fn commit_batch(&mut self, batch: &mut Vec<Job>, durable: bool) {
        let mut stream_events = Vec::new();
        let mut changes = Changes::default();
        match self.apply(batch, durable, &mut stream_events, &mut changes) {
            Ok(results) => {
                WriterCounts::add(&self.counts.commits, 1);
                WriterCounts::add(&self.counts.writes, batch.len() as u64);
                WriterCounts::add(&self.counts.fsyncs, u64::from(durable));
                if !stream_events.is_empty() {
                    self.listener.streams(stream_events);
                }
                self.state.queues.finish(&mut changes);
                if !changes.events.is_empty() {
                    self.listener.queues(std::mem::take(&mut changes.events));
                }
                for (job, result) in batch.drain(..).zip(results) {
                    job.done.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, ops = batch.len(), "commit failed; nothing in the batch was acknowledged");
                // The transaction did not commit: the stored state is the truth again.
                match load(&self.db) {
                    Ok(state) => self.state = state,
                    Err(e) => tracing::error!(error = %e, "cannot reload the stored state"),
                }
                for job in batch.drain(..) {
                    job.done.send(Err(OpError::Storage(e.to_string())));
                }
            }
        }
    }

    fn apply(
        &mut self,
        batch: &mut [Job],
        durable: bool,
        events: &mut Vec<StreamEvent>,
        changes: &mut Changes,
    ) -> Result<Vec<Result<WriteResult, OpError>>, OpError> {
        let mut txn = self.db.begin_write()?;
        let durability = if durable { redb::Durability::Immediate } else { redb::Durability::None };
        txn.set_durability(durability).map_err(|e| OpError::Storage(e.to_string()))?;
        let now = self.clock.now_ms();
        let mut results = Vec::with_capacity(batch.len());
        let first_id = self.state.next_id;
        let mut reserved = None;
        {
            let mut t = Tables::open(&txn)?;
            self.state.queues.apply_due(
                &mut t,
                &mut self.state.next_id,
                now,
                DUE_BATCH,
                changes,
            )?;
            let mut dirty = BTreeSet::new();
            for job in batch.iter_mut() {
                let result = self.apply_one(&mut t, &mut job.op, now, &mut dirty, events, changes);
                if let Err(e) = &result
                    && e.is_fatal()
                {
                    return Err(e.clone());
                }
                results.push(result);
            }
            self.state.streams.flush_appends(&mut t, events)?;
            self.state.streams.expire_some_keys(&mut t, now)?;
            self.state.queues.flush_keys(&mut t, now)?;
            self.state.streams.flush_dirty(&mut t, &dirty)?;
        }
        let reserve = self.state.queues.next_task > self.state.reserved_task;
        if self.state.next_id != first_id || reserve {
            let mut meta = txn.open_table(META)?;
            meta.insert("next_id", self.state.next_id)?;
            if reserve {
                let end = self.state.queues.next_task.saturating_add(TASK_ID_BLOCK);
                meta.insert("next_task", end)?;
                reserved = Some(end);
            }
        }
        txn.commit()?;
        if let Some(end) = reserved {
            self.state.reserved_task = end;
        }
        Ok(results)
    }

    fn apply_one(
        &mut self,
        t: &mut Tables<'_>,
        op: &mut WriteOp,
        now: u64,
        dirty: &mut BTreeSet<(u64, u32)>,
        events: &mut Vec<StreamEvent>,
        changes: &mut Changes,
    ) -> Result<WriteResult, OpError> {
        let streams = &mut self.state.streams;
        let queues = &mut self.state.queues;
        let next_id = &mut self.state.next_id;
        match op {
            WriteOp::CreateStream { name, options } => streams
                .create(t, next_id, name, options, now, random_u64(now), events)
                .map(WriteResult::Stream),
            WriteOp::Append { stream, record, idempotency_key, create } => {
                if !streams.exists(stream) {
                    let Some(options) = create else {
                        return Err(OpError::NotFound(format!("no stream named {stream}")));
                    };
                    streams.create(t, next_id, stream, options, now, random_u64(now), events)?;
                }
                let record = std::mem::take(record);
                let window = self.config.dedup_window_ms;
                streams
                    .append(stream, record, idempotency_key.as_deref(), now, window, dirty)
                    .map(WriteResult::Appended)
            }
            WriteOp::Commit { stream, group, partition, offset, generation } => streams
                .commit(t, stream, group, *partition, *offset, *generation)
                .map(|()| WriteResult::Done),
            WriteOp::DeleteStream { name } => {
                streams.flush_appends(t, events)?;
                streams.delete(t, name, events).map(|()| WriteResult::Done)
            }
            WriteOp::Trim { stream, partition, below, max } => {
                streams.flush_appends(t, events)?;
                streams
                    .trim(t, *stream, *partition, *below, *max, dirty, events)
                    .map(WriteResult::Count)
            }
            WriteOp::ExpireDedup { max } => {
                let n = streams.expire_dedup(t, now, *max)? + queues.expire_keys(t, now, *max)?;
                Ok(WriteResult::Count(n as u64))
            }
            WriteOp::CreateQueue { info, strict } => {
                let mut info = info.clone();
                info.created = now;
                queues.create(t, next_id, info, *strict).map(WriteResult::Queue)
            }
            WriteOp::Enqueue { queue, task, idempotency_key, create } => {
                if !queues.exists(queue) {
                    let mut info = (**create).clone();
                    info.created = now;
                    queues.create(t, next_id, info, false)?;
                }
                let task = std::mem::take(task);
                queues
                    .enqueue(t, queue, task, idempotency_key.as_deref(), now, changes)
                    .map(WriteResult::Task)
            }
            WriteOp::Lease { queue, max, consumer, create } => {
                if !queues.exists(queue) {
                    let mut info = create.clone();
                    info.created = now;
                    queues.create(t, next_id, info, false)?;
                }
                queues.lease(t, queue, *max, *consumer, now, changes).map(WriteResult::Tasks)
            }
            WriteOp::Settle { queue, task, lease, how } => queues
                .settle(t, next_id, queue, *task, *lease, how.clone(), now, changes)
                .map(WriteResult::Deadline),
            WriteOp::AckMany { queue, tasks } => {
                if !queues.exists(queue) {
                    return Err(OpError::NotFound(format!("no queue named {queue}")));
                }
                let mut failed = Vec::new();
                for &(task, lease) in tasks.iter() {
                    let how = Settlement::Ack;
                    match queues.settle(t, next_id, queue, task, lease, how, now, changes) {
                        Ok(_) => {}
                        Err(e) if e.is_fatal() => return Err(e),
                        Err(e) => failed.push((task, lease, e)),
                    }
                }
                Ok(WriteResult::Unsettled(failed))
            }
            WriteOp::Redrive { queue, ids, all, template } => queues
                .redrive(t, next_id, queue, ids, *all, template, now, changes)
                .map(WriteResult::Count),
            WriteOp::QueueStats { queue } => queues.stats(queue, now).map(WriteResult::Stats),
            WriteOp::ListQueues => Ok(WriteResult::Queues(queues.infos())),
            WriteOp::DeleteQueue { name } => {
                queues.delete(t, name, changes).map(|()| WriteResult::Done)
            }
            WriteOp::Tick | WriteOp::Stop => Ok(WriteResult::Done),
        }
    }
}

/// A random stream epoch from the standard library's randomly seeded hasher: 53 bits, not zero,
/// so that JavaScript clients hold it exactly in a number.
fn random_u64(salt: u64) -> u64 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let random = std::hash::RandomState::new().hash_one((salt, n, std::process::id()));
    (random & ((1 << 53) - 1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_into(to: &Arc<Completions>, id: u64) -> Job {
        Job { op: WriteOp::Tick, done: Done(Some(Target::Into(to.clone(), Ticket { id, tag: 3 }))) }
    }

    #[tokio::test]
    async fn a_job_dropped_unanswered_should_answer_closed_and_wake_its_submitter() {
        let to = Arc::new(Completions::default());
        let waiting = tokio::spawn({
            let to = to.clone();
            async move { to.ready().await }
        });
        tokio::task::yield_now().await;
        // The writer stopped with these still in its channel: dropping them answers them.
        drop(vec![job_into(&to, 1), job_into(&to, 2)]);
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        let mut got = Vec::new();
        to.take(&mut got);
        let answers: Vec<(u64, bool)> =
            got.iter().map(|(t, r)| (t.id, matches!(r, Err(OpError::Closed)))).collect();
        assert_eq!(answers, [(1, true), (2, true)]);
        assert_eq!(got[0].0.tag, 3);
    }

    #[test]
    fn an_answered_job_should_deliver_only_its_result() {
        let to = Arc::new(Completions::default());
        job_into(&to, 7).done.send(Ok(WriteResult::Task(42)));
        let mut got = Vec::new();
        to.take(&mut got);
        assert_eq!(got.len(), 1, "sending consumes the job without a second, dropped answer");
        assert!(matches!(got[0], (Ticket { id: 7, tag: 3 }, Ok(WriteResult::Task(42)))));
        to.take(&mut got);
        assert_eq!(got.len(), 1, "taken once");
    }
}
