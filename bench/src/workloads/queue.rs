//! `queue`: producers enqueue, workers pull and ack; end-to-end tasks/s and enqueue→ack latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_client::{EnqueueOptions, PullOptions};

use crate::Common;
use crate::hub::Hub;
use crate::report::{Latency, Outcome, histogram};

/// Options of the queue workload.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Enqueues in flight at once, each awaited (acknowledged after fsync).
    #[arg(long, default_value_t = 128)]
    pub producers: usize,
    /// Workers pulling and acking, one session each.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Tasks each pull takes at most.
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
    /// Task size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// How long to produce.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
}

/// Runs the workload.
pub async fn run(common: &Common, o: Options) -> anyhow::Result<Outcome> {
    let hub = Hub::start(common, &[])?;
    let producers = super::clients(&hub.url, 8).await?;
    let base = Instant::now();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(o.seconds);
    let producing = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for p in 0..o.producers {
        let client = producers[p % producers.len()].clone();
        let size = o.size.max(8);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let mut data = super::payload(size);
                data[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
                client
                    .enqueue("bench.queue", data, EnqueueOptions::default())
                    .await
                    .map_err(|e| anyhow::anyhow!("enqueue: {e:?}"))?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut workers = Vec::new();
    for _ in 0..o.workers {
        let client = super::clients(&hub.url, 1).await?.remove(0);
        let producing = producing.clone();
        let batch = o.batch;
        workers.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut acked = 0u64;
            loop {
                let options = PullOptions { max: batch, wait_ms: 200 };
                let got = client
                    .pull("bench.queue", options)
                    .await
                    .map_err(|e| anyhow::anyhow!("pull: {e:?}"))?;
                if got.is_empty() && !producing.load(Ordering::Relaxed) {
                    break;
                }
                let acks = got.iter().map(|t| t.ack());
                for (t, r) in got.iter().zip(futures_util::future::join_all(acks).await) {
                    r.map_err(|e| anyhow::anyhow!("ack: {e:?}"))?;
                    let sent = u64::from_be_bytes(
                        t.task.data.as_bytes()[..8].try_into().unwrap_or([0; 8]),
                    );
                    h.record((base.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000).ok();
                    acked += 1;
                }
            }
            anyhow::Ok((acked, h))
        }));
    }
    let mut enqueued = 0;
    for t in tasks {
        enqueued += t.await??;
    }
    producing.store(false, Ordering::Relaxed);
    let mut acked = 0;
    let mut all = histogram();
    for w in workers {
        let (n, h) = w.await??;
        acked += n;
        all.add(h).ok();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Outcome {
        workload: "queue",
        unit: "tasks",
        count: acked,
        seconds,
        latency: Some(Latency::of(&all)),
        details: json!({ "producers": o.producers, "workers": o.workers, "batch": o.batch, "size": o.size, "enqueued": enqueued }),
    })
}
