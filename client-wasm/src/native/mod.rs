//! The native transport: the client core driven by tokio and tokio-tungstenite.
//!
//! [`connect`] spawns one driver task per client. The task owns the [`crate::ClientCore`] and
//! the socket and runs one `select!` loop over commands from [`Client`] handles, socket reads,
//! the pending socket connect, readers' consumption and the core's next deadline. Handles talk
//! to it only through a bounded command channel and oneshot replies; the only locks shared
//! with it are the short session-id section in [`client::Shared`] and each reader's view of
//! its positions (see `reader`).

mod client;
mod driver;
mod options;
mod reader;
mod subscription;

pub use client::{Client, connect};
pub use options::ClientOptions;
pub use reader::Reader;
pub use subscription::Subscription;
