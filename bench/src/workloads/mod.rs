//! The workloads, one module each.

pub mod append;
pub mod connections;
pub mod fanout;
pub mod queue;
pub mod replay;

use std::time::Duration;

use switchboard_client::{Client, ClientOptions, connect};

/// Client options for load: generous timeouts, no reconnect (a dropped connection is a result).
pub fn client_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(60),
        reconnect: false,
        max_pending: 1_000_000,
        subscription_buffer: 65_536,
        ..ClientOptions::default()
    }
}

/// Opens `n` clients.
pub async fn clients(url: &str, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(
            connect(url, client_options()).await.map_err(|e| anyhow::anyhow!("connect: {e:?}"))?,
        );
    }
    Ok(all)
}

/// A payload of `size` bytes.
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// What a timed task answers: how many operations it completed.
pub type Counted = anyhow::Result<u64>;

/// Waits for timed tasks; the total count.
pub async fn join_counted(tasks: Vec<tokio::task::JoinHandle<Counted>>) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}
