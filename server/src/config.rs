//! Hub configuration: defaults, a TOML file, `SWITCHBOARD_*` environment variables and flags.
//!
//! Precedence, highest first: command-line flags, environment variables, the TOML file given
//! with `--config`, built-in defaults. Every field of [`Config`] can be set in the file; the
//! most used ones also have a flag and an environment variable (see `switchboard serve --help`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchboard_protocol::Limits;
use switchboard_protocol::streams::{Durability, Retention};

/// What the hub does when a session's outbound queue is full of topic messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Drop topic messages for that session, count them per topic, and send a `lagged` notice
    /// once its queue has drained.
    #[default]
    Notify,
    /// Close the session with close code 4005 `slow_consumer`.
    Disconnect,
}

/// The whole configuration of a hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory holding the database; created if missing.
    pub data_dir: PathBuf,
    /// Directory served at `/`; `None` serves the `web/` folder of the source tree if present.
    pub web_dir: Option<PathBuf>,
    /// Directory served at `/docs`; `None` serves the `docs/` folder of the source tree if present.
    pub docs_dir: Option<PathBuf>,
    /// Tokens accepted in `hello`. Empty: no token is required.
    pub tokens: Vec<String>,
    /// Largest frame decoded, in bytes.
    pub max_frame_bytes: u32,
    /// Most topic subscriptions one session may hold.
    pub max_subscriptions: u32,
    /// Most requests one session may have in flight.
    pub max_in_flight: u32,
    /// Most concurrent WebSocket sessions; more are closed with 1013 at once.
    pub max_connections: u32,
    /// How long a new connection has to send `hello`, in milliseconds.
    pub hello_timeout_ms: u32,
    /// Interval of WebSocket pings to each session, in milliseconds.
    pub ping_interval_ms: u32,
    /// A session silent for this long is closed with 4006, in milliseconds.
    pub idle_timeout_ms: u32,
    /// Bytes of topic messages that may wait in one session's outbound queue.
    pub outbox_bytes: u64,
    /// What happens when that queue is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Consecutive bad frames after which a session is closed with 4004.
    pub max_bad_frames: u32,
    /// How long shutdown waits for sessions to flush and close, in milliseconds.
    pub shutdown_timeout_ms: u32,
    /// Partitions of a stream created by its first append.
    pub stream_partitions: u32,
    /// Retention of a stream created by its first append (no limit by default).
    pub stream_retention: Retention,
    /// Durability of a stream created by its first append.
    pub stream_durability: Durability,
    /// Largest stream record or queue task (data, key and headers), in bytes; also capped by
    /// `max_frame_bytes`.
    pub max_record_bytes: u32,
    /// Most credit a stream reader may hold; larger grants are capped.
    pub max_reader_credit: u32,
    /// How long an idempotency key is remembered, in milliseconds.
    pub dedup_window_ms: u64,
    /// How long a disconnected group member keeps its partitions, in milliseconds.
    pub group_session_timeout_ms: u64,
    /// How often retention runs, in milliseconds.
    pub retention_interval_ms: u64,
    /// Most write operations committed in one transaction.
    pub commit_max_batch: u32,
    /// Memory redb may keep of the database's pages, in MiB (at least 1). Pages beyond it are
    /// read from the file (and the operating system's page cache) again.
    pub storage_cache_mb: u32,
    /// How far past the database's highest written page its file's new space is kept filled
    /// with zeros, in MiB; 0 turns that off. Writing into filled space spares each commit's
    /// fsync the filesystem's block allocation; the cost is at most this much disk beyond the
    /// pages in use. Worth turning off only on copy-on-write filesystems (btrfs, ZFS), where an
    /// overwrite allocates anyway.
    pub storage_prefill_mb: u32,
    /// Threads of the async runtime that runs sessions, dispatchers and readers; 0 picks one
    /// per core.
    pub worker_threads: u32,
    /// Default lease of a task, in milliseconds.
    pub queue_lease_ms: u64,
    /// Default cap of lease extensions, in milliseconds from the lease's start.
    pub queue_max_lease_ms: u64,
    /// Default failures before a task is dead-lettered (0: never).
    pub queue_max_attempts: u32,
    /// Default redelivery delays after the 1st, 2nd, ... failure, in milliseconds.
    pub queue_backoff_ms: Vec<u64>,
    /// Default most tasks a queue holds.
    pub queue_max_length: u64,
    /// Most tasks one pull may take and most prefetch one consumer may hold.
    pub queue_max_batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::default();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("switchboard-data"),
            web_dir: None,
            docs_dir: None,
            tokens: Vec::new(),
            max_frame_bytes: limits.max_frame_bytes,
            max_subscriptions: limits.max_subscriptions,
            max_in_flight: limits.max_in_flight,
            max_connections: 10_000,
            hello_timeout_ms: 10_000,
            ping_interval_ms: limits.ping_interval_ms,
            idle_timeout_ms: limits.idle_timeout_ms,
            outbox_bytes: limits.outbox_bytes,
            slow_consumer: SlowConsumerPolicy::Notify,
            max_bad_frames: 10,
            shutdown_timeout_ms: 10_000,
            stream_partitions: 1,
            stream_retention: Retention::default(),
            stream_durability: Durability::Immediate,
            max_record_bytes: 1024 * 1024 - 1024,
            max_reader_credit: 10_000,
            dedup_window_ms: 120_000,
            group_session_timeout_ms: 10_000,
            retention_interval_ms: 1_000,
            commit_max_batch: 4096,
            storage_cache_mb: 128,
            storage_prefill_mb: 64,
            worker_threads: 0,
            queue_lease_ms: 30_000,
            queue_max_lease_ms: 12 * 3600 * 1000,
            queue_max_attempts: 5,
            queue_backoff_ms: vec![1_000, 5_000, 30_000, 120_000],
            queue_max_length: 1_000_000,
            queue_max_batch: 1_000,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The runtime's worker threads: `worker_threads`, or one per core when it is 0.
    pub fn runtime_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// Reads a TOML file over the defaults.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML, names an unknown key, or fails [`Config::validate`].
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), source: Box::new(e) })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that the values make sense together.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::Invalid(what.to_owned()));
        if self.max_frame_bytes < 1024 {
            return bad("max_frame_bytes must be at least 1024");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.ping_interval_ms == 0 || self.idle_timeout_ms <= self.ping_interval_ms {
            return bad("idle_timeout_ms must be greater than ping_interval_ms, both above 0");
        }
        if self.hello_timeout_ms == 0 {
            return bad("hello_timeout_ms must be above 0");
        }
        if self.max_bad_frames == 0 {
            return bad("max_bad_frames must be at least 1");
        }
        if self.stream_partitions == 0 || self.stream_partitions > crate::streams::MAX_PARTITIONS {
            return bad("stream_partitions must be between 1 and 1024");
        }
        if self.max_record_bytes == 0 {
            return bad("max_record_bytes must be above 0");
        }
        if self.queue_lease_ms == 0 || self.queue_backoff_ms.is_empty() || self.queue_max_batch == 0
        {
            return bad(
                "queue_lease_ms, queue_backoff_ms and queue_max_batch must not be 0 or empty",
            );
        }
        if self.queue_max_lease_ms < self.queue_lease_ms || self.queue_max_length == 0 {
            return bad(
                "queue_max_lease_ms must be at least queue_lease_ms, and queue_max_length above 0",
            );
        }
        let defaults = self.streams().defaults;
        if let Err(e) = crate::streams::validate_options(&defaults) {
            return Err(ConfigError::Invalid(format!("stream defaults: {}", e.message)));
        }
        if self.max_reader_credit == 0 || self.commit_max_batch == 0 || self.storage_cache_mb == 0 {
            return bad("max_reader_credit, commit_max_batch and storage_cache_mb must be above 0");
        }
        Ok(())
    }

    /// The limits announced to clients in `welcome`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_subscriptions: self.max_subscriptions,
            max_in_flight: self.max_in_flight,
            ping_interval_ms: self.ping_interval_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            outbox_bytes: self.outbox_bytes,
        }
    }

    /// The largest record or task body: `max_record_bytes`, but never more than a frame can
    /// carry.
    pub fn record_limit(&self) -> usize {
        self.max_record_bytes.min(self.max_frame_bytes) as usize
    }

    /// The stream engine's settings.
    pub fn streams(&self) -> crate::streams::StreamsConfig {
        crate::streams::StreamsConfig {
            defaults: crate::storage::streams::StreamOptions {
                partitions: self.stream_partitions,
                retention: self.stream_retention,
                durability: self.stream_durability,
            },
            max_record_bytes: self.record_limit(),
            max_reader_credit: u64::from(self.max_reader_credit),
            dedup_window_ms: self.dedup_window_ms,
            group_session_timeout_ms: self.group_session_timeout_ms,
            retention_interval_ms: self.retention_interval_ms,
            max_batch: self.commit_max_batch as usize,
        }
    }

    /// The queue engine's settings.
    pub fn queues(&self) -> crate::queues::QueuesConfig {
        crate::queues::QueuesConfig {
            lease_ms: self.queue_lease_ms,
            max_lease_ms: self.queue_max_lease_ms,
            max_attempts: self.queue_max_attempts,
            backoff_ms: self.queue_backoff_ms.clone(),
            dedup_window_ms: self.dedup_window_ms,
            max_length: self.queue_max_length,
            max_task_bytes: self.record_limit(),
            max_batch: self.queue_max_batch,
        }
    }

    /// The largest WebSocket message the transport accepts at all. Messages between
    /// `max_frame_bytes` and this size get a `frame_too_large` error and the session goes on;
    /// larger ones close the session with 1009.
    pub fn hard_message_limit(&self) -> usize {
        (self.max_frame_bytes as usize).saturating_mul(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_should_be_valid_and_listen_on_loopback_7070() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
    }

    #[test]
    fn file_should_override_defaults_and_reject_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "max_subscriptions = 5\nslow_consumer = \"disconnect\"\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.max_subscriptions, 5);
        assert_eq!(c.slow_consumer, SlowConsumerPolicy::Disconnect);
        assert_eq!(c.max_frame_bytes, Config::default().max_frame_bytes);

        std::fs::write(&path, "max_subscription = 5\n").unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("max_subscription"), "{err}");
    }

    #[test]
    fn runtime_threads_should_be_one_per_core_unless_set() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(Config::default().runtime_threads(), cores);
        assert_eq!(Config { worker_threads: 3, ..Config::default() }.runtime_threads(), 3);
    }

    #[test]
    fn storage_cache_should_come_from_the_file_and_not_be_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "storage_cache_mb = 512\n").unwrap();
        assert_eq!(Config::from_file(&path).unwrap().storage_cache_mb, 512);
        assert_eq!(Config::default().storage_cache_mb, 128);
        assert_eq!(Config::default().storage_prefill_mb, 64);
        std::fs::write(&path, "storage_prefill_mb = 0\n").unwrap();
        assert_eq!(Config::from_file(&path).unwrap().storage_prefill_mb, 0, "0 turns it off");
        assert!(Config { storage_cache_mb: 0, ..Config::default() }.validate().is_err());
    }

    #[test]
    fn inconsistent_timeouts_should_be_refused() {
        let c = Config { ping_interval_ms: 1000, idle_timeout_ms: 500, ..Config::default() };
        assert!(c.validate().is_err());
    }
}
