//! Every frame of the protocol.
//!
//! A frame is an externally tagged enum: in JSON `{"publish": {"id": 1, "topic": "a.b",
//! "data": "hi"}}`, in MessagePack the same shape as a one-entry map with named fields. Unknown
//! fields are ignored so that newer clients and hubs can add optional fields.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::limits::Limits;
use crate::payload::{Headers, Payload};
use crate::queues::{QueueInfo, QueueOptions, QueueStats, Task};
use crate::streams::{
    Durability, PartitionOffset, ReadFrom, ReaderPartition, Record, Retention, StreamDescription,
    StreamInfo,
};

fn headers_empty(h: &Headers) -> bool {
    h.is_empty()
}

/// A frame sent by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientFrame {
    /// Must be the first frame of a session.
    Hello(Hello),
    /// Asks for an `ok`; lets clients that cannot send WebSocket pings check the hub is alive.
    Ping(Ping),
    /// Publishes a message on a topic.
    Publish(Publish),
    /// Subscribes the session to a topic pattern.
    Subscribe(Subscribe),
    /// Removes a subscription.
    Unsubscribe(Unsubscribe),
    /// Creates a stream with options; answered with its [`StreamInfo`].
    CreateStream(CreateStream),
    /// Appends a record to a stream, creating the stream with defaults if needed.
    Append(Append),
    /// Starts a reader on a stream (alone, or as a member of a consumer group).
    Read(Read),
    /// Grants a reader more credit; also acknowledges the oldest `n` records delivered to it.
    Credit(Credit),
    /// Stops a reader.
    CloseReader(CloseReader),
    /// Commits a consumer group's offset in one partition.
    Commit(Commit),
    /// Lists every stream.
    ListStreams(ListStreams),
    /// Describes one stream: watermarks, sizes, groups and lag.
    DescribeStream(StreamRef),
    /// Deletes a stream and everything in it.
    DeleteStream(StreamRef),
    /// Creates a queue with options; answered with its [`QueueInfo`].
    CreateQueue(CreateQueue),
    /// Enqueues a task, creating the queue with defaults if needed.
    Enqueue(Enqueue),
    /// Leases up to `max` tasks, waiting up to `wait_ms` for one.
    Pull(Pull),
    /// Starts push delivery of `task` frames, keeping up to `prefetch` leased.
    Consume(Consume),
    /// Stops a push consumer; its leases run to their deadlines.
    StopConsume(StopConsume),
    /// Removes a leased task: done.
    Ack(Settle),
    /// Hands a task back as a failure, to be redelivered after a delay.
    Nack(Nack),
    /// Pushes a lease's deadline out.
    Extend(Extend),
    /// Hands a task back at once without counting a failure.
    Release(Settle),
    /// Sends a task straight to the dead-letter queue.
    Reject(Reject),
    /// Moves dead tasks from a dead-letter queue back to where they failed.
    Redrive(Redrive),
    /// Counts and rates of a queue.
    QueueStats(QueueRef),
    /// Lists every queue.
    ListQueues(ListQueues),
    /// Deletes a queue and its tasks.
    DeleteQueue(QueueRef),
    /// Acknowledges many leased tasks of one queue in one request and one commit.
    AckMany(AckMany),
}

impl ClientFrame {
    /// The operation names a client may send, as they appear on the wire.
    pub const OPS: &'static [&'static str] = &[
        "hello",
        "ping",
        "publish",
        "subscribe",
        "unsubscribe",
        "create_stream",
        "append",
        "read",
        "credit",
        "close_reader",
        "commit",
        "list_streams",
        "describe_stream",
        "delete_stream",
        "create_queue",
        "enqueue",
        "pull",
        "consume",
        "stop_consume",
        "ack",
        "nack",
        "extend",
        "release",
        "reject",
        "redrive",
        "queue_stats",
        "list_queues",
        "delete_queue",
        "ack_many",
    ];

    /// The request id, for every frame but `hello`.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ClientFrame::Hello(_) => None,
            ClientFrame::Ping(f) => Some(f.id),
            ClientFrame::Publish(f) => Some(f.id),
            ClientFrame::Subscribe(f) => Some(f.id),
            ClientFrame::Unsubscribe(f) => Some(f.id),
            ClientFrame::CreateStream(f) => Some(f.id),
            ClientFrame::Append(f) => Some(f.id),
            ClientFrame::Read(f) => Some(f.id),
            ClientFrame::Credit(f) => Some(f.id),
            ClientFrame::CloseReader(f) => Some(f.id),
            ClientFrame::Commit(f) => Some(f.id),
            ClientFrame::ListStreams(f) => Some(f.id),
            ClientFrame::DescribeStream(f) => Some(f.id),
            ClientFrame::DeleteStream(f) => Some(f.id),
            ClientFrame::CreateQueue(f) => Some(f.id),
            ClientFrame::Enqueue(f) => Some(f.id),
            ClientFrame::Pull(f) => Some(f.id),
            ClientFrame::Consume(f) => Some(f.id),
            ClientFrame::StopConsume(f) => Some(f.id),
            ClientFrame::Ack(f) | ClientFrame::Release(f) => Some(f.id),
            ClientFrame::Nack(f) => Some(f.id),
            ClientFrame::Extend(f) => Some(f.id),
            ClientFrame::Reject(f) => Some(f.id),
            ClientFrame::Redrive(f) => Some(f.id),
            ClientFrame::QueueStats(f) | ClientFrame::DeleteQueue(f) => Some(f.id),
            ClientFrame::ListQueues(f) => Some(f.id),
            ClientFrame::AckMany(f) => Some(f.id),
        }
    }

    /// The wire name of this frame's operation.
    pub fn op(&self) -> &'static str {
        match self {
            ClientFrame::Hello(_) => "hello",
            ClientFrame::Ping(_) => "ping",
            ClientFrame::Publish(_) => "publish",
            ClientFrame::Subscribe(_) => "subscribe",
            ClientFrame::Unsubscribe(_) => "unsubscribe",
            ClientFrame::CreateStream(_) => "create_stream",
            ClientFrame::Append(_) => "append",
            ClientFrame::Read(_) => "read",
            ClientFrame::Credit(_) => "credit",
            ClientFrame::CloseReader(_) => "close_reader",
            ClientFrame::Commit(_) => "commit",
            ClientFrame::ListStreams(_) => "list_streams",
            ClientFrame::DescribeStream(_) => "describe_stream",
            ClientFrame::DeleteStream(_) => "delete_stream",
            ClientFrame::CreateQueue(_) => "create_queue",
            ClientFrame::Enqueue(_) => "enqueue",
            ClientFrame::Pull(_) => "pull",
            ClientFrame::Consume(_) => "consume",
            ClientFrame::StopConsume(_) => "stop_consume",
            ClientFrame::Ack(_) => "ack",
            ClientFrame::Nack(_) => "nack",
            ClientFrame::Extend(_) => "extend",
            ClientFrame::Release(_) => "release",
            ClientFrame::Reject(_) => "reject",
            ClientFrame::Redrive(_) => "redrive",
            ClientFrame::QueueStats(_) => "queue_stats",
            ClientFrame::ListQueues(_) => "list_queues",
            ClientFrame::DeleteQueue(_) => "delete_queue",
            ClientFrame::AckMany(_) => "ack_many",
        }
    }
}

/// The opening frame of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    pub version: u32,
    /// An access token, when the hub requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A free-form client name for logs and admin views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// A liveness check answered with an empty `ok`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    pub id: u64,
}

/// Publish `data` on `topic`; answered once the message is handed to the fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub id: u64,
    pub topic: String,
    pub data: Payload,
    #[serde(default, skip_serializing_if = "headers_empty")]
    pub headers: Headers,
}

/// Subscribe the session to every topic matching `pattern`. Subscribing twice is a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    pub id: u64,
    pub pattern: String,
}

/// Remove the session's subscription to `pattern`. Removing an absent one is a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribe {
    pub id: u64,
    pub pattern: String,
}

/// Create a stream. Creating an existing stream with the same options is a no-op; with other
/// options it fails with `already_exists`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateStream {
    pub id: u64,
    pub stream: String,
    /// Number of partitions (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
}

/// Append one record; answered once it is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Append {
    pub id: u64,
    pub stream: String,
    pub data: Payload,
    /// Records with a key go to the partition `partition_for_key(key, partitions)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "headers_empty")]
    pub headers: Headers,
    /// A repeat of this key within the dedup window answers the original position and writes
    /// nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Start a reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Read {
    pub id: u64,
    pub stream: String,
    /// Read only this partition; all partitions if absent. Ignored for group reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Where to start in partitions without a position in `positions` (for a group: in
    /// partitions the group never committed).
    #[serde(default)]
    pub from: ReadFrom,
    /// Exact next offsets per partition, to resume after a reconnect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub positions: Vec<PartitionOffset>,
    /// The epoch the positions were taken in; a different current epoch fails with
    /// `epoch_mismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Records the hub may send before the reader grants more.
    pub credit: u32,
    /// Read as a member of this consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The member id from an earlier `read_started`, to rejoin within the session timeout
    /// keeping the same partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// For group reads: commit automatically as credit acknowledges delivered records.
    #[serde(default)]
    pub auto_commit: bool,
}

/// Grant `n` more records of credit to a reader. The grant also acknowledges the `n` oldest
/// records delivered to it and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credit {
    pub id: u64,
    pub reader: u64,
    pub n: u32,
}

/// Stop a reader; for a group member, leave the group at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseReader {
    pub id: u64,
    pub reader: u64,
}

/// Commit the next offset `offset` for `group` in `partition`, under the assignment
/// `generation` (a commit from an older generation fails with `stale_generation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    pub id: u64,
    pub stream: String,
    pub group: String,
    pub partition: u32,
    pub offset: u64,
    pub generation: u64,
}

/// List every stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListStreams {
    pub id: u64,
}

/// A request naming one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRef {
    pub id: u64,
    pub stream: String,
}

/// Create a queue. Creating an existing queue with the same options is a no-op; with other
/// options it fails with `already_exists`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateQueue {
    pub id: u64,
    pub queue: String,
    #[serde(default)]
    pub options: QueueOptions,
}

/// Enqueue one task; answered with its id once it is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enqueue {
    pub id: u64,
    pub queue: String,
    pub data: Payload,
    #[serde(default, skip_serializing_if = "headers_empty")]
    pub headers: Headers,
    /// Not available before this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Not available before this time, ms since the Unix epoch (exclusive with `delay_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// For ordered-by-key queues: tasks with the same key are leased one at a time, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// 0 (default) to 9; higher is dispatched first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// A repeat within the dedup window answers the original task id and enqueues nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Lease up to `max` tasks (default 1), waiting up to `wait_ms` (default 0) if none is available.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pull {
    pub id: u64,
    pub queue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// Start push delivery: the hub keeps up to `prefetch` tasks leased to this consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consume {
    pub id: u64,
    pub queue: String,
    pub prefetch: u32,
}

/// Stop a push consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopConsume {
    pub id: u64,
    pub consumer: u64,
}

/// Ack or release a leased task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settle {
    pub id: u64,
    pub queue: String,
    pub task: u64,
    pub lease: u64,
}

/// Most tasks one `ack_many` may name.
pub const MAX_ACK_MANY: usize = 1024;

/// Acknowledge many leased tasks of one queue at once: each is settled as its own `ack` would
/// be, all in one commit. The reply lists the tasks that could not be acked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckMany {
    pub id: u64,
    pub queue: String,
    /// At most [`MAX_ACK_MANY`], at least one.
    pub tasks: Vec<LeaseRef>,
}

/// A task and the lease it is held under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    pub task: u64,
    pub lease: u64,
}

/// A task of an `ack_many` that was not acked, and why: the code, name and message its own
/// `ack` would have failed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettleFailure {
    pub task: u64,
    pub lease: u64,
    /// The stable number of an [`ErrorCode`].
    pub code: u16,
    /// The stable name of the code.
    pub name: String,
    pub message: String,
}

impl SettleFailure {
    /// A failure of `task` under `lease` with `code`.
    pub fn new(task: u64, lease: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        SettleFailure {
            task,
            lease,
            code: code.as_u16(),
            name: code.name().to_owned(),
            message: message.into(),
        }
    }

    /// The code, if this version knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }
}

/// Nack a leased task: redelivered after `delay_ms`, or the queue's next backoff step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nack {
    pub id: u64,
    pub queue: String,
    pub task: u64,
    pub lease: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Extend a lease by `ms` from now, capped at the queue's `max_lease_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extend {
    pub id: u64,
    pub queue: String,
    pub task: u64,
    pub lease: u64,
    pub ms: u64,
}

/// Dead-letter a leased task at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    pub id: u64,
    pub queue: String,
    pub task: u64,
    pub lease: u64,
    pub reason: String,
}

/// Move tasks of dead-letter queue `queue` back to the queues they failed in: those in `ids`,
/// or every one with `all`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redrive {
    pub id: u64,
    pub queue: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<u64>,
    #[serde(default)]
    pub all: bool,
}

/// A request naming one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRef {
    pub id: u64,
    pub queue: String,
}

/// List every queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListQueues {
    pub id: u64,
}

/// A frame sent by the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to `hello`.
    Welcome(Welcome),
    /// A request succeeded.
    Ok(Reply),
    /// A request (or, without an id, a frame that could not be read) failed.
    Error(ErrorFrame),
    /// A topic message for one of the session's subscriptions.
    Deliver(Deliver),
    /// Something the client should know that answers no request.
    Notice(Notice),
    /// Records for a reader, in offset order within the partition.
    Records(Records),
    /// Partitions newly assigned to a group reader, with the offsets it starts at.
    Assigned(Assigned),
    /// Partitions taken away from a group reader; it receives no more records from them.
    Revoked(Revoked),
    /// A reader stopped because of an error (its stream was deleted, or its position fell
    /// below the low watermark).
    ReaderClosed(ReaderClosed),
    /// A task leased to a push consumer.
    #[serde(rename = "task")]
    Task(TaskDelivery),
    /// A push consumer stopped because of an error (its queue was deleted).
    ConsumerClosed(ConsumerClosed),
}

/// The hub's answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The hub-assigned session id, unique while the hub runs.
    pub session: u64,
    /// The hub's software version.
    pub server: String,
    /// The protocol version the hub will speak on this session.
    pub protocol: u32,
    /// The limits enforced on this session.
    pub limits: Limits,
}

/// A successful answer to the request with `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ReplyBody>,
}

/// The result of a request, for operations that return one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyBody {
    /// `publish`: the number of sessions the message was handed to.
    Published { receivers: u64 },
    /// `create_stream`: the stream as it now exists.
    Stream(StreamInfo),
    /// `append`: where the record is.
    Appended { partition: u32, offset: u64, timestamp: u64 },
    /// `read`: the reader's id and starting positions. For a group read `partitions` is empty
    /// and `assigned` frames follow.
    ReadStarted {
        reader: u64,
        epoch: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<String>,
        partitions: Vec<ReaderPartition>,
    },
    /// `list_streams`.
    Streams { streams: Vec<StreamInfo> },
    /// `describe_stream`.
    Described(StreamDescription),
    /// `create_queue`: the queue as it now exists.
    Queue(QueueInfo),
    /// `enqueue`: the task's id.
    Enqueued { task: u64 },
    /// `pull`: the leased tasks (possibly none).
    Tasks { tasks: Vec<Task> },
    /// `consume`: the consumer's id, quoted by `task` frames and `stop_consume`.
    Consuming { consumer: u64 },
    /// `extend`: the lease's new deadline.
    Extended { deadline: u64 },
    /// `redrive`: how many tasks moved.
    Redriven { count: u64 },
    /// `queue_stats`.
    QueueStats(QueueStats),
    /// `list_queues`.
    Queues { queues: Vec<QueueInfo> },
    /// `ack_many`: the tasks that were not acked (empty when all were).
    AckedMany { failed: Vec<SettleFailure> },
}

impl ReplyBody {
    /// The variant's name as it appears on the wire, for messages about an unexpected reply
    /// (cheaper in the browser build than formatting the whole body with `Debug`).
    pub fn name(&self) -> &'static str {
        match self {
            ReplyBody::Published { .. } => "published",
            ReplyBody::Stream(_) => "stream",
            ReplyBody::Appended { .. } => "appended",
            ReplyBody::ReadStarted { .. } => "read_started",
            ReplyBody::Streams { .. } => "streams",
            ReplyBody::Described(_) => "described",
            ReplyBody::Queue(_) => "queue",
            ReplyBody::Enqueued { .. } => "enqueued",
            ReplyBody::Tasks { .. } => "tasks",
            ReplyBody::Consuming { .. } => "consuming",
            ReplyBody::Extended { .. } => "extended",
            ReplyBody::Redriven { .. } => "redriven",
            ReplyBody::QueueStats(_) => "queue_stats",
            ReplyBody::Queues { .. } => "queues",
            ReplyBody::AckedMany { .. } => "acked_many",
        }
    }
}

/// A failed request, or a frame the hub could not read (then `id` is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The stable number of an [`ErrorCode`].
    pub code: u16,
    /// The stable name of the code.
    pub name: String,
    /// A human-readable explanation.
    pub message: String,
    /// For `offset_out_of_range`: the partition's current low watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_watermark: Option<u64>,
    /// For `epoch_mismatch`: the stream's current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

impl ErrorFrame {
    /// An error frame for `code`.
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            id,
            code: code.as_u16(),
            name: code.name().to_owned(),
            message: message.into(),
            low_watermark: None,
            epoch: None,
        }
    }

    /// The code, if this version of the protocol knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u16(self.code)
    }
}

/// A topic message delivered to a subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deliver {
    pub topic: String,
    pub data: Payload,
    #[serde(default, skip_serializing_if = "headers_empty")]
    pub headers: Headers,
}

/// A notice from the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// The session's outbound queue was full, so `missed` messages on `topic` were not delivered.
    Lagged { topic: String, missed: u64 },
}

/// Records for a reader from one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Records {
    pub reader: u64,
    pub partition: u32,
    pub records: Vec<Record>,
}

/// Partitions assigned to a group reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assigned {
    pub reader: u64,
    /// The assignment generation to quote in `commit`.
    pub generation: u64,
    /// Each partition with the offset reading starts at.
    pub partitions: Vec<PartitionOffset>,
}

/// Partitions revoked from a group reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revoked {
    pub reader: u64,
    pub partitions: Vec<u32>,
}

/// A reader that stopped on an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaderClosed {
    pub reader: u64,
    pub error: ErrorFrame,
}

/// A task pushed to a consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDelivery {
    pub consumer: u64,
    pub task: Task,
}

/// A push consumer that stopped on an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerClosed {
    pub consumer: u64,
    pub error: ErrorFrame,
}
