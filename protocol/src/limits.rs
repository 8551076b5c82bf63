//! Limits a hub enforces on each session, announced to the client in `welcome`.

use serde::{Deserialize, Serialize};

/// Per-session limits. Clients use them to size their own queues: a well-behaved client never
/// has more than `max_in_flight` requests outstanding and never sends a frame larger than
/// `max_frame_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame the hub decodes; larger frames get `frame_too_large`.
    pub max_frame_bytes: u32,
    /// Most topic subscriptions one session may hold.
    pub max_subscriptions: u32,
    /// Most requests one session may have in flight at once.
    pub max_in_flight: u32,
    /// How often the hub pings an idle session, in milliseconds.
    pub ping_interval_ms: u32,
    /// A session from which nothing (not even a pong) arrives for this long is closed.
    pub idle_timeout_ms: u32,
    /// Bytes of topic messages that may wait in the session's outbound queue.
    pub outbox_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1024 * 1024,
            max_subscriptions: 10_000,
            max_in_flight: 1024,
            ping_interval_ms: 15_000,
            idle_timeout_ms: 45_000,
            outbox_bytes: 8 * 1024 * 1024,
        }
    }
}
