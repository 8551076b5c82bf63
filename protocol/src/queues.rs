//! Queue types shared by frames: options, tasks, dead-letter history and statistics.

use serde::{Deserialize, Serialize};

use crate::payload::{Headers, Payload};

fn headers_empty(h: &Headers) -> bool {
    h.is_empty()
}

/// Options of a queue. Any option left out takes the hub's default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueOptions {
    /// How long a lease lasts before the task is redelivered (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// The longest a lease may be extended to, counted from when it was granted (default 12 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ms: Option<u64>,
    /// Failures (nacks, lease expiries) after which a task is dead-lettered (default 5;
    /// 0 means never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Delays before redelivery after the 1st, 2nd, ... failure; the last repeats
    /// (default 1 s, 5 s, 30 s, 2 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<Vec<u64>>,
    /// Where dead tasks go (default `<name>.dlq`; the empty string keeps them in this queue's
    /// dead count and drops them from dispatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    /// How long an idempotency key is remembered (default 2 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_window_ms: Option<u64>,
    /// Most tasks the queue holds (default 1,000,000); beyond it `enqueue` answers `queue_full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// At most one task per key leased at a time, in enqueue order per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_by_key: Option<bool>,
}

/// A queue's settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    pub queue: String,
    pub lease_ms: u64,
    pub max_lease_ms: u64,
    pub max_attempts: u32,
    pub backoff_ms: Vec<u64>,
    /// `None` when dead tasks stay in this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    pub dedup_window_ms: u64,
    pub max_length: u64,
    pub ordered_by_key: bool,
    pub created: u64,
}

/// Where a dead task came from and why it died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The queue the task failed in.
    pub queue: String,
    /// Its id there.
    pub task: u64,
    /// Times it was leased.
    pub attempts: u32,
    /// Failures counted against `max_attempts`.
    pub failures: u32,
    /// The last nack or reject reason, or "lease expired".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was first enqueued, ms since the Unix epoch.
    pub enqueued: u64,
    /// When it was dead-lettered.
    pub died: u64,
}

/// A leased task as delivered to a consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub queue: String,
    pub id: u64,
    /// Quote it in every settle; it changes each time the task is leased.
    pub lease: u64,
    /// The lease's deadline, ms since the Unix epoch.
    pub deadline: u64,
    /// 1 for the first delivery, counting every lease.
    pub attempt: u32,
    pub priority: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "headers_empty")]
    pub headers: Headers,
    pub data: Payload,
    /// When it was enqueued, ms since the Unix epoch.
    pub enqueued: u64,
    /// For a task in a dead-letter queue: its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
}

/// Counts and rates of one queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    /// Waiting for their `not_before` time or a backoff delay.
    pub scheduled: u64,
    /// Ready for a consumer.
    pub available: u64,
    pub leased: u64,
    /// Tasks dead-lettered out of this queue since it was created.
    pub dead: u64,
    /// Deliveries after the first, since the hub started.
    pub redeliveries: u64,
    /// Age of the oldest available task, ms (0 when none).
    pub oldest_available_ms: u64,
    /// Acks per second over the last few seconds.
    pub acks_per_sec: f64,
    /// Consumers waiting or holding prefetch credit now.
    pub consumers: u64,
}
