//! The comparison system: nats-server, driven over WebSocket like the hub.
//!
//! # Layout
//! - `server`: starts nats-server with a temporary configuration and JetStream store.
//! - `protocol`: the NATS text protocol's operations and a parser, free of any socket.
//! - `connection`: one WebSocket connection split into a writing and a reading half.
//! - `client`: a shared connection for many concurrent requests (a writer task and a reader
//!   task, replies routed by inbox), with a timeout on every wait.
//! - `jetstream`: the JetStream API requests, publish acknowledgements and pull fetches.

pub mod client;
pub mod connection;
#[cfg(test)]
mod fake;
pub mod jetstream;
pub mod protocol;
pub mod server;

use std::fmt;
use std::time::Duration;

pub use client::NatsClient;
pub use connection::connect;
pub use protocol::{Incoming, Status};
pub use server::NatsServer;

/// Why talking to nats-server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsError {
    Connect {
        url: String,
        reason: String,
    },
    /// `-ERR`, after which nats-server closes the connection.
    Server(String),
    Closed,
    Socket(String),
    Protocol(String),
    Timeout {
        what: String,
        after: Duration,
    },
    JetStream(jetstream::ApiError),
    Status {
        what: String,
        status: Status,
    },
    BadReply {
        what: String,
        detail: String,
    },
}

impl fmt::Display for NatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { url, reason } => {
                write!(f, "cannot connect to nats-server at {url}: {reason}")
            }
            Self::Server(text) => write!(f, "nats-server: -ERR '{text}'"),
            Self::Closed => write!(f, "nats-server closed the connection"),
            Self::Socket(e) => write!(f, "nats-server connection: {e}"),
            Self::Protocol(e) => write!(f, "nats protocol: {e}"),
            Self::Timeout { what, after } => write!(f, "no answer to {what} within {after:?}"),
            Self::JetStream(e) => write!(
                f,
                "JetStream API error {} (err_code {}): {}",
                e.code, e.err_code, e.description
            ),
            Self::Status { what, status } => write!(
                f,
                "nats-server answered {what} with status {} {}",
                status.code, status.description
            ),
            Self::BadReply { what, detail } => write!(f, "unexpected answer to {what}: {detail}"),
        }
    }
}

impl std::error::Error for NatsError {}
