//! What the core hands to its transport and application: the [`Output`] queue and its types.

use bytes::Bytes;
use switchboard_protocol::frame::ReplyBody;
use switchboard_protocol::payload::Headers;

use super::error::ClientError;

/// Identifies one socket the core asked the transport to open. Events from a socket the core no
/// longer uses are ignored, so a late close event of an old socket cannot end a newer one.
pub type SocketId = u64;

/// Identifies one application operation (publish, subscribe, unsubscribe, ping).
pub type OpId = u64;

/// Identifies one local subscription: the [`OpId`] of the `subscribe` call that created it.
pub type SubId = u64;

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

/// The end of one operation. `Ok` carries the hub's reply body for operations that have one
/// (`publish`: [`ReplyBody::Published`]); a successful `subscribe` carries `None` and its
/// [`SubId`] is its op id.
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
    CloseSocket {
        socket: SocketId,
        code: u16,
        reason: String,
    },
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
    SubscriptionClosed {
        sub: SubId,
        error: Option<ClientError>,
    },
    /// The connection state changed.
    State(ConnectionState),
    /// A notice for the application.
    Notice(ClientNotice),
}
