//! What the hub sends: replies matched to pending requests by id, deliveries dispatched to local
//! subscriptions, notices — and what a request timing out means for each purpose.

use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::frame::{Deliver, Notice, ReplyBody, ServerFrame};

use super::requests::{Purpose, Request};
use super::{ClientCore, ClientError, ClientNotice, Message, Output, Phase, SocketId};

impl ClientCore {
    /// A whole WebSocket message arrived: binary ones carry MessagePack
    /// ([`Format::MsgPack`]), text ones JSON. MessagePack goes through the protocol's lean
    /// decoder, which keeps serde's generic decoding out of the browser build; JSON is read only
    /// where the protocol's `json` feature is on (the native transport).
    pub fn on_frame(&mut self, socket: SocketId, now_ms: u64, bytes: &[u8], format: Format) {
        let Some(phase) = self.current(socket).map(|s| s.phase) else {
            return;
        };
        self.last_received = self.last_received.max(now_ms);
        let frame = match codec::decode_server_lean(bytes, format) {
            Ok(frame) => frame,
            Err(e) => {
                // A newer hub may send frames this client does not know; say so, carry on.
                let error = ClientError::new(
                    e.code,
                    format!("unreadable frame from the hub: {}", e.message),
                );
                self.emit(Output::Notice(ClientNotice::Error(error)));
                return;
            }
        };
        match (phase, frame) {
            (Phase::AwaitingWelcome, ServerFrame::Welcome(welcome)) => {
                self.on_welcome(now_ms, welcome);
            }
            (_, ServerFrame::Error(e)) if e.id.is_none() => {
                self.emit(Output::Notice(ClientNotice::Error(e.into())));
            }
            // Before `welcome` nothing else is meaningful, and a second `welcome` is a hub bug.
            (Phase::Opening | Phase::AwaitingWelcome, _) | (_, ServerFrame::Welcome(_)) => {}
            (Phase::Ready, ServerFrame::Ok(reply)) => {
                self.on_reply(now_ms, reply.id, Ok(reply.result));
            }
            (Phase::Ready, ServerFrame::Error(e)) => {
                let id = e.id.unwrap_or_default();
                self.on_reply(now_ms, id, Err(e.into()));
            }
            (Phase::Ready, ServerFrame::Deliver(deliver)) => self.on_deliver(deliver),
            (Phase::Ready, ServerFrame::Notice(notice)) => self.on_notice(notice),
            (Phase::Ready, ServerFrame::Records(records)) => self.on_records(now_ms, records),
            (Phase::Ready, ServerFrame::Assigned(assigned)) => {
                self.on_assigned(now_ms, assigned);
            }
            (Phase::Ready, ServerFrame::Revoked(revoked)) => self.on_revoked(revoked),
            (Phase::Ready, ServerFrame::ReaderClosed(closed)) => {
                self.on_reader_closed(now_ms, closed);
            }
            (Phase::Ready, ServerFrame::Task(delivery)) => self.on_task(now_ms, delivery),
            (Phase::Ready, ServerFrame::ConsumerClosed(closed)) => {
                self.on_consumer_closed(now_ms, closed);
            }
        }
        self.pump(now_ms);
    }

    fn on_reply(&mut self, now_ms: u64, id: u64, result: Result<Option<ReplyBody>, ClientError>) {
        // Unknown ids are answers to requests that already timed out: nobody waits for them,
        // but a reader or consumer such an answer started must not run on unread, and tasks it
        // leased go back.
        let Some(request) = self.requests.take(id) else {
            if self.readers.take_abandoned(id) {
                self.on_abandoned_read(now_ms, &result);
            } else {
                self.on_abandoned_queue_reply(now_ms, id, &result);
            }
            return;
        };
        match (request.purpose, result) {
            (Purpose::Read { reader }, result) => self.on_read_reply(now_ms, id, reader, result),
            (Purpose::Consume { consumer, prefetch }, result) => {
                self.on_consume_reply(now_ms, id, consumer, prefetch, result);
            }
            (Purpose::Settle { op, lease, extend }, result) => {
                self.on_settle_reply(now_ms, id, op, &lease, extend, result);
            }
            (Purpose::AckMany { op, queue, tasks }, result) => {
                self.on_ack_many_reply(now_ms, op, queue, &tasks, result);
            }
            (purpose, Ok(body)) => self.succeed_request(id, purpose, body),
            (purpose, Err(error)) => self.fail_request(now_ms, id, purpose, error),
        }
    }

    fn succeed_request(&mut self, id: u64, purpose: Purpose, body: Option<ReplyBody>) {
        match purpose {
            // The hub no longer has the reader either way.
            Purpose::CloseReader { op: Some(op) } => self.complete(op, Ok(None)),
            Purpose::Op(op) | Purpose::Unsubscribe { op: Some(op), .. } => {
                self.complete(op, Ok(body));
            }
            Purpose::Subscribe { pattern } => {
                let Some(state) = self.subs.pattern_mut(&pattern).filter(|s| s.request == Some(id))
                else {
                    // The pattern was released (an `unsubscribe` follows) or re-requested.
                    return;
                };
                state.acked = true;
                state.request = None;
                for sub in self.subs.activate(&pattern) {
                    self.complete(sub, Ok(None));
                }
            }
            Purpose::Liveness => {
                if self.liveness.is_some_and(|l| l.request == id) {
                    self.liveness = None;
                }
            }
            Purpose::Pull { op } => self.on_pull_reply(op, body),
            // The hub consumer is gone either way.
            Purpose::StopConsume { op: Some(op) } => self.complete(op, Ok(None)),
            // `on_reply` hands these to their owners.
            Purpose::Read { .. }
            | Purpose::Consume { .. }
            | Purpose::Settle { .. }
            | Purpose::AckMany { .. } => {}
            Purpose::Unsubscribe { op: None, .. }
            | Purpose::Credit
            | Purpose::CloseReader { op: None }
            | Purpose::StopConsume { op: None } => {}
        }
    }

    /// Settles a request that failed (the hub's error, or a local check before sending).
    pub(super) fn fail_request(
        &mut self,
        now_ms: u64,
        id: u64,
        purpose: Purpose,
        error: ClientError,
    ) {
        match purpose {
            // A reader the hub does not know is as closed as one it just closed.
            Purpose::CloseReader { op: Some(op) } => self.complete(op, Ok(None)),
            Purpose::Op(op) | Purpose::Unsubscribe { op: Some(op), .. } => {
                self.complete(op, Err(error));
            }
            Purpose::Subscribe { pattern } => {
                if self.subs.pattern(&pattern).is_none_or(|s| s.request != Some(id)) {
                    return;
                }
                // The hub refused the pattern: every local subscription on it ends, including
                // ones the application already held before a reconnect.
                for (sub, local) in self.subs.remove_pattern(&pattern) {
                    if local.active {
                        self.emit(Output::SubscriptionClosed { sub, error: Some(error.clone()) });
                    } else {
                        self.complete(sub, Err(error.clone()));
                    }
                }
            }
            // An error is still an answer: the hub is alive.
            Purpose::Liveness => {
                if self.liveness.is_some_and(|l| l.request == id) {
                    self.liveness = None;
                }
            }
            Purpose::Pull { op } => self.complete(op, Err(error)),
            Purpose::Settle { op, lease, extend } => {
                self.on_settle_reply(now_ms, id, op, &lease, extend, Err(error));
            }
            Purpose::AckMany { op, queue, tasks } => {
                self.on_ack_many_reply(now_ms, op, queue, &tasks, Err(error));
            }
            Purpose::Consume { consumer, prefetch } => {
                self.on_consume_reply(now_ms, id, consumer, prefetch, Err(error));
            }
            // A consumer the hub does not know is as stopped as one it just stopped.
            Purpose::StopConsume { op: Some(op) } => self.complete(op, Ok(None)),
            // A refused read can only come through `on_reply`, which hands it to the reader; a
            // refused credit means the reader is gone, and `reader_closed` says why.
            Purpose::Unsubscribe { op: None, .. }
            | Purpose::Read { .. }
            | Purpose::Credit
            | Purpose::CloseReader { op: None }
            | Purpose::StopConsume { op: None } => {}
        }
    }

    pub(super) fn on_request_timeout(&mut self, now_ms: u64, id: u64, request: Request) {
        match request.purpose.clone() {
            Purpose::Op(op)
            | Purpose::Unsubscribe { op: Some(op), .. }
            | Purpose::CloseReader { op: Some(op) }
            | Purpose::StopConsume { op: Some(op) } => {
                self.complete(op, Err(ClientError::timeout()));
            }
            Purpose::Pull { op } => self.on_pull_timeout(id, op, &request),
            Purpose::Settle { op, lease, .. } => {
                self.forget_settle(&lease, id);
                if let Some(op) = op {
                    self.complete(op, Err(ClientError::timeout()));
                }
            }
            // The leases stay until the hub's answer to a repeat, or their deadlines.
            Purpose::AckMany { op, .. } => self.complete(op, Err(ClientError::timeout())),
            Purpose::Consume { consumer, .. } => {
                self.on_consume_timeout(now_ms, id, consumer, &request);
            }
            Purpose::Subscribe { pattern } => {
                // Local subscriptions time out on their own deadlines; the pattern stays
                // desired while any remain, so ask again.
                let still_wanted =
                    self.subs.pattern(&pattern).is_some_and(|s| s.request == Some(id));
                if still_wanted && self.is_ready() {
                    let retry = self.enqueue_subscribe(now_ms, &pattern, false);
                    if let Some(state) = self.subs.pattern_mut(&pattern) {
                        state.request = Some(retry);
                    }
                } else if let Some(state) = self.subs.pattern_mut(&pattern)
                    && state.request == Some(id)
                {
                    state.request = None;
                }
            }
            Purpose::Liveness => self.on_liveness_timeout(now_ms, id),
            Purpose::Read { reader } => self.on_read_timeout(now_ms, id, reader, &request),
            // Granting again could grant twice; the hub is slow, not forgetful.
            Purpose::Unsubscribe { op: None, .. }
            | Purpose::Credit
            | Purpose::CloseReader { op: None }
            | Purpose::StopConsume { op: None } => {}
        }
    }

    fn on_deliver(&mut self, deliver: Deliver) {
        let mut subs = std::mem::take(&mut self.matched);
        self.subs.matching_into(&deliver.topic, &mut subs);
        let message =
            Message { topic: deliver.topic, data: deliver.data.0, headers: deliver.headers };
        // The hub sends each message once per session; every matching local subscription gets
        // its own copy (the body is shared, not copied), and the last one the message itself.
        if let Some((&last, others)) = subs.split_last() {
            for &sub in others {
                self.emit(Output::Deliver { sub, message: message.clone() });
            }
            self.emit(Output::Deliver { sub: last, message });
        }
        self.matched = subs;
    }

    fn on_notice(&mut self, notice: Notice) {
        match notice {
            Notice::Lagged { topic, missed } => {
                for sub in self.subs.matching(&topic) {
                    self.subs.add_missed(sub, missed);
                    self.emit(Output::Lagged { sub, missed });
                }
                self.emit(Output::Notice(ClientNotice::Lagged { topic, missed }));
            }
        }
    }
}
