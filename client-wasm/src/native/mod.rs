//! The native transport: the client core driven by tokio and tokio-tungstenite.
//!
//! [`connect`] spawns one driver task per client. The task owns the [`crate::ClientCore`] and
//! the socket and runs one `select!` loop over commands from [`Client`] handles, socket reads,
//! the pending socket connect, readers' consumption and the core's next deadline. Handles talk
//! to it only through a bounded command channel and oneshot replies; the only locks shared
//! with it are the short session-id section in [`client::Shared`], each reader's view of its
//! positions (see `reader`) and each consumer's task buffer (see `consumer`).

mod client;
mod consumer;
mod driver;
mod mailbox;
mod options;
mod queues;
mod reader;
mod subscription;

pub use client::{Client, connect};
pub use consumer::{Consumer, TaskHandle};
pub use options::ClientOptions;
pub use reader::Reader;
pub use subscription::Subscription;
