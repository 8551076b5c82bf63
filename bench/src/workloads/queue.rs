//! `queue`: producers enqueue, workers pull and ack; end-to-end tasks/s and enqueue→ack latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_client::{EnqueueOptions, PullOptions};

use crate::Common;
use crate::hub::Hub;
use crate::nats::server::Sync;
use crate::nats::{NatsClient, NatsServer, jetstream};
use crate::report::{Latencies, Outcome};

/// Options of the queue workload.
#[derive(Debug, Clone, clap::Args)]
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
    /// How long a pull waits for its first task, in milliseconds (against NATS: the fetch's
    /// `expires`).
    #[arg(long, default_value_t = 200)]
    pub wait_ms: u64,
    /// How a hub worker acks a pulled batch: `many` (one `ack_many` request for the batch) or
    /// `each` (one `ack` request per task, all in flight at once).
    #[arg(long, value_enum, default_value_t = Acks::Many)]
    pub acks: Acks,
    /// Task size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// How long to produce.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
}

/// How hub workers ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    Many,
    Each,
}

/// Runs the workload.
pub async fn run(common: &Common, o: Options) -> anyhow::Result<Outcome> {
    let hub = Hub::start(common, &[])?;
    let producers = super::clients(&hub.url, PRODUCER_CONNECTIONS).await?;
    let base = Instant::now();
    let start = Instant::now();
    let cpu_start = hub.cpu_seconds();
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
    let latencies = Latencies::new();
    let mut workers = Vec::new();
    for _ in 0..o.workers {
        let client = super::clients(&hub.url, 1).await?.remove(0);
        let producing = producing.clone();
        let batch = o.batch;
        let wait_ms = o.wait_ms;
        let ack_mode = o.acks;
        let mut h = latencies.recorder();
        workers.push(tokio::spawn(async move {
            let mut acked = 0u64;
            loop {
                let options = PullOptions { max: batch, wait_ms };
                let got = client
                    .pull("bench.queue", options)
                    .await
                    .map_err(|e| anyhow::anyhow!("pull: {e:?}"))?;
                if got.is_empty() && !producing.load(Ordering::Relaxed) {
                    break;
                }
                match ack_mode {
                    Acks::Many => {
                        let failed = client
                            .ack_many(&got)
                            .await
                            .map_err(|e| anyhow::anyhow!("ack_many: {e:?}"))?;
                        anyhow::ensure!(failed.is_empty(), "ack_many: {failed:?}");
                    }
                    Acks::Each => {
                        let acks = got.iter().map(|t| t.ack());
                        for r in futures_util::future::join_all(acks).await {
                            r.map_err(|e| anyhow::anyhow!("ack: {e:?}"))?;
                        }
                    }
                }
                let now = base.elapsed().as_nanos() as u64;
                for t in &got {
                    let sent = u64::from_be_bytes(
                        t.task.data.as_bytes()[..8].try_into().unwrap_or([0; 8]),
                    );
                    h.record(now.saturating_sub(sent) / 1000);
                    acked += 1;
                }
            }
            anyhow::Ok(acked)
        }));
    }
    let mut enqueued = 0;
    for t in tasks {
        enqueued += t.await??;
    }
    producing.store(false, Ordering::Relaxed);
    let acked = super::join_counted(workers).await?;
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = crate::report::cpu_used(cpu_start, hub.cpu_seconds());
    Ok(Outcome {
        workload: "queue",
        unit: "tasks",
        count: acked,
        seconds,
        latency: Some(latencies.summary()),
        details: json!({ "server_cpu_seconds": server_cpu,
            "producers": o.producers, "workers": o.workers, "batch": o.batch, "wait_ms": o.wait_ms,
            "size": o.size, "enqueued": enqueued, "acks": o.acks,
        }),
    })
}

/// Connections the producers share, on both systems.
const PRODUCER_CONNECTIONS: usize = 8;

/// The same workload against a JetStream work-queue stream (file storage) over WebSocket: the
/// same producers over as many connections, each publish awaiting its acknowledgement and
/// carrying a `Nats-Msg-Id` (as each enqueue carries an idempotency key); the same workers, one
/// connection each, fetching from one durable pull consumer with the same batch and wait, and
/// acknowledging each task explicitly. nats-server 2.9 does not answer an ack, so a worker
/// waits for the `PONG` of a `PING` sent after its acks, as a hub worker waits for the reply to
/// its `ack_many` (or its acks), before it takes the time and fetches again.
pub async fn run_nats(o: &Options, sync: Sync) -> anyhow::Result<Outcome> {
    const STREAM: &str = "BENCH_QUEUE";
    const CONSUMER: &str = "workers";
    let server = NatsServer::start(sync).await?;
    let timeout = Duration::from_secs(60);
    let mut producers = Vec::new();
    for _ in 0..PRODUCER_CONNECTIONS {
        producers.push(NatsClient::connect(&server.url, timeout).await?);
    }
    let subjects = vec!["bench.queue".to_owned()];
    let retention = jetstream::Retention::WorkQueue;
    jetstream::create_stream(&producers[0], STREAM, &subjects, retention).await?;
    // Never the limit: each worker acks its batch before it fetches again.
    let max_ack_pending = (o.workers.max(1) as i64) * i64::from(o.batch) * 2;
    jetstream::create_pull_consumer(&producers[0], STREAM, CONSUMER, max_ack_pending).await?;
    let base = Instant::now();
    let start = Instant::now();
    let cpu_start = server.cpu_seconds();
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
                let id = format!("p{p}-{n}");
                let ack = jetstream::publish(&client, "bench.queue", &id, &data).await?;
                anyhow::ensure!(!ack.duplicate, "publish {id} was taken for a duplicate");
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let latencies = Latencies::new();
    let mut workers = Vec::new();
    for _ in 0..o.workers {
        let client = NatsClient::connect(&server.url, timeout).await?;
        let mut puller = jetstream::Puller::new(&client, STREAM, CONSUMER).await?;
        let producing = producing.clone();
        let (batch, wait) = (o.batch, Duration::from_millis(o.wait_ms));
        let mut h = latencies.recorder();
        workers.push(tokio::spawn(async move {
            let (mut acked, mut empty) = (0u64, 0u64);
            loop {
                let got = puller.fetch(batch, wait).await?;
                if got.is_empty() {
                    empty += 1;
                    if !producing.load(Ordering::Relaxed) {
                        break;
                    }
                    continue;
                }
                puller.ack(&got).await?;
                let now = base.elapsed().as_nanos() as u64;
                for m in &got {
                    let sent = m.payload.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]);
                    let sent = u64::from_be_bytes(sent);
                    h.record(now.saturating_sub(sent) / 1000);
                }
                acked += got.len() as u64;
            }
            anyhow::Ok((acked, empty))
        }));
    }
    let mut enqueued = 0;
    for t in tasks {
        enqueued += t.await??;
    }
    producing.store(false, Ordering::Relaxed);
    let (mut acked, mut empty_fetches) = (0, 0);
    for w in workers {
        let (n, empty) = w.await??;
        acked += n;
        empty_fetches += empty;
    }
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = crate::report::cpu_used(cpu_start, server.cpu_seconds());
    Ok(Outcome {
        workload: if server.fsync_before_ack {
            "queue (nats-server JetStream work queue, file store, fsync before ack)"
        } else {
            "queue (nats-server JetStream work queue, file store, no fsync before ack)"
        },
        unit: "tasks",
        count: acked,
        seconds,
        latency: Some(latencies.summary()),
        details: json!({ "server_cpu_seconds": server_cpu,
            "producers": o.producers, "workers": o.workers, "batch": o.batch, "wait_ms": o.wait_ms,
            "size": o.size, "enqueued": enqueued, "empty_fetches": empty_fetches,
            "server": server.version, "fsync_before_ack": server.fsync_before_ack,
            "caveat": server.durability(),
        }),
    })
}
