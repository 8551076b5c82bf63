//! A reader: one task that sends a stream's records to a session under credit flow control.
//!
//! The task never has more than its credit in records sent and not yet acknowledged (a
//! `credit` grant acknowledges the oldest records), so a slow client holds the reader back
//! instead of making the hub buffer: streams wait, they never drop. Records come from the
//! partition's in-memory ring when the position is recent, otherwise from redb in batches on a
//! blocking thread. A position below the low watermark ends the reader with
//! `offset_out_of_range`; it is never skipped silently.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::extract::ws::Message;
use bytes::Bytes;
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::streams::{PartitionOffset, ReadFrom, Record};
use switchboard_protocol::{
    Assigned, ErrorCode, ErrorFrame, ReaderClosed, Records, Revoked, ServerFrame,
};
use tokio::sync::mpsc;

use super::Engine;
use super::groups::GroupKey;
use super::live::LiveStream;
use crate::session::outbox::{Outbox, encode_message};
use crate::storage::streams::read_records;

/// Most records in one `records` frame.
const BATCH_RECORDS: usize = 1000;
/// About the most bytes in one `records` frame.
const BATCH_BYTES: usize = 1024 * 1024;

/// A message to a reader task.
#[derive(Debug)]
pub enum Ctl {
    /// The client granted more credit (and acknowledged that many records).
    Credit(u32),
    /// Group: start reading these partitions, each with its assignment generation.
    Assign(Vec<(u32, u64)>),
    /// Group: stop reading these partitions.
    Revoke(Vec<u32>),
    /// Stop.
    Close,
}

/// How a reader belongs to a group.
pub struct Membership {
    pub key: GroupKey,
    pub member: String,
    pub auto_commit: bool,
    /// Where to start in partitions the group never committed.
    pub from: ReadFrom,
    /// Positions the client asked to resume from, used when their partitions are assigned.
    pub resume: BTreeMap<u32, u64>,
}

/// Everything a reader task needs.
pub struct ReaderSpec {
    pub id: u64,
    pub live: Arc<LiveStream>,
    pub outbox: Arc<Outbox>,
    pub credit: u32,
    /// Partitions read and their next offsets (empty for a group reader until assigned).
    pub positions: BTreeMap<u32, u64>,
    pub group: Option<Membership>,
}

struct Cursor {
    next: u64,
    generation: u64,
}

/// Runs a reader until it is closed, its session's outbox closes, or it fails.
pub async fn run(engine: Arc<Engine>, spec: ReaderSpec, mut ctl: mpsc::Receiver<Ctl>) {
    let format = spec.outbox.format();
    let mut reader = ReaderTask {
        id: spec.id,
        live: spec.live,
        outbox: spec.outbox,
        format,
        credit: u64::from(spec.credit).min(engine.config.max_reader_credit),
        cursors: spec
            .positions
            .into_iter()
            .map(|(p, next)| (p, Cursor { next, generation: 0 }))
            .collect(),
        delivered: VecDeque::new(),
        group: spec.group,
        engine,
        turn: 0,
    };
    reader.run(&mut ctl).await;
}

struct ReaderTask {
    id: u64,
    engine: Arc<Engine>,
    live: Arc<LiveStream>,
    outbox: Arc<Outbox>,
    format: Format,
    credit: u64,
    cursors: BTreeMap<u32, Cursor>,
    /// Partition and offset of each record sent and not yet acknowledged, oldest first.
    delivered: VecDeque<(u32, u64, u64)>,
    group: Option<Membership>,
    /// Partition to serve first next time, for fairness.
    turn: u32,
}

enum Step {
    Progress,
    Idle,
    Stop,
}

impl ReaderTask {
    async fn run(&mut self, ctl: &mut mpsc::Receiver<Ctl>) {
        let live = self.live.clone();
        loop {
            let changed = live.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            while let Ok(message) = ctl.try_recv() {
                if !self.control(message).await {
                    return;
                }
            }
            if self.live.is_deleted() {
                let error = ErrorFrame::new(None, ErrorCode::NotFound, "the stream was deleted");
                self.close_with(error);
                return;
            }
            match self.pump().await {
                Step::Progress => continue,
                Step::Stop => return,
                Step::Idle => {}
            }
            tokio::select! {
                message = ctl.recv() => match message {
                    Some(message) => {
                        if !self.control(message).await {
                            return;
                        }
                    }
                    None => return,
                },
                () = &mut changed => {}
            }
        }
    }

    /// Handles a control message; false when the reader must stop.
    async fn control(&mut self, message: Ctl) -> bool {
        match message {
            Ctl::Close => false,
            Ctl::Credit(n) => {
                self.acknowledge(n as usize).await;
                self.credit =
                    (self.credit + u64::from(n)).min(self.engine.config.max_reader_credit);
                true
            }
            Ctl::Revoke(partitions) => {
                for p in &partitions {
                    self.cursors.remove(p);
                }
                // Records already sent from these partitions stay in `delivered`: the client
                // still acknowledges them with its grants, in order. They are no longer this
                // reader's to commit, which `acknowledge` checks.
                self.send(&ServerFrame::Revoked(Revoked { reader: self.id, partitions }))
            }
            Ctl::Assign(partitions) => self.assign(partitions).await,
        }
    }

    /// Starts reading newly assigned partitions from the client's resume position, else the
    /// group's committed offset, else the member's `from`.
    async fn assign(&mut self, partitions: Vec<(u32, u64)>) -> bool {
        let Some(group) = &self.group else {
            return true;
        };
        let committed = self.engine.committed(self.live.meta.id, &group.key.1).await;
        let committed = match committed {
            Ok(c) => c,
            Err(error) => {
                self.close_with(error);
                return false;
            }
        };
        let mut starts = Vec::new();
        for (partition, generation) in partitions {
            let resume = group.resume.get(&partition).copied();
            let start = match resume.or_else(|| committed.get(&partition).copied()) {
                Some(offset) => offset,
                None => match self.engine.start_offset(&self.live, partition, group.from).await {
                    Ok(offset) => offset,
                    Err(error) => {
                        self.close_with(error);
                        return false;
                    }
                },
            };
            self.cursors.insert(partition, Cursor { next: start, generation });
            starts.push((generation, PartitionOffset { partition, offset: start }));
        }
        if let Some(group) = &mut self.group {
            group.resume.clear();
        }
        // One frame per generation: a rejoining member's partitions may have been assigned in
        // different rebalances, and each commit must quote its partition's own generation.
        starts.sort_by_key(|(generation, p)| (*generation, p.partition));
        for chunk in starts.chunk_by(|a, b| a.0 == b.0) {
            let frame = Assigned {
                reader: self.id,
                generation: chunk[0].0,
                partitions: chunk.iter().map(|(_, p)| *p).collect(),
            };
            if !self.send(&ServerFrame::Assigned(frame)) {
                return false;
            }
        }
        true
    }

    /// Acknowledges the `n` oldest delivered records, committing them for auto-commit groups.
    async fn acknowledge(&mut self, n: usize) {
        let n = n.min(self.delivered.len());
        let mut upto: BTreeMap<u32, u64> = BTreeMap::new();
        for (p, offset, generation) in self.delivered.drain(..n) {
            // Only records delivered under the partition's current assignment may be committed.
            if self.cursors.get(&p).is_some_and(|c| c.generation == generation) {
                upto.insert(p, offset + 1);
            }
        }
        let Some(group) = &self.group else { return };
        if !group.auto_commit {
            return;
        }
        for (partition, offset) in upto {
            let Some(cursor) = self.cursors.get(&partition) else {
                continue;
            };
            let result = self
                .engine
                .commit(&self.live.meta.name, &group.key.1, partition, offset, cursor.generation)
                .await;
            if let Err(e) = result {
                tracing::debug!(reader = self.id, partition, error = %e.message, "auto-commit refused");
            }
        }
    }

    /// Sends what credit allows, one batch per partition per turn.
    async fn pump(&mut self) -> Step {
        let partitions: Vec<u32> = self.cursors.keys().copied().collect();
        if partitions.is_empty() || self.credit == 0 {
            return Step::Idle;
        }
        let start = partitions.iter().position(|p| *p >= self.turn).unwrap_or(0);
        let mut progressed = false;
        for i in 0..partitions.len() {
            if self.credit == 0 {
                break;
            }
            let partition = partitions[(start + i) % partitions.len()];
            match self.serve(partition).await {
                Ok(true) => {
                    progressed = true;
                    self.turn = partition + 1;
                }
                Ok(false) => {}
                Err(error) => {
                    self.close_with(error);
                    return Step::Stop;
                }
            }
            if self.outbox.is_closed() {
                return Step::Stop;
            }
        }
        if progressed { Step::Progress } else { Step::Idle }
    }

    /// Sends one batch from `partition` if it has records past the cursor.
    async fn serve(&mut self, partition: u32) -> Result<bool, ErrorFrame> {
        let Some(next) = self.cursors.get(&partition).map(|c| c.next) else {
            return Ok(false);
        };
        let max = (self.credit as usize).min(BATCH_RECORDS);
        let from_ring = {
            let Some(part) = self.live.part(partition) else {
                return Ok(false);
            };
            if next < part.low {
                let mut error = ErrorFrame::new(
                    None,
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "partition {partition}: offset {next} was removed by retention; the low watermark is {}",
                        part.low
                    ),
                );
                error.low_watermark = Some(part.low);
                return Err(error);
            }
            if next >= part.high {
                return Ok(false);
            }
            part.from_ring(next, max, BATCH_BYTES)
        };
        let records = match from_ring {
            Some(records) => records,
            None => {
                let id = self.live.meta.id;
                self.engine
                    .storage
                    .read(move |txn| read_records(txn, id, partition, next, max, BATCH_BYTES))
                    .await
                    .map_err(|e| ErrorFrame::new(None, ErrorCode::StorageFailure, e.to_string()))?
            }
        };
        // Retention may have removed the start between the check and the read: check again.
        if records.first().map(|(o, _)| *o) != Some(next) {
            return Ok(true);
        }
        let count = records.len();
        let last = records[count - 1].0;
        let Some(message) = self.records_frame(partition, &records) else {
            return Err(ErrorFrame::new(None, ErrorCode::Internal, "cannot encode records"));
        };
        if !self.outbox.stream(message) {
            return Ok(false);
        }
        let generation = self.cursors.get(&partition).map_or(0, |c| c.generation);
        for (offset, _) in &records {
            self.delivered.push_back((partition, *offset, generation));
        }
        self.credit -= count as u64;
        if let Some(cursor) = self.cursors.get_mut(&partition) {
            cursor.next = last + 1;
        }
        Ok(true)
    }

    fn records_frame(&self, partition: u32, records: &[(u64, Bytes)]) -> Option<Message> {
        match self.format {
            Format::MsgPack => {
                let raw: Vec<&[u8]> = records.iter().map(|(_, b)| b.as_ref()).collect();
                Some(Message::Binary(
                    codec::encode_records_msgpack(self.id, partition, &raw).into(),
                ))
            }
            Format::Json => {
                let records = records
                    .iter()
                    .map(|(_, b)| rmp_serde::from_slice::<Record>(b))
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?;
                let frame = ServerFrame::Records(Records { reader: self.id, partition, records });
                encode_message(&frame, Format::Json)
            }
        }
    }

    fn send(&self, frame: &ServerFrame) -> bool {
        match encode_message(frame, self.format) {
            Some(message) => self.outbox.stream(message),
            None => false,
        }
    }

    fn close_with(&self, error: ErrorFrame) {
        tracing::debug!(reader = self.id, code = %error.name, "reader closed: {}", error.message);
        self.send(&ServerFrame::ReaderClosed(ReaderClosed { reader: self.id, error }));
    }
}
