//! The browser binding: a thin `#[wasm_bindgen]` layer that drives the client core with a
//! web-sys `WebSocket` and JS timers, for browsers and for Node ≥ 20 (given a global
//! `WebSocket`).
//!
//! # Layout
//! - `client`: the exported classes `Client`, `Subscription` and `Message`, and the JS names of
//!   their methods.
//! - `driver`: the one `Driver` per client that owns the core, feeds it socket events and timer
//!   ticks, and carries out its outputs; JS callbacks run only after it has let go of its state.
//! - `readers`: the `Reader` and `Record` classes for `client.read`, and handing records to
//!   the application one at a time.
//! - `tasks`: the `Task` class for tasks leased by `client.pull`, and its settles.
//! - `socket`: a `WebSocket` set to `arraybuffer` whose listeners are unhooked on drop.
//! - `platform`: clocks, timers, entropy and the error objects JS sees.
//! - `convert`: reading option objects and payloads that JS passes in.

mod client;
mod convert;
mod driver;
mod platform;
mod readers;
mod socket;
mod tasks;

pub use client::{Client, Subscription, TopicMessage};
pub use readers::{ReaderRecord, StreamReader};
pub use tasks::LeasedTask;
