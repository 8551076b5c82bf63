//! The `Client` handle and `connect`: what applications call.

use std::sync::{Arc, Mutex};

use switchboard_protocol::{Headers, Payload};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::driver::Driver;
use super::options::ClientOptions;
use super::subscription::Subscription;
use crate::core::{ClientError, ClientNotice, ConnectionState, SubId};

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
}

/// State the driver publishes for every handle to read.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) notices: broadcast::Sender<ClientNotice>,
    pub(crate) session: Mutex<Option<u64>>,
    /// Why the driver stopped, for handles that call it afterwards.
    pub(crate) closed: Mutex<Option<ClientError>>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            state: watch::Sender::new(ConnectionState::Connecting),
            notices: broadcast::Sender::new(NOTICE_BUFFER),
            session: Mutex::new(None),
            closed: Mutex::new(None),
        }
    }

    fn closed_error(&self) -> ClientError {
        self.closed
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_else(ClientError::closed)
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
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl Client {
    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(command(reply)).await.is_err() {
            return Err(self.shared.closed_error());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(self.shared.closed_error()))
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
        self.request(|reply| Command::Publish {
            topic,
            data,
            headers,
            reply,
        })
        .await
    }

    /// Subscribes to every topic matching `pattern` (`*` one segment, trailing `>` the rest).
    /// Resolves once the hub acknowledged the pattern; the subscription survives reconnects.
    ///
    /// # Errors
    /// `invalid_name`, `backlogged`, `timeout`, `closed`, or the hub's error (such as
    /// `too_many_subscriptions`).
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, ClientError> {
        let pattern = pattern.to_owned();
        self.request(|reply| Command::Subscribe { pattern, reply })
            .await
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
