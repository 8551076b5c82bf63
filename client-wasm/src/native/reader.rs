//! A stream reader handle ([`Reader`]) and the driver's end of it ([`ReaderSink`]).
//!
//! Records travel from the driver to the handle over a channel bounded by the reader's credit
//! window. The core never has more records delivered and unconsumed than the window, and a
//! record counts as consumed only once the handle has taken it out of the channel, so the
//! driver's `try_send` always finds room: streams never drop and never block the connection.
//!
//! Consumption goes back without a command per record: the handle counts what it took in an
//! atomic and wakes the driver when a quarter of the window was taken or the channel ran empty
//! (the moment the hub might be waiting for credit); the driver reports the count to the core.

use std::collections::{BTreeMap, HashMap};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::Stream;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::ReplyBody;
use switchboard_protocol::streams::ReaderPartition;
use tokio::sync::{mpsc, oneshot};

use super::client::{Command, Shared, call_weak};
use crate::core::{ClientCore, ClientError, ReaderEvent, ReaderId, StreamRecord};

/// A record in the channel, with the holding of its partition it was delivered under.
#[derive(Debug)]
pub(crate) struct Tagged {
    record: StreamRecord,
    tag: u64,
}

/// The next offset to consume in one held partition, and which holding it belongs to: records
/// delivered under an earlier holding (before a revoke and a new assignment) do not move it.
#[derive(Debug, Clone, Copy)]
struct Held {
    next: u64,
    tag: u64,
}

#[derive(Debug, Default)]
struct View {
    positions: BTreeMap<u32, Held>,
    last_tag: u64,
    epoch: u64,
    member: Option<String>,
    /// Why the reader ended, handed out once after the last record.
    end: Option<ClientError>,
}

impl View {
    fn hold(&mut self, partition: u32, next: u64) -> u64 {
        self.last_tag += 1;
        let tag = self.last_tag;
        self.positions.insert(partition, Held { next, tag });
        tag
    }
}

/// What the handle and the driver share.
#[derive(Debug, Default)]
pub(crate) struct ReaderShared {
    /// Records taken by the handle and not yet reported to the core.
    consumed: AtomicUsize,
    view: Mutex<View>,
}

impl ReaderShared {
    fn view(&self) -> MutexGuard<'_, View> {
        // Nothing panics while holding the lock; if something did, the view is still usable.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The driver's end of every reader of one client.
#[derive(Debug, Default)]
pub(crate) struct ReaderSinks {
    sinks: HashMap<ReaderId, ReaderSink>,
}

impl ReaderSinks {
    /// The handle of a reader whose `read` just completed with `body`.
    pub(crate) fn open(
        &mut self,
        id: ReaderId,
        stream: String,
        window: u32,
        body: Option<ReplyBody>,
        client: Arc<Shared>,
        commands: mpsc::WeakSender<Command>,
    ) -> Reader {
        let (epoch, member, partitions) = match body {
            Some(ReplyBody::ReadStarted { epoch, member, partitions, .. }) => {
                (epoch, member, partitions)
            }
            _ => (0, None, Vec::new()),
        };
        let started = (epoch, member, partitions.as_slice());
        let (sink, reader) = ReaderSink::open(id, stream, window, started, client, commands);
        self.sinks.insert(id, sink);
        reader
    }

    /// Forgets a reader; its handle sees the end once its buffer is read.
    pub(crate) fn remove(&mut self, id: ReaderId) {
        self.sinks.remove(&id);
    }

    /// Carries out one reader event from the core.
    pub(crate) fn on_event(
        &mut self,
        core: &mut ClientCore,
        now_ms: u64,
        id: ReaderId,
        event: ReaderEvent,
    ) {
        let Some(sink) = self.sinks.get(&id) else {
            return;
        };
        let ReaderEvent::Records(records) = event else {
            if sink.apply(event) {
                self.sinks.remove(&id);
            }
            return;
        };
        match sink.deliver(records) {
            Ok(()) => {}
            Err(Undelivered::Gone) => {
                self.sinks.remove(&id);
                core.close_reader(now_ms, id);
            }
            Err(Undelivered::Overflow(error)) => {
                tracing::error!(reader = id, %error, "reader overflow");
                self.sinks.remove(&id);
                core.close_reader(now_ms, id);
            }
        }
    }

    /// Reports to the core what every handle consumed since the last report.
    pub(crate) fn report(&self, core: &mut ClientCore, now_ms: u64) {
        for (&id, sink) in &self.sinks {
            let n = sink.shared.consumed.swap(0, Ordering::AcqRel);
            if n > 0 {
                core.reader_consumed(now_ms, id, n);
            }
        }
    }
}

/// The driver's end of one reader.
#[derive(Debug)]
struct ReaderSink {
    records: mpsc::Sender<Tagged>,
    shared: Arc<ReaderShared>,
}

/// Why a delivery did not reach the handle.
enum Undelivered {
    /// The handle was dropped.
    Gone,
    /// More records than the window: a bug somewhere, and never a silent drop.
    Overflow(ClientError),
}

impl ReaderSink {
    /// A sink and its handle for a reader the hub just started.
    fn open(
        id: ReaderId,
        stream: String,
        window: u32,
        started: (u64, Option<String>, &[ReaderPartition]),
        client: Arc<Shared>,
        commands: mpsc::WeakSender<Command>,
    ) -> (ReaderSink, Reader) {
        let (epoch, member, partitions) = started;
        let window = usize::try_from(window).unwrap_or(usize::MAX).max(1);
        let (sender, receiver) = mpsc::channel(window);
        let shared = Arc::new(ReaderShared::default());
        {
            let mut view = shared.view();
            view.epoch = epoch;
            view.member = member;
            for p in partitions {
                view.hold(p.partition, p.next);
            }
        }
        let sink = ReaderSink { records: sender, shared: Arc::clone(&shared) };
        let reader = Reader {
            id,
            stream,
            records: receiver,
            shared,
            report_every: (window / 4).max(1),
            client,
            commands,
            done: false,
        };
        (sink, reader)
    }

    /// Hands records to the handle.
    fn deliver(&self, records: Vec<StreamRecord>) -> Result<(), Undelivered> {
        let mut view = self.shared.view();
        for record in records {
            let tag = match view.positions.get(&record.partition) {
                Some(held) => held.tag,
                // A partition that appeared after the reader started.
                None => view.hold(record.partition, record.offset),
            };
            match self.records.try_send(Tagged { record, tag }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Undelivered::Gone),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let error = ClientError::new(
                        ErrorCode::Internal,
                        "the reader received more records than its credit window",
                    );
                    view.end = Some(error.clone());
                    return Err(Undelivered::Overflow(error));
                }
            }
        }
        Ok(())
    }

    /// Applies an event other than records; returns whether the reader ended.
    fn apply(&self, event: ReaderEvent) -> bool {
        let mut view = self.shared.view();
        match event {
            ReaderEvent::Assigned { partitions, .. } => {
                for p in partitions {
                    view.hold(p.partition, p.offset);
                }
            }
            ReaderEvent::Revoked { partitions } => {
                for p in partitions {
                    view.positions.remove(&p);
                }
            }
            ReaderEvent::Resumed { epoch, member } => {
                view.epoch = epoch;
                view.member = member;
            }
            ReaderEvent::Ended { error } => {
                // An overflow found here already left its error.
                if error.is_some() {
                    view.end = error;
                }
                return true;
            }
            ReaderEvent::Records(_) => {}
        }
        false
    }
}

/// The records of one stream reader, as a [`Stream`] or through [`Reader::next`], in offset
/// order within each partition, each exactly once across reconnects.
///
/// At most `credit` records wait in the reader; the hub sends more as they are taken. A reader
/// ends (`None`) when it is closed or its client is; when it ends on an error — the stream was
/// deleted or recreated, its position fell below retention, a restore after a reconnect was
/// refused, or the hub broke record order — that error comes once after the last record.
///
/// Dropping the handle closes the reader (best effort: if the command channel is full at that
/// moment, the driver notices at its next delivery).
#[derive(Debug)]
pub struct Reader {
    id: ReaderId,
    stream: String,
    records: mpsc::Receiver<Tagged>,
    shared: Arc<ReaderShared>,
    report_every: usize,
    client: Arc<Shared>,
    /// Weak, so that readers alone do not keep a client whose handles are all gone open.
    commands: mpsc::WeakSender<Command>,
    done: bool,
}

impl Reader {
    /// The reader's id, unique within its client and stable across reconnects.
    pub fn id(&self) -> ReaderId {
        self.id
    }

    /// The stream it reads.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The next record; `Some(Err(_))` once if the reader ended on an error; `None` once it
    /// ended and every record was taken.
    pub async fn next(&mut self) -> Option<Result<StreamRecord, ClientError>> {
        poll_fn(|cx| self.poll_record(cx)).await
    }

    fn poll_record(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<StreamRecord, ClientError>>> {
        match self.records.poll_recv(cx) {
            Poll::Ready(Some(Tagged { record, tag })) => {
                if let Some(held) = self.shared.view().positions.get_mut(&record.partition)
                    && held.tag == tag
                {
                    held.next = record.offset.saturating_add(1);
                }
                let unreported = self.shared.consumed.fetch_add(1, Ordering::AcqRel) + 1;
                if unreported >= self.report_every || self.records.is_empty() {
                    self.client.wake_for_consumption();
                }
                Poll::Ready(Some(Ok(record)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(self.shared.view().end.take().map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Commits `record` for the reader's group: the group resumes after it. Commits are
    /// resent after a reconnect.
    ///
    /// # Errors
    /// `invalid_argument` (not a group reader), `stale_generation` (the record's partition was
    /// revoked or reassigned since), `closed` (the reader or client ended), `timeout`,
    /// `backlogged`, or the hub's error.
    pub async fn commit(&self, record: &StreamRecord) -> Result<(), ClientError> {
        let (id, partition, offset) = (self.id, record.partition, record.offset);
        call_weak(&self.commands, &self.client, move |core, now| {
            core.commit_record(now, id, partition, offset)
        })
        .await
        .map(|_| ())
    }

    /// The next offset to take, per partition the reader holds: where a reader resuming from
    /// what this one handed out would start.
    pub fn position(&self) -> BTreeMap<u32, u64> {
        self.shared
            .view()
            .positions
            .iter()
            .map(|(&partition, held)| (partition, held.next))
            .collect()
    }

    /// The epoch of the stream: it changes when the stream is deleted and created again.
    pub fn epoch(&self) -> u64 {
        self.shared.view().epoch
    }

    /// For a group reader, its member id in the group.
    pub fn member(&self) -> Option<String> {
        self.shared.view().member.clone()
    }

    /// Marks a handle nobody received as closed, so dropping it sends nothing.
    pub(crate) fn close_quietly(&mut self) {
        self.done = true;
    }

    /// Stops the reader; a group member leaves its group at once. Records still buffered are
    /// discarded. Resolves once the hub confirmed, or at once without a connection.
    pub async fn close(mut self) {
        self.done = true;
        let Some(commands) = self.commands.upgrade() else {
            return;
        };
        let (reply, done) = oneshot::channel();
        let command = Command::CloseReader { reader: self.id, reply: Some(reply) };
        if commands.send(command).await.is_ok() {
            let _ = done.await;
        }
    }
}

impl Stream for Reader {
    type Item = Result<StreamRecord, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_record(cx)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.try_send(Command::CloseReader { reader: self.id, reply: None });
        }
    }
}
