//! `switchboard-bench`: a load generator for the Switchboard hub.
//!
//! Each workload starts a hub of its own (the `switchboard` binary built next to this one, on
//! 127.0.0.1 with a temporary data directory) unless `--url` points at a running one, drives it
//! over WebSocket with the project's native client, prints a one-line summary and, with
//! `--json FILE`, writes the figures as JSON.
//!
//! With `--vs nats`, `fanout`, `append` and `queue` then run the same workload, with the same
//! concurrency and in-flight windows, against a nats-server of their own over WebSocket (see
//! [`nats`]), and print its summary and a hub/nats ratio line; the JSON holds both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hub;
mod nats;
mod report;
mod workloads;

use clap::{Args, Parser, Subcommand};

/// Load generator for the Switchboard hub.
#[derive(Debug, Parser)]
#[command(name = "switchboard-bench", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    workload: Workload,
}

const EXAMPLES: &str = "\
Examples:
  switchboard-bench append --seconds 3
  switchboard-bench append --vs nats --partitions 4   # then a JetStream file stream over 4 subjects
  switchboard-bench queue --vs nats                   # then a JetStream work queue, durable pull consumer
  switchboard-bench fanout --vs nats                  # then core NATS subjects
  switchboard-bench --json out.json queue --vs nats   # both results in one JSON object

--vs nats starts nats-server ($NATS_SERVER, else target/nats-server/nats-server as `cargo xtask nats`
installs it, else /usr/sbin/nats-server) on 127.0.0.1 with WebSocket and JetStream in a temporary
file store. append and queue run against it twice: with sync_interval: always (an fsync before each
ack, as the hub does), then with its default. nats-server 2.9 cannot fsync before acknowledging:
its append and queue then run once, labelled \"no fsync before ack\", while the hub fsyncs first.";

/// Options every workload takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Drive a running hub (`ws://host:port/ws`) instead of starting one.
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The hub binary to start [default: `switchboard` next to this binary].
    #[arg(long, global = true)]
    pub hub: Option<std::path::PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<std::path::PathBuf>,
    /// Run the same workload against another system too and print the ratios (`nats`: for
    /// fanout, append and queue).
    #[arg(long = "vs", global = true)]
    pub versus: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// 1 publisher → N subscribers on one topic. With --vs nats: core NATS subjects.
    Fanout(workloads::fanout::Options),
    /// Concurrent producers appending to a stream, each append awaited (acked after fsync).
    /// With --vs nats: acked publishes to a JetStream file stream.
    Append(workloads::append::Options),
    /// Producers enqueue, workers pull and ack; end-to-end tasks/s. With --vs nats: a JetStream
    /// work-queue stream with a durable pull consumer and explicit acks.
    Queue(workloads::queue::Options),
    /// Read stored records from earliest through one client.
    Replay(workloads::replay::Options),
    /// Open idle sessions and measure the hub's memory per session.
    Connections(workloads::connections::Options),
}

/// The load generator allocates per frame on every thread, as the hub does; both use mimalloc so
/// that the generator takes less of the machine from the system under test.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(other) = &cli.common.versus
        && other != "nats"
    {
        anyhow::bail!("--vs {other}: only nats is supported");
    }
    let versus = cli.common.versus.is_some();
    // Against nats-server, append and queue run once with JetStream fsyncing before each ack
    // (as the hub does) when this nats-server can, then once with its default.
    let durable = matches!(cli.workload, Workload::Append(_) | Workload::Queue(_));
    let syncs = if versus && durable { nats::server::syncs()? } else { Vec::new() };
    let (hub, others) = runtime.block_on(async {
        let mut others = Vec::new();
        let hub = match cli.workload {
            Workload::Fanout(o) => {
                let hub = workloads::fanout::run(&cli.common, o.clone()).await?;
                if versus {
                    others.push(workloads::fanout::run_nats(&o).await?);
                }
                hub
            }
            Workload::Append(o) => {
                let hub = workloads::append::run(&cli.common, o.clone()).await?;
                for sync in &syncs {
                    others.push(workloads::append::run_nats(&o, *sync).await?);
                }
                hub
            }
            Workload::Queue(o) => {
                let hub = workloads::queue::run(&cli.common, o.clone()).await?;
                for sync in &syncs {
                    others.push(workloads::queue::run_nats(&o, *sync).await?);
                }
                hub
            }
            Workload::Replay(o) => workloads::replay::run(&cli.common, o).await?,
            Workload::Connections(o) => workloads::connections::run(&cli.common, o).await?,
        };
        anyhow::Ok((hub, others))
    })?;
    for outcome in std::iter::once(&hub).chain(&others) {
        // A run that completed nothing measured nothing: fail rather than print a zero rate.
        anyhow::ensure!(outcome.count > 0, "{}: no {} completed", outcome.workload, outcome.unit);
    }
    println!("{}", hub.summary());
    let mut json = hub.json();
    if others.is_empty() && versus {
        println!("no comparison with nats-server for {} yet", hub.workload);
    }
    for other in &others {
        println!("{}", other.summary());
    }
    for other in &others {
        println!("{}", report::ratio(&hub, other));
    }
    if !others.is_empty() {
        // `nats` is the run with fsync before ack when there was one; `nats_runs` has them all.
        let runs: Vec<_> = others.iter().map(report::Outcome::json).collect();
        json = serde_json::json!({ "hub": hub.json(), "nats": runs[0], "nats_runs": runs });
    }
    if let Some(path) = &cli.common.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
