//! Application commands: publish, ping, subscribe, unsubscribe — and the generic way any
//! operation enters the pending-request table.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{ClientFrame, Ping, Publish, Subscribe, Unsubscribe};
use switchboard_protocol::names::{validate_pattern, validate_topic};
use switchboard_protocol::payload::{Headers, Payload};

use super::requests::{OnDisconnect, Purpose, Request};
use super::subscriptions::Released;
use super::{ClientCore, ClientError, ConnectionState, OpId, SubId, encode};

impl ClientCore {
    /// Publishes `data` on `topic`. Completes with [`ReplyBody::Published`] once the hub has
    /// handed the message to its subscribers.
    ///
    /// The completion fails with `invalid_name`, `frame_too_large`, `backlogged`, `timeout`,
    /// `closed`, `disconnected` (the socket dropped while it was in flight: a publish is never
    /// resent, since the hub may already have delivered it) or the hub's error.
    ///
    /// [`ReplyBody::Published`]: switchboard_protocol::frame::ReplyBody::Published
    pub fn publish(&mut self, now_ms: u64, topic: &str, data: Payload, headers: Headers) -> OpId {
        let op = self.new_op();
        if let Err(e) = validate_topic(topic) {
            self.complete(op, Err(ClientError::invalid_name(&e)));
            return op;
        }
        let topic = topic.to_owned();
        self.submit(now_ms, op, OnDisconnect::Fail, |id| {
            ClientFrame::Publish(Publish { id, topic, data, headers })
        });
        op
    }

    /// Asks the hub for an answer. Fails like [`ClientCore::publish`].
    pub fn ping(&mut self, now_ms: u64) -> OpId {
        let op = self.new_op();
        self.submit(now_ms, op, OnDisconnect::Fail, |id| ClientFrame::Ping(Ping { id }));
        op
    }

    /// Puts one application request in the table: sent at once if the session has room,
    /// otherwise queued (bounded by `max_pending`) until it does. Operations enter here, or
    /// through [`ClientCore::submit_as`] when they need their own purpose or timeout.
    pub(crate) fn submit(
        &mut self,
        now_ms: u64,
        op: OpId,
        on_disconnect: OnDisconnect,
        build: impl FnOnce(u64) -> ClientFrame,
    ) {
        let timeout = self.config.request_timeout_ms;
        self.submit_as(now_ms, op, Purpose::Op(op), on_disconnect, timeout, build);
    }

    /// [`ClientCore::submit`] with a purpose and a timeout; returns the request id, or `None`
    /// when `op` already failed.
    pub(crate) fn submit_as(
        &mut self,
        now_ms: u64,
        op: OpId,
        purpose: Purpose,
        on_disconnect: OnDisconnect,
        timeout_ms: u64,
        build: impl FnOnce(u64) -> ClientFrame,
    ) -> Option<u64> {
        if let Err(e) = self.admit() {
            self.complete(op, Err(e));
            return None;
        }
        let id = self.requests.next_id();
        let frame = encode(&build(id));
        if let Some(limits) = self.limits
            && frame.len() > limits.max_frame_bytes as usize
        {
            let error = ClientError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "the frame is {} bytes; the hub accepts at most {}",
                    frame.len(),
                    limits.max_frame_bytes
                ),
            );
            self.complete(op, Err(error));
            return None;
        }
        let request = Request {
            frame,
            purpose,
            on_disconnect,
            deadline: now_ms.saturating_add(timeout_ms),
            sent: false,
        };
        self.requests.enqueue(id, request, false);
        self.pump(now_ms);
        Some(id)
    }

    /// Whether one more operation may be accepted: the client is open, and if the operation
    /// would have to wait, the wait line is not full.
    pub(super) fn admit(&self) -> Result<(), ClientError> {
        if self.state == ConnectionState::Closed {
            return Err(self.closed_error());
        }
        let has_room = self.limits.is_some_and(|l| {
            self.is_ready()
                && self.requests.queued() == 0
                && self.requests.in_flight() < (l.max_in_flight as usize).max(1)
        });
        let waiting = self.requests.queued()
            + self.subs.pending()
            + self.readers.waiting()
            + self.queues.waiting();
        if !has_room && waiting >= self.config.max_pending {
            return Err(ClientError::backlogged(self.config.max_pending));
        }
        Ok(())
    }

    fn closed_error(&self) -> ClientError {
        self.close_reason.clone().unwrap_or_else(ClientError::closed)
    }

    /// Subscribes to `pattern`. The returned id is both the operation's and the subscription's.
    /// It completes with `Ok(None)` once the hub has acknowledged the pattern — at once if
    /// another local subscription already holds it, after the next `welcome` if disconnected —
    /// and from then on [`super::Output::Deliver`] carries its messages.
    ///
    /// The completion fails with `invalid_name`, `backlogged`, `timeout`, `closed` or the hub's
    /// error (such as `too_many_subscriptions`).
    pub fn subscribe(&mut self, now_ms: u64, pattern: &str) -> SubId {
        let sub = self.new_op();
        if let Err(e) = validate_pattern(pattern) {
            self.complete(sub, Err(ClientError::invalid_name(&e)));
            return sub;
        }
        let joins_acked = self.subs.pattern(pattern).is_some_and(|p| p.acked);
        if !joins_acked {
            if let Err(e) = self.admit() {
                self.complete(sub, Err(e));
                return sub;
            }
        } else if self.state == ConnectionState::Closed {
            self.complete(sub, Err(self.closed_error()));
            return sub;
        }
        let ready = self.is_ready();
        let deadline = now_ms.saturating_add(self.config.request_timeout_ms);
        let (acked, has_request) = {
            let state = self.subs.add(sub, pattern, deadline);
            (state.acked, state.request.is_some())
        };
        if acked {
            for activated in self.subs.activate(pattern) {
                self.complete(activated, Ok(None));
            }
        } else if !has_request && ready {
            let id = self.enqueue_subscribe(now_ms, pattern, false);
            if let Some(state) = self.subs.pattern_mut(pattern) {
                state.request = Some(id);
            }
        }
        // Disconnected: nothing to send now; the next `welcome` subscribes the desired set.
        self.pump(now_ms);
        sub
    }

    /// Ends a local subscription. The hub is told only when it was the last local subscription
    /// of its pattern; then the completion waits for the hub's answer, otherwise it is
    /// immediate. Unsubscribing an unknown or ended subscription succeeds.
    pub fn unsubscribe(&mut self, now_ms: u64, sub: SubId) -> OpId {
        let op = self.new_op();
        self.release_subscription(now_ms, sub, Some(op), None);
        self.pump(now_ms);
        op
    }

    /// Removes a local subscription; `op` (if any) completes when the hub no longer needs to be
    /// told anything. A pending subscription's own operation fails with `failure`, or with
    /// `closed` when the application released it.
    pub(super) fn release_subscription(
        &mut self,
        now_ms: u64,
        sub: SubId,
        op: Option<OpId>,
        failure: Option<ClientError>,
    ) {
        let Some((local, released)) = self.subs.remove(sub) else {
            if let Some(op) = op {
                self.complete(op, Ok(None));
            }
            return;
        };
        if !local.active {
            let error = failure.unwrap_or_else(|| {
                ClientError::new(
                    ErrorCode::Closed,
                    "unsubscribed before the hub acknowledged the subscription",
                )
            });
            self.complete(sub, Err(error));
        }
        let Released::Last { acked, request } = released else {
            if let Some(op) = op {
                self.complete(op, Ok(None));
            }
            return;
        };
        let sent = request.is_some_and(|id| self.requests.is_sent(id));
        if let Some(id) = request.filter(|_| !sent) {
            // Never sent: cancelling it is all the hub needs.
            self.requests.take(id);
        }
        if (acked || sent) && self.is_ready() {
            let frame =
                |id| ClientFrame::Unsubscribe(Unsubscribe { id, pattern: local.pattern.clone() });
            let purpose = Purpose::Unsubscribe { pattern: local.pattern.clone(), op };
            self.enqueue_internal(now_ms, frame, purpose, false);
        } else if let Some(op) = op {
            self.complete(op, Ok(None));
        }
    }

    /// Queues a `subscribe` of `pattern` for the current session and returns its request id.
    pub(super) fn enqueue_subscribe(&mut self, now_ms: u64, pattern: &str, front: bool) -> u64 {
        let frame = |id| ClientFrame::Subscribe(Subscribe { id, pattern: pattern.to_owned() });
        let purpose = Purpose::Subscribe { pattern: pattern.to_owned() };
        self.enqueue_internal(now_ms, frame, purpose, front)
    }

    /// Queues a request the core makes on its own behalf. These bypass `max_pending`: they keep
    /// the hub in line with subscriptions the application already holds or has let go, and
    /// refusing them would leave the two apart.
    pub(super) fn enqueue_internal(
        &mut self,
        now_ms: u64,
        build: impl FnOnce(u64) -> ClientFrame,
        purpose: Purpose,
        front: bool,
    ) -> u64 {
        self.enqueue_internal_as(now_ms, build, purpose, front, OnDisconnect::Restore)
    }

    /// [`ClientCore::enqueue_internal`] with another disconnect policy.
    pub(super) fn enqueue_internal_as(
        &mut self,
        now_ms: u64,
        build: impl FnOnce(u64) -> ClientFrame,
        purpose: Purpose,
        front: bool,
        on_disconnect: OnDisconnect,
    ) -> u64 {
        let id = self.requests.next_id();
        let frame = encode(&build(id));
        let request = Request {
            frame,
            purpose,
            on_disconnect,
            deadline: now_ms.saturating_add(self.config.request_timeout_ms),
            sent: false,
        };
        self.requests.enqueue(id, request, front);
        id
    }
}
