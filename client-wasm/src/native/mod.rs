//! The native transport: the client core driven by tokio and tokio-tungstenite.
//!
//! [`connect`] spawns one driver task per client. The task owns the [`crate::ClientCore`] and
//! the socket and runs one `select!` loop over commands from [`Client`] handles, socket reads,
//! the pending socket connect and the core's next deadline. Handles talk to it only through a
//! bounded command channel and oneshot replies; no lock is shared with it except the short
//! session-id section in [`client::Shared`].

mod client;
mod driver;
mod options;
mod subscription;

pub use client::{Client, connect};
pub use options::ClientOptions;
pub use subscription::Subscription;
