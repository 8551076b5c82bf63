//! Unit tests of the client core, driven with encoded frames and fake time.
//!
//! # Layout
//! - [`Harness`]: a core plus a fake clock and a fake hub side (encode server frames, decode
//!   what the core sends).
//! - `session`: hello/welcome, request matching, timeouts, flow control, close.
//! - `reconnect`: socket loss, backoff, retry policies, terminal close codes.
//! - `subscriptions`: refcounts, dispatch, restoration after reconnect, lagged notices.
//! - `liveness`: the keep-alive ping and dead-socket detection.

mod liveness;
mod reconnect;
mod session;
mod subscriptions;

use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::frame::{
    ClientFrame, Deliver, ErrorFrame, Reply, ReplyBody, ServerFrame, Welcome,
};
use switchboard_protocol::{ErrorCode, Headers, Limits, Payload};

use super::{
    ClientCore, ClientError, ClientNotice, Completion, ConnectionState, CoreConfig, Output,
    SocketId,
};

pub(super) fn config() -> CoreConfig {
    CoreConfig {
        request_timeout_ms: 1_000,
        min_delay_ms: 100,
        max_delay_ms: 1_600,
        ..CoreConfig::default()
    }
}

pub(super) fn limits() -> Limits {
    Limits {
        ping_interval_ms: 0,
        ..Limits::default()
    }
}

/// A core, a fake clock and the hub's side of the socket.
pub(super) struct Harness {
    pub core: ClientCore,
    pub now: u64,
    /// The socket the core asked for most recently.
    pub socket: SocketId,
    /// Everything the core emitted, oldest first, until taken.
    pub out: Vec<Output>,
}

impl Harness {
    /// A core that has asked for its first socket; that request is consumed.
    pub fn new(config: CoreConfig) -> Self {
        let mut h = Harness {
            core: ClientCore::new(config, 1_000),
            now: 1_000,
            socket: 0,
            out: Vec::new(),
        };
        let out = h.take();
        assert_eq!(out, vec![Output::OpenSocket { socket: 1 }]);
        h.socket = 1;
        h
    }

    /// A core with an established session.
    pub fn connected(config: CoreConfig, limits: Limits) -> Self {
        let mut h = Harness::new(config);
        h.open_and_welcome(limits);
        h.take();
        h
    }

    /// Opens the current socket and answers `hello` with `welcome`.
    pub fn open_and_welcome(&mut self, limits: Limits) {
        self.core.on_socket_open(self.socket, self.now);
        self.hub(ServerFrame::Welcome(Welcome {
            session: 100 + self.socket,
            server: "test".into(),
            protocol: 1,
            limits,
        }));
    }

    /// Moves every output into `out` and returns them, remembering newly requested sockets.
    pub fn take(&mut self) -> Vec<Output> {
        let mut out = std::mem::take(&mut self.out);
        while let Some(o) = self.core.poll_output() {
            if let Output::OpenSocket { socket } = o {
                self.socket = socket;
            }
            out.push(o);
        }
        out
    }

    /// Feeds a frame from the hub on the current socket.
    pub fn hub(&mut self, frame: ServerFrame) {
        let bytes = codec::encode(&frame, Format::MsgPack).unwrap();
        self.core
            .on_frame(self.socket, self.now, &bytes, Format::MsgPack);
    }

    pub fn ok(&mut self, id: u64) {
        self.hub(ServerFrame::Ok(Reply { id, result: None }));
    }

    pub fn published(&mut self, id: u64, receivers: u64) {
        self.hub(ServerFrame::Ok(Reply {
            id,
            result: Some(ReplyBody::Published { receivers }),
        }));
    }

    pub fn error(&mut self, id: Option<u64>, code: ErrorCode) {
        self.hub(ServerFrame::Error(ErrorFrame::new(id, code, "refused")));
    }

    pub fn deliver(&mut self, topic: &str, data: &str) {
        self.hub(ServerFrame::Deliver(Deliver {
            topic: topic.into(),
            data: Payload::from(data),
            headers: Headers::new(),
        }));
    }

    /// The hub closes the current socket.
    pub fn drop_socket(&mut self, code: Option<u16>) {
        self.core.on_socket_closed(self.socket, self.now, code, "");
    }

    /// Moves the clock forward and delivers the tick.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.core.on_tick(self.now);
    }

    /// Ticks at every deadline until `ms` have passed.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(deadline) = self.core.next_deadline().filter(|&d| d <= end) {
            self.now = self.now.max(deadline);
            self.core.on_tick(self.now);
        }
        self.now = end;
        self.core.on_tick(self.now);
    }

    /// Ticks at each deadline until the core asks for a new socket; outputs stay for `take`.
    pub fn tick_until_open(&mut self) {
        for _ in 0..100 {
            let deadline = self
                .core
                .next_deadline()
                .expect("something should be scheduled");
            self.now = self.now.max(deadline);
            self.core.on_tick(self.now);
            let out = self.take();
            let opened = out.iter().any(|o| matches!(o, Output::OpenSocket { .. }));
            self.out = out;
            if opened {
                return;
            }
        }
        panic!("no socket was opened");
    }

    /// Loses the socket and establishes a new session.
    pub fn reconnect(&mut self, code: Option<u16>, limits: Limits) {
        self.drop_socket(code);
        self.tick_until_open();
        self.open_and_welcome(limits);
    }

    pub fn publish(&mut self, topic: &str) -> u64 {
        self.core
            .publish(self.now, topic, Payload::from("x"), Headers::new())
    }
}

/// The frames among `out`, decoded as the hub would.
pub(super) fn sent(out: &[Output]) -> Vec<ClientFrame> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(bytes) => Some(codec::decode_client(bytes, Format::MsgPack).unwrap()),
            _ => None,
        })
        .collect()
}

/// The request ids of the frames among `out`.
pub(super) fn sent_ids(out: &[Output]) -> Vec<u64> {
    sent(out)
        .iter()
        .filter_map(ClientFrame::request_id)
        .collect()
}

/// The completions among `out`.
pub(super) fn completions(out: &[Output]) -> Vec<Completion> {
    out.iter()
        .filter_map(|o| match o {
            Output::Completed(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The result of operation `op` among `out`; panics if it did not complete.
pub(super) fn result_of(out: &[Output], op: u64) -> Result<Option<ReplyBody>, ClientError> {
    let done: Vec<Completion> = completions(out)
        .into_iter()
        .filter(|c| c.op == op)
        .collect();
    assert_eq!(
        done.len(),
        1,
        "op {op} should complete exactly once in {out:?}"
    );
    done[0].result.clone()
}

/// The error code operation `op` failed with.
pub(super) fn error_of(out: &[Output], op: u64) -> ErrorCode {
    let error = result_of(out, op).expect_err("should fail");
    error.error_code().unwrap()
}

/// The state changes among `out`.
pub(super) fn states(out: &[Output]) -> Vec<ConnectionState> {
    out.iter()
        .filter_map(|o| match o {
            Output::State(s) => Some(*s),
            _ => None,
        })
        .collect()
}
