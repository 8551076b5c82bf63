//! One NATS connection over WebSocket (the transport the hub uses), split into a writing and a
//! reading half: the bare form the fan-out subscribers use, and what [`super::client`] builds on.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::NatsError;
use super::protocol::{CONNECT, Incoming, Parser};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long connecting, including the `CONNECT`/`PING` handshake, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The writing half.
pub struct NatsWriter {
    sink: SplitSink<Socket, Message>,
}

/// The reading half, with its parser (so that [`NatsReader::next`] is cancel-safe).
pub struct NatsReader {
    stream: SplitStream<Socket>,
    parser: Parser,
}

/// Connects, sends `CONNECT` and waits for the `PONG` of a `PING`.
///
/// # Errors
/// [`NatsError::Connect`] if the socket cannot be opened, [`NatsError::Server`] if the server
/// refuses the connection, [`NatsError::Timeout`] if the handshake takes too long.
pub async fn connect(url: &str) -> Result<(NatsWriter, NatsReader), NatsError> {
    let handshake = async {
        // The native hub client's socket settings (Nagle off, a 16 KiB read buffer), so both
        // sides of a comparison read and write alike.
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| NatsError::Connect { url: url.to_owned(), reason: e.to_string() })?;
        let (sink, stream) = socket.split();
        let mut writer = NatsWriter { sink };
        let mut reader = NatsReader { stream, parser: Parser::default() };
        writer.send(CONNECT.to_vec()).await?;
        loop {
            match reader.next().await? {
                Incoming::Pong => return Ok((writer, reader)),
                Incoming::Ping => writer.send(b"PONG\r\n".to_vec()).await?,
                Incoming::Err(e) => return Err(NatsError::Server(e)),
                _ => {}
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, handshake).await.map_err(|_| NatsError::Timeout {
        what: format!("connect to {url}"),
        after: CONNECT_TIMEOUT,
    })?
}

impl NatsWriter {
    /// Sends raw protocol bytes and flushes.
    ///
    /// # Errors
    /// [`NatsError::Socket`] if the socket fails.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), NatsError> {
        self.sink.send(Message::Binary(bytes.into())).await.map_err(socket)
    }

    /// Queues raw protocol bytes without flushing, so that one flush carries many operations.
    ///
    /// # Errors
    /// [`NatsError::Socket`] if the socket fails.
    pub async fn feed(&mut self, bytes: Vec<u8>) -> Result<(), NatsError> {
        self.sink.feed(Message::Binary(bytes.into())).await.map_err(socket)
    }

    /// Flushes what was fed.
    ///
    /// # Errors
    /// [`NatsError::Socket`] if the socket fails.
    pub async fn flush(&mut self) -> Result<(), NatsError> {
        self.sink.flush().await.map_err(socket)
    }

    /// `PUB subject n` with a payload, fed, not flushed.
    ///
    /// # Errors
    /// [`NatsError::Socket`] if the socket fails.
    pub async fn publish(&mut self, subject: &str, payload: &[u8]) -> Result<(), NatsError> {
        self.feed(super::protocol::publish(subject, None, &[], payload)).await
    }

    /// Sends a `PING` and flushes everything fed before it.
    ///
    /// # Errors
    /// [`NatsError::Socket`] if the socket fails.
    pub async fn ping(&mut self) -> Result<(), NatsError> {
        self.send(b"PING\r\n".to_vec()).await
    }
}

impl NatsReader {
    /// The next protocol operation; answering `PING`s is left to the caller. Cancel-safe.
    ///
    /// # Errors
    /// [`NatsError::Closed`] when the server closes the connection, [`NatsError::Socket`] or
    /// [`NatsError::Protocol`] when it cannot be read.
    pub async fn next(&mut self) -> Result<Incoming, NatsError> {
        loop {
            if let Some(op) = self.parser.next()? {
                return Ok(op);
            }
            match self.stream.next().await {
                Some(Ok(Message::Binary(b))) => self.parser.push(&b),
                Some(Ok(Message::Text(t))) => self.parser.push(t.as_bytes()),
                Some(Ok(Message::Close(_))) | None => return Err(NatsError::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(socket(e)),
            }
        }
    }
}

fn socket(e: tokio_tungstenite::tungstenite::Error) -> NatsError {
    NatsError::Socket(e.to_string())
}
