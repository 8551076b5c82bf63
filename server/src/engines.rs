//! Starting the durable engines: the storage writer thread, then streams and queues over it.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::queues::{self, Queues};
use crate::storage::queues::QueueEvent;
use crate::storage::streams::StreamEvent;
use crate::storage::writer::{CommitListener, Writer, WriterConfig};
use crate::storage::{OpError, Storage};
use crate::streams::{self, Streams, live::Registry};

/// The running engines and their shared writer.
pub struct Engines {
    pub streams: Streams,
    pub queues: Queues,
    pub writer: Writer,
}

/// Routes what each commit changed to the engine that cares.
struct Listener {
    streams: Arc<Registry>,
    queues: Arc<queues::Signals>,
}

impl CommitListener for Listener {
    fn streams(&self, events: Vec<StreamEvent>) {
        self.streams.apply(events);
    }

    fn queues(&self, events: Vec<QueueEvent>) {
        self.queues.apply(events);
    }
}

/// Loads what is stored, starts the writer thread and builds the engines.
///
/// # Errors
/// The stored state cannot be read or the writer thread cannot start.
pub fn start(storage: &Storage, config: &Config, clock: SharedClock) -> Result<Engines, OpError> {
    let registry = Arc::new(Registry::default());
    let signals = Arc::new(queues::Signals::default());
    let listener = Arc::new(Listener { streams: registry.clone(), queues: signals.clone() });
    let writer_config = WriterConfig {
        max_batch: config.commit_max_batch as usize,
        dedup_window_ms: config.dedup_window_ms,
    };
    let (writer, stored) = Writer::start(storage, writer_config, clock.clone(), listener)?;
    let streams = streams::new(
        storage.clone(),
        writer.clone(),
        registry,
        stored,
        config.streams(),
        clock.clone(),
    );
    let queues = queues::new(writer.clone(), signals, config.queues(), clock);
    Ok(Engines { streams, queues, writer })
}
