//! Helpers for black-box tests: a real hub in a child process, and a raw protocol client.
//!
//! [`TestServer`] starts the hub binary on `127.0.0.1:0` with a temporary data directory,
//! collects its logs, and prints them if the test panics. [`RawClient`] speaks the wire protocol
//! directly, for tests of bad input that a well-behaved client would never send.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod raw;
pub mod server;

pub use raw::RawClient;
pub use server::TestServer;

/// Installs a log subscriber for test-side logging, once per test binary.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
