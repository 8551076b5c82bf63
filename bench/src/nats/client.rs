//! A NATS connection shared by many concurrent callers, as the hub's native client is: one
//! writer task that lets a flush carry every operation already queued, one reader task that
//! routes each message to whoever waits for it, and a timeout on every wait.
//!
//! Replies to requests come to `<inbox>.<id>` through one wildcard subscription; other
//! subscriptions (a pull consumer's inbox, whose messages keep their stream subject) are routed
//! by subscription id. `PONG`s answer [`NatsClient::flush`]es in order, which is how the
//! benchmark learns that the server has handled everything sent before (nats-server handles a
//! connection's operations in order).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::NatsError;
use super::connection::{NatsReader, NatsWriter, connect};
use super::protocol::{self, Incoming, Msg};

/// Most queued operations one flush carries; the cap bounds a single write's size.
const BATCH: usize = 256;
/// Operations waiting for the writer; callers wait when it is full (backpressure).
const QUEUE: usize = 4096;
/// Messages a subscription buffers; the reader waits when it is full (backpressure).
const SUBSCRIPTION_BUFFER: usize = 65_536;
/// The request subscription's id; others count up from 2.
const REPLIES_SID: u64 = 1;

/// Makes inbox names unique between the connections of one process.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// A shared connection; clones use the same one, which closes when the last clone is dropped.
#[derive(Clone)]
pub struct NatsClient {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    state: Arc<State>,
    inbox: String,
    next: AtomicU64,
    timeout: Duration,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

enum Command {
    Frame(Vec<u8>),
    Ping(oneshot::Sender<()>),
}

/// What the reader and writer tasks share with callers.
#[derive(Default)]
struct State {
    requests: Mutex<HashMap<u64, oneshot::Sender<Msg>>>,
    subscriptions: Mutex<HashMap<u64, mpsc::Sender<Msg>>>,
    pongs: Mutex<VecDeque<oneshot::Sender<()>>>,
    /// Why the connection ended; every later wait reports it.
    failure: Mutex<Option<NatsError>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    /// Records the first failure and drops every waiter, which then reports it.
    fn fail(&self, error: NatsError) {
        lock(&self.failure).get_or_insert(error);
        lock(&self.requests).clear();
        lock(&self.subscriptions).clear();
        lock(&self.pongs).clear();
    }

    fn failure(&self) -> NatsError {
        lock(&self.failure).clone().unwrap_or(NatsError::Closed)
    }
}

/// Messages of one subscription; unsubscribes when dropped.
pub struct Subscription {
    sid: u64,
    messages: mpsc::Receiver<Msg>,
    client: NatsClient,
}

impl NatsClient {
    /// Connects; `timeout` bounds every later wait for the server.
    ///
    /// # Errors
    /// As [`connect`].
    pub async fn connect(url: &str, timeout: Duration) -> Result<NatsClient, NatsError> {
        let (writer, reader) = connect(url).await?;
        Ok(Self::over(writer, reader, timeout))
    }

    fn over(mut writer: NatsWriter, reader: NatsReader, timeout: Duration) -> NatsClient {
        let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let inbox = format!("_INBOX.bench{}x{n}", std::process::id());
        let (commands, queue) = mpsc::channel(QUEUE);
        let state = Arc::new(State::default());
        // Queued first, so the wildcard subscription precedes any request.
        let subscribe = protocol::subscribe(&format!("{inbox}.*"), REPLIES_SID);
        let _ = commands.try_send(Command::Frame(subscribe));
        let writing = {
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = write(&mut writer, queue, &state).await {
                    state.fail(e);
                }
            })
        };
        let reading = {
            let state = state.clone();
            let commands = commands.clone();
            tokio::spawn(async move {
                let e = read(reader, &commands, &state).await;
                state.fail(e);
            })
        };
        let inner = Inner {
            commands,
            state,
            inbox,
            next: AtomicU64::new(2),
            timeout,
            tasks: [writing, reading],
        };
        NatsClient { inner: Arc::new(inner) }
    }

    /// A subject no other connection uses, for replies to a subscription of its own.
    pub fn new_inbox(&self) -> String {
        // `<inbox>.<x>` would fall under the request wildcard: use a sibling token instead.
        format!("{}_{}", self.inner.inbox, self.inner.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The per-wait timeout this connection was made with.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    async fn command(&self, command: Command) -> Result<(), NatsError> {
        if lock(&self.inner.state.failure).is_some() {
            return Err(self.inner.state.failure());
        }
        self.inner.commands.send(command).await.map_err(|_| self.inner.state.failure())
    }

    /// Publishes without waiting for anything (`PUB`, or `HPUB` with headers).
    ///
    /// # Errors
    /// The connection's failure, if it has failed.
    pub async fn publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), NatsError> {
        self.command(Command::Frame(protocol::publish(subject, reply, headers, payload))).await
    }

    /// Publishes with a reply subject of this connection and waits for the first reply.
    ///
    /// # Errors
    /// [`NatsError::Timeout`] if none comes in time; the connection's failure if it fails.
    pub async fn request(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<Msg, NatsError> {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.state.requests).insert(id, tx);
        // Removes the route however this ends (reply, timeout, failure or cancellation).
        let _route = Route { id, state: &self.inner.state };
        let reply = format!("{}.{id}", self.inner.inbox);
        self.publish(subject, Some(&reply), headers, payload).await?;
        match tokio::time::timeout(self.inner.timeout, rx).await {
            Ok(Ok(msg)) => Ok(msg),
            Ok(Err(_)) => Err(self.inner.state.failure()),
            Err(_) => {
                Err(NatsError::Timeout { what: subject.to_owned(), after: self.inner.timeout })
            }
        }
    }

    /// Sends a `PING` and waits for its `PONG`: everything sent before has been handled.
    ///
    /// # Errors
    /// [`NatsError::Timeout`] if the `PONG` does not come in time; the connection's failure.
    pub async fn flush(&self) -> Result<(), NatsError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Ping(tx)).await?;
        match tokio::time::timeout(self.inner.timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.inner.state.failure()),
            Err(_) => Err(NatsError::Timeout { what: "PING".into(), after: self.inner.timeout }),
        }
    }

    /// Subscribes to a subject; the subscription is in place once [`NatsClient::flush`]
    /// returns.
    ///
    /// # Errors
    /// The connection's failure, if it has failed.
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, NatsError> {
        let sid = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (tx, messages) = mpsc::channel(SUBSCRIPTION_BUFFER);
        lock(&self.inner.state.subscriptions).insert(sid, tx);
        self.command(Command::Frame(protocol::subscribe(subject, sid))).await?;
        Ok(Subscription { sid, messages, client: self.clone() })
    }
}

struct Route<'a> {
    id: u64,
    state: &'a State,
}

impl Drop for Route<'_> {
    fn drop(&mut self) {
        lock(&self.state.requests).remove(&self.id);
    }
}

impl Subscription {
    /// The next message, waiting at most `within`.
    ///
    /// # Errors
    /// [`NatsError::Timeout`] if none comes in time; the connection's failure if it fails.
    pub async fn next(&mut self, within: Duration) -> Result<Msg, NatsError> {
        match tokio::time::timeout(within, self.messages.recv()).await {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => Err(self.client.inner.state.failure()),
            Err(_) => Err(NatsError::Timeout {
                what: format!("subscription {}", self.sid),
                after: within,
            }),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.client.inner.state.subscriptions).remove(&self.sid);
        let _ =
            self.client.inner.commands.try_send(Command::Frame(protocol::unsubscribe(self.sid)));
    }
}

/// The writer task: takes what is queued (up to [`BATCH`]), writes it, flushes once.
async fn write(
    writer: &mut NatsWriter,
    mut queue: mpsc::Receiver<Command>,
    state: &State,
) -> Result<(), NatsError> {
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(command) = next {
            let frame = match command {
                Command::Frame(frame) => frame,
                Command::Ping(waiter) => {
                    // Queued in the order the PINGs are written, which is the PONGs' order.
                    lock(&state.pongs).push_back(waiter);
                    b"PING\r\n".to_vec()
                }
            };
            writer.feed(frame).await?;
            taken += 1;
            next = if taken < BATCH { queue.try_recv().ok() } else { None };
        }
        writer.flush().await?;
    }
    Ok(())
}

/// The reader task: answers `PING`s, routes messages and `PONG`s; returns why it stopped.
async fn read(
    mut reader: NatsReader,
    commands: &mpsc::Sender<Command>,
    state: &State,
) -> NatsError {
    loop {
        let op = match reader.next().await {
            Ok(op) => op,
            Err(e) => return e,
        };
        match op {
            Incoming::Msg(msg) if msg.sid == REPLIES_SID => {
                let id = msg.subject.rsplit('.').next().and_then(|id| id.parse().ok());
                let waiter = id.and_then(|id| lock(&state.requests).remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(msg);
                }
            }
            Incoming::Msg(msg) => {
                let sink = lock(&state.subscriptions).get(&msg.sid).cloned();
                if let Some(sink) = sink {
                    let _ = sink.send(msg).await;
                }
            }
            Incoming::Ping => {
                if commands.send(Command::Frame(b"PONG\r\n".to_vec())).await.is_err() {
                    return NatsError::Closed;
                }
            }
            Incoming::Pong => {
                if let Some(waiter) = lock(&state.pongs).pop_front() {
                    let _ = waiter.send(());
                }
            }
            // nats-server closes the connection after every -ERR but a few (permission
            // violations on one subject); the benchmark treats each as fatal.
            Incoming::Err(e) => return NatsError::Server(e),
            Incoming::Ok | Incoming::Info => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::fake::{fake, say, until};

    #[tokio::test]
    async fn a_request_should_get_its_reply_and_a_server_ping_its_pong() {
        let url = fake(|mut ws| async move {
            let seen = until(&mut ws, &[b"\r\nhi\r\n"]).await;
            let text = String::from_utf8(seen).unwrap();
            let reply = text.split("PUB s ").nth(1).unwrap().split(' ').next().unwrap().to_owned();
            say(&mut ws, &format!("PING\r\nMSG {reply} 1 2\r\nok\r\n")).await;
            // The client's PONG, then the PING of its flush: answered only if the PONG came.
            until(&mut ws, &[b"PONG\r\n", b"PING\r\n"]).await;
            say(&mut ws, "PONG\r\n").await;
            futures_util::future::pending::<()>().await;
        })
        .await;
        let client = NatsClient::connect(&url, Duration::from_secs(5)).await.unwrap();
        let reply = client.request("s", &[], b"hi").await.unwrap();
        assert_eq!(reply.payload, b"ok");
        client.flush().await.unwrap();
    }

    #[tokio::test]
    async fn an_err_from_the_server_should_fail_waiting_requests_with_its_text() {
        let url = fake(|mut ws| async move {
            until(&mut ws, &[b"\r\nhi\r\n"]).await;
            say(&mut ws, "-ERR 'Maximum Payload Violation'\r\n").await;
            futures_util::future::pending::<()>().await;
        })
        .await;
        let client = NatsClient::connect(&url, Duration::from_secs(5)).await.unwrap();
        let error = client.request("s", &[], b"hi").await.unwrap_err();
        assert_eq!(error, NatsError::Server("Maximum Payload Violation".into()));
        assert_eq!(client.flush().await.unwrap_err(), error, "later calls report it too");
    }

    #[tokio::test]
    async fn a_request_nobody_answers_should_time_out() {
        let url = fake(|ws| async move {
            let _open = ws;
            futures_util::future::pending::<()>().await;
        })
        .await;
        let client = NatsClient::connect(&url, Duration::from_millis(100)).await.unwrap();
        let error = client.request("s", &[], b"hi").await.unwrap_err();
        assert!(matches!(error, NatsError::Timeout { .. }), "{error:?}");
        assert!(matches!(client.flush().await, Err(NatsError::Timeout { .. })));
    }

    #[tokio::test]
    async fn a_closed_connection_should_fail_requests_instead_of_hanging() {
        let url = fake(|mut ws| async move {
            until(&mut ws, &[b"\r\nhi\r\n"]).await;
            drop(ws);
        })
        .await;
        let client = NatsClient::connect(&url, Duration::from_secs(30)).await.unwrap();
        let error = client.request("s", &[], b"hi").await.unwrap_err();
        assert!(matches!(error, NatsError::Closed | NatsError::Socket(_)), "{error:?}");
    }
}
