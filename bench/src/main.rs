//! `switchboard-bench`: a load generator for the Switchboard hub.
//!
//! Each workload starts a hub of its own (the `switchboard` binary built next to this one, on
//! 127.0.0.1 with a temporary data directory) unless `--url` points at a running one, drives it
//! over WebSocket with the project's native client, prints a one-line summary and, with
//! `--json FILE`, writes the figures as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hub;
mod report;
mod workloads;

use clap::{Args, Parser, Subcommand};

/// Load generator for the Switchboard hub.
#[derive(Debug, Parser)]
#[command(name = "switchboard-bench", version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    workload: Workload,
}

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
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// 1 publisher → N subscribers on one topic.
    Fanout(workloads::fanout::Options),
    /// Concurrent producers appending to a stream, each append awaited (acked after fsync).
    Append(workloads::append::Options),
    /// Producers enqueue, workers pull and ack; end-to-end tasks/s.
    Queue(workloads::queue::Options),
    /// Read stored records from earliest through one client.
    Replay(workloads::replay::Options),
    /// Open idle sessions and measure the hub's memory per session.
    Connections(workloads::connections::Options),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        match cli.workload {
            Workload::Fanout(o) => workloads::fanout::run(&cli.common, o).await,
            Workload::Append(o) => workloads::append::run(&cli.common, o).await,
            Workload::Queue(o) => workloads::queue::run(&cli.common, o).await,
            Workload::Replay(o) => workloads::replay::run(&cli.common, o).await,
            Workload::Connections(o) => workloads::connections::run(&cli.common, o).await,
        }
    })?;
    println!("{}", result.summary());
    if let Some(path) = &cli.common.json {
        std::fs::write(path, serde_json::to_string_pretty(&result.json())?)?;
    }
    Ok(())
}
