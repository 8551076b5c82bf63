//! The Switchboard client.
//!
//! # Layout
//! - [`core`]: the sans-I/O client state machine ([`ClientCore`]): sessions, requests matched by
//!   id, timeouts, reconnect with backoff, subscriptions and their restoration, keep-alive,
//!   stream appends with idempotency keys, stream readers with credit and exact resume, queue
//!   enqueues with idempotency keys, lease settles resent while the lease is valid, and push
//!   consumers re-issued after a reconnect. It has no runtime or socket dependency and builds
//!   for `wasm32-unknown-unknown`.
//! - `native` (feature `native`, not on wasm32): the tokio + tokio-tungstenite transport —
//!   [`connect`], [`Client`], [`Subscription`], [`Reader`], [`Consumer`], [`TaskHandle`],
//!   [`ClientOptions`] — one driver task per client running the core.
//!
//! - `wasm` (feature `wasm`, wasm32 only): the `#[wasm_bindgen]` browser binding, driving the
//!   core over a web-sys `WebSocket`; built into an npm package by `cargo xtask wasm`.
//!
//! See [`core`] for the contract a transport follows.

// The browser package's allocator; built natively too, for its tests.
#[cfg(any(test, all(feature = "wasm", target_arch = "wasm32")))]
mod alloc;
pub mod core;

pub use crate::core::{
    AppendOptions, Appended, ClientCore, ClientError, ClientNotice, Completion, ConnectionState,
    ConsumerEvent, ConsumerId, CoreConfig, DEFAULT_CREDIT, DEFAULT_PULL_WAIT_MS, EnqueueOptions,
    Message, OpId, Output, PullOptions, ReadOptions, ReaderEvent, ReaderId, SocketId,
    StreamOptions, StreamRecord, SubId,
};
pub use switchboard_protocol::queues::{DeadLetter, QueueInfo, QueueOptions, QueueStats, Task};
pub use switchboard_protocol::streams::{
    Durability, PartitionOffset, ReadFrom, Retention, StreamDescription, StreamInfo,
};
pub use switchboard_protocol::{ErrorCode, Headers, Payload};

/// The wire protocol this client speaks, for frame-level types such as
/// [`protocol::frame::ReplyBody`] and [`protocol::Limits`].
pub use switchboard_protocol as protocol;

#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
mod native;

#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub use native::{Client, ClientOptions, Consumer, Reader, Subscription, TaskHandle, connect};

#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
mod wasm;

#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
pub use wasm::{
    Client, LeasedTask, QueueWorker, ReaderRecord, StreamReader, Subscription, TopicMessage,
};
