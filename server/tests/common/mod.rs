//! An in-process stream engine on a temporary directory with a manual clock, and a model of
//! what it should answer.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::streams::{PartitionOffset, ReadFrom, Record};
use switchboard_protocol::{ErrorFrame, Read, ReplyBody, ServerFrame};
use switchboard_server::Config;
use switchboard_server::clock::ManualClock;
use switchboard_server::config::SlowConsumerPolicy;
use switchboard_server::engines;
use switchboard_server::queues::Queues;
use switchboard_server::session::outbox::{Out, Outbox};
use switchboard_server::stats::Stats;
use switchboard_server::storage::Storage;
use switchboard_server::storage::writer::{Completions, Ticket, WriteResult, Writer};
use switchboard_server::streams::{ReaderHandle, Streams};

/// Start of the manual clock: 2026-01-01.
pub const T0: u64 = 1_767_225_600_000;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub storage: Option<Storage>,
    pub engine: Option<Streams>,
    pub queues: Option<Queues>,
    writer: Option<Writer>,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_config(Config::default()).await
    }

    pub async fn with_config(config: Config) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let mut h =
            Harness { dir, clock, config, storage: None, engine: None, queues: None, writer: None };
        h.open().await;
        h
    }

    async fn open(&mut self) {
        let storage = Storage::open(self.dir.path()).await.unwrap();
        let engines = engines::start(&storage, &self.config, self.clock.clone()).unwrap();
        self.storage = Some(storage);
        self.engine = Some(engines.streams);
        self.queues = Some(engines.queues);
        self.writer = Some(engines.writer);
    }

    pub fn engine(&self) -> &Streams {
        self.engine.as_ref().unwrap()
    }

    pub fn queues(&self) -> &Queues {
        self.queues.as_ref().unwrap()
    }

    /// The writer's (commits, writes, fsyncs) so far.
    #[allow(dead_code)]
    pub fn writer_counts(&self) -> (u64, u64, u64) {
        self.writer.as_ref().unwrap().counts().read()
    }

    /// Stops the storage writer, leaving the engines and the database open.
    #[allow(dead_code)]
    pub async fn stop_writer(&self) {
        self.writer.as_ref().unwrap().stop().await;
    }

    /// Stops the engine and closes the database as a shutdown would, then opens both again.
    pub async fn restart(&mut self) {
        self.writer.take().unwrap().stop().await;
        self.engine = None;
        self.queues = None;
        self.storage.take().unwrap().close().await;
        self.open().await;
    }

    /// A reader on one session-like outbox.
    pub async fn reader(&self, request: Read) -> Result<(TestReader, ReplyBody), ErrorFrame> {
        let outbox = Arc::new(Outbox::new(
            1 << 40,
            SlowConsumerPolicy::Notify,
            Format::MsgPack,
            Arc::new(Stats::default()),
        ));
        let (handle, pending, body) =
            self.engine().open_reader(&request, request.id, outbox.clone()).await?;
        pending.start().await;
        Ok((
            TestReader {
                outbox,
                handle: Some(handle),
                engine: self.engine().clone(),
                pending: Vec::new(),
            },
            body,
        ))
    }

    /// Every record of `partition` from `from` to the high watermark at the time of the call.
    pub async fn read_all(
        &self,
        stream: &str,
        partition: u32,
        from: ReadFrom,
    ) -> Result<Vec<Record>, ErrorFrame> {
        let (mut reader, body) = self.reader(read(stream, Some(partition), from, 100_000)).await?;
        let ReplyBody::ReadStarted { partitions, .. } = body else { panic!("{body:?}") };
        let want = (partitions[0].high - partitions[0].next) as usize;
        let mut records = Vec::new();
        while records.len() < want {
            match reader.next_frame().await {
                ServerFrame::Records(r) => records.extend(r.records),
                ServerFrame::ReaderClosed(c) => return Err(c.error),
                other => panic!("unexpected {other:?}"),
            }
        }
        reader.close().await;
        Ok(records)
    }
}

pub fn read(stream: &str, partition: Option<u32>, from: ReadFrom, credit: u32) -> Read {
    Read {
        id: 1,
        stream: stream.into(),
        partition,
        from,
        positions: Vec::<PartitionOffset>::new(),
        epoch: None,
        credit,
        group: None,
        member: None,
        auto_commit: false,
    }
}

pub struct TestReader {
    pub outbox: Arc<Outbox>,
    pub handle: Option<ReaderHandle>,
    engine: Streams,
    pending: Vec<ServerFrame>,
}

impl TestReader {
    /// The next frame the reader sent, within 5 s.
    pub async fn next_frame(&mut self) -> ServerFrame {
        if self.pending.is_empty() {
            let batch = tokio::time::timeout(Duration::from_secs(5), self.outbox.next_batch())
                .await
                .expect("the reader sent nothing in time");
            for item in batch.items {
                if let Out::Message(Message::Binary(bytes)) = item {
                    self.pending.push(codec::decode_server(&bytes, Format::MsgPack).unwrap());
                }
            }
            self.pending.reverse();
        }
        match self.pending.pop() {
            Some(frame) => frame,
            None => Box::pin(self.next_frame()).await,
        }
    }

    /// A frame if one arrives within `wait`.
    pub async fn frame_within(&mut self, wait: Duration) -> Option<ServerFrame> {
        if !self.pending.is_empty() {
            return Some(self.next_frame().await);
        }
        match tokio::time::timeout(wait, self.outbox.next_batch()).await {
            Ok(batch) => {
                for item in batch.items {
                    if let Out::Message(Message::Binary(bytes)) = item {
                        self.pending.push(codec::decode_server(&bytes, Format::MsgPack).unwrap());
                    }
                }
                self.pending.reverse();
                self.pending.pop()
            }
            Err(_) => None,
        }
    }

    pub async fn credit(&self, n: u32) {
        let handle = self.handle.as_ref().unwrap();
        handle.ctl.send(switchboard_server::streams::reader::Ctl::Credit(n)).await.unwrap();
    }

    pub async fn close(mut self) {
        if let Some(handle) = self.handle.take() {
            self.engine.close_reader(handle, true).await;
        }
    }

    /// Ends the reader as a dropped session would (a group member keeps its partitions).
    pub async fn disconnect(mut self) {
        if let Some(handle) = self.handle.take() {
            self.engine.close_reader(handle, false).await;
        }
    }
}

/// A small deterministic generator for model tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Waits until `to` holds `n` outcomes and returns them.
#[allow(dead_code)]
pub async fn outcomes(
    to: &Completions,
    n: usize,
) -> Vec<(Ticket, Result<WriteResult, switchboard_server::storage::OpError>)> {
    let mut got = Vec::new();
    while got.len() < n {
        tokio::time::timeout(Duration::from_secs(10), to.ready()).await.expect("outcomes in time");
        to.take(&mut got);
    }
    got
}
