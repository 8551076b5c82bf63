//! The Switchboard hub: a realtime messaging broker for browsers and JS apps.
//!
//! [`run`] is the whole server; the `switchboard` binary only parses arguments (see [`cli`]).
//!
//! # Layout
//! - [`config`]: settings, their defaults and where they come from.
//! - [`http`]: routes — the WebSocket endpoint `/ws`, `/api/*`, the web and docs folders.
//! - [`session`]: one connection's loop, its writer and its bounded outbox.
//! - [`topics`]: in-memory publish/subscribe with a wildcard trie.
//! - [`queues`]: acked work queues: leases, retries with backoff, dead letters, dispatch.
//! - [`engines`]: starts the storage writer and the durable engines over it.
//! - [`streams`]: durable partitioned logs: appends, readers, consumer groups, retention.
//! - [`storage`]: the redb database and its single writer thread (group commit); every table
//!   and key encoding lives there.
//! - [`clock`]: wall-clock time, replaceable in tests.
//! - [`stats`]: hub-wide counters.
//! - [`cli`]: the command line of the `switchboard` binary.

pub mod cli;
pub mod clock;
pub mod config;
pub mod engines;
pub mod http;
pub mod queues;
pub mod session;
pub mod stats;
pub mod storage;
pub mod streams;
pub mod topics;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
use stats::Stats;
use storage::{Storage, StorageError};
use topics::Topics;

/// The hub's software version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// State shared by every part of a running hub.
pub struct Hub {
    pub config: Config,
    pub topics: Topics,
    pub streams: streams::Streams,
    pub queues: queues::Queues,
    pub storage: Storage,
    pub clock: clock::SharedClock,
    pub stats: Arc<Stats>,
    /// Cancelled when the hub starts shutting down.
    pub shutdown: CancellationToken,
    /// Every running session, so shutdown can wait for them.
    pub sessions: TaskTracker,
    /// One permit per open WebSocket session.
    pub connections: Arc<Semaphore>,
    next_session: AtomicU64,
}

impl Hub {
    fn new(
        config: Config,
        storage: Storage,
        engines: engines::Engines,
        clock: clock::SharedClock,
    ) -> Hub {
        let stats = Arc::new(Stats::default());
        Hub {
            topics: Topics::new(stats.clone()),
            streams: engines.streams,
            queues: engines.queues,
            clock,
            connections: Arc::new(Semaphore::new(config.max_connections as usize)),
            config,
            storage,
            stats,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            next_session: AtomicU64::new(1),
        }
    }

    /// A session id, unique while the hub runs.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

/// Why the hub could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot start the storage engines: {0}")]
    Engine(#[from] storage::OpError),
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs a hub on `listener` until `shutdown` completes, then shuts down gracefully: stop
/// accepting, close every session with 1001 after flushing what it has queued, wait for the
/// sessions (at most `shutdown_timeout_ms`), close the database.
///
/// # Errors
/// The configuration is invalid, the database cannot be opened (or is locked by another hub), or
/// the listener fails.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with_clock(listener, config, shutdown, Arc::new(clock::SystemClock)).await
}

/// [`run`] with a given wall clock (tests use a manual one).
///
/// # Errors
/// As [`run`].
pub async fn run_with_clock(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: clock::SharedClock,
) -> Result<(), ServerError> {
    config.validate()?;
    let options = storage::StorageOptions {
        cache_bytes: (config.storage_cache_mb as usize) << 20,
        prefill_bytes: u64::from(config.storage_prefill_mb) << 20,
    };
    let storage = Storage::open_with(&config.data_dir, options).await?;
    tracing::info!(path = %storage.path().display(), "database open");
    let engines = engines::start(&storage, &config, clock.clone())?;
    let background = tokio::spawn(streams::retention::run(engines.streams.clone()));
    let writer = engines.writer.clone();
    let hub = Arc::new(Hub::new(config, storage, engines, clock));
    let app = http::router(hub.clone());

    let signal = hub.shutdown.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = shutdown => {}
                () = signal.cancelled() => {}
            }
            signal.cancel();
            tracing::info!("shutting down: no new connections");
        })
        .await;

    hub.shutdown.cancel();
    hub.sessions.close();
    let grace = Duration::from_millis(u64::from(hub.config.shutdown_timeout_ms));
    if tokio::time::timeout(grace, hub.sessions.wait()).await.is_err() {
        tracing::warn!(
            remaining = hub.sessions.len(),
            "sessions still open after the shutdown timeout"
        );
    }
    background.abort();
    let _ = background.await;
    let storage = hub.storage.clone();
    drop(hub);
    writer.stop().await;
    storage.close().await;
    served?;
    Ok(())
}
