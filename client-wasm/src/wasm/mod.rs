//! The browser binding: a thin `#[wasm_bindgen]` layer that drives the client core with a
//! web-sys `WebSocket` and JS timers, for browsers and for Node ≥ 20 (given a global
//! `WebSocket`).
//!
//! # Layout
//! - `client`: the exported classes `Client`, `Subscription` and `Message`, and the JS names of
//!   their methods.
//! - `answers`: what each finished operation's promise resolves or rejects with.
//! - `driver`: the one `Driver` per client that owns the core, feeds it socket events and timer
//!   ticks, and carries out its outputs; JS callbacks run only after it has let go of its state.
//! - `readers`: the `Reader` and `Record` classes for `client.read`, and handing records to
//!   the application one at a time.
//! - `tasks`: the `Task` class for tasks leased by `client.pull`, and its settles.
//! - `workers`: `client.work` and the `QueueWorker` class: a push consumer whose tasks go
//!   to a handler and are settled by how it ends.
//! - `types`: TypeScript types of the plain objects passed in and out.
//! - `socket`: a `WebSocket` set to `arraybuffer` whose listeners are unhooked on drop.
//! - `platform`: clocks, timers, entropy and the error objects JS sees.
//! - `convert`: reading option objects and payloads that JS passes in.

mod answers;
mod client;
mod convert;
mod driver;
mod platform;
mod readers;
mod socket;
mod tasks;
mod types;
mod workers;

pub use client::{Client, Subscription, TopicMessage};
pub use readers::{ReaderRecord, StreamReader};
pub use tasks::LeasedTask;
pub use workers::QueueWorker;
