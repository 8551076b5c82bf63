//! The Switchboard wire protocol, shared by the hub and every client.
//!
//! # Layout
//! - [`frame`]: every frame a client or the hub can send, defined once.
//! - [`codec`]: MessagePack (binary WebSocket messages) and JSON (text messages) encoding, and
//!   the classification of bad input into stable error codes.
//! - [`payload`]: opaque message bodies and string headers.
//! - [`codes`]: stable numeric error codes and WebSocket close codes.
//! - [`names`]: validation of topic names and subscription patterns, and pattern matching.
//! - [`limits`]: the limits a hub announces in its `welcome` frame.
//! - [`queues`]: queue options, tasks, dead-letter history, statistics.
//! - [`streams`]: records, read positions, retention and the key → partition hash.
//!
//! This crate has no async runtime dependency and builds for `wasm32-unknown-unknown`.

pub mod codec;
pub mod codes;
pub mod frame;
pub mod limits;
pub mod names;
pub mod payload;
pub mod queues;
pub mod streams;

pub use codec::{DecodeError, Format};
pub use codes::{CloseCode, ErrorCode};
pub use frame::*;
pub use limits::Limits;
pub use payload::{Headers, Payload};

/// The protocol version this crate speaks. A hub refuses a `hello` with another major version.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket path the hub serves the protocol on.
pub const WS_PATH: &str = "/ws";
