//! The `Client` handle and `connect`: what applications call.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use switchboard_protocol::frame::ReplyBody;
use switchboard_protocol::streams::{StreamDescription, StreamInfo};
use switchboard_protocol::{ErrorCode, Headers, Payload};
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use super::consumer::Consumer;
use super::driver::Driver;
use super::options::ClientOptions;
use super::reader::Reader;
use super::subscription::Subscription;
use crate::core::{
    AppendOptions, Appended, ClientCore, ClientError, ClientNotice, ConnectionState, ConsumerId,
    OpId, ReadOptions, ReaderId, StreamOptions, SubId,
};

/// Commands a handle can queue before it waits for the driver: enough to absorb bursts of
/// publishes without letting a runaway producer grow memory without bound.
const COMMAND_BUFFER: usize = 1024;

/// Notices kept for receivers that fall behind; older ones are skipped (`Lagged` on receive).
const NOTICE_BUFFER: usize = 256;

/// What a handle asks the driver to do.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        topic: String,
        data: Payload,
        headers: Headers,
        reply: oneshot::Sender<Result<u64, ClientError>>,
    },
    Subscribe {
        pattern: String,
        reply: oneshot::Sender<Result<Subscription, ClientError>>,
    },
    Unsubscribe {
        sub: SubId,
        reply: Option<oneshot::Sender<Result<(), ClientError>>>,
    },
    Ping {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// Any core operation whose completion is the hub's reply body.
    Call {
        call: CoreCall,
        reply: oneshot::Sender<Result<Option<ReplyBody>, ClientError>>,
    },
    Read {
        stream: String,
        options: ReadOptions,
        reply: oneshot::Sender<Result<Reader, ClientError>>,
    },
    CloseReader {
        reader: ReaderId,
        reply: Option<oneshot::Sender<Result<(), ClientError>>>,
    },
    Consume {
        queue: String,
        prefetch: u32,
        reply: oneshot::Sender<Result<Consumer, ClientError>>,
    },
    StopConsumer {
        consumer: ConsumerId,
        reply: Option<oneshot::Sender<Result<(), ClientError>>>,
    },
}

/// A core operation for the driver to start: given the core and the time, it returns the id
/// of the operation whose completion answers the caller.
pub(crate) struct CoreCall(Box<dyn CoreFn>);

/// What a [`CoreCall`] holds.
trait CoreFn: FnOnce(&mut ClientCore, u64) -> OpId + Send {}

impl<F: FnOnce(&mut ClientCore, u64) -> OpId + Send> CoreFn for F {}

impl CoreCall {
    pub(crate) fn new(call: impl FnOnce(&mut ClientCore, u64) -> OpId + Send + 'static) -> Self {
        CoreCall(Box::new(call))
    }

    pub(crate) fn run(self, core: &mut ClientCore, now_ms: u64) -> OpId {
        (self.0)(core, now_ms)
    }
}

impl fmt::Debug for CoreCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CoreCall")
    }
}

/// The error for a reply body that does not fit the request: a hub bug, reported, not hidden.
pub(crate) fn unexpected(body: Option<ReplyBody>) -> ClientError {
    ClientError::new(ErrorCode::Internal, format!("unexpected answer from the hub: {body:?}"))
}

/// Runs a core operation for a handle that holds only a weak command sender.
pub(crate) async fn call_weak(
    commands: &mpsc::WeakSender<Command>,
    client: &Shared,
    call: impl FnOnce(&mut ClientCore, u64) -> OpId + Send + 'static,
) -> Result<Option<ReplyBody>, ClientError> {
    let Some(commands) = commands.upgrade() else {
        return Err(client.closed_error());
    };
    let (reply, answer) = oneshot::channel();
    let command = Command::Call { call: CoreCall::new(call), reply };
    if commands.send(command).await.is_err() {
        return Err(client.closed_error());
    }
    answer.await.unwrap_or_else(|_| Err(client.closed_error()))
}

/// State the driver publishes for every handle to read.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) notices: broadcast::Sender<ClientNotice>,
    pub(crate) session: Mutex<Option<u64>>,
    /// Why the driver stopped, for handles that call it afterwards.
    pub(crate) closed: Mutex<Option<ClientError>>,
    /// Readers took records the driver has not reported to the core yet.
    pub(crate) consumed: AtomicBool,
    /// Wakes the driver to report them.
    pub(crate) consumption: Notify,
}

impl Shared {
    fn new() -> Self {
        Shared {
            state: watch::Sender::new(ConnectionState::Connecting),
            notices: broadcast::Sender::new(NOTICE_BUFFER),
            session: Mutex::new(None),
            closed: Mutex::new(None),
            consumed: AtomicBool::new(false),
            consumption: Notify::new(),
        }
    }

    pub(crate) fn wake_for_consumption(&self) {
        self.consumed.store(true, Ordering::Release);
        self.consumption.notify_one();
    }

    pub(crate) fn closed_error(&self) -> ClientError {
        self.closed.lock().ok().and_then(|c| c.clone()).unwrap_or_else(ClientError::closed)
    }
}

/// Connects to a hub at `url` (for example `ws://127.0.0.1:7070/ws`) and resolves once the hub
/// has welcomed the session. Later losses are reconnected automatically (unless
/// [`ClientOptions::reconnect`] is off); this first attempt is not retried.
///
/// Must be called within a tokio runtime.
///
/// # Errors
/// The reason the first attempt failed: `disconnected` when the socket could not be opened,
/// closed before `welcome`, or no `welcome` came within the request timeout; or the hub's
/// refusal (`unauthorized`, `unsupported_version`).
pub async fn connect(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
    let (commands, inbox) = mpsc::channel(COMMAND_BUFFER);
    let shared = Arc::new(Shared::new());
    let (ready, welcomed) = oneshot::channel();
    let driver = Driver::new(
        url.to_owned(),
        &options,
        inbox,
        commands.downgrade(),
        Arc::clone(&shared),
        ready,
    );
    tokio::spawn(driver.run());
    match welcomed.await {
        Ok(Ok(())) => Ok(Client { commands, shared }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(shared.closed_error()),
    }
}

/// A cheap, cloneable handle to one connection. The connection closes when the last handle
/// is dropped or [`Client::close`] is called.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) shared: Arc<Shared>,
}

impl Client {
    pub(super) async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(command(reply)).await.is_err() {
            return Err(self.shared.closed_error());
        }
        answer.await.unwrap_or_else(|_| Err(self.shared.closed_error()))
    }

    /// Publishes `data` on `topic` and returns how many sessions the hub handed it to.
    /// Topics are at-most-once: a publish in flight when the connection drops is not resent.
    ///
    /// # Errors
    /// `invalid_name`, `frame_too_large`, `backlogged`, `timeout`, `disconnected` (the
    /// connection dropped while it was in flight), `closed`, or the hub's error.
    pub async fn publish(
        &self,
        topic: &str,
        data: impl Into<Payload>,
        headers: Headers,
    ) -> Result<u64, ClientError> {
        let topic = topic.to_owned();
        let data = data.into();
        self.request(|reply| Command::Publish { topic, data, headers, reply }).await
    }

    /// Subscribes to every topic matching `pattern` (`*` one segment, trailing `>` the rest).
    /// Resolves once the hub acknowledged the pattern; the subscription survives reconnects.
    ///
    /// # Errors
    /// `invalid_name`, `backlogged`, `timeout`, `closed`, or the hub's error (such as
    /// `too_many_subscriptions`).
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, ClientError> {
        let pattern = pattern.to_owned();
        self.request(|reply| Command::Subscribe { pattern, reply }).await
    }

    /// Starts a core operation and waits for its reply body.
    pub(super) async fn call(
        &self,
        call: impl FnOnce(&mut ClientCore, u64) -> OpId + Send + 'static,
    ) -> Result<Option<ReplyBody>, ClientError> {
        let call = CoreCall::new(call);
        self.request(|reply| Command::Call { call, reply }).await
    }

    /// Creates a stream, or confirms one that exists with the same options.
    ///
    /// # Errors
    /// `invalid_name`, `already_exists` (it exists with other options), `invalid_argument`,
    /// `backlogged`, `timeout`, `closed`, or the hub's error. It is resent after a reconnect.
    pub async fn create_stream(
        &self,
        stream: &str,
        options: StreamOptions,
    ) -> Result<StreamInfo, ClientError> {
        let stream = stream.to_owned();
        match self.call(move |core, now| core.create_stream(now, &stream, options)).await? {
            Some(ReplyBody::Stream(info)) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Appends a record (creating the stream with defaults if needed) and returns where it is,
    /// once it is durable. The append carries an idempotency key — the caller's, or a random
    /// one — and is resent with it after a reconnect, so it is written at most once.
    ///
    /// # Errors
    /// `invalid_name`, `payload_too_large`, `frame_too_large`, `backlogged`, `timeout` (it may
    /// still have been written: retry with your own `idempotency_key` to be sure), `closed`,
    /// or the hub's error.
    pub async fn append(
        &self,
        stream: &str,
        data: impl Into<Payload>,
        options: AppendOptions,
    ) -> Result<Appended, ClientError> {
        let stream = stream.to_owned();
        let data = data.into();
        match self.call(move |core, now| core.append(now, &stream, data, options)).await? {
            Some(ReplyBody::Appended { partition, offset, timestamp }) => {
                Ok(Appended { partition, offset, timestamp })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Starts a reader. It survives reconnects: each record arrives exactly once, in order
    /// within its partition.
    ///
    /// # Errors
    /// `invalid_name`, `invalid_argument` (a zero credit window), `not_found`,
    /// `offset_out_of_range`, `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn read(&self, stream: &str, options: ReadOptions) -> Result<Reader, ClientError> {
        let stream = stream.to_owned();
        self.request(|reply| Command::Read { stream, options, reply }).await
    }

    /// Lists every stream.
    ///
    /// # Errors
    /// `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn list_streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        match self.call(|core, now| core.list_streams(now)).await? {
            Some(ReplyBody::Streams { streams }) => Ok(streams),
            other => Err(unexpected(other)),
        }
    }

    /// Describes a stream: partitions with their watermarks and sizes, groups with their lag.
    ///
    /// # Errors
    /// `invalid_name`, `not_found`, `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn describe_stream(&self, stream: &str) -> Result<StreamDescription, ClientError> {
        let stream = stream.to_owned();
        match self.call(move |core, now| core.describe_stream(now, &stream)).await? {
            Some(ReplyBody::Described(description)) => Ok(description),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a stream and everything in it; its readers end with an error.
    ///
    /// # Errors
    /// `invalid_name`, `not_found`, `disconnected` (the connection dropped before the answer;
    /// the delete may or may not have happened and is not resent), `backlogged`, `timeout`,
    /// `closed`, or the hub's error.
    pub async fn delete_stream(&self, stream: &str) -> Result<(), ClientError> {
        let stream = stream.to_owned();
        self.call(move |core, now| core.delete_stream(now, &stream)).await.map(|_| ())
    }

    /// Commits `offset` — the next offset the group should read — for `group` in `partition`,
    /// under the assignment `generation` ([`Reader::commit`] does this for a record).
    ///
    /// # Errors
    /// `stale_generation` (the partition was reassigned since), `invalid_name`, `not_found`,
    /// `backlogged`, `timeout`, `closed`, or the hub's error.
    pub async fn commit(
        &self,
        stream: &str,
        group: &str,
        partition: u32,
        offset: u64,
        generation: u64,
    ) -> Result<(), ClientError> {
        let (stream, group) = (stream.to_owned(), group.to_owned());
        self.call(move |core, now| core.commit(now, &stream, &group, partition, offset, generation))
            .await
            .map(|_| ())
    }

    /// Asks the hub for an answer.
    ///
    /// # Errors
    /// `backlogged`, `timeout`, `disconnected`, `closed`.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.request(|reply| Command::Ping { reply }).await
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        *self.shared.state.borrow()
    }

    /// A receiver that sees every later state change.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// A receiver of notices (lagged topics, errors that belong to no operation) from now on.
    pub fn notices(&self) -> broadcast::Receiver<ClientNotice> {
        self.shared.notices.subscribe()
    }

    /// The hub's session id from the latest `welcome`.
    pub fn session_id(&self) -> Option<u64> {
        self.shared.session.lock().ok().and_then(|s| *s)
    }

    /// Closes the connection gracefully (close code 1000). Operations still pending fail with
    /// `closed` and every subscription ends. Resolves once the closing handshake finished
    /// (waiting at most about a second for the hub's close frame) or at once if there was no
    /// socket; closing twice is harmless.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }
}
