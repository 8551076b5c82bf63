//! Readers in the core: `read`, consumption and credit, commits, `close`, what the hub sends
//! readers, and restoring every reader after a reconnect.
//!
//! # Restoring
//! After each `welcome` every reader is read again — after the topic subscriptions, before any
//! queued request — with `positions` = the next offset of each partition it holds, `epoch` = the
//! stream epoch it read, `credit` = its window minus the records the application has not
//! consumed, and, for a group member, its member id (so the hub re-attaches it with the same
//! partitions). Records the hub sends again are dropped by offset; a record past the expected
//! offset ends the reader with an error. A restore the hub refuses for good
//! (`offset_out_of_range`, `epoch_mismatch`, `not_found`, ...) ends the reader with that error;
//! one refused for a passing reason (`too_many_in_flight`, `internal`, `shutting_down`,
//! `storage_failure`) is retried after `min_delay_ms`.
//!
//! # Ordering assumption
//! The hub sends a reader's `records` only after its `read_started` answer. Records for a hub
//! reader id the core does not know are ignored; if the hub ever broke that order, the next
//! records would arrive past the expected offset and end the reader with an error, not skip.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{
    Assigned, ClientFrame, CloseReader, Commit, Credit, Read, ReaderClosed, Records, ReplyBody,
    Revoked,
};
use switchboard_protocol::names::validate_resource;

use super::ReadOptions;
use super::reader::{Reader, Spec};
use crate::core::requests::{OnDisconnect, Purpose, Request};
use crate::core::{ClientCore, ClientError, ClientNotice, OpId, Output, ReaderEvent, ReaderId};

impl ClientCore {
    /// Starts a reader on `stream`. The returned id is both the operation's and the reader's.
    /// The operation completes with [`ReplyBody::ReadStarted`] once the hub started the reader
    /// (after the next `welcome` if disconnected); from then on [`Output::Reader`] carries its
    /// records and events until [`ReaderEvent::Ended`], and the reader survives reconnects.
    ///
    /// The completion fails with `invalid_name`, `invalid_argument` (a zero credit window),
    /// `backlogged`, `timeout`, `closed`, or the hub's error (`not_found`,
    /// `offset_out_of_range`, ...).
    pub fn read(&mut self, now_ms: u64, stream: &str, options: ReadOptions) -> ReaderId {
        let reader = self.new_op();
        if let Err(e) = validate_resource("stream", stream) {
            self.complete(reader, Err(ClientError::invalid_name(&e)));
            return reader;
        }
        if options.credit == 0 {
            let error = ClientError::new(
                ErrorCode::InvalidArgument,
                "a reader needs a credit window of at least one record",
            );
            self.complete(reader, Err(error));
            return reader;
        }
        if let Err(e) = self.admit() {
            self.complete(reader, Err(e));
            return reader;
        }
        let auto_commit = options.auto_commit && options.group.is_some();
        let mut state = Reader::new(Spec {
            stream: stream.to_owned(),
            partition: options.partition,
            from: options.from,
            group: options.group,
            auto_commit,
            window: options.credit,
        });
        state.timer = Some(now_ms.saturating_add(self.config.request_timeout_ms));
        self.readers.insert(reader, state);
        // Disconnected: the next `welcome` reads it with the others.
        if self.is_ready() {
            self.send_read(now_ms, reader, false);
        }
        self.pump(now_ms);
        reader
    }

    /// The application consumed the `n` oldest records delivered to `reader` and not yet
    /// reported. Credit goes back to the hub in batches.
    pub fn reader_consumed(&mut self, now_ms: u64, reader: ReaderId, n: usize) {
        if let Some(state) = self.readers.get_mut(reader) {
            state.consume(n);
            self.grant_credit(now_ms, reader);
            self.pump(now_ms);
        }
    }

    /// Commits a record a group reader delivered: `offset + 1` in `partition`, under that
    /// partition's current assignment generation. Resent after a reconnect like
    /// [`ClientCore::commit`].
    ///
    /// Fails with `closed` (no such reader), `invalid_argument` (not a group reader),
    /// `stale_generation` (the partition is no longer assigned to this reader) or as `commit`.
    pub fn commit_record(
        &mut self,
        now_ms: u64,
        reader: ReaderId,
        partition: u32,
        offset: u64,
    ) -> OpId {
        let op = self.new_op();
        let found = self.readers.get(reader).map(|r| {
            let generation = r.partition(partition).and_then(|p| p.generation);
            (r.spec.stream.clone(), r.spec.group.clone(), generation)
        });
        let error = match found {
            None => ClientError::new(ErrorCode::Closed, "the reader has ended"),
            Some((_, None, _)) => ClientError::new(
                ErrorCode::InvalidArgument,
                "only group readers commit; this reader reads without a group",
            ),
            Some((_, Some(_), None)) => ClientError::new(
                ErrorCode::StaleGeneration,
                format!("partition {partition} is not assigned to this reader (any more)"),
            ),
            Some((stream, Some(group), Some(generation))) => {
                self.submit(now_ms, op, OnDisconnect::Resend, |id| {
                    ClientFrame::Commit(Commit {
                        id,
                        stream,
                        group,
                        partition,
                        offset: offset.saturating_add(1),
                        generation,
                    })
                });
                return op;
            }
        };
        self.complete(op, Err(error));
        op
    }

    /// Stops a reader: it ends at once locally ([`ReaderEvent::Ended`] without error) and the
    /// hub is told (a group member leaves its group). The operation completes when the hub
    /// answered, or at once when there is no session; closing an ended reader succeeds.
    pub fn close_reader(&mut self, now_ms: u64, reader: ReaderId) -> OpId {
        let op = self.new_op();
        let Some(state) = self.remove_reader(reader) else {
            self.complete(op, Ok(None));
            return op;
        };
        if state.started {
            let event = ReaderEvent::Ended { error: None };
            self.emit(Output::Reader { reader, event });
        } else {
            let error = ClientError::new(ErrorCode::Closed, "closed before the reader started");
            self.complete(reader, Err(error));
        }
        match state.hub.filter(|_| self.is_ready()) {
            Some(hub) => self.close_hub_reader(now_ms, hub, Some(op)),
            None => self.complete(op, Ok(None)),
        }
        self.pump(now_ms);
        op
    }

    /// The next offset the application has not consumed, per partition the reader holds, in
    /// partition order.
    pub fn reader_position(&self, reader: ReaderId) -> Option<Vec<(u32, u64)>> {
        self.readers.get(reader).map(Reader::consumed_positions)
    }

    /// The epoch of the stream the reader reads, once started.
    pub fn reader_epoch(&self, reader: ReaderId) -> Option<u64> {
        self.readers.get(reader).and_then(|r| r.epoch)
    }

    /// A group reader's member id, once started.
    pub fn reader_member(&self, reader: ReaderId) -> Option<&str> {
        self.readers.get(reader).and_then(|r| r.member.as_deref())
    }

    /// A group reader's assignment generation of `partition`, while it holds it.
    pub fn reader_generation(&self, reader: ReaderId, partition: u32) -> Option<u64> {
        self.readers.get(reader).and_then(|r| r.partition(partition)).and_then(|p| p.generation)
    }

    /// Records delivered to `reader` that the transport has not reported consumed.
    pub fn reader_buffered(&self, reader: ReaderId) -> Option<usize> {
        self.readers.get(reader).map(Reader::buffered)
    }

    /// Queues the `read` of `reader` for the current session: its first, or a restore.
    fn send_read(&mut self, now_ms: u64, reader: ReaderId, front: bool) {
        let Some(state) = self.readers.get_mut(reader) else {
            return;
        };
        let credit = state.begin_session();
        let frame = Read {
            id: 0,
            stream: state.spec.stream.clone(),
            partition: state.spec.partition,
            from: state.spec.from,
            positions: state.resume_positions(),
            epoch: state.epoch,
            credit,
            group: state.spec.group.clone(),
            member: state.member.clone(),
            auto_commit: state.spec.auto_commit,
        };
        let build = |id| ClientFrame::Read(Read { id, ..frame });
        let id = self.enqueue_internal(now_ms, build, Purpose::Read { reader }, front);
        if let Some(state) = self.readers.get_mut(reader) {
            state.request = Some(id);
        }
    }

    /// After `welcome`: reads every reader again. Called before the subscriptions are queued,
    /// both at the front, so the order is subscriptions, readers, then everything else.
    pub(crate) fn restore_readers(&mut self, now_ms: u64) {
        for reader in self.readers.ids().into_iter().rev() {
            self.send_read(now_ms, reader, true);
        }
    }

    fn grant_credit(&mut self, now_ms: u64, reader: ReaderId) {
        if !self.is_ready() {
            return;
        }
        let Some(state) = self.readers.get_mut(reader) else {
            return;
        };
        let Some(hub) = state.hub else {
            return;
        };
        if let Some(n) = state.grant() {
            // Ahead of queued work: a long queue of appends must not starve the readers.
            let build = |id| ClientFrame::Credit(Credit { id, reader: hub, n });
            self.enqueue_internal(now_ms, build, Purpose::Credit, true);
        }
    }

    fn close_hub_reader(&mut self, now_ms: u64, hub: u64, op: Option<OpId>) {
        let build = |id| ClientFrame::CloseReader(CloseReader { id, reader: hub });
        self.enqueue_internal(now_ms, build, Purpose::CloseReader { op }, false);
    }

    /// Removes a reader and cancels its `read` request (a sent one is abandoned, so a hub
    /// reader it starts is closed).
    fn remove_reader(&mut self, reader: ReaderId) -> Option<Reader> {
        let state = self.readers.remove(reader)?;
        if let Some(id) = state.request {
            let sent = self.requests.is_sent(id);
            self.requests.take(id);
            if sent {
                self.readers.abandon(id);
            }
        }
        Some(state)
    }

    /// Ends a reader on an error: the application's `read` fails if it had not started, or
    /// the reader ends and the application gets a notice. `tell_hub` closes the hub's reader.
    fn fail_reader(&mut self, now_ms: u64, reader: ReaderId, error: ClientError, tell_hub: bool) {
        let Some(state) = self.remove_reader(reader) else {
            return;
        };
        if let Some(hub) = state.hub.filter(|_| tell_hub && self.is_ready()) {
            self.close_hub_reader(now_ms, hub, None);
        }
        if state.started {
            let event = ReaderEvent::Ended { error: Some(error.clone()) };
            self.emit(Output::Reader { reader, event });
            self.emit(Output::Notice(ClientNotice::Error(error)));
        } else {
            self.complete(reader, Err(error));
        }
    }

    pub(crate) fn on_records(&mut self, now_ms: u64, frame: Records) {
        let Some(reader) = self.readers.by_hub(frame.reader) else {
            return;
        };
        let Some(state) = self.readers.get_mut(reader) else {
            return;
        };
        let accepted = state.accept(frame.partition, frame.records);
        if !accepted.records.is_empty() {
            let event = ReaderEvent::Records(accepted.records);
            self.emit(Output::Reader { reader, event });
        }
        match accepted.error {
            Some(error) => self.fail_reader(now_ms, reader, error, true),
            None => self.grant_credit(now_ms, reader),
        }
    }

    pub(crate) fn on_assigned(&mut self, now_ms: u64, frame: Assigned) {
        let Some(reader) = self.readers.by_hub(frame.reader) else {
            return;
        };
        let Some(state) = self.readers.get_mut(reader) else {
            return;
        };
        match state.assign(frame.generation, &frame.partitions) {
            Ok(fresh) if fresh.is_empty() => {}
            Ok(partitions) => {
                let event = ReaderEvent::Assigned { generation: frame.generation, partitions };
                self.emit(Output::Reader { reader, event });
            }
            Err(error) => self.fail_reader(now_ms, reader, error, true),
        }
    }

    pub(crate) fn on_revoked(&mut self, frame: Revoked) {
        let Some(reader) = self.readers.by_hub(frame.reader) else {
            return;
        };
        let Some(state) = self.readers.get_mut(reader) else {
            return;
        };
        let partitions = state.revoke(&frame.partitions);
        if !partitions.is_empty() {
            let event = ReaderEvent::Revoked { partitions };
            self.emit(Output::Reader { reader, event });
        }
    }

    pub(crate) fn on_reader_closed(&mut self, now_ms: u64, frame: ReaderClosed) {
        if let Some(reader) = self.readers.by_hub(frame.reader) {
            self.fail_reader(now_ms, reader, frame.error.into(), false);
        }
    }

    /// An answer to a `read` whose request id nobody waits for: close what it started.
    pub(crate) fn on_abandoned_read(
        &mut self,
        now_ms: u64,
        result: &Result<Option<ReplyBody>, ClientError>,
    ) {
        if let Ok(Some(ReplyBody::ReadStarted { reader: hub, .. })) = result {
            self.close_hub_reader(now_ms, *hub, None);
        }
    }

    /// The answer to a reader's `read` request `id`.
    pub(crate) fn on_read_reply(
        &mut self,
        now_ms: u64,
        id: u64,
        reader: ReaderId,
        result: Result<Option<ReplyBody>, ClientError>,
    ) {
        let current = self.readers.get(reader).is_some_and(|r| r.request == Some(id));
        if !current {
            return self.on_abandoned_read(now_ms, &result);
        }
        if let Some(state) = self.readers.get_mut(reader) {
            state.request = None;
        }
        match result {
            Ok(Some(body @ ReplyBody::ReadStarted { .. })) => {
                self.on_read_started(now_ms, reader, body);
            }
            Ok(other) => {
                let error = ClientError::new(
                    ErrorCode::Internal,
                    format!(
                        "the hub answered a read with {}",
                        other.as_ref().map_or("no result", ReplyBody::name)
                    ),
                );
                self.fail_reader(now_ms, reader, error, false);
            }
            Err(error) => {
                let started = self.readers.get(reader).is_some_and(|r| r.started);
                if started && error.is_passing() {
                    let retry = now_ms.saturating_add(self.config.min_delay_ms);
                    self.readers.set_timer(reader, Some(retry));
                } else {
                    self.fail_reader(now_ms, reader, error, false);
                }
            }
        }
    }

    fn on_read_started(&mut self, now_ms: u64, reader: ReaderId, body: ReplyBody) {
        let ReplyBody::ReadStarted { reader: hub, epoch, member, partitions } = &body else {
            return;
        };
        self.readers.set_hub(reader, *hub);
        let Some(state) = self.readers.get_mut(reader) else {
            return;
        };
        if let Some(known) = state.epoch.filter(|&known| known != *epoch) {
            // The hub should have refused the positions; they mean nothing in another epoch.
            let error = ClientError::new(
                ErrorCode::EpochMismatch,
                format!("the stream was recreated: epoch {epoch}, the reader read {known}"),
            );
            return self.fail_reader(now_ms, reader, error, true);
        }
        let mut revoked = Vec::new();
        if state.spec.group.is_some() && state.member.is_some() && state.member != *member {
            // The group forgot this member (its session timeout passed): its partitions went
            // to others, and the hub assigns new ones to the new member.
            revoked = state.revoke_all();
        }
        state.epoch = Some(*epoch);
        state.member.clone_from(member);
        if let Err(error) = state.start(partitions) {
            return self.fail_reader(now_ms, reader, error, true);
        }
        let started = std::mem::replace(&mut state.started, true);
        if !revoked.is_empty() {
            let event = ReaderEvent::Revoked { partitions: revoked };
            self.emit(Output::Reader { reader, event });
        }
        if started {
            let event = ReaderEvent::Resumed { epoch: *epoch, member: member.clone() };
            self.emit(Output::Reader { reader, event });
        } else {
            self.readers.set_timer(reader, None);
            self.complete(reader, Ok(Some(body)));
        }
        self.grant_credit(now_ms, reader);
    }

    /// A reader's `read` request timed out, queued or in flight.
    pub(crate) fn on_read_timeout(
        &mut self,
        now_ms: u64,
        id: u64,
        reader: ReaderId,
        request: &Request,
    ) {
        if request.sent {
            self.readers.abandon(id);
        }
        let Some(state) = self.readers.get_mut(reader) else {
            return;
        };
        if state.request != Some(id) {
            return;
        }
        state.request = None;
        let expired = !state.started && state.timer.is_none_or(|at| at <= now_ms);
        if expired {
            self.fail_reader(now_ms, reader, ClientError::timeout(), false);
        } else if self.is_ready() {
            self.send_read(now_ms, reader, false);
        }
    }

    /// Reader timers: `read` operations that waited too long, and restores to retry.
    pub(crate) fn on_reader_timers(&mut self, now_ms: u64) {
        while let Some(reader) = self.readers.take_expired(now_ms) {
            let Some(state) = self.readers.get(reader) else {
                continue;
            };
            if !state.started {
                self.fail_reader(now_ms, reader, ClientError::timeout(), true);
            } else if state.request.is_none() && self.is_ready() {
                self.send_read(now_ms, reader, false);
            }
        }
    }

    /// The client is done: every reader ends with `error` (`None` for the application's
    /// close), and `read` operations still waiting fail with `op_error`.
    pub(crate) fn end_readers(&mut self, error: Option<&ClientError>, op_error: &ClientError) {
        for (reader, state) in self.readers.drain() {
            if state.started {
                let event = ReaderEvent::Ended { error: error.cloned() };
                self.emit(Output::Reader { reader, event });
            } else {
                self.complete(reader, Err(op_error.clone()));
            }
        }
    }
}
