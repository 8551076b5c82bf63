//! Decoding, validating and handling one client frame: decode → validate → handle → reply.
//!
//! In-memory operations (topics, credit) are answered at once. Appends and enqueues go to the
//! storage writer with a ticket, and the writer puts each outcome into the session's
//! [`Completions`] after its commit: a waiting session is woken once for all of a commit's
//! outcomes and answers them in one go. Other operations that wait for the disk (stream and
//! queue administration, pulls, settles) become futures in the session's in-flight set. Both
//! count against `max_in_flight`, so a session can pipeline many appends into one group commit.
//!
//! [`Completions`]: crate::storage::writer::Completions

use std::sync::Arc;

use futures_util::future::BoxFuture;
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::names;
use switchboard_protocol::{
    ClientFrame, CloseCode, ConsumerClosed, Deliver, ErrorCode, ErrorFrame, Reply, ReplyBody,
    ServerFrame,
};

use super::outbox::encode_message;
use super::{Flow, Session};
use crate::stats::Stats;
use crate::storage::OpError;
use crate::storage::streams::NewRecord;
use crate::storage::writer::{Completions, Ticket, WriteResult};
use crate::streams::reader::Ctl;
use crate::streams::{PendingReader, StreamError};

/// A request that failed, and whether it counts as a bad frame (input that breaks the protocol).
pub(super) struct Failure {
    error: ErrorFrame,
    bad: bool,
}

impl Failure {
    pub(super) fn bad(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { error: ErrorFrame::new(id, code, message), bad: true }
    }

    fn refused(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { error: ErrorFrame::new(Some(id), code, message), bad: false }
    }

    pub(super) fn stream(id: u64, error: StreamError) -> Self {
        let bad = error.code == ErrorCode::InvalidName.as_u16();
        Failure { error: ErrorFrame { id: Some(id), ..error }, bad }
    }
}

/// The outcome of a request that finished later.
pub(super) type Finished = (Format, Result<Reply, Failure>);

/// A request waiting for its outcome, with the format to answer in.
pub(super) struct InFlight {
    format: Format,
    future: BoxFuture<'static, Result<Reply, Failure>>,
}

impl Future for InFlight {
    type Output = Finished;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Finished> {
        let format = self.format;
        self.future.as_mut().poll(cx).map(|outcome| (format, outcome))
    }
}

/// How a request was handled.
pub(super) enum Handled {
    Now(Result<Reply, Failure>),
    Later(u64, BoxFuture<'static, Result<Reply, Failure>>),
    /// Handed to the storage writer, which puts the outcome into the session's completions.
    Submitted,
    Reader(Reply, PendingReader),
    /// A push consumer to start once its reply is queued: (queue, consumer id, prefetch).
    Consumer(Reply, String, u64, u32),
}

/// What a request answered through the session's completions was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Completed {
    Append,
    Enqueue,
}

/// A [`Ticket`]'s tag: the request's kind (bit 1) and its answer's format (bit 0).
pub(super) fn ticket_tag(kind: Completed, format: Format) -> u8 {
    let kind = match kind {
        Completed::Append => 0,
        Completed::Enqueue => 2,
    };
    kind | u8::from(format == Format::Json)
}

/// The answer to a request from its outcome, and the format to answer in.
pub(super) fn completed(
    ticket: Ticket,
    outcome: Result<WriteResult, OpError>,
) -> (Format, Result<Reply, Failure>) {
    let format = if ticket.tag & 1 == 1 { Format::Json } else { Format::MsgPack };
    let id = ticket.id;
    let reply = if ticket.tag & 2 == 2 {
        match crate::queues::enqueued(outcome) {
            Ok(task) => ok(id, ReplyBody::Enqueued { task }),
            Err(e) => Err(Failure::stream(id, e)),
        }
    } else {
        match crate::streams::appended(outcome) {
            Ok(x) => ok(
                id,
                ReplyBody::Appended {
                    partition: x.partition,
                    offset: x.offset,
                    timestamp: x.timestamp,
                },
            ),
            Err(e) => Err(Failure::stream(id, e)),
        }
    };
    (format, reply)
}

pub(super) fn ok(id: u64, body: ReplyBody) -> Result<Reply, Failure> {
    Ok(Reply { id, result: Some(body) })
}

pub(super) fn done(id: u64) -> Result<Reply, Failure> {
    Ok(Reply { id, result: None })
}

impl Session {
    /// Handles one data message and queues (or schedules) its answer in its format.
    pub(super) async fn handle(&mut self, bytes: &[u8], format: Format) -> Flow {
        Stats::add(&self.hub.stats.frames_in, 1);
        match self.dispatch(bytes, format).await {
            Handled::Now(outcome) => self.answer(format, outcome),
            Handled::Submitted => Flow::Continue,
            Handled::Later(id, future) => {
                if self.in_flight_count() >= self.hub.config.max_in_flight as usize {
                    let failure = self.too_many_in_flight(id);
                    self.answer(format, Err(failure))
                } else {
                    self.in_flight.push(InFlight { format, future });
                    Flow::Continue
                }
            }
            Handled::Reader(reply, pending) => {
                let flow = self.answer(format, Ok(reply));
                pending.start().await;
                flow
            }
            Handled::Consumer(reply, queue, consumer, prefetch) => {
                let flow = self.answer(format, Ok(reply));
                let started =
                    self.hub.queues.consume(&queue, consumer, prefetch, self.outbox.clone()).await;
                match started {
                    Ok(()) => {
                        self.consumers.insert(consumer, queue);
                    }
                    Err(error) => {
                        // The reply is out already: tell the client the consumer ended.
                        let frame = ServerFrame::ConsumerClosed(ConsumerClosed { consumer, error });
                        if let Some(message) = encode_message(&frame, self.outbox.format()) {
                            self.outbox.stream(message);
                        }
                    }
                }
                flow
            }
        }
    }

    /// Hands request `id` to the storage writer through `send`, its outcome to come back in
    /// the session's completions; refused when `max_in_flight` requests are in flight already.
    pub(super) fn submit(
        &mut self,
        id: u64,
        kind: Completed,
        format: Format,
        send: impl FnOnce(&Arc<Completions>, Ticket) -> Result<(), ErrorFrame>,
    ) -> Handled {
        if self.in_flight_count() >= self.hub.config.max_in_flight as usize {
            return Handled::Now(Err(self.too_many_in_flight(id)));
        }
        let ticket = Ticket { id, tag: ticket_tag(kind, format) };
        match send(self.completions(), ticket) {
            Ok(()) => {
                self.submitted += 1;
                Handled::Submitted
            }
            Err(e) => Handled::Now(Err(Failure::stream(id, e))),
        }
    }

    fn too_many_in_flight(&self, id: u64) -> Failure {
        let max = self.hub.config.max_in_flight;
        Failure::refused(
            id,
            ErrorCode::TooManyInFlight,
            format!("max_in_flight ({max}) requests are in flight"),
        )
    }

    /// Queues the answer to a request.
    pub(super) fn answer(&mut self, format: Format, outcome: Result<Reply, Failure>) -> Flow {
        let frame = match outcome {
            Ok(reply) => {
                self.bad_frames = 0;
                ServerFrame::Ok(reply)
            }
            Err(failure) => {
                if failure.bad {
                    Stats::add(&self.hub.stats.bad_frames, 1);
                    self.bad_frames += 1;
                } else {
                    self.bad_frames = 0;
                }
                ServerFrame::Error(failure.error)
            }
        };
        if let Some(message) = encode_message(&frame, format) {
            self.outbox.reply(message);
        }
        if self.bad_frames >= self.hub.config.max_bad_frames {
            return Flow::Close(CloseCode::TooManyBadFrames);
        }
        Flow::Continue
    }

    async fn dispatch(&mut self, bytes: &[u8], format: Format) -> Handled {
        let max = self.hub.config.max_frame_bytes as usize;
        if bytes.len() > max {
            return Handled::Now(Err(Failure::bad(
                None,
                ErrorCode::FrameTooLarge,
                format!("frame of {} bytes exceeds max_frame_bytes {max}", bytes.len()),
            )));
        }
        let frame = match codec::decode_client(bytes, format) {
            Ok(frame) => frame,
            Err(e) => return Handled::Now(Err(Failure::bad(e.request_id, e.code, e.message))),
        };
        let streams = self.hub.streams.clone();
        match frame {
            ClientFrame::Hello(_) => Handled::Now(Err(Failure::bad(
                None,
                ErrorCode::UnexpectedHello,
                "this session already said hello",
            ))),
            ClientFrame::Ping(ping) => Handled::Now(done(ping.id)),
            ClientFrame::Publish(p) => Handled::Now(self.publish(p)),
            ClientFrame::Subscribe(s) => Handled::Now(self.subscribe(s)),
            ClientFrame::Unsubscribe(u) => Handled::Now(self.unsubscribe(u)),
            ClientFrame::CreateStream(c) => Handled::Later(
                c.id,
                Box::pin(async move {
                    match streams.create(&c.stream, c.partitions, c.retention, c.durability).await {
                        Ok(info) => ok(c.id, ReplyBody::Stream(info)),
                        Err(e) => Err(Failure::stream(c.id, e)),
                    }
                }),
            ),
            ClientFrame::Append(a) => {
                let record = NewRecord { key: a.key, headers: a.headers, data: a.data };
                self.submit(a.id, Completed::Append, format, |to, ticket| {
                    streams.append_to(&a.stream, record, a.idempotency_key, to, ticket)
                })
            }
            ClientFrame::Read(r) => {
                self.next_reader += 1;
                let reader = self.next_reader;
                match streams.open_reader(&r, reader, self.outbox.clone()).await {
                    Ok((handle, pending, body)) => {
                        self.readers.insert(reader, handle);
                        Handled::Reader(Reply { id: r.id, result: Some(body) }, pending)
                    }
                    Err(e) => Handled::Now(Err(Failure::stream(r.id, e))),
                }
            }
            ClientFrame::Credit(c) => match self.readers.get(&c.reader) {
                Some(handle) => {
                    // A reader that already stopped has told the client why; the grant is moot.
                    let _ = handle.ctl.send(Ctl::Credit(c.n)).await;
                    Handled::Now(done(c.id))
                }
                None => Handled::Now(Err(Failure::refused(
                    c.id,
                    ErrorCode::NotFound,
                    format!("no reader {}", c.reader),
                ))),
            },
            ClientFrame::CloseReader(c) => match self.readers.remove(&c.reader) {
                Some(handle) => {
                    streams.close_reader(handle, true).await;
                    Handled::Now(done(c.id))
                }
                None => Handled::Now(Err(Failure::refused(
                    c.id,
                    ErrorCode::NotFound,
                    format!("no reader {}", c.reader),
                ))),
            },
            ClientFrame::Commit(c) => Handled::Later(
                c.id,
                Box::pin(async move {
                    match streams
                        .commit(&c.stream, &c.group, c.partition, c.offset, c.generation)
                        .await
                    {
                        Ok(()) => done(c.id),
                        Err(e) => Err(Failure::stream(c.id, e)),
                    }
                }),
            ),
            ClientFrame::ListStreams(l) => {
                Handled::Now(ok(l.id, ReplyBody::Streams { streams: streams.list() }))
            }
            ClientFrame::DescribeStream(d) => Handled::Later(
                d.id,
                Box::pin(async move {
                    match streams.describe(&d.stream).await {
                        Ok(description) => ok(d.id, ReplyBody::Described(description)),
                        Err(e) => Err(Failure::stream(d.id, e)),
                    }
                }),
            ),
            ClientFrame::DeleteStream(d) => Handled::Later(
                d.id,
                Box::pin(async move {
                    match streams.delete(&d.stream).await {
                        Ok(()) => done(d.id),
                        Err(e) => Err(Failure::stream(d.id, e)),
                    }
                }),
            ),
            queue_frame => self.queue_request(queue_frame, format).await,
        }
    }

    fn publish(&mut self, p: switchboard_protocol::Publish) -> Result<Reply, Failure> {
        names::validate_topic(&p.topic)
            .map_err(|e| Failure::bad(Some(p.id), ErrorCode::InvalidName, e.to_string()))?;
        let receivers =
            self.hub.topics.publish(Deliver { topic: p.topic, data: p.data, headers: p.headers });
        ok(p.id, ReplyBody::Published { receivers })
    }

    fn subscribe(&mut self, s: switchboard_protocol::Subscribe) -> Result<Reply, Failure> {
        names::validate_pattern(&s.pattern)
            .map_err(|e| Failure::bad(Some(s.id), ErrorCode::InvalidName, e.to_string()))?;
        if !self.subscriptions.contains(&s.pattern) {
            let max = self.hub.config.max_subscriptions as usize;
            if self.subscriptions.len() >= max {
                return Err(Failure::refused(
                    s.id,
                    ErrorCode::TooManySubscriptions,
                    format!("this session already holds max_subscriptions ({max})"),
                ));
            }
            self.hub.topics.subscribe(self.id, &s.pattern, &self.outbox);
            self.subscriptions.insert(s.pattern);
        }
        done(s.id)
    }

    fn unsubscribe(&mut self, u: switchboard_protocol::Unsubscribe) -> Result<Reply, Failure> {
        names::validate_pattern(&u.pattern)
            .map_err(|e| Failure::bad(Some(u.id), ErrorCode::InvalidName, e.to_string()))?;
        if self.subscriptions.remove(&u.pattern) {
            self.hub.topics.unsubscribe(self.id, &u.pattern);
        }
        done(u.id)
    }
}
