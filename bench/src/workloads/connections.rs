//! `connections`: open C idle sessions and report the hub's resident memory per session.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::Common;
use crate::hub::Hub;
use crate::report::Outcome;

/// Options of the connections workload.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Idle sessions to open.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
}

/// Runs the workload.
pub async fn run(common: &Common, o: Options) -> anyhow::Result<Outcome> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if (limit as usize) < o.sessions + 100 {
        anyhow::bail!("the open-file limit is {limit}; {} sessions need more", o.sessions);
    }
    let max = (o.sessions + 100).to_string();
    let hub = Hub::start(common, &["--max-connections", &max])?;
    // Let the hub settle, then take the baseline.
    let warm = super::clients(&hub.url, 10).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = hub.rss_bytes().unwrap_or(0);
    let start = Instant::now();
    let mut sessions = Vec::with_capacity(o.sessions);
    for _ in 0..o.sessions {
        sessions.extend(super::clients(&hub.url, 1).await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = hub.rss_bytes().unwrap_or(0);
    for c in &warm {
        c.ping().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let per_session = after.saturating_sub(before) as f64 / o.sessions.max(1) as f64;
    Ok(Outcome {
        workload: "connections",
        unit: "sessions opened",
        count: o.sessions as u64,
        seconds,
        latency: None,
        details: json!({
            "hub_rss_before_kib": before / 1024, "hub_rss_after_kib": after / 1024,
            "rss_per_session_bytes": per_session.round(),
        }),
    })
}
