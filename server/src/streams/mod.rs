//! Streams: durable, partitioned, append-only logs with offsets, replay, retention and consumer
//! groups.
//!
//! Appends go through the storage writer (group commit, fsync before the answer). The writer
//! is the sequencer: it assigns offsets and timestamps inside the transaction and, after the
//! commit, updates the [`live`] view, which wakes the [`reader`]s. Consumer [`groups`] assign
//! partitions to readers; their committed offsets are stored through the writer too. A
//! background task enforces [`retention`].

pub mod groups;
pub mod live;
pub mod reader;
pub mod retention;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchboard_protocol::names;
use switchboard_protocol::streams::{
    Durability, GroupInfo, GroupPartitionInfo, PartitionInfo, ReadFrom, ReaderPartition, Retention,
    StreamDescription, StreamInfo,
};
use switchboard_protocol::{ErrorCode, ErrorFrame, Read};
use tokio::sync::mpsc;

use crate::clock::SharedClock;
use crate::session::outbox::Outbox;
use crate::storage::streams::{Appended, NewRecord, StreamOptions, group_offsets, offset_for_time};
use crate::storage::writer::{Completions, StoredStream, Ticket, WriteOp, WriteResult, Writer};
use crate::storage::{OpError, Storage};
use groups::{Action, GroupKey, Groups};
use live::{LiveStream, Registry};
use reader::{Ctl, Membership, ReaderSpec};

/// Most partitions a stream may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// Settings of the stream engine.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    /// Options of streams created by their first append.
    pub defaults: StreamOptions,
    /// Largest record (data, key and headers), in bytes.
    pub max_record_bytes: usize,
    /// Most credit a reader may hold; larger grants are capped.
    pub max_reader_credit: u64,
    pub dedup_window_ms: u64,
    pub group_session_timeout_ms: u64,
    pub retention_interval_ms: u64,
    pub max_batch: usize,
}

/// A stream operation that failed, with what the client needs to know.
pub type StreamError = ErrorFrame;

fn error(code: ErrorCode, message: impl Into<String>) -> StreamError {
    ErrorFrame::new(None, code, message)
}

impl From<OpError> for ErrorFrame {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound(m) => error(ErrorCode::NotFound, m),
            OpError::AlreadyExists(m) => error(ErrorCode::AlreadyExists, m),
            OpError::Invalid(m) => error(ErrorCode::InvalidArgument, m),
            OpError::OutOfRange { message, low } => ErrorFrame {
                low_watermark: Some(low),
                ..error(ErrorCode::OffsetOutOfRange, message)
            },
            OpError::Full(m) => error(ErrorCode::QueueFull, m),
            OpError::LeaseExpired(m) => error(ErrorCode::LeaseExpired, m),
            OpError::Corrupt(m) | OpError::Storage(m) => error(ErrorCode::StorageFailure, m),
            OpError::Closed => error(ErrorCode::ShuttingDown, "the hub is shutting down"),
        }
    }
}

/// The state every part of the engine shares.
pub struct Engine {
    pub config: StreamsConfig,
    pub registry: Arc<Registry>,
    pub writer: Writer,
    pub storage: Storage,
    pub clock: SharedClock,
    pub groups: Groups,
    next_member: AtomicU64,
}

/// A reader the session holds: its id, its control channel and its group membership.
pub struct ReaderHandle {
    pub id: u64,
    pub ctl: mpsc::Sender<Ctl>,
    pub group: Option<(GroupKey, String)>,
}

/// A reader ready to start once its `read_started` reply is queued.
pub struct PendingReader {
    engine: Arc<Engine>,
    spec: ReaderSpec,
    ctl_rx: mpsc::Receiver<Ctl>,
    actions: Vec<Action>,
}

impl PendingReader {
    /// Spawns the reader task and delivers any group assignments.
    pub async fn start(self) {
        tokio::spawn(reader::run(self.engine, self.spec, self.ctl_rx));
        deliver(self.actions).await;
    }
}

/// Sends group messages to readers; a reader that is gone no longer needs them.
pub async fn deliver(actions: Vec<Action>) {
    for (ctl, message) in actions {
        let _ = ctl.send(message).await;
    }
}

/// The stream engine's handle.
pub type Streams = Arc<Engine>;

/// Builds the stream engine over a running writer, with the live view of what was stored.
pub fn new(
    storage: Storage,
    writer: Writer,
    registry: Arc<Registry>,
    stored: Vec<StoredStream>,
    config: StreamsConfig,
    clock: SharedClock,
) -> Streams {
    for (meta, parts) in stored {
        registry.insert(meta, &parts);
    }
    Arc::new(Engine {
        config,
        registry,
        writer,
        storage,
        clock,
        groups: Groups::default(),
        next_member: AtomicU64::new(1),
    })
}

fn validate_name(name: &str) -> Result<(), StreamError> {
    names::validate_resource("stream", name)
        .map_err(|e| error(ErrorCode::InvalidName, e.to_string()))
}

/// Checks the options of a stream.
///
/// # Errors
/// `invalid_argument` naming the bad value.
pub fn validate_options(o: &StreamOptions) -> Result<(), StreamError> {
    if o.partitions == 0 || o.partitions > MAX_PARTITIONS {
        return Err(error(
            ErrorCode::InvalidArgument,
            format!("partitions must be between 1 and {MAX_PARTITIONS}"),
        ));
    }
    let r = o.retention;
    if [r.max_age_ms, r.max_bytes, r.max_records].contains(&Some(0)) {
        return Err(error(ErrorCode::InvalidArgument, "retention limits must be above 0"));
    }
    if let Durability::Interval(ms) = o.durability
        && !(1..=60_000).contains(&ms)
    {
        return Err(error(
            ErrorCode::InvalidArgument,
            "the durability interval must be 1 to 60000 ms",
        ));
    }
    Ok(())
}

impl Engine {
    /// Creates a stream (a no-op if it exists with the same options).
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument`, `already_exists`, `storage_failure`.
    pub async fn create(
        &self,
        name: &str,
        partitions: Option<u32>,
        retention: Option<Retention>,
        durability: Option<Durability>,
    ) -> Result<StreamInfo, StreamError> {
        validate_name(name)?;
        let options = StreamOptions {
            partitions: partitions.unwrap_or(self.config.defaults.partitions),
            retention: retention.unwrap_or(self.config.defaults.retention),
            durability: durability.unwrap_or(self.config.defaults.durability),
        };
        validate_options(&options)?;
        match self.writer.submit(WriteOp::CreateStream { name: name.to_owned(), options }).await? {
            WriteResult::Stream(meta) => Ok(meta.info()),
            other => Err(unexpected(other)),
        }
    }

    /// Appends a record once it is durable, creating the stream with the defaults if needed.
    ///
    /// # Errors
    /// `invalid_name`, `payload_too_large`, `storage_failure`, `shutting_down`.
    pub async fn append(
        &self,
        name: &str,
        record: NewRecord,
        idempotency_key: Option<String>,
    ) -> Result<Appended, StreamError> {
        let op = self.append_op(name, record, idempotency_key)?;
        appended(self.writer.submit(op).await)
    }

    /// Submits an append as [`Engine::append`] does, its outcome going into `to` with `ticket`
    /// (read it with [`appended`]) instead of to a future. A request refused before it reaches
    /// the writer is answered here.
    ///
    /// # Errors
    /// As [`Engine::append`], for a request refused at once.
    pub fn append_to(
        &self,
        name: &str,
        record: NewRecord,
        idempotency_key: Option<String>,
        to: &Arc<Completions>,
        ticket: Ticket,
    ) -> Result<(), StreamError> {
        let op = self.append_op(name, record, idempotency_key)?;
        self.writer.submit_to(op, to, ticket);
        Ok(())
    }

    /// The writer's operation for an append, after checking the request.
    fn append_op(
        &self,
        name: &str,
        record: NewRecord,
        idempotency_key: Option<String>,
    ) -> Result<WriteOp, StreamError> {
        validate_name(name)?;
        let size = record.data.len()
            + record.key.as_ref().map_or(0, String::len)
            + record.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if size > self.config.max_record_bytes {
            return Err(error(
                ErrorCode::PayloadTooLarge,
                format!(
                    "record of {size} bytes exceeds max_record_bytes {}",
                    self.config.max_record_bytes
                ),
            ));
        }
        if idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
            return Err(error(
                ErrorCode::InvalidArgument,
                "idempotency_key must be 1 to 256 bytes",
            ));
        }
        Ok(WriteOp::Append {
            stream: name.to_owned(),
            record,
            idempotency_key,
            create: Some(self.config.defaults.clone()),
        })
    }

    /// Every stream.
    pub fn list(&self) -> Vec<StreamInfo> {
        self.registry.all().iter().map(|l| l.meta.info()).collect()
    }

    /// Watermarks, sizes, groups and lag of a stream.
    ///
    /// # Errors
    /// `not_found`, `storage_failure`.
    pub async fn describe(&self, name: &str) -> Result<StreamDescription, StreamError> {
        let live = self.live(name)?;
        let id = live.meta.id;
        let offsets = self.storage.read(move |txn| group_offsets(txn, id)).await?;
        let mut partitions = Vec::new();
        for p in 0..live.meta.partitions {
            let (low, high, bytes) = live.watermarks(p).unwrap_or_default();
            partitions.push(PartitionInfo { partition: p, low, high, bytes, records: high - low });
        }
        let mut names: Vec<String> = offsets.iter().map(|(g, ..)| g.clone()).collect();
        names.extend(self.groups.names(id));
        names.sort();
        names.dedup();
        let groups = names
            .into_iter()
            .map(|group| {
                let members = self.groups.members(&(id, group.clone()));
                let partitions = partitions
                    .iter()
                    .map(|p| {
                        let committed = offsets
                            .iter()
                            .find(|(g, part, ..)| *g == group && *part == p.partition)
                            .map(|(_, _, offset, _)| *offset);
                        let from = committed.unwrap_or(p.low).max(p.low);
                        GroupPartitionInfo {
                            partition: p.partition,
                            committed,
                            lag: p.high.saturating_sub(from),
                        }
                    })
                    .collect();
                GroupInfo { group, members, partitions }
            })
            .collect();
        Ok(StreamDescription { info: live.meta.info(), partitions, groups })
    }

    /// Deletes a stream; its readers end with `not_found`.
    ///
    /// # Errors
    /// `not_found`, `storage_failure`.
    pub async fn delete(&self, name: &str) -> Result<(), StreamError> {
        let live = self.live(name)?;
        self.writer.submit(WriteOp::DeleteStream { name: name.to_owned() }).await?;
        self.groups.forget_stream(live.meta.id);
        Ok(())
    }

    /// Commits a group's next offset in a partition, fenced by the assignment generation.
    ///
    /// # Errors
    /// `not_found`, `stale_generation`, `offset_out_of_range`, `storage_failure`.
    pub async fn commit(
        &self,
        name: &str,
        group: &str,
        partition: u32,
        offset: u64,
        generation: u64,
    ) -> Result<(), StreamError> {
        let live = self.live(name)?;
        if partition >= live.meta.partitions {
            return Err(error(
                ErrorCode::InvalidArgument,
                format!("stream {name} has no partition {partition}"),
            ));
        }
        let key = (live.meta.id, group.to_owned());
        if !self.groups.generation_is_current(&key, partition, generation) {
            return Err(error(
                ErrorCode::StaleGeneration,
                format!(
                    "generation {generation} no longer owns partition {partition} of group {group}"
                ),
            ));
        }
        let op = WriteOp::Commit {
            stream: name.to_owned(),
            group: group.to_owned(),
            partition,
            offset,
            generation,
        };
        self.writer.submit(op).await?;
        Ok(())
    }

    /// A group's committed offsets by partition.
    ///
    /// # Errors
    /// `storage_failure`.
    pub async fn committed(
        &self,
        stream: u64,
        group: &str,
    ) -> Result<BTreeMap<u32, u64>, StreamError> {
        let group = group.to_owned();
        let all = self.storage.read(move |txn| group_offsets(txn, stream)).await?;
        Ok(all.into_iter().filter(|(g, ..)| *g == group).map(|(_, p, o, _)| (p, o)).collect())
    }

    /// The first offset a reader starting at `from` gets in a partition.
    ///
    /// # Errors
    /// `offset_out_of_range` for an offset outside the stored range, `storage_failure`.
    pub async fn start_offset(
        &self,
        live: &LiveStream,
        partition: u32,
        from: ReadFrom,
    ) -> Result<u64, StreamError> {
        let (low, high, _) = live.watermarks(partition).ok_or_else(|| {
            error(ErrorCode::InvalidArgument, format!("no partition {partition}"))
        })?;
        match from {
            ReadFrom::Earliest => Ok(low),
            ReadFrom::Latest => Ok(high),
            ReadFrom::Offset(offset) => check_position(partition, offset, low, high),
            ReadFrom::Time(time) => {
                let id = live.meta.id;
                Ok(self
                    .storage
                    .read(move |txn| offset_for_time(txn, id, partition, time, low, high))
                    .await?)
            }
        }
    }

    fn live(&self, name: &str) -> Result<Arc<LiveStream>, StreamError> {
        validate_name(name)?;
        self.registry
            .get(name)
            .ok_or_else(|| error(ErrorCode::NotFound, format!("no stream named {name}")))
    }

    /// Prepares a reader for a `read` request: checks the stream, epoch and positions, joins
    /// the group. The reader starts with [`PendingReader::start`].
    ///
    /// # Errors
    /// `not_found`, `epoch_mismatch`, `offset_out_of_range`, `invalid_argument`, `invalid_name`.
    pub async fn open_reader(
        self: &Arc<Self>,
        request: &Read,
        reader: u64,
        outbox: Arc<Outbox>,
    ) -> Result<(ReaderHandle, PendingReader, switchboard_protocol::ReplyBody), StreamError> {
        let live = self.live(&request.stream)?;
        if let Some(epoch) = request.epoch
            && epoch != live.meta.epoch
        {
            return Err(ErrorFrame {
                epoch: Some(live.meta.epoch),
                ..error(
                    ErrorCode::EpochMismatch,
                    format!(
                        "stream {} was recreated: epoch {} is now {}",
                        request.stream, epoch, live.meta.epoch
                    ),
                )
            });
        }
        let count = live.meta.partitions;
        for p in &request.positions {
            if p.partition >= count {
                return Err(error(
                    ErrorCode::InvalidArgument,
                    format!("no partition {}", p.partition),
                ));
            }
        }
        let (ctl, ctl_rx) = mpsc::channel(64);
        let resume: BTreeMap<u32, u64> =
            request.positions.iter().map(|p| (p.partition, p.offset)).collect();
        if let Some(group) = &request.group {
            names::validate_resource("group", group)
                .map_err(|e| error(ErrorCode::InvalidName, e.to_string()))?;
            for (&partition, &offset) in &resume {
                let (low, high, _) = live.watermarks(partition).unwrap_or_default();
                check_position(partition, offset, low, high)?;
            }
            let key: GroupKey = (live.meta.id, group.clone());
            let now = self.clock.now_ms();
            let (member, actions) =
                self.groups.join(&key, count, request.member.clone(), ctl.clone(), now, || {
                    format!("m{}-{}", now, self.next_member.fetch_add(1, Ordering::Relaxed))
                });
            let spec = ReaderSpec {
                id: reader,
                live: live.clone(),
                outbox,
                credit: request.credit,
                positions: BTreeMap::new(),
                group: Some(Membership {
                    key: key.clone(),
                    member: member.clone(),
                    auto_commit: request.auto_commit,
                    from: request.from,
                    resume,
                }),
            };
            let reply = switchboard_protocol::ReplyBody::ReadStarted {
                reader,
                epoch: live.meta.epoch,
                member: Some(member.clone()),
                partitions: Vec::new(),
            };
            let handle = ReaderHandle { id: reader, ctl, group: Some((key, member)) };
            return Ok((
                handle,
                PendingReader { engine: self.clone(), spec, ctl_rx, actions },
                reply,
            ));
        }
        let partitions: Vec<u32> = match request.partition {
            Some(p) if p >= count => {
                return Err(error(
                    ErrorCode::InvalidArgument,
                    format!("stream {} has no partition {p}", request.stream),
                ));
            }
            Some(p) => vec![p],
            None => (0..count).collect(),
        };
        let mut positions = BTreeMap::new();
        let mut started = Vec::new();
        for partition in partitions {
            let (low, high, _) = live.watermarks(partition).unwrap_or_default();
            let next = match resume.get(&partition) {
                Some(&offset) => check_position(partition, offset, low, high)?,
                None => self.start_offset(&live, partition, request.from).await?,
            };
            positions.insert(partition, next);
            started.push(ReaderPartition { partition, next, low, high });
        }
        let spec = ReaderSpec {
            id: reader,
            live: live.clone(),
            outbox,
            credit: request.credit,
            positions,
            group: None,
        };
        let reply = switchboard_protocol::ReplyBody::ReadStarted {
            reader,
            epoch: live.meta.epoch,
            member: None,
            partitions: started,
        };
        let handle = ReaderHandle { id: reader, ctl, group: None };
        Ok((
            handle,
            PendingReader { engine: self.clone(), spec, ctl_rx, actions: Vec::new() },
            reply,
        ))
    }

    /// Stops a reader. A group member leaves its group at once (`leave`) or, when its session
    /// ended, keeps its partitions for the session timeout.
    pub async fn close_reader(&self, handle: ReaderHandle, leave: bool) {
        let _ = handle.ctl.send(Ctl::Close).await;
        if let Some((key, member)) = handle.group {
            let now = self.clock.now_ms();
            if leave {
                deliver(self.groups.leave(&key, &member, &handle.ctl, now)).await;
            } else {
                self.groups.disconnect(&key, &member, &handle.ctl, now);
            }
        }
    }
}

fn check_position(partition: u32, offset: u64, low: u64, high: u64) -> Result<u64, StreamError> {
    if offset < low || offset > high {
        let message = format!(
            "partition {partition}: offset {offset} is outside the stored range {low}..{high}"
        );
        return Err(ErrorFrame {
            low_watermark: Some(low),
            ..error(ErrorCode::OffsetOutOfRange, message)
        });
    }
    Ok(offset)
}

/// The outcome of an append from the writer's.
///
/// # Errors
/// The append's error as the client gets it.
pub fn appended(outcome: Result<WriteResult, OpError>) -> Result<Appended, StreamError> {
    match outcome? {
        WriteResult::Appended(a) => Ok(a),
        other => Err(unexpected(other)),
    }
}

fn unexpected(result: WriteResult) -> StreamError {
    error(ErrorCode::Internal, format!("unexpected storage result {result:?}"))
}
