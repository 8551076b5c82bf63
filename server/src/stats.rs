//! Hub-wide counters, cheap to bump from any task and served as JSON at `/api/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters since the hub started. Every field is monotonic except `sessions`.
#[derive(Debug, Default)]
pub struct Stats {
    pub sessions: AtomicU64,
    pub sessions_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub frames_in: AtomicU64,
    pub bad_frames: AtomicU64,
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub dropped_slow: AtomicU64,
    pub slow_disconnects: AtomicU64,
}

/// A point-in-time copy of [`Stats`] plus derived gauges.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub sessions: u64,
    pub sessions_total: u64,
    pub connections_refused: u64,
    pub frames_in: u64,
    pub bad_frames: u64,
    pub published: u64,
    pub delivered: u64,
    pub dropped_slow: u64,
    pub slow_disconnects: u64,
    pub subscriptions: u64,
    /// Storage transactions committed, the write operations they held, and how many of them
    /// were fsynced: `writes / commits` is the mean group-commit batch.
    pub commits: u64,
    pub writes: u64,
    pub fsyncs: u64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads every counter, with the storage writer's `(commits, writes, fsyncs)`.
    pub fn snapshot(&self, subscriptions: u64, writer: (u64, u64, u64)) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            sessions: get(&self.sessions),
            sessions_total: get(&self.sessions_total),
            connections_refused: get(&self.connections_refused),
            frames_in: get(&self.frames_in),
            bad_frames: get(&self.bad_frames),
            published: get(&self.published),
            delivered: get(&self.delivered),
            dropped_slow: get(&self.dropped_slow),
            slow_disconnects: get(&self.slow_disconnects),
            subscriptions,
            commits: writer.0,
            writes: writer.1,
            fsyncs: writer.2,
        }
    }
}
