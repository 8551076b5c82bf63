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
//! Interval durability: such batches commit without fsync; the thread makes an fsynced commit
//! at most `interval` later. A crash before it loses what those batches acknowledged.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase};
use std::sync::mpsc;
use switchboard_protocol::streams::Durability;

use tokio::sync::oneshot;

use super::streams::{
    Appended, NewRecord, StreamEvent, StreamMeta, StreamOptions, StreamTables, StreamsState,
};
use super::tables::META;
use super::{OpError, Storage};
use crate::clock::SharedClock;

/// Operations waiting for the writer, at most.
const CHANNEL: usize = 16 * 1024;

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
    /// Commits what came before, then ends the thread; later operations fail with `Closed`.
    Stop,
}

/// What a write produced.
#[derive(Debug, Clone)]
pub enum WriteResult {
    Stream(StreamMeta),
    Appended(Appended),
    Count(u64),
    Done,
}

/// A stream as stored: its settings and each partition's state.
pub type StoredStream = (StreamMeta, Vec<super::streams::PartState>);

/// Receives what each commit changed, on the writer thread, before any operation of that
/// commit is answered. Must be quick and must not block.
pub type StreamListener = Arc<dyn Fn(Vec<StreamEvent>) + Send + Sync>;

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most operations in one transaction.
    pub max_batch: usize,
    /// How long an idempotency key is remembered.
    pub dedup_window_ms: u64,
}

struct Job {
    op: WriteOp,
    done: oneshot::Sender<Result<WriteResult, OpError>>,
}

/// A handle to the writer thread. Cloning shares it; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::SyncSender<Job>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
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
        listener: StreamListener,
    ) -> Result<(Writer, Vec<StoredStream>), OpError> {
        let db = storage.database();
        let state = load(&db)?;
        let snapshot = state.streams.snapshot();
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let thread = std::thread::Builder::new()
            .name("switchboard-writer".into())
            .spawn(move || {
                let mut thread = WriterThread {
                    db,
                    rx,
                    state,
                    config,
                    clock,
                    listener,
                };
                thread.run();
            })
            .map_err(|e| OpError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok((
            Writer {
                tx,
                thread: Arc::new(std::sync::Mutex::new(Some(thread))),
            },
            snapshot,
        ))
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
        match self.tx.try_send(Job { op, done }) {
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
}

struct State {
    streams: StreamsState,
    next_id: u64,
}

fn load(db: &Database) -> Result<State, OpError> {
    let txn = db.begin_read()?;
    let streams = StreamsState::load(&txn)?;
    let next_id = txn
        .open_table(META)?
        .get("next_id")?
        .map(|v| v.value())
        .unwrap_or(1);
    Ok(State { streams, next_id })
}

struct WriterThread {
    db: Arc<Database>,
    rx: mpsc::Receiver<Job>,
    state: State,
    config: WriterConfig,
    clock: SharedClock,
    listener: StreamListener,
}

impl WriterThread {
    fn run(&mut self) {
        let mut unsynced: Option<Instant> = None;
        let mut sync_every = Duration::MAX;
        loop {
            let first = match unsynced {
                None => match self.rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
                Some(since) => {
                    let left = sync_every.saturating_sub(since.elapsed());
                    match self.rx.recv_timeout(left) {
                        Ok(job) => job,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if self.sync().is_ok() {
                                unsynced = None;
                                sync_every = Duration::MAX;
                            }
                            continue;
                        }
                    }
                }
            };
            let mut stopping = matches!(first.op, WriteOp::Stop);
            let mut batch = vec![first];
            while batch.len() < self.config.max_batch && !stopping {
                match self.rx.try_recv() {
                    Ok(job) => {
                        stopping = matches!(job.op, WriteOp::Stop);
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            let lazy = self.lazy_interval(&batch);
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
            self.commit_batch(batch, lazy.is_none());
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
            match &job.op {
                WriteOp::Append { stream, create, .. } => {
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
                _ => return None,
            }
        }
        Some(every)
    }

    fn sync(&mut self) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }

    fn commit_batch(&mut self, mut batch: Vec<Job>, durable: bool) {
        let mut events = Vec::new();
        let outcome = self.apply(&mut batch, durable, &mut events);
        match outcome {
            Ok(results) => {
                if !events.is_empty() {
                    (self.listener)(events);
                }
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.done.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, ops = batch.len(), "commit failed; nothing in the batch was acknowledged");
                // The transaction did not commit: the stored state is the truth again.
                match load(&self.db) {
                    Ok(state) => self.state = state,
                    Err(e) => tracing::error!(error = %e, "cannot reload the stored state"),
                }
                for job in batch {
                    let _ = job.done.send(Err(OpError::Storage(e.to_string())));
                }
            }
        }
    }

    fn apply(
        &mut self,
        batch: &mut [Job],
        durable: bool,
        events: &mut Vec<StreamEvent>,
    ) -> Result<Vec<Result<WriteResult, OpError>>, OpError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| OpError::Storage(e.to_string()))?;
        let now = self.clock.now_ms();
        let mut results = Vec::with_capacity(batch.len());
        let first_id = self.state.next_id;
        {
            let mut t = StreamTables::open(&txn)?;
            let mut dirty = BTreeSet::new();
            for job in batch.iter_mut() {
                let result = self.apply_one(&mut t, &mut job.op, now, &mut dirty, events);
                if let Err(e) = &result
                    && e.is_fatal()
                {
                    return Err(result.err().unwrap_or(OpError::Closed));
                }
                results.push(result);
            }
            self.state.streams.flush_dirty(&mut t, &dirty)?;
        }
        if self.state.next_id != first_id {
            txn.open_table(META)?
                .insert("next_id", self.state.next_id)?;
        }
        txn.commit()?;
        Ok(results)
    }

    fn apply_one(
        &mut self,
        t: &mut StreamTables<'_>,
        op: &mut WriteOp,
        now: u64,
        dirty: &mut BTreeSet<(u64, u32)>,
        events: &mut Vec<StreamEvent>,
    ) -> Result<WriteResult, OpError> {
        let streams = &mut self.state.streams;
        match op {
            WriteOp::CreateStream { name, options } => {
                let epoch = random_u64(now);
                streams
                    .create(
                        t,
                        &mut self.state.next_id,
                        name,
                        options,
                        now,
                        epoch,
                        events,
                    )
                    .map(WriteResult::Stream)
            }
            WriteOp::Append {
                stream,
                record,
                idempotency_key,
                create,
            } => {
                if !streams.exists(stream) {
                    match create {
                        Some(options) => {
                            let epoch = random_u64(now);
                            streams.create(
                                t,
                                &mut self.state.next_id,
                                stream,
                                options,
                                now,
                                epoch,
                                events,
                            )?;
                        }
                        None => return Err(OpError::NotFound(format!("no stream named {stream}"))),
                    }
                }
                streams
                    .append(
                        t,
                        stream,
                        std::mem::take(record),
                        idempotency_key.as_deref(),
                        now,
                        self.config.dedup_window_ms,
                        dirty,
                        events,
                    )
                    .map(WriteResult::Appended)
            }
            WriteOp::Commit {
                stream,
                group,
                partition,
                offset,
                generation,
            } => streams
                .commit(t, stream, group, *partition, *offset, *generation)
                .map(|()| WriteResult::Done),
            WriteOp::DeleteStream { name } => {
                streams.delete(t, name, events).map(|()| WriteResult::Done)
            }
            WriteOp::Trim {
                stream,
                partition,
                below,
                max,
            } => streams
                .trim(t, *stream, *partition, *below, *max, dirty, events)
                .map(WriteResult::Count),
            WriteOp::ExpireDedup { max } => {
                super::streams::expire_dedup(t, now, *max).map(|n| WriteResult::Count(n as u64))
            }
            WriteOp::Stop => Ok(WriteResult::Done),
        }
    }
}

/// A random 64-bit value (stream epochs), from the standard library's randomly seeded hasher.
fn random_u64(salt: u64) -> u64 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::hash::RandomState::new().hash_one((salt, n, std::process::id()))
}
