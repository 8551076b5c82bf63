//! Retention: a background pass that removes each partition's oldest records beyond the
//! stream's max age, max bytes or max records, in batches through the writer so appends and
//! reads go on meanwhile. It also expires idempotency keys and group members whose session
//! timed out.

use std::sync::Arc;
use std::time::Duration;

use crate::storage::streams::{PartState, offset_for_bytes, offset_for_time};
use crate::storage::writer::{WriteOp, WriteResult};

use super::{Engine, StreamError, deliver};

/// Most records one trim operation removes, so no transaction grows large.
pub const TRIM_BATCH: u64 = 10_000;

/// Runs retention and expiry passes until the task is aborted.
pub async fn run(engine: Arc<Engine>) {
    let every = Duration::from_millis(engine.config.retention_interval_ms.max(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = engine.clock.now_ms();
        deliver(engine.groups.expire(now, engine.config.group_session_timeout_ms)).await;
        if let Err(e) = engine.enforce_retention().await {
            tracing::warn!(error = %e.message, "retention pass failed");
        }
    }
}

impl Engine {
    /// One retention pass over every stream; returns how many records it removed.
    ///
    /// # Errors
    /// `storage_failure` if a lookup or a trim fails.
    pub async fn enforce_retention(&self) -> Result<u64, StreamError> {
        let mut removed = 0;
        let now = self.clock.now_ms();
        for live in self.registry.all() {
            let r = live.meta.retention;
            if r.max_age_ms.is_none() && r.max_bytes.is_none() && r.max_records.is_none() {
                continue;
            }
            let id = live.meta.id;
            for partition in 0..live.meta.partitions {
                let Some((low, high, bytes)) = live.watermarks(partition) else {
                    continue;
                };
                let mut target = low;
                if let Some(max) = r.max_records {
                    target = target.max(high.saturating_sub(max));
                }
                if let Some(age) = r.max_age_ms {
                    let cutoff = now.saturating_sub(age);
                    let offset = self
                        .storage
                        .read(move |txn| offset_for_time(txn, id, partition, cutoff, low, high))
                        .await?;
                    target = target.max(offset);
                }
                if let Some(max) = r.max_bytes
                    && bytes > max
                {
                    let part = PartState { low, high, bytes, last_ts: 0 };
                    let offset = self
                        .storage
                        .read(move |txn| offset_for_bytes(txn, id, partition, part, max))
                        .await?;
                    target = target.max(offset);
                }
                let mut current = low;
                while current < target {
                    let op =
                        WriteOp::Trim { stream: id, partition, below: target, max: TRIM_BATCH };
                    match self.writer.submit(op).await? {
                        WriteResult::Count(0) => break,
                        WriteResult::Count(n) => {
                            current += n;
                            removed += n;
                        }
                        _ => break,
                    }
                }
            }
        }
        self.writer.submit(WriteOp::ExpireDedup { max: 10_000 }).await?;
        Ok(removed)
    }
}
