//! `replay`: store N records, then read them all from earliest through one client.

use std::time::Instant;

use serde_json::json;
use switchboard_client::{AppendOptions, ReadFrom, ReadOptions};

use crate::Common;
use crate::hub::Hub;
use crate::report::Outcome;

/// Options of the replay workload.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Records to store and read back.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Record size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// The reader's credit window.
    #[arg(long, default_value_t = 10_000)]
    pub credit: u32,
}

/// Runs the workload.
pub async fn run(common: &Common, o: Options) -> anyhow::Result<Outcome> {
    let hub = Hub::start(common, &[])?;
    let clients = super::clients(&hub.url, 8).await?;
    let stream = "bench.replay";
    let data = super::payload(o.size);
    let fill = Instant::now();
    let per = o.records.div_ceil(512);
    let mut tasks = Vec::new();
    for w in 0..512u64 {
        let client = clients[w as usize % clients.len()].clone();
        let data = data.clone();
        let n = per.min(o.records.saturating_sub(w * per));
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                client
                    .append(stream, data.clone(), AppendOptions::default())
                    .await
                    .map_err(|e| anyhow::anyhow!("append: {e:?}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let fill_seconds = fill.elapsed().as_secs_f64();
    let reader_client = super::clients(&hub.url, 1).await?.remove(0);
    let start = Instant::now();
    let options = ReadOptions { from: ReadFrom::Earliest, credit: o.credit, ..Default::default() };
    let mut reader =
        reader_client.read(stream, options).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut count = 0u64;
    let mut bytes = 0u64;
    while count < o.records {
        match reader.next().await {
            Some(Ok(record)) => {
                count += 1;
                bytes += record.data.len() as u64;
            }
            Some(Err(e)) => anyhow::bail!("reader failed: {e:?}"),
            None => anyhow::bail!("reader ended after {count} records"),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Outcome {
        workload: "replay",
        unit: "records",
        count,
        seconds,
        latency: None,
        details: json!({ "size": o.size, "credit": o.credit, "bytes": bytes, "fill_seconds": (fill_seconds * 100.0).round() / 100.0 }),
    })
}
