//! Every frame of the protocol.
//!
//! A frame is an externally tagged enum: in JSON `{"publish": {"id": 1, "topic": "a.b",
//! "data": "hi"}}`, in MessagePack the same shape as a one-entry map with named fields. Unknown
//! fields are ignored so that newer clients and hubs can add optional fields.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::limits::Limits;
use crate::payload::{Headers, Payload};

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
}

impl ClientFrame {
    /// The operation names a client may send, as they appear on the wire.
    pub const OPS: &'static [&'static str] =
        &["hello", "ping", "publish", "subscribe", "unsubscribe"];

    /// The request id, for every frame but `hello`.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ClientFrame::Hello(_) => None,
            ClientFrame::Ping(f) => Some(f.id),
            ClientFrame::Publish(f) => Some(f.id),
            ClientFrame::Subscribe(f) => Some(f.id),
            ClientFrame::Unsubscribe(f) => Some(f.id),
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
}

impl ErrorFrame {
    /// An error frame for `code`.
    pub fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            id,
            code: code.as_u16(),
            name: code.name().to_owned(),
            message: message.into(),
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
