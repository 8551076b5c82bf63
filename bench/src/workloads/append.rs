//! `append`: concurrent producers, each append awaited; appends/s and ack latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_client::{AppendOptions, StreamOptions};

use crate::Common;
use crate::hub::Hub;
use crate::report::{Latency, Outcome, histogram};

/// Options of the append workload.
#[derive(Debug, clap::Args)]
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
    /// Partitions of the stream.
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
    let until = start + Duration::from_secs_f64(o.seconds);
    let mut tasks = Vec::new();
    for p in 0..o.producers {
        let client = clients[p % clients.len()].clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut n = 0u64;
            while Instant::now() < until {
                let t0 = Instant::now();
                let key = Some(format!("p{p}"));
                client
                    .append(stream, data.to_vec(), AppendOptions { key, ..Default::default() })
                    .await
                    .map_err(|e| anyhow::anyhow!("append: {e:?}"))?;
                h.record(t0.elapsed().as_micros() as u64).ok();
                n += 1;
            }
            anyhow::Ok((n, h))
        }));
    }
    let mut total = 0;
    let mut all = histogram();
    for t in tasks {
        let (n, h) = t.await??;
        total += n;
        all.add(h).ok();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Outcome {
        workload: "append",
        unit: "appends",
        count: total,
        seconds,
        latency: Some(Latency::of(&all)),
        details: json!({ "producers": o.producers, "connections": o.connections, "size": o.size, "partitions": o.partitions }),
    })
}
