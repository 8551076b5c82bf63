//! Unit tests of the client core, driven with encoded frames and fake time.
//!
//! # Layout
//! - [`Harness`]: a core plus a fake clock and a fake hub side (encode server frames, decode
//!   what the core sends).
//! - `session`: hello/welcome, request matching, timeouts, flow control, close.
//! - `reconnect`: socket loss, backoff, retry policies, terminal close codes.
//! - `subscriptions`: refcounts, dispatch, restoration after reconnect, lagged notices.
//! - `liveness`: the keep-alive ping and dead-socket detection.
//! - `streams`: stream requests, appends and their idempotency keys.
//! - `readers`: records, duplicates, gaps, credit, restoring after a reconnect, reader errors.
//! - `groups`: assignments, revocations, commits with generations, re-attaching members.
//! - `queues`: queue requests, enqueue keys, pulls, settles and lease deadlines.
//! - `consumers`: task routing, re-issuing consumers after a reconnect, prefetch, endings.

mod consumers;
mod groups;
mod liveness;
mod queues;
mod readers;
mod reconnect;
mod session;
mod streams;
mod subscriptions;

use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::frame::{
    ClientFrame, Deliver, ErrorFrame, Read, Records, Reply, ReplyBody, ServerFrame, Welcome,
};
use switchboard_protocol::streams::{ReaderPartition, Record};
use switchboard_protocol::{ErrorCode, Headers, Limits, Payload};

use super::{
    ClientCore, ClientError, ClientNotice, Completion, ConnectionState, CoreConfig, Output,
    ReadOptions, ReaderEvent, ReaderId, SocketId,
};

pub(super) fn config() -> CoreConfig {
    CoreConfig {
        request_timeout_ms: 1_000,
        min_delay_ms: 100,
        max_delay_ms: 1_600,
        entropy: Some([9; 32]),
        ..CoreConfig::default()
    }
}

pub(super) fn limits() -> Limits {
    Limits { ping_interval_ms: 0, ..Limits::default() }
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
        self.core.on_frame(self.socket, self.now, &bytes, Format::MsgPack);
    }

    pub fn ok(&mut self, id: u64) {
        self.hub(ServerFrame::Ok(Reply { id, result: None }));
    }

    pub fn published(&mut self, id: u64, receivers: u64) {
        self.hub(ServerFrame::Ok(Reply { id, result: Some(ReplyBody::Published { receivers }) }));
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
            let deadline = self.core.next_deadline().expect("something should be scheduled");
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
        self.core.publish(self.now, topic, Payload::from("x"), Headers::new())
    }

    pub fn reply(&mut self, id: u64, body: ReplyBody) {
        self.hub(ServerFrame::Ok(Reply { id, result: Some(body) }));
    }

    /// Answers `read` request `id`: hub reader `hub` starts in `epoch` at these (partition,
    /// next) positions.
    pub fn read_started(
        &mut self,
        id: u64,
        hub: u64,
        epoch: u64,
        member: Option<&str>,
        partitions: &[(u32, u64)],
    ) {
        let partitions = partitions
            .iter()
            .map(|&(partition, next)| ReaderPartition { partition, next, low: 0, high: next })
            .collect();
        self.reply(
            id,
            ReplyBody::ReadStarted {
                reader: hub,
                epoch,
                member: member.map(str::to_owned),
                partitions,
            },
        );
    }

    /// The hub sends hub reader `hub` the records at `offsets` of `partition`.
    pub fn records(&mut self, hub: u64, partition: u32, offsets: impl IntoIterator<Item = u64>) {
        let records = offsets
            .into_iter()
            .map(|offset| Record {
                offset,
                timestamp: 1_000 + offset,
                key: None,
                headers: Headers::new(),
                data: Payload::from(format!("r{offset}")),
            })
            .collect();
        self.hub(ServerFrame::Records(Records { reader: hub, partition, records }));
    }

    pub fn error_frame(&mut self, frame: ErrorFrame) {
        self.hub(ServerFrame::Error(frame));
    }

    /// Starts a reader on `stream`, answered as hub reader `hub` in epoch 7 at `partitions`;
    /// returns its id. Outputs are consumed.
    pub fn reader(
        &mut self,
        stream: &str,
        options: ReadOptions,
        hub: u64,
        partitions: &[(u32, u64)],
    ) -> ReaderId {
        let reader = self.core.read(self.now, stream, options);
        let out = self.take();
        let (id, _) = read_frame(&out);
        self.read_started(id, hub, 7, None, partitions);
        let out = self.take();
        assert!(result_of(&out, reader).is_ok(), "{out:?}");
        reader
    }
}

/// The one `read` frame among `out`, with its request id.
pub(super) fn read_frame(out: &[Output]) -> (u64, Read) {
    let reads: Vec<Read> = sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Read(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reads.len(), 1, "one read expected in {out:?}");
    (reads[0].id, reads[0].clone())
}

/// The events of `reader` among `out`.
pub(super) fn events_of(out: &[Output], reader: ReaderId) -> Vec<ReaderEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Reader { reader: r, event } if *r == reader => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// The offsets of the records delivered to `reader` among `out`, as (partition, offset).
pub(super) fn offsets_of(out: &[Output], reader: ReaderId) -> Vec<(u32, u64)> {
    events_of(out, reader)
        .into_iter()
        .flat_map(|e| match e {
            ReaderEvent::Records(records) => {
                records.into_iter().map(|r| (r.partition, r.offset)).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// The `credit` grants among `out`, as (hub reader, n).
pub(super) fn credits(out: &[Output]) -> Vec<(u64, u32)> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Credit(c) => Some((c.reader, c.n)),
            _ => None,
        })
        .collect()
}

/// The error a reader ended with among `out`; panics unless it ended exactly once.
pub(super) fn ended_with(out: &[Output], reader: ReaderId) -> Option<ClientError> {
    let ends: Vec<Option<ClientError>> = events_of(out, reader)
        .into_iter()
        .filter_map(|e| match e {
            ReaderEvent::Ended { error } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 1, "reader {reader} should end once in {out:?}");
    ends[0].clone()
}

/// Error notices among `out`.
pub(super) fn error_notices(out: &[Output]) -> Vec<ClientError> {
    out.iter()
        .filter_map(|o| match o {
            Output::Notice(ClientNotice::Error(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
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
    sent(out).iter().filter_map(ClientFrame::request_id).collect()
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
    let done: Vec<Completion> = completions(out).into_iter().filter(|c| c.op == op).collect();
    assert_eq!(done.len(), 1, "op {op} should complete exactly once in {out:?}");
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
