//! The sans-I/O client core: the protocol state machine every transport drives.
//!
//! [`ClientCore`] knows frames, sessions, subscriptions, reconnects and timeouts, and nothing of
//! sockets, runtimes or clocks. It has no async code, no `std::time` and no randomness of its own,
//! so the same code runs under tokio and in a browser, and tests drive it with fake time.
//!
//! # Driving it
//! A transport owns one `ClientCore` and loops:
//! 1. Feed it what happened, with the current time in milliseconds of a monotonic clock:
//!    [`ClientCore::on_socket_open`], [`ClientCore::on_socket_closed`],
//!    [`ClientCore::on_frame`], [`ClientCore::on_activity`] (a WebSocket ping or pong arrived),
//!    [`ClientCore::on_tick`] (a deadline passed), and application commands
//!    ([`ClientCore::publish`], [`ClientCore::subscribe`], [`ClientCore::unsubscribe`],
//!    [`ClientCore::ping`], [`ClientCore::close`], and for streams
//!    [`ClientCore::create_stream`], [`ClientCore::append`], [`ClientCore::read`],
//!    [`ClientCore::commit_record`], [`ClientCore::close_reader`], ..., and for queues
//!    [`ClientCore::enqueue`], [`ClientCore::pull`], [`ClientCore::consume`],
//!    [`ClientCore::ack`], [`ClientCore::stop_consumer`], ...), each returning the id its
//!    [`Completion`] will carry. When the application has consumed records a reader
//!    delivered, say so with [`ClientCore::reader_consumed`]: that is what returns credit.
//!    Queue leases carry wall-clock deadlines: tell the core the wall-clock time with
//!    [`ClientCore::set_wall_clock`] once after creating it (and after any clock correction).
//! 2. Drain [`ClientCore::poll_output`] and act on every [`Output`] in order: open or close
//!    sockets, send frames, complete operations, deliver messages, reader and consumer events,
//!    report state and notices.
//! 3. Sleep until [`ClientCore::next_deadline`] (or the next event) and call `on_tick`.
//!
//! The core asks for at most one socket at a time and always emits [`Output::CloseSocket`] for
//! the old socket before [`Output::OpenSocket`] for the next. After `CloseSocket` the transport
//! should report nothing more from that socket; events it still reports are ignored by id.

mod backoff;
mod commands;
mod config;
mod error;
mod keys;
mod output;
mod queues;
mod replies;
mod requests;
mod session;
pub(crate) mod sorted;
mod streams;
mod subscriptions;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use bytes::Bytes;
use switchboard_protocol::codec;
use switchboard_protocol::frame::{ClientFrame, ReplyBody};
use switchboard_protocol::{ErrorCode, Limits};

pub use config::CoreConfig;
pub use error::ClientError;
pub use output::{
    ClientNotice, Completion, ConnectionState, ConsumerEvent, ConsumerId, Message, OpId, Output,
    ReaderEvent, ReaderId, SocketId, StreamRecord, SubId,
};
pub use queues::{DEFAULT_PULL_WAIT_MS, EnqueueOptions, PullOptions};
pub use streams::{AppendOptions, Appended, DEFAULT_CREDIT, ReadOptions, StreamOptions};

use backoff::{Backoff, Rng};
use keys::IdempotencyKeys;
use queues::QueueState;
use requests::Requests;
use streams::Readers;
use subscriptions::Subscriptions;

/// How far the current socket has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `OpenSocket` was emitted; waiting for the transport to report it open.
    Opening,
    /// `hello` was sent; waiting for `welcome`. Nothing else may be sent yet.
    AwaitingWelcome,
    /// The session is established.
    Ready,
}

#[derive(Debug, Clone, Copy)]
struct Socket {
    id: SocketId,
    phase: Phase,
    /// When opening or the `hello` exchange is given up on.
    deadline: Option<u64>,
}

/// The keep-alive ping in flight, and when it was created: anything received after that proves
/// the socket alive even if the ping itself is never answered.
#[derive(Debug, Clone, Copy)]
struct Liveness {
    request: u64,
    created: u64,
}

/// The client state machine. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct ClientCore {
    config: CoreConfig,
    state: ConnectionState,
    outputs: VecDeque<Output>,
    /// The subscriptions a delivered message matched, kept to reuse its allocation.
    matched: Vec<SubId>,
    rng: Rng,
    backoff: Backoff,
    socket: Option<Socket>,
    last_socket: SocketId,
    reconnect_at: Option<u64>,
    /// Whether any session was ever established.
    welcomed: bool,
    session: Option<u64>,
    /// The limits of the current session; `None` while there is none.
    limits: Option<Limits>,
    last_received: u64,
    liveness: Option<Liveness>,
    close_reason: Option<ClientError>,
    requests: Requests,
    subs: Subscriptions,
    readers: Readers,
    queues: QueueState,
    /// `None` when the transport gave no entropy: appends and enqueues then need the caller's
    /// key.
    keys: Option<IdempotencyKeys>,
    last_op: OpId,
}

impl ClientCore {
    /// A core in state `connecting` that has already asked for its first socket.
    pub fn new(config: CoreConfig, now_ms: u64) -> Self {
        let mut core = ClientCore {
            rng: Rng::new(config.seed),
            keys: config.entropy.map(IdempotencyKeys::new),
            backoff: Backoff::new(config.min_delay_ms, config.max_delay_ms),
            config,
            state: ConnectionState::Connecting,
            outputs: VecDeque::new(),
            matched: Vec::new(),
            socket: None,
            last_socket: 0,
            reconnect_at: None,
            welcomed: false,
            session: None,
            limits: None,
            last_received: now_ms,
            liveness: None,
            close_reason: None,
            requests: Requests::default(),
            subs: Subscriptions::default(),
            readers: Readers::default(),
            queues: QueueState::default(),
            last_op: 0,
        };
        core.open_socket(now_ms);
        core
    }

    /// The next thing to do, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`ClientCore::on_tick`] must be called next, if anything is scheduled.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.state == ConnectionState::Closed {
            return None;
        }
        let liveness = match (self.socket, self.limits) {
            (Some(s), Some(limits))
                if s.phase == Phase::Ready
                    && self.liveness.is_none()
                    && limits.ping_interval_ms > 0 =>
            {
                Some(self.last_received + u64::from(limits.ping_interval_ms))
            }
            _ => None,
        };
        [
            self.requests.next_deadline(),
            self.subs.next_deadline(),
            self.readers.next_deadline(),
            self.queues.next_deadline(),
            self.reconnect_at,
            self.socket.and_then(|s| s.deadline),
            liveness,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The hub's session id from the latest `welcome`.
    pub fn session_id(&self) -> Option<u64> {
        self.session
    }

    /// The limits of the current session, while connected.
    pub fn limits(&self) -> Option<Limits> {
        self.limits
    }

    /// Why the client closed, once it has: the application's close, a refused session, or the
    /// failure of the first connection attempt.
    pub fn close_reason(&self) -> Option<&ClientError> {
        self.close_reason.as_ref()
    }

    /// Messages the hub reported as lost for a local subscription's pattern.
    pub fn missed(&self, sub: SubId) -> Option<u64> {
        self.subs.get(sub).map(|s| s.missed)
    }

    /// Operations waiting for the connection or for a free in-flight slot, and requests in
    /// flight.
    pub fn pending(&self) -> (usize, usize) {
        (
            self.requests.queued()
                + self.subs.pending()
                + self.readers.waiting()
                + self.queues.waiting(),
            self.requests.in_flight(),
        )
    }

    fn emit(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    fn complete(&mut self, op: OpId, result: Result<Option<ReplyBody>, ClientError>) {
        self.emit(Output::Completed(Completion { op, result }));
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            self.state = state;
            self.emit(Output::State(state));
        }
    }

    fn new_op(&mut self) -> OpId {
        self.last_op += 1;
        self.last_op
    }

    fn is_ready(&self) -> bool {
        self.socket.is_some_and(|s| s.phase == Phase::Ready)
    }

    /// The current socket, if `socket` is it.
    fn current(&mut self, socket: SocketId) -> Option<&mut Socket> {
        self.socket.as_mut().filter(|s| s.id == socket)
    }

    /// Sends queued requests while the session has free in-flight slots.
    fn pump(&mut self, now_ms: u64) {
        let Some(limits) = self.limits.filter(|_| self.is_ready()) else {
            return;
        };
        let max_in_flight = (limits.max_in_flight as usize).max(1);
        while self.requests.in_flight() < max_in_flight {
            let Some((id, len)) = self.requests.peek_queued() else {
                break;
            };
            if len > limits.max_frame_bytes as usize {
                // The hub would refuse it; failing here keeps the session's bad-frame count
                // clean and tells the caller which limit it broke.
                let error = ClientError::new(
                    ErrorCode::FrameTooLarge,
                    format!(
                        "the frame is {len} bytes; the hub accepts at most {}",
                        limits.max_frame_bytes
                    ),
                );
                if let Some(request) = self.requests.take(id) {
                    self.fail_request(now_ms, id, request.purpose, error);
                }
                continue;
            }
            if let Some(frame) = self.requests.send_front() {
                self.emit(Output::Send(frame));
            }
        }
    }
}

/// Encodes a client frame as a binary MessagePack message, without serde: see
/// [`codec::lean::encode_client`].
fn encode(frame: &ClientFrame) -> Bytes {
    Bytes::from(codec::lean::encode_client(frame))
}
