//! `append`: concurrent producers, each append awaited; appends/s and ack latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_client::{AppendOptions, StreamOptions};

use crate::Common;
use crate::hub::Hub;
use crate::nats::server::Sync;
use crate::nats::{NatsClient, NatsServer, jetstream};
use crate::report::{Latencies, Outcome};

/// Options of the append workload.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Appends in flight at once, each awaited before the producer's next.
    #[arg(long, default_value_t = 256)]
    pub producers: usize,
    /// Client connections the producers share.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Record size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Partitions of the stream (against NATS: one stream over as many subjects, producers
    /// spread over them as over the hub's partitions; a JetStream stream is one log whatever
    /// its subjects).
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
}

/// Runs the workload.
pub async fn run(common: &Common, o: Options) -> anyhow::Result<Outcome> {
    let hub = Hub::start(common, &[])?;
    let clients = super::clients(&hub.url, o.connections.max(1)).await?;
    let stream = "bench.append";
    let options = StreamOptions { partitions: Some(o.partitions), ..Default::default() };
    clients[0].create_stream(stream, options).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let data = Arc::new(super::payload(o.size));
    let start = Instant::now();
    let cpu_start = hub.cpu_seconds();
    let until = start + Duration::from_secs_f64(o.seconds);
    let latencies = Latencies::new();
    let mut tasks = Vec::new();
    for p in 0..o.producers {
        let client = clients[p % clients.len()].clone();
        let data = data.clone();
        let mut h = latencies.recorder();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let producer = format!("p{p}");
            while Instant::now() < until {
                let t0 = Instant::now();
                let key = Some(producer.clone());
                client
                    .append(stream, data.to_vec(), AppendOptions { key, ..Default::default() })
                    .await
                    .map_err(|e| anyhow::anyhow!("append: {e:?}"))?;
                h.record(t0.elapsed().as_micros() as u64);
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let total = super::join_counted(tasks).await?;
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = crate::report::cpu_used(cpu_start, hub.cpu_seconds());
    Ok(Outcome {
        workload: "append",
        unit: "appends",
        count: total,
        seconds,
        latency: Some(latencies.summary()),
        details: json!({ "server_cpu_seconds": server_cpu, "producers": o.producers, "connections": o.connections, "size": o.size, "partitions": o.partitions }),
    })
}

/// The same workload against a JetStream stream (file storage) over WebSocket: the same number
/// of producers over the same number of connections, each publish awaiting its acknowledgement,
/// each carrying a `Nats-Msg-Id` as each hub append carries an idempotency key.
pub async fn run_nats(o: &Options, sync: Sync) -> anyhow::Result<Outcome> {
    let server = NatsServer::start(sync).await?;
    let mut clients = Vec::new();
    for _ in 0..o.connections.max(1) {
        clients.push(NatsClient::connect(&server.url, Duration::from_secs(60)).await?);
    }
    let partitions = o.partitions.max(1);
    let subjects = vec!["bench.append.*".to_owned()];
    jetstream::create_stream(&clients[0], "BENCH_APPEND", &subjects, jetstream::Retention::Limits)
        .await?;
    let data = Arc::new(super::payload(o.size));
    let start = Instant::now();
    let cpu_start = server.cpu_seconds();
    let until = start + Duration::from_secs_f64(o.seconds);
    let latencies = Latencies::new();
    let mut tasks = Vec::new();
    for p in 0..o.producers {
        let client = clients[p % clients.len()].clone();
        let data = data.clone();
        let mut h = latencies.recorder();
        let subject = format!("bench.append.{}", p as u32 % partitions);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let t0 = Instant::now();
                let id = format!("p{p}-{n}");
                let ack = jetstream::publish(&client, &subject, &id, &data).await?;
                anyhow::ensure!(!ack.duplicate, "publish {id} was taken for a duplicate");
                h.record(t0.elapsed().as_micros() as u64);
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let total = super::join_counted(tasks).await?;
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = crate::report::cpu_used(cpu_start, server.cpu_seconds());
    Ok(Outcome {
        workload: if server.fsync_before_ack {
            "append (nats-server JetStream, file store, fsync before ack)"
        } else {
            "append (nats-server JetStream, file store, no fsync before ack)"
        },
        unit: "appends",
        count: total,
        seconds,
        latency: Some(latencies.summary()),
        details: json!({ "server_cpu_seconds": server_cpu,
            "producers": o.producers, "connections": o.connections, "size": o.size,
            "partitions": partitions, "subjects": partitions, "server": server.version,
            "fsync_before_ack": server.fsync_before_ack, "caveat": server.durability(),
        }),
    })
}
