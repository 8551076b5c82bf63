//! One WebSocket session: the opening handshake, the read loop, the socket writer, keep-alive
//! and shutdown.
//!
//! Each connection runs two tasks. The session loop reads and handles frames, pings on a timer,
//! and watches the hub's shutdown signal. The writer owns the socket's sink: it takes everything
//! queued in the session's [`Outbox`] at once, feeds it to the socket and flushes once per batch.
//! Splitting them means a slow socket never stops the hub from reading the client, and a publish
//! never waits for any socket.
//!
//! The loop is generic over the socket's `Sink`/`Stream`, so tests can drive it with channels.

mod hello;
pub mod outbox;
mod queue_requests;
mod requests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use switchboard_protocol::CloseCode;
use switchboard_protocol::codec::Format;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, MissedTickBehavior};

use crate::Hub;
use crate::stats::Stats;
use crate::storage::writer::Completions;
use crate::streams::ReaderHandle;
use outbox::{Out, Outbox};
use requests::{Finished, InFlight};

/// How long a closing session waits for the client's close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);

/// Most messages (or finished requests) a session handles in a row when they are ready at
/// once, before it looks at its timer and signals again.
const BURST: usize = 64;

/// Runs a session on an upgraded socket until it ends. Without a connection `permit` the hub is
/// at its connection limit and the session is closed at once with 1013.
pub async fn serve<S>(socket: S, hub: Arc<Hub>, permit: Option<OwnedSemaphorePermit>)
where
    S: Sink<Message, Error = axum::Error>
        + Stream<Item = Result<Message, axum::Error>>
        + Send
        + 'static,
{
    let (mut sink, mut stream) = socket.split();
    let Some(_permit) = permit else {
        Stats::add(&hub.stats.connections_refused, 1);
        send_close(&mut sink, &mut stream, CloseCode::TryAgainLater).await;
        return;
    };
    let id = hub.next_session_id();
    let (hello, format) = match hello::open(&mut sink, &mut stream, &hub, id).await {
        hello::Opening::Accepted { hello, format } => (hello, format),
        hello::Opening::Ended => return,
    };
    tracing::debug!(session = id, client = ?hello.client, ?format, "session opened");
    Stats::add(&hub.stats.sessions, 1);
    Stats::add(&hub.stats.sessions_total, 1);

    let outbox = Arc::new(Outbox::new(
        hub.config.outbox_bytes,
        hub.config.slow_consumer,
        format,
        hub.stats.clone(),
    ));
    let mut writer = tokio::spawn(write_loop(sink, outbox.clone()));
    let mut session = Session {
        id,
        hub: hub.clone(),
        outbox: outbox.clone(),
        subscriptions: HashSet::new(),
        bad_frames: 0,
        readers: HashMap::new(),
        consumers: HashMap::new(),
        next_reader: 0,
        in_flight: FuturesUnordered::new(),
        completions: None,
        submitted: 0,
    };
    let end = session.run(&mut stream, &mut writer).await;
    hub.topics.remove_session(id, session.subscriptions.iter().map(String::as_str));
    for (_, reader) in session.readers.drain() {
        hub.streams.close_reader(reader, false).await;
    }
    // Leases of this session's consumers run to their deadlines: a client that reconnects soon
    // can still settle them.
    for (consumer, queue) in session.consumers.drain() {
        hub.queues.stop_consume(&queue, consumer).await;
    }
    if let End::Close(_) = end {
        // Answer what is already in flight (appends waiting for their commit) before closing.
        let grace = Duration::from_millis(u64::from(hub.config.shutdown_timeout_ms));
        let _ = tokio::time::timeout(grace, session.answer_in_flight()).await;
    }

    match end {
        End::Close(code) => {
            outbox.close(code);
            let grace = Duration::from_millis(u64::from(hub.config.shutdown_timeout_ms));
            match tokio::time::timeout(grace, &mut writer).await {
                Ok(Ok(Some(_sink))) => {
                    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, drain(&mut stream)).await;
                }
                Ok(_) => {}
                Err(_) => writer.abort(),
            }
            tracing::debug!(session = id, close = %code, "session closed");
        }
        End::PeerGone => {
            outbox.close(CloseCode::Normal);
            writer.abort();
            tracing::debug!(session = id, "session ended by the client");
        }
    }
    hub.stats.sessions.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// Why a session loop ended.
enum End {
    /// The hub closes the session with this code.
    Close(CloseCode),
    /// The client closed or the connection broke.
    PeerGone,
}

/// What to do after handling one message.
enum Flow {
    Continue,
    Close(CloseCode),
}

struct Session {
    id: u64,
    hub: Arc<Hub>,
    outbox: Arc<Outbox>,
    subscriptions: HashSet<String>,
    bad_frames: u32,
    readers: HashMap<u64, ReaderHandle>,
    /// Push consumers of this session: id → queue.
    consumers: HashMap<u64, String>,
    next_reader: u64,
    in_flight: FuturesUnordered<InFlight>,
    /// Where the storage writer puts the outcomes of this session's appends and enqueues.
    /// Made by the first of them: an idle session does without.
    completions: Option<Arc<Completions>>,
    /// Appends and enqueues submitted whose outcome this session has not taken yet.
    submitted: usize,
}

impl Session {
    async fn run<R, W>(&mut self, stream: &mut R, writer: &mut tokio::task::JoinHandle<W>) -> End
    where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        let config = &self.hub.config;
        let ping_every = Duration::from_millis(u64::from(config.ping_interval_ms));
        let idle_timeout = Duration::from_millis(u64::from(config.idle_timeout_ms));
        let max_in_flight = config.max_in_flight as usize;
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let shutdown = self.hub.shutdown.clone();
        loop {
            // Replies the writer has not taken yet are requests not yet answered on the socket:
            // at `max_in_flight` of them, stop reading until the writer catches up.
            let paused = self.outbox.pending_replies() >= max_in_flight;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Close(CloseCode::GoingAway),
                code = self.outbox.closing() => return End::Close(code),
                _ = &mut *writer => return End::PeerGone,
                _ = ping.tick() => {
                    if last_heard.elapsed() >= idle_timeout {
                        return End::Close(CloseCode::KeepaliveTimeout);
                    }
                    self.outbox.ping();
                }
                _ = self.outbox.space(), if paused => {}
                () = ready(self.completions.as_deref()), if self.submitted > 0 => {
                    if let Some(end) = self.answer_completions() {
                        return end;
                    }
                }
                Some(finished) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    if let Some(end) = self.finish_burst(finished) {
                        return end;
                    }
                }
                next = stream.next(), if !paused => {
                    last_heard = Instant::now();
                    if let Some(end) = self.read_burst(next, stream, max_in_flight).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Requests submitted and not answered yet, of both kinds.
    fn in_flight_count(&self) -> usize {
        self.in_flight.len() + self.submitted
    }

    /// Answers every append and enqueue whose outcome the writer has delivered.
    fn answer_completions(&mut self) -> Option<End> {
        let mut taken = Vec::new();
        if let Some(completions) = &self.completions {
            completions.take(&mut taken);
        }
        self.submitted = self.submitted.saturating_sub(taken.len());
        let mut end = None;
        for (ticket, outcome) in taken {
            let (format, reply) = requests::completed(ticket, outcome);
            if let Flow::Close(code) = self.answer(format, reply) {
                end.get_or_insert(End::Close(code));
            }
        }
        end
    }

    /// The session's completions, made on first use.
    fn completions(&mut self) -> &Arc<Completions> {
        self.completions.get_or_insert_with(Default::default)
    }

    /// Answers what is in flight as it finishes, until nothing is.
    async fn answer_in_flight(&mut self) {
        loop {
            if self.submitted > 0 {
                tokio::select! {
                    () = ready(self.completions.as_deref()) => {
                        self.answer_completions();
                    }
                    Some((format, outcome)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                        self.answer(format, outcome);
                    }
                }
            } else {
                let Some((format, outcome)) = self.in_flight.next().await else { return };
                self.answer(format, outcome);
            }
        }
    }

    /// Answers a finished request, then the others already finished (at most [`BURST`] in
    /// all).
    fn finish_burst(&mut self, first: Finished) -> Option<End> {
        let mut next = Some(first);
        let mut answered = 0;
        while let Some((format, outcome)) = next.take() {
            if let Flow::Close(code) = self.answer(format, outcome) {
                return Some(End::Close(code));
            }
            answered += 1;
            if answered < BURST {
                next = self.in_flight.next().now_or_never().flatten();
            }
        }
        None
    }

    /// Handles a message, then those already received (at most [`BURST`], and only while
    /// fewer than `max_in_flight` replies wait for the socket). Returns why the session ends,
    /// if it does.
    async fn read_burst<R>(
        &mut self,
        first: Option<Result<Message, axum::Error>>,
        stream: &mut R,
        max_in_flight: usize,
    ) -> Option<End>
    where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        let mut next = first;
        let mut handled = 0;
        loop {
            let flow = match next {
                Some(Ok(Message::Binary(bytes))) => self.handle(&bytes, Format::MsgPack).await,
                Some(Ok(Message::Text(text))) => self.handle(text.as_bytes(), Format::Json).await,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
                Some(Ok(Message::Close(_))) | None => return Some(End::PeerGone),
                Some(Err(e)) => return Some(transport_error(self.id, e)),
            };
            if let Flow::Close(code) = flow {
                return Some(End::Close(code));
            }
            handled += 1;
            if handled >= BURST || self.outbox.pending_replies() >= max_in_flight {
                return None;
            }
            // Only a message already received: `None` here means nothing is ready now.
            next = stream.next().now_or_never()?;
        }
    }
}

/// Waits until `completions` hold an outcome; never, without completions.
async fn ready(completions: Option<&Completions>) {
    match completions {
        Some(completions) => completions.ready().await,
        None => std::future::pending().await,
    }
}

fn transport_error(session: u64, e: axum::Error) -> End {
    let inner = e.into_inner();
    if let Some(tungstenite::Error::Capacity(reason)) = inner.downcast_ref::<tungstenite::Error>() {
        tracing::debug!(session, %reason, "message over the transport limit");
        return End::Close(CloseCode::MessageTooBig);
    }
    tracing::debug!(session, error = %inner, "connection error");
    End::PeerGone
}

/// Sends what the outbox hands over, one flush per batch. Returns the sink after a clean close,
/// or `None` if the socket failed.
async fn write_loop<S>(mut sink: S, outbox: Arc<Outbox>) -> Option<S>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    loop {
        let batch = outbox.next_batch().await;
        for item in batch.items {
            let message = match item {
                Out::Message(m) => m,
                Out::Ping => Message::Ping(bytes::Bytes::new()),
            };
            if sink.feed(message).await.is_err() {
                return None;
            }
        }
        if let Some(code) = batch.close {
            sink.send(close_message(code)).await.ok()?;
            return Some(sink);
        }
        if sink.flush().await.is_err() {
            return None;
        }
    }
}

fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame { code: code.as_u16(), reason: code.name().into() }))
}

/// Sends a close frame and waits briefly for the client's answer.
async fn send_close<S, R>(sink: &mut S, stream: &mut R, code: CloseCode)
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    if sink.send(close_message(code)).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, drain(stream)).await;
    }
}

/// Reads and discards until the client closes.
async fn drain<R>(stream: &mut R)
where
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    while let Some(Ok(message)) = stream.next().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}
