//! What the hub sends: replies matched to pending requests by id, deliveries dispatched to local
//! subscriptions, notices — and what a request timing out means for each purpose.

use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::frame::{Deliver, Notice, ReplyBody, ServerFrame};

use super::requests::{Purpose, Request};
use super::{ClientCore, ClientError, ClientNotice, Message, Output, Phase, SocketId};

impl ClientCore {
    /// A whole WebSocket message arrived: binary ones carry MessagePack
    /// ([`Format::MsgPack`]), text ones JSON.
    pub fn on_frame(&mut self, socket: SocketId, now_ms: u64, bytes: &[u8], format: Format) {
        let Some(phase) = self.current(socket).map(|s| s.phase) else {
            return;
        };
        self.last_received = self.last_received.max(now_ms);
        let frame = match codec::decode_server(bytes, format) {
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
            // This client starts no queue consumers, so a hub sends it none of their frames;
            // naming them keeps this match exhaustive for frames added later.
            (Phase::Ready, ServerFrame::Task(_) | ServerFrame::ConsumerClosed(_)) => {}
        }
        self.pump();
    }

    fn on_reply(&mut self, now_ms: u64, id: u64, result: Result<Option<ReplyBody>, ClientError>) {
        // Unknown ids are answers to requests that already timed out: nobody waits for them,
        // but a reader such an answer started must not run on unread.
        let Some(request) = self.requests.take(id) else {
            if self.readers.take_abandoned(id) {
                self.on_abandoned_read(now_ms, &result);
            }
            return;
        };
        if let Purpose::Read { reader } = request.purpose {
            return self.on_read_reply(now_ms, id, reader, result);
        }
        match result {
            Ok(body) => self.succeed_request(id, request, body),
            Err(error) => self.fail_request(id, request, error),
        }
    }

    fn succeed_request(&mut self, id: u64, request: Request, body: Option<ReplyBody>) {
        match request.purpose {
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
            Purpose::Unsubscribe { op: None, .. }
            | Purpose::Read { .. }
            | Purpose::Credit
            | Purpose::CloseReader { op: None } => {}
        }
    }

    /// Settles a request that failed (the hub's error, or a local check before sending).
    pub(super) fn fail_request(&mut self, id: u64, request: Request, error: ClientError) {
        match request.purpose {
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
            // A refused read can only come through `on_reply`, which hands it to the reader; a
            // refused credit means the reader is gone, and `reader_closed` says why.
            Purpose::Unsubscribe { op: None, .. }
            | Purpose::Read { .. }
            | Purpose::Credit
            | Purpose::CloseReader { op: None } => {}
        }
    }

    pub(super) fn on_request_timeout(&mut self, now_ms: u64, id: u64, request: Request) {
        match request.purpose {
            Purpose::Op(op)
            | Purpose::Unsubscribe { op: Some(op), .. }
            | Purpose::CloseReader { op: Some(op) } => {
                self.complete(op, Err(ClientError::timeout()));
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
            | Purpose::CloseReader { op: None } => {}
        }
    }

    fn on_deliver(&mut self, deliver: Deliver) {
        let subs = self.subs.matching(&deliver.topic);
        let message =
            Message { topic: deliver.topic, data: deliver.data.0, headers: deliver.headers };
        // The hub sends each message once per session; every matching local subscription gets
        // its own copy (the body is shared, not copied).
        for sub in subs {
            self.emit(Output::Deliver { sub, message: message.clone() });
        }
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
