//! The connection lifecycle: opening sockets, `hello`/`welcome`, losing a socket, backoff and
//! reconnect, keep-alive, and shutting down.

use switchboard_protocol::CloseCode;
use switchboard_protocol::frame::{ClientFrame, Hello, Ping, Welcome};

use super::requests::Purpose;
use super::{
    ClientCore, ClientError, ClientNotice, ConnectionState, Liveness, Output, Phase, Socket,
    SocketId, encode,
};

/// The close code the core sends when it gives up on a socket it believes dead.
const DEAD_SOCKET_CODE: u16 = CloseCode::KeepaliveTimeout.as_u16();

/// Longest close reason a WebSocket close frame carries (browsers throw beyond it).
const MAX_CLOSE_REASON: usize = 123;

/// `reason` cut to fit a close frame, on a character boundary.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

impl ClientCore {
    /// The transport opened the socket: the core sends `hello` and nothing else until `welcome`.
    pub fn on_socket_open(&mut self, socket: SocketId, now_ms: u64) {
        let timeout = self.config.request_timeout_ms;
        let Some(s) = self.current(socket).filter(|s| s.phase == Phase::Opening) else {
            return;
        };
        s.phase = Phase::AwaitingWelcome;
        s.deadline = Some(now_ms.saturating_add(timeout));
        self.last_received = now_ms;
        let hello = ClientFrame::Hello(Hello {
            version: self.config.version,
            token: self.config.token.clone(),
            client: self.config.name.clone(),
        });
        self.emit(Output::Send(encode(&hello)));
    }

    /// The socket closed or failed to open. `code` is the WebSocket close code if a close frame
    /// arrived (none for an abnormal drop or a failed connect).
    pub fn on_socket_closed(
        &mut self,
        socket: SocketId,
        now_ms: u64,
        code: Option<u16>,
        reason: &str,
    ) {
        if self.current(socket).is_some() {
            self.lose_socket(now_ms, code, reason, CloseCode::Normal.as_u16());
        }
    }

    /// Something arrived on the socket that is not a frame (a WebSocket ping or pong): it proves
    /// the socket alive, so no keep-alive ping is needed yet.
    pub fn on_activity(&mut self, socket: SocketId, now_ms: u64) {
        if self.current(socket).is_some() {
            self.last_received = self.last_received.max(now_ms);
        }
    }

    pub(super) fn open_socket(&mut self, now_ms: u64) {
        self.last_socket += 1;
        self.socket = Some(Socket {
            id: self.last_socket,
            phase: Phase::Opening,
            deadline: Some(now_ms.saturating_add(self.config.request_timeout_ms)),
        });
        self.emit(Output::OpenSocket { socket: self.last_socket });
    }

    pub(super) fn on_welcome(&mut self, now_ms: u64, welcome: Welcome) {
        let Some(s) = self.socket.as_mut() else {
            return;
        };
        s.phase = Phase::Ready;
        s.deadline = None;
        self.limits = Some(welcome.limits);
        self.session = Some(welcome.session);
        self.welcomed = true;
        self.backoff.reset();
        self.last_received = now_ms;
        self.set_state(ConnectionState::Connected);
        // Restore the desired set, the readers and the consumers before anything queued goes
        // out, so a publish queued while disconnected cannot overtake the subscriptions the
        // application already holds. All go to the front: consumers first, readers ahead of
        // them, subscriptions ahead of both.
        self.restore_consumers(now_ms);
        self.restore_readers(now_ms);
        for pattern in self.subs.desired().into_iter().rev() {
            let id = self.enqueue_subscribe(now_ms, &pattern, true);
            if let Some(state) = self.subs.pattern_mut(&pattern) {
                state.request = Some(id);
            }
        }
        self.pump(now_ms);
    }

    /// Gives up on the current socket: tells the transport to close it, settles what was in
    /// flight, then reconnects or shuts down.
    pub(super) fn lose_socket(
        &mut self,
        now_ms: u64,
        code: Option<u16>,
        reason: &str,
        send_code: u16,
    ) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        self.emit(Output::CloseSocket {
            socket: socket.id,
            code: send_code,
            reason: close_reason(reason),
        });
        let detail = match code {
            Some(code) if reason.is_empty() => format!("connection closed with code {code}"),
            Some(code) => format!("connection closed with code {code}: {reason}"),
            None if reason.is_empty() => "connection lost".to_owned(),
            None => format!("connection lost: {reason}"),
        };
        self.settle_in_flight(now_ms, &detail);

        if let Some(error) = code.and_then(|c| ClientError::from_terminal_close(c, reason)) {
            return self.shut_down(error);
        }
        if !self.config.reconnect {
            return self.shut_down(ClientError::disconnected(&detail));
        }
        if !self.welcomed && !self.config.retry_initial_connect {
            return self
                .shut_down(ClientError::disconnected(&format!("could not connect: {detail}")));
        }
        let delay = self.backoff.next_delay(&mut self.rng);
        self.reconnect_at = Some(now_ms.saturating_add(delay));
        if self.welcomed {
            self.set_state(ConnectionState::Reconnecting);
        }
    }

    /// Settles every request the lost socket carried, by its policy.
    fn settle_in_flight(&mut self, now_ms: u64, detail: &str) {
        // Queued subscription changes, consumer requests and keep-alives belong to the old
        // session: the desired set is re-sent after the next `welcome` instead.
        let removed = self.requests.disconnect(|p| {
            !matches!(
                p,
                Purpose::Op(_)
                    | Purpose::Pull { .. }
                    | Purpose::Settle { .. }
                    | Purpose::AckMany { .. }
            )
        });
        for (id, request) in removed {
            match request.purpose {
                Purpose::Op(op) | Purpose::Pull { op } | Purpose::AckMany { op, .. } => {
                    self.complete(op, Err(ClientError::disconnected(detail)));
                }
                // Settles are resent, so only a policy changed by mistake lands here.
                Purpose::Settle { op, lease, .. } => {
                    self.forget_settle(&lease, id);
                    if let Some(op) = op {
                        self.complete(op, Err(ClientError::disconnected(detail)));
                    }
                }
                // The new session starts without the pattern, the reader or the hub consumer,
                // as was asked.
                Purpose::Unsubscribe { op: Some(op), .. }
                | Purpose::CloseReader { op: Some(op) }
                | Purpose::StopConsume { op: Some(op) } => {
                    self.complete(op, Ok(None));
                }
                // Readers are read again and consumers re-issued after the next `welcome`.
                Purpose::Unsubscribe { op: None, .. }
                | Purpose::Subscribe { .. }
                | Purpose::Liveness
                | Purpose::Read { .. }
                | Purpose::Credit
                | Purpose::CloseReader { op: None }
                | Purpose::Consume { .. }
                | Purpose::StopConsume { op: None } => {}
            }
        }
        self.subs.disconnect();
        self.readers.disconnect();
        self.queues_disconnected();
        self.fail_past_settles(now_ms);
        self.liveness = None;
        self.limits = None;
    }

    /// Ends the client for a reason other than the application's `close`: every operation fails
    /// with `error`, every subscription ends, and the application gets the error as a notice.
    pub(super) fn shut_down(&mut self, error: ClientError) {
        if self.state == ConnectionState::Closed {
            return;
        }
        if let Some(socket) = self.socket.take() {
            self.emit(Output::CloseSocket {
                socket: socket.id,
                code: CloseCode::Normal.as_u16(),
                reason: close_reason(&error.message),
            });
        }
        self.fail_everything(&error, Some(&error));
        self.emit(Output::Notice(ClientNotice::Error(error.clone())));
        self.close_reason = Some(error);
        self.set_state(ConnectionState::Closed);
    }

    /// The application closed the client: close the socket normally, fail what is pending with
    /// `closed`, end every subscription.
    pub fn close(&mut self, _now_ms: u64) {
        if self.state == ConnectionState::Closed {
            return;
        }
        if let Some(socket) = self.socket.take() {
            self.emit(Output::CloseSocket {
                socket: socket.id,
                code: CloseCode::Normal.as_u16(),
                reason: CloseCode::Normal.name().to_owned(),
            });
        }
        let error = ClientError::closed();
        self.fail_everything(&error, None);
        self.close_reason = Some(error);
        self.set_state(ConnectionState::Closed);
    }

    fn fail_everything(&mut self, error: &ClientError, subscription_error: Option<&ClientError>) {
        self.reconnect_at = None;
        self.liveness = None;
        self.limits = None;
        for (_, request) in self.requests.drain() {
            match request.purpose {
                Purpose::Op(op)
                | Purpose::Unsubscribe { op: Some(op), .. }
                | Purpose::Pull { op }
                | Purpose::Settle { op: Some(op), .. }
                | Purpose::AckMany { op, .. } => {
                    self.complete(op, Err(error.clone()));
                }
                // The reader or hub consumer is gone with the client, which is what was asked.
                Purpose::CloseReader { op: Some(op) } | Purpose::StopConsume { op: Some(op) } => {
                    self.complete(op, Ok(None));
                }
                Purpose::Unsubscribe { op: None, .. }
                | Purpose::Subscribe { .. }
                | Purpose::Liveness
                | Purpose::Read { .. }
                | Purpose::Credit
                | Purpose::CloseReader { op: None }
                | Purpose::Settle { op: None, .. }
                | Purpose::Consume { .. }
                | Purpose::StopConsume { op: None } => {}
            }
        }
        for (sub, local) in self.subs.drain() {
            if local.active {
                self.emit(Output::SubscriptionClosed { sub, error: subscription_error.cloned() });
            } else {
                self.complete(sub, Err(error.clone()));
            }
        }
        self.end_readers(subscription_error, error);
        self.end_consumers(subscription_error, error);
    }

    /// A deadline passed: reconnect, give up on a socket, time out operations, or check that
    /// the hub is still there.
    pub fn on_tick(&mut self, now_ms: u64) {
        if self.state == ConnectionState::Closed {
            return;
        }
        if self.reconnect_at.is_some_and(|at| at <= now_ms) {
            self.reconnect_at = None;
            self.open_socket(now_ms);
        }
        if let Some(socket) = self.socket.filter(|s| s.deadline.is_some_and(|d| d <= now_ms)) {
            let reason = match socket.phase {
                Phase::Opening => "timed out opening the socket",
                _ => "no welcome from the hub in time",
            };
            self.lose_socket(now_ms, None, reason, CloseCode::Normal.as_u16());
        }
        while let Some((id, request)) = self.requests.take_expired(now_ms) {
            self.on_request_timeout(now_ms, id, request);
        }
        while let Some(sub) = self.subs.expired(now_ms) {
            self.release_subscription(now_ms, sub, None, Some(ClientError::timeout()));
        }
        self.on_reader_timers(now_ms);
        self.on_queue_timers(now_ms);
        self.check_liveness(now_ms);
        self.pump(now_ms);
    }

    /// Browsers cannot send WebSocket pings, so the core pings the hub itself when the socket
    /// has been silent for the hub's ping interval.
    fn check_liveness(&mut self, now_ms: u64) {
        let Some(limits) = self.limits.filter(|_| self.is_ready()) else {
            return;
        };
        let interval = u64::from(limits.ping_interval_ms);
        if interval == 0
            || self.liveness.is_some()
            || now_ms < self.last_received.saturating_add(interval)
        {
            return;
        }
        // Ahead of queued work: a long queue must not delay finding a dead socket.
        let ping = |id| ClientFrame::Ping(Ping { id });
        let id = self.enqueue_internal(now_ms, ping, Purpose::Liveness, true);
        self.liveness = Some(Liveness { request: id, created: now_ms });
    }

    /// The keep-alive ping went unanswered: unless something else arrived meanwhile, the socket
    /// is dead even if the operating system has not noticed.
    pub(super) fn on_liveness_timeout(&mut self, now_ms: u64, id: u64) {
        let Some(liveness) = self.liveness.filter(|l| l.request == id) else {
            return;
        };
        self.liveness = None;
        if self.last_received < liveness.created {
            self.lose_socket(now_ms, None, "no answer to the keep-alive ping", DEAD_SOCKET_CODE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_should_fit_a_close_frame_without_splitting_characters() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert_eq!(cut, "é".repeat(61));
    }
}
