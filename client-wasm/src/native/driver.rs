//! The driver task: one per client, running the core against a tokio-tungstenite socket.

use std::collections::HashMap;
use std::future::{Future, pending};
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use switchboard_protocol::Format;
use switchboard_protocol::frame::ReplyBody;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::client::{Command, Shared};
use super::consumer::{Consumer, ConsumerSinks, wall_clock_ms};
use super::mailbox::{self, Closed};
use super::options::ClientOptions;
use super::reader::{Reader, ReaderSinks};
use super::subscription::Subscription;
use crate::core::{
    ClientCore, ClientError, Completion, ConnectionState, Message, OpId, Output, SocketId, SubId,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The socket's read buffer. tungstenite zero-fills the free part of its read buffer before
/// every read, so its 128 KiB default costs a 128 KiB memset per small frame; 16 KiB still
/// takes a large `records` batch in a few reads.
const READ_BUFFER: usize = 16 * 1024;
type ConnectFuture = Pin<Box<dyn Future<Output = Result<Ws, tungstenite::Error>> + Send>>;

/// How long a closing handshake may take before the socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Most yields to gather answered callers' next requests before a flush. A yield lasts until
/// the worker thread has run every other ready task, which on a busy runtime can be a while;
/// the first is often cut short by the first caller's request waking the driver, and the
/// second finds the rest.
const MAX_GATHERS: u8 = 2;

/// Most commands or socket messages handled per loop turn. Taking what is already waiting
/// lets one flush carry many frames; the cap keeps the other sources from starving.
const BATCH: usize = 256;

/// Who waits for an operation's completion.
enum Waiter {
    Publish(oneshot::Sender<Result<u64, ClientError>>),
    Unit(oneshot::Sender<Result<(), ClientError>>),
    Subscribe { pattern: String, reply: oneshot::Sender<Result<Subscription, ClientError>> },
    Body(oneshot::Sender<Result<Option<ReplyBody>, ClientError>>),
    Read { stream: String, window: u32, reply: oneshot::Sender<Result<Reader, ClientError>> },
    Consume { queue: String, prefetch: u32, reply: oneshot::Sender<Result<Consumer, ClientError>> },
}

/// The driver's end of one subscription.
struct Sink {
    messages: mailbox::Sender,
    missed: Arc<AtomicU64>,
}

/// A map keyed by the core's operation ids.
type IdMap<V> = HashMap<OpId, V, BuildHasherDefault<IdHasher>>;

/// Hashes an operation id with one multiplication. The ids come from the core's counter, not
/// from the hub, so SipHash's defence against chosen keys buys nothing on a lookup made for
/// every delivered message and every answer.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: an odd constant near 2^64 / phi spreads consecutive ids over the
        // high bits, and the low bits stay distinct for consecutive ids.
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The socket in use, and the close code its peer sent, if any.
struct Open {
    id: SocketId,
    ws: Ws,
    close: Option<(u16, String)>,
}

pub(crate) struct Driver {
    url: String,
    core: ClientCore,
    start: Instant,
    inbox: mpsc::Receiver<Command>,
    commands: mpsc::WeakSender<Command>,
    shared: Arc<Shared>,
    ready: Option<oneshot::Sender<Result<(), ClientError>>>,
    connecting: Option<(SocketId, ConnectFuture)>,
    open: Option<Open>,
    waiters: IdMap<Waiter>,
    sinks: IdMap<Sink>,
    readers: ReaderSinks,
    consumers: ConsumerSinks,
    subscription_buffer: usize,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The timer for the core's next deadline, kept across loop turns: registering a fresh
    /// timer on every turn cost more than the rest of a small turn.
    timer: Pin<Box<Sleep>>,
    /// When `timer` fires, if it is armed. It may be earlier than the core's deadline (which
    /// only moves later as traffic arrives): an early tick finds nothing due and re-arms.
    armed: Option<Instant>,
    /// Frames were fed to the socket and not flushed yet.
    unflushed: bool,
    /// Callers answered since the socket was last flushed who have not asked again yet: a
    /// caller keeping requests in flight asks again as soon as it is answered.
    expected: usize,
    /// Yields to gather requests since the socket was last flushed.
    gathers: u8,
    /// Messages for the subscription `delivering`, handed to it together.
    deliveries: Vec<Message>,
    delivering: Option<SubId>,
}

impl Driver {
    pub(crate) fn new(
        url: String,
        options: &ClientOptions,
        inbox: mpsc::Receiver<Command>,
        commands: mpsc::WeakSender<Command>,
        shared: Arc<Shared>,
        ready: oneshot::Sender<Result<(), ClientError>>,
    ) -> Self {
        let mut core = ClientCore::new(options.core_config(), 0);
        core.set_wall_clock(0, wall_clock_ms());
        let start = Instant::now();
        Driver {
            url,
            core,
            start,
            inbox,
            commands,
            shared,
            ready: Some(ready),
            connecting: None,
            open: None,
            waiters: IdMap::default(),
            sinks: IdMap::default(),
            readers: ReaderSinks::default(),
            consumers: ConsumerSinks::default(),
            // A zero-capacity channel cannot exist; one slot is the least that works.
            subscription_buffer: options.subscription_buffer.max(1),
            close_waiters: Vec::new(),
            timer: Box::pin(sleep_until(start)),
            armed: None,
            unflushed: false,
            expected: 0,
            gathers: 0,
            deliveries: Vec::new(),
            delivering: None,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.report_consumption();
            self.apply_outputs().await;
            if self.core.state() == ConnectionState::Closed {
                self.flush().await;
                break;
            }
            if self.expected > 0 && self.gathers < MAX_GATHERS && self.gather().await {
                continue;
            }
            if self.flush().await {
                continue;
            }
            self.arm_timer();
            tokio::select! {
                command = self.inbox.recv() => match command {
                    Some(command) => {
                        let now = self.now();
                        self.on_command(command, now);
                        for _ in 1..BATCH {
                            let Ok(command) = self.inbox.try_recv() else { break };
                            self.on_command(command, now);
                        }
                    }
                    // Every handle is gone: nobody can use the connection any more.
                    None => self.core.close(self.now()),
                },
                (socket, result) = next_connect(&mut self.connecting) => {
                    self.connecting = None;
                    self.on_connected(socket, result);
                }
                (socket, message) = next_message(&mut self.open) => {
                    // One reading of the clock for the batch: the core counts milliseconds,
                    // and a batch is what was already waiting.
                    let now = self.now();
                    self.on_message(socket, message, now);
                    for _ in 1..BATCH {
                        let Some((socket, message)) = next_message(&mut self.open).now_or_never()
                        else {
                            break;
                        };
                        self.on_message(socket, message, now);
                    }
                }
                () = self.shared.consumption.notified() => self.report_consumption(),
                () = self.timer.as_mut(), if self.armed.is_some() => {
                    self.armed = None;
                    self.core.on_tick(self.now());
                }
            }
        }
        let reason = self.core.close_reason().cloned();
        if let Ok(mut closed) = self.shared.closed.lock() {
            closed.clone_from(&reason);
        }
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(reason.unwrap_or_else(ClientError::closed)));
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Arms the timer for the core's next deadline, unless it is armed earlier already.
    fn arm_timer(&mut self) {
        let Some(ms) = self.core.next_deadline() else {
            return;
        };
        let at = self.start + Duration::from_millis(ms);
        if self.armed.is_none_or(|armed| at < armed) {
            self.timer.as_mut().reset(at);
            self.armed = Some(at);
        }
    }

    fn on_command(&mut self, command: Command, now: u64) {
        match command {
            Command::Publish { topic, data, headers, reply } => {
                let op = self.core.publish(now, &topic, data, headers);
                self.waiters.insert(op, Waiter::Publish(reply));
            }
            Command::Subscribe { pattern, reply } => {
                let sub = self.core.subscribe(now, &pattern);
                self.waiters.insert(sub, Waiter::Subscribe { pattern, reply });
            }
            Command::Unsubscribe { sub, reply } => {
                self.sinks.remove(&sub);
                let op = self.core.unsubscribe(now, sub);
                if let Some(reply) = reply {
                    self.waiters.insert(op, Waiter::Unit(reply));
                }
            }
            Command::Ping { reply } => {
                let op = self.core.ping(now);
                self.waiters.insert(op, Waiter::Unit(reply));
            }
            Command::Close { reply } => {
                self.close_waiters.push(reply);
                self.core.close(now);
            }
            Command::Call { call, reply } => {
                let op = call.run(&mut self.core, now);
                self.waiters.insert(op, Waiter::Body(reply));
            }
            Command::Read { stream, options, reply } => {
                let window = options.credit;
                let reader = self.core.read(now, &stream, options);
                let waiter = Waiter::Read { stream, window, reply };
                self.waiters.insert(reader, waiter);
            }
            Command::CloseReader { reader, reply } => {
                self.readers.remove(reader);
                let op = self.core.close_reader(now, reader);
                if let Some(reply) = reply {
                    self.waiters.insert(op, Waiter::Unit(reply));
                }
            }
            Command::Consume { queue, prefetch, reply } => {
                let consumer = self.core.consume(now, &queue, prefetch);
                self.waiters.insert(consumer, Waiter::Consume { queue, prefetch, reply });
            }
            Command::StopConsumer { consumer, reply } => {
                let op = self.consumers.stop(&mut self.core, now, consumer);
                if let Some(reply) = reply {
                    self.waiters.insert(op, Waiter::Unit(reply));
                }
            }
        }
    }

    /// Tells the core what readers consumed since the last report.
    fn report_consumption(&mut self) {
        if !self.shared.consumed.swap(false, Ordering::AcqRel) {
            return;
        }
        let now = self.now();
        self.readers.report(&mut self.core, now);
    }

    fn on_connected(&mut self, socket: SocketId, result: Result<Ws, tungstenite::Error>) {
        let now = self.now();
        match result {
            Ok(ws) => {
                tracing::debug!(socket, url = %self.url, "socket open");
                self.open = Some(Open { id: socket, ws, close: None });
                // Lease deadlines are wall-clock times: pick up any correction of the clock.
                self.core.set_wall_clock(now, wall_clock_ms());
                self.core.on_socket_open(socket, now);
            }
            Err(e) => {
                tracing::debug!(socket, url = %self.url, error = %e, "connect failed");
                self.core.on_socket_closed(socket, now, None, &e.to_string());
            }
        }
    }

    fn on_message(
        &mut self,
        socket: SocketId,
        message: Option<Result<WsMessage, tungstenite::Error>>,
        now: u64,
    ) {
        match message {
            Some(Ok(WsMessage::Binary(bytes))) => {
                self.core.on_frame(socket, now, &bytes, Format::MsgPack);
            }
            Some(Ok(WsMessage::Text(text))) => {
                self.core.on_frame(socket, now, text.as_bytes(), Format::Json);
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => self.core.on_activity(socket, now),
            Some(Ok(WsMessage::Close(frame))) => {
                // The stream ends right after; remember why for when it does.
                if let (Some(open), Some(frame)) = (self.open.as_mut(), frame) {
                    open.close = Some((u16::from(frame.code), frame.reason.to_string()));
                }
            }
            Some(Ok(WsMessage::Frame(_))) => {}
            Some(Err(e)) => self.socket_ended(socket, &e.to_string()),
            None => self.socket_ended(socket, ""),
        }
    }

    fn socket_ended(&mut self, socket: SocketId, error: &str) {
        let Some(open) = self.open.take() else {
            return;
        };
        let (code, reason) = match open.close {
            Some((code, reason)) => (Some(code), reason),
            None => (None, error.to_owned()),
        };
        tracing::debug!(socket, ?code, %reason, "socket closed");
        self.core.on_socket_closed(socket, self.now(), code, &reason);
    }

    /// Lets the callers answered in this turn run before the socket is flushed, then takes
    /// the requests they queued meanwhile; returns whether there were any.
    ///
    /// Without this, a driver answering a batch of callers went back to wait for commands and
    /// was woken by the first caller's request, wrote it, and was woken again by the next:
    /// one socket write per request. The yield puts the driver behind the tasks it woke, so
    /// their requests share one write; it stops once a yield brought nothing, as many
    /// requests as answers came, or after [`MAX_GATHERS`] yields.
    async fn gather(&mut self) -> bool {
        self.gathers += 1;
        tokio::task::yield_now().await;
        let mut taken = 0;
        let mut now = None;
        while taken < BATCH {
            let Ok(command) = self.inbox.try_recv() else { break };
            let now = *now.get_or_insert_with(|| self.now());
            self.on_command(command, now);
            taken += 1;
        }
        self.expected = if taken == 0 { 0 } else { self.expected.saturating_sub(taken) };
        taken > 0
    }

    /// Writes out the frames fed since the last flush; returns whether that failed, losing
    /// the socket (to which the core reacts with more outputs).
    async fn flush(&mut self) -> bool {
        self.expected = 0;
        self.gathers = 0;
        if !std::mem::take(&mut self.unflushed) {
            return false;
        }
        if let Some(open) = self.open.as_mut()
            && let Err(e) = open.ws.flush().await
        {
            let socket = open.id;
            self.socket_ended(socket, &e.to_string());
            return true;
        }
        false
    }

    /// Carries out everything the core decided, in order. Frames are only fed to the socket:
    /// the loop flushes once before it waits.
    async fn apply_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            if !matches!(output, Output::Deliver { .. }) {
                // Messages delivered so far reach their subscription before what follows.
                self.hand_over();
            }
            match output {
                Output::Send(frame) => {
                    let Some(open) = self.open.as_mut() else {
                        continue;
                    };
                    // `feed` buffers; one flush before the loop waits covers the whole batch.
                    if let Err(e) = open.ws.feed(WsMessage::Binary(frame)).await {
                        let socket = open.id;
                        self.socket_ended(socket, &e.to_string());
                    } else {
                        self.unflushed = true;
                    }
                }
                Output::OpenSocket { socket } => {
                    let url = self.url.clone();
                    let connect = async move {
                        // Nagle off: frames are small and latency matters more than packets.
                        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
                        tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                            .await
                            .map(|(ws, _response)| ws)
                    };
                    self.connecting = Some((socket, Box::pin(connect)));
                }
                Output::CloseSocket { socket, code, reason } => {
                    self.close_socket(socket, code, reason).await
                }
                Output::Completed(completion) => self.complete(completion),
                Output::Deliver { sub, message } => self.deliver(sub, message),
                Output::Reader { reader, event } => {
                    let now = self.now();
                    self.readers.on_event(&mut self.core, now, reader, event);
                }
                Output::Consumer { consumer, event } => {
                    let now = self.now();
                    self.consumers.on_event(&mut self.core, now, consumer, event);
                }
                Output::Lagged { sub, missed } => {
                    if let Some(sink) = self.sinks.get(&sub) {
                        sink.missed.fetch_add(missed, Ordering::Relaxed);
                    }
                }
                Output::SubscriptionClosed { sub, .. } => {
                    // Dropping the sender ends the stream once its buffer is read.
                    self.sinks.remove(&sub);
                }
                Output::State(state) => self.on_state(state),
                Output::Notice(notice) => {
                    // No receiver is fine: notices are for whoever listens.
                    let _ = self.shared.notices.send(notice);
                }
            }
        }
        self.hand_over();
    }

    async fn close_socket(&mut self, socket: SocketId, code: u16, reason: String) {
        if self.connecting.as_ref().is_some_and(|(id, _)| *id == socket) {
            self.connecting = None;
        }
        let Some(open) = self.open.take_if(|o| o.id == socket) else {
            return;
        };
        let frame = CloseFrame { code: code.into(), reason: reason.into() };
        let handshake = close_handshake(open.ws, frame);
        if self.core.state() == ConnectionState::Closed {
            // The last thing this task does: finish it here so `close()` resolves after it.
            handshake.await;
        } else {
            tokio::spawn(handshake);
        }
    }

    fn complete(&mut self, Completion { op, result }: Completion) {
        let Some(waiter) = self.waiters.remove(&op) else {
            return;
        };
        self.expected += 1;
        match waiter {
            Waiter::Publish(reply) => {
                let receivers = result.map(|body| match body {
                    Some(ReplyBody::Published { receivers }) => receivers,
                    _ => 0,
                });
                let _ = reply.send(receivers);
            }
            Waiter::Unit(reply) => {
                let _ = reply.send(result.map(|_| ()));
            }
            Waiter::Body(reply) => {
                let _ = reply.send(result);
            }
            Waiter::Read { stream, window, reply } => {
                let result = result.map(|body| {
                    let (client, commands) = (Arc::clone(&self.shared), self.commands.clone());
                    self.readers.open(op, stream, window, body, client, commands)
                });
                if let Err(Ok(mut unwanted)) = reply.send(result) {
                    // The caller stopped waiting: nobody will read these records.
                    unwanted.close_quietly();
                    self.readers.remove(op);
                    self.core.close_reader(self.now(), op);
                }
            }
            Waiter::Consume { queue, prefetch, reply } => {
                let result = result.map(|_| {
                    let (client, commands) = (Arc::clone(&self.shared), self.commands.clone());
                    self.consumers.open(op, queue, prefetch, client, commands)
                });
                if let Err(Ok(mut unwanted)) = reply.send(result) {
                    // The caller stopped waiting: nobody will take these tasks.
                    unwanted.close_quietly();
                    let now = self.now();
                    self.consumers.stop(&mut self.core, now, op);
                }
            }
            Waiter::Subscribe { pattern, reply } => {
                let result = result.map(|_| self.open_subscription(op, pattern));
                if let Err(Ok(mut unwanted)) = reply.send(result) {
                    // The caller stopped waiting: nobody will read this subscription.
                    unwanted.done = true;
                    self.sinks.remove(&op);
                    self.core.unsubscribe(self.now(), op);
                }
            }
        }
    }

    fn open_subscription(&mut self, sub: SubId, pattern: String) -> Subscription {
        let (sender, messages) = mailbox::mailbox(self.subscription_buffer);
        let missed = Arc::new(AtomicU64::new(0));
        self.sinks.insert(sub, Sink { messages: sender, missed: Arc::clone(&missed) });
        Subscription {
            id: sub,
            pattern,
            messages,
            missed,
            commands: self.commands.clone(),
            done: false,
        }
    }

    fn deliver(&mut self, sub: SubId, message: Message) {
        if self.delivering != Some(sub) {
            self.hand_over();
            self.delivering = Some(sub);
        }
        self.deliveries.push(message);
    }

    /// Hands the messages gathered for one subscription to it at once: one lock and at most
    /// one wake-up for a batch read from the socket, rather than one per message.
    fn hand_over(&mut self) {
        let Some(sub) = self.delivering.take() else {
            return;
        };
        let Some(sink) = self.sinks.get(&sub) else {
            self.deliveries.clear();
            return;
        };
        match sink.messages.push_all(&mut self.deliveries) {
            Ok(0) => {}
            // Topics drop rather than block: a slow reader must not stall the connection.
            Ok(dropped) => {
                sink.missed.fetch_add(dropped as u64, Ordering::Relaxed);
            }
            // The handle was dropped and its unsubscribe did not fit in the command channel.
            Err(Closed) => {
                self.sinks.remove(&sub);
                self.core.unsubscribe(self.now(), sub);
            }
        }
    }

    fn on_state(&mut self, state: ConnectionState) {
        if state == ConnectionState::Connected {
            if let Ok(mut session) = self.shared.session.lock() {
                *session = self.core.session_id();
            }
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Ok(()));
            }
        }
        self.shared.state.send_replace(state);
    }
}

/// Sends a close frame and waits briefly for the peer's, then drops the socket.
async fn close_handshake(mut ws: Ws, frame: CloseFrame) {
    let _ = timeout(CLOSE_GRACE, async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// The result of the pending connect, or never if there is none. Cancel-safe: the connect
/// future lives in `connecting` and is only borrowed here.
async fn next_connect(
    connecting: &mut Option<(SocketId, ConnectFuture)>,
) -> (SocketId, Result<Ws, tungstenite::Error>) {
    match connecting {
        Some((socket, future)) => (*socket, future.await),
        None => pending().await,
    }
}

/// The next message of the open socket, or never if there is none. Cancel-safe: the stream
/// keeps partial reads in its own buffer.
async fn next_message(
    open: &mut Option<Open>,
) -> (SocketId, Option<Result<WsMessage, tungstenite::Error>>) {
    match open {
        Some(open) => (open.id, open.ws.next().await),
        None => pending().await,
    }
}
