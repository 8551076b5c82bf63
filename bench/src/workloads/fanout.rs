//! `fanout`: one publisher, N subscribers on one topic; deliveries/s and publish→deliver latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::json;

use crate::Common;
use crate::hub::Hub;
use crate::report::{Latencies, Outcome};

/// How long a subscriber waits for a message before it checks whether publishing ended.
const IDLE: Duration = Duration::from_millis(500);

/// Options of the fanout workload.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Subscribers, one session each.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Publishes the publisher keeps in flight.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// How long to publish.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Publishes per second, to compare latencies at the same offered load (0: as fast as the
    /// window lets the publisher go).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// Paces the publisher at `rate` publishes per second from its start (no pacing at 0).
struct Pace {
    start: Instant,
    rate: u64,
    sent: u64,
}

impl Pace {
    fn new(rate: u64) -> Self {
        Pace { start: Instant::now(), rate, sent: 0 }
    }

    /// Waits until the next publish is due.
    async fn next(&mut self) {
        if self.rate > 0 {
            let due = self.start + Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        self.sent += 1;
    }
}

/// Runs the workload.
pub async fn run(common: &Common, o: Options) -> anyhow::Result<Outcome> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let hub = Hub::start(common, &[])?;
    let base = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let publishing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let latencies = Latencies::new();
    let mut subscribers = Vec::new();
    for _ in 0..o.subscribers {
        let client = super::clients(&hub.url, 1).await?.remove(0);
        let mut sub =
            client.subscribe("bench.fanout").await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let delivered = delivered.clone();
        let publishing = publishing.clone();
        let mut h = latencies.recorder();
        subscribers.push(tokio::spawn(async move {
            let _client = client;
            let mut uncounted = 0;
            loop {
                // A message already waiting needs no timer: only an idle wait arms one.
                let next = match sub.next().now_or_never() {
                    Some(next) => Ok(next),
                    None => {
                        counted(&delivered, &mut uncounted);
                        tokio::time::timeout(IDLE, sub.next()).await
                    }
                };
                match next {
                    Ok(Some(m)) => {
                        let sent = u64::from_be_bytes(m.data[..8].try_into().unwrap_or([0; 8]));
                        let now = base.elapsed().as_nanos() as u64;
                        h.record(now.saturating_sub(sent) / 1000);
                        uncounted += 1;
                    }
                    Ok(None) => break,
                    Err(_) if !publishing.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            counted(&delivered, &mut uncounted);
            sub.missed()
        }));
    }
    let publisher = super::clients(&hub.url, 1).await?.remove(0);
    let start = Instant::now();
    let cpu_start = hub.cpu_seconds();
    let until = start + Duration::from_secs_f64(o.seconds);
    let mut published = 0u64;
    let mut window = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt;
    let mut pace = Pace::new(o.rate);
    while Instant::now() < until {
        while window.len() < o.window {
            pace.next().await;
            let mut data = super::payload(o.size.max(8));
            data[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
            let p = publisher.clone();
            let publish = async move {
                p.publish("bench.fanout", data, Default::default())
                    .await
                    .map_err(|e| anyhow::anyhow!("publish: {e:?}"))
            };
            if o.rate > 0 {
                // Paced: a task of its own, so the publish leaves when it is due (a future in
                // the set only starts when the loop polls the set, once the window is full).
                let task = tokio::spawn(publish);
                window.push(async move { task.await? }.boxed());
            } else {
                // As fast as the window allows: the window's publishes start together, as the
                // NATS publisher feeds its window and flushes once.
                window.push(publish.boxed());
            }
            published += 1;
        }
        if let Some(r) = window.next().await {
            r?;
        }
    }
    while let Some(r) = window.next().await {
        r?;
    }
    let publish_seconds = start.elapsed().as_secs_f64();
    wait_for_deliveries(&delivered, published * o.subscribers as u64).await;
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = crate::report::cpu_used(cpu_start, hub.cpu_seconds());
    publishing.store(false, Ordering::Relaxed);
    let mut missed = 0;
    for s in subscribers {
        missed += s.await?;
    }
    Ok(Outcome {
        workload: "fanout",
        unit: "deliveries",
        count: delivered.load(Ordering::Relaxed),
        seconds,
        latency: Some(latencies.summary()),
        details: json!({ "server_cpu_seconds": server_cpu,
            "subscribers": o.subscribers, "size": o.size, "window": o.window, "rate": o.rate,
            "published": published,
            "publish_seconds": (publish_seconds * 100.0).round() / 100.0, "missed": missed,
        }),
    })
}

/// The same workload against core NATS subjects over WebSocket: N subscriber connections, one
/// publisher that keeps `window` messages in flight (it sends a PING after each window and waits
/// for the PONG, NATS having no per-message acknowledgement).
pub async fn run_nats(o: &Options) -> anyhow::Result<Outcome> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let server = crate::nats::NatsServer::start(crate::nats::server::Sync::Default).await?;
    let base = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let publishing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let latencies = Latencies::new();
    let mut subscribers = Vec::new();
    for _ in 0..o.subscribers {
        let (mut writer, mut reader) = crate::nats::connect(&server.url).await?;
        writer.send(b"SUB bench.fanout 1\r\nPING\r\n".to_vec()).await?;
        loop {
            if let crate::nats::Incoming::Pong = reader.next().await? {
                break;
            }
        }
        let delivered = delivered.clone();
        let publishing = publishing.clone();
        let mut h = latencies.recorder();
        subscribers.push(tokio::spawn(async move {
            let mut uncounted = 0;
            loop {
                // As on the hub side: a timer only for an idle wait (`next` is cancel-safe).
                let next = match reader.next().now_or_never() {
                    Some(next) => Ok(next),
                    None => {
                        counted(&delivered, &mut uncounted);
                        tokio::time::timeout(IDLE, reader.next()).await
                    }
                };
                match next {
                    Ok(Ok(crate::nats::Incoming::Msg(crate::nats::protocol::Msg {
                        payload,
                        ..
                    }))) => {
                        let sent = u64::from_be_bytes(payload[..8].try_into().unwrap_or([0; 8]));
                        h.record((base.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000);
                        uncounted += 1;
                    }
                    Ok(Ok(crate::nats::Incoming::Ping)) => {
                        if writer.send(b"PONG\r\n".to_vec()).await.is_err() {
                            break;
                        }
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => break,
                    Err(_) if !publishing.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            counted(&delivered, &mut uncounted);
        }));
    }
    let (mut publisher, mut replies) = crate::nats::connect(&server.url).await?;
    let start = Instant::now();
    let cpu_start = server.cpu_seconds();
    let until = start + Duration::from_secs_f64(o.seconds);
    let mut published = 0u64;
    let mut pace = Pace::new(o.rate);
    while Instant::now() < until {
        for _ in 0..o.window {
            pace.next().await;
            let mut data = super::payload(o.size.max(8));
            data[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
            publisher.publish("bench.fanout", &data).await?;
            if o.rate > 0 {
                // Paced, each message leaves when it is due, as the hub client's does.
                publisher.flush().await?;
            }
            published += 1;
        }
        publisher.ping().await?;
        loop {
            match replies.next().await? {
                crate::nats::Incoming::Pong => break,
                crate::nats::Incoming::Ping => publisher.send(b"PONG\r\n".to_vec()).await?,
                crate::nats::Incoming::Err(e) => anyhow::bail!("nats-server: {e}"),
                crate::nats::Incoming::Msg(_)
                | crate::nats::Incoming::Ok
                | crate::nats::Incoming::Info => {}
            }
        }
    }
    let publish_seconds = start.elapsed().as_secs_f64();
    wait_for_deliveries(&delivered, published * o.subscribers as u64).await;
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = crate::report::cpu_used(cpu_start, server.cpu_seconds());
    publishing.store(false, Ordering::Relaxed);
    for s in subscribers {
        s.await?;
    }
    Ok(Outcome {
        workload: "fanout (nats-server)",
        unit: "deliveries",
        count: delivered.load(Ordering::Relaxed),
        seconds,
        latency: Some(latencies.summary()),
        details: json!({ "server_cpu_seconds": server_cpu,
            "subscribers": o.subscribers, "size": o.size, "window": o.window, "rate": o.rate,
            "published": published,
            "publish_seconds": (publish_seconds * 100.0).round() / 100.0,
        }),
    })
}

/// Adds a subscriber's deliveries since its last wait to the shared count. Subscribers count
/// locally and add before each wait: one shared counter bumped by every delivery on every
/// core cost more than the rest of the subscriber's work.
fn counted(delivered: &AtomicU64, uncounted: &mut u64) {
    if *uncounted > 0 {
        delivered.fetch_add(std::mem::take(uncounted), Ordering::Relaxed);
    }
}

/// Lets deliveries drain (at most 30 s) before the subscribers are stopped.
async fn wait_for_deliveries(delivered: &AtomicU64, expected: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
