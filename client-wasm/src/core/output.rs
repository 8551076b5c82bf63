//! What the core hands to its transport and application: the [`Output`] queue and its types.

use bytes::Bytes;
use switchboard_protocol::frame::ReplyBody;
use switchboard_protocol::payload::Headers;
use switchboard_protocol::queues::Task;
use switchboard_protocol::streams::PartitionOffset;

use super::error::ClientError;

/// Identifies one socket the core asked the transport to open. Events from a socket the core no
/// longer uses are ignored, so a late close event of an old socket cannot end a newer one.
pub type SocketId = u64;

/// Identifies one application operation (publish, subscribe, enqueue, ack, ...).
pub type OpId = u64;

/// Identifies one local subscription: the [`OpId`] of the `subscribe` call that created it.
pub type SubId = u64;

/// Identifies one reader: the [`OpId`] of the `read` call that created it. It stays the same
/// across reconnects, while the hub's id for the reader changes with every session.
pub type ReaderId = u64;

/// Identifies one queue consumer: the [`OpId`] of the `consume` call that created it. It stays
/// the same across reconnects, while the hub's consumer ids change with every session.
pub type ConsumerId = u64;

/// The connection state reported to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The first session is being set up.
    Connecting,
    /// A session is established (`welcome` received).
    Connected,
    /// The session was lost; the client is waiting to reconnect or reconnecting.
    Reconnecting,
    /// The client is done: closed by the application, refused by the hub, or out of retries.
    Closed,
}

impl ConnectionState {
    /// The lowercase name used by bindings: "connecting", "connected", "reconnecting", "closed".
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Reconnecting => "reconnecting",
            ConnectionState::Closed => "closed",
        }
    }
}

/// Something the application should know that answers no operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientNotice {
    /// The hub dropped `missed` messages on `topic` because this client read too slowly.
    Lagged { topic: String, missed: u64 },
    /// An error that belongs to no operation: a refused session, an unreadable frame, a lost
    /// connection that will not be retried.
    Error(ClientError),
}

/// A topic message delivered to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub data: Bytes,
    pub headers: Headers,
}

/// A stream record delivered to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub stream: String,
    pub partition: u32,
    pub offset: u64,
    /// Milliseconds since the Unix epoch, assigned by the hub.
    pub timestamp: u64,
    pub key: Option<String>,
    pub headers: Headers,
    pub data: Bytes,
}

/// Something that happened to a reader the application holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderEvent {
    /// Records in offset order within their partition (one partition per event). The
    /// transport reports each one consumed with [`super::ClientCore::reader_consumed`], in the
    /// order delivered; until then it counts against the reader's credit window.
    Records(Vec<StreamRecord>),
    /// Group readers: partitions newly assigned, with the offset reading starts at.
    Assigned { generation: u64, partitions: Vec<PartitionOffset> },
    /// Group readers: partitions taken away; records of them still buffered may be consumed,
    /// but no longer committed.
    Revoked { partitions: Vec<u32> },
    /// The reader was restored on a new session, resuming where it was.
    Resumed { epoch: u64, member: Option<String> },
    /// The reader ended: closed with the client (`None`), or on an error — the stream was
    /// deleted or recreated, its position fell below retention, or the hub broke the order of
    /// records. Nothing follows.
    Ended { error: Option<ClientError> },
}

/// Something that happened to a queue consumer the application holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    /// A task leased to the consumer. Settle it by (`task.queue`, `task.id`, `task.lease`)
    /// before `task.deadline`; until it is settled or its lease ends it counts against the
    /// consumer's prefetch.
    Task(Task),
    /// The consumer ended: stopped by the application or closed with the client (`None`), or
    /// on an error — the hub closed it (its queue was deleted) or refused to restore it after a
    /// reconnect. Nothing follows. Leases of tasks already delivered stay valid until their
    /// deadlines.
    Ended { error: Option<ClientError> },
}

/// The end of one operation. `Ok` carries the hub's reply body for operations that have one
/// (`publish`: [`ReplyBody::Published`], `read`: [`ReplyBody::ReadStarted`], `consume`:
/// [`ReplyBody::Consuming`], ...); a successful `subscribe` carries `None` and its [`SubId`] is
/// its op id, as a `read`'s [`ReaderId`] and a `consume`'s [`ConsumerId`] are.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub op: OpId,
    pub result: Result<Option<ReplyBody>, ClientError>,
}

/// One thing the transport or application must do or learn, in the order the core decided it.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a new socket to the hub and report its events with this id.
    OpenSocket { socket: SocketId },
    /// Close this socket (if it is still open) and report no further events from it.
    CloseSocket { socket: SocketId, code: u16, reason: String },
    /// Send this encoded frame as a binary message on the current socket.
    Send(Bytes),
    /// An operation finished.
    Completed(Completion),
    /// A message for one local subscription.
    Deliver { sub: SubId, message: Message },
    /// The hub reported `missed` lost messages that this subscription's pattern covers.
    Lagged { sub: SubId, missed: u64 },
    /// A subscription ended without the application asking: the client closed (`None`) or the
    /// hub refused to restore it after a reconnect.
    SubscriptionClosed { sub: SubId, error: Option<ClientError> },
    /// Something happened to a reader.
    Reader { reader: ReaderId, event: ReaderEvent },
    /// Something happened to a queue consumer.
    Consumer { consumer: ConsumerId, event: ConsumerEvent },
    /// The connection state changed.
    State(ConnectionState),
    /// A notice for the application.
    Notice(ClientNotice),
}
