//! The comparison system: a nats-server started on 127.0.0.1 with a temporary configuration,
//! and a small driver for the NATS text protocol over WebSocket (the transport the hub uses).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running nats-server, stopped when dropped.
pub struct NatsServer {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

fn binary() -> Result<PathBuf> {
    for candidate in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
    {
        if std::path::Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    bail!("nats-server not found: install it (Debian: apt-get install nats-server)")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsServer {
    /// Starts nats-server with WebSocket on a free loopback port and JetStream in a temporary
    /// store (file storage, its default sync behaviour).
    pub async fn start() -> Result<NatsServer> {
        let dir = tempfile::tempdir()?;
        let ws = free_port()?;
        let config = format!(
            "listen: \"127.0.0.1:{}\"\nwebsocket {{\n  listen: \"127.0.0.1:{ws}\"\n  no_tls: true\n}}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
            free_port()?,
            dir.path().join("js").display()
        );
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, config)?;
        let child = Command::new(binary()?)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nats-server")?;
        let url = format!("ws://127.0.0.1:{ws}");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", ws)).await.is_ok() {
                return Ok(NatsServer { url, child, _dir: dir });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("nats-server did not open its WebSocket port")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One NATS connection: the writing half.
pub struct NatsWriter {
    sink: SplitSink<Socket, Message>,
}

/// One NATS connection: the reading half, with its parse buffer.
pub struct NatsReader {
    stream: SplitStream<Socket>,
    buffer: Vec<u8>,
}

/// A protocol message from the server that the benchmark cares about.
#[derive(Debug)]
pub enum Incoming {
    /// `MSG subject sid [reply] n` with its payload.
    Msg {
        payload: Vec<u8>,
    },
    Pong,
    Ping,
    Err(String),
}

/// Connects, reads `INFO`, sends `CONNECT` and waits for the `PONG` of a `PING`.
pub async fn connect(url: &str) -> Result<(NatsWriter, NatsReader)> {
    let (socket, _) =
        tokio_tungstenite::connect_async(url).await.context("connect to nats-server")?;
    let (sink, stream) = socket.split();
    let mut writer = NatsWriter { sink };
    let mut reader = NatsReader { stream, buffer: Vec::new() };
    writer
        .send(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n".to_vec())
        .await?;
    loop {
        match reader.next().await? {
            Incoming::Pong => return Ok((writer, reader)),
            Incoming::Err(e) => bail!("nats-server refused the connection: {e}"),
            _ => {}
        }
    }
}

impl NatsWriter {
    /// Sends raw protocol bytes.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.sink.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// `PUB subject n` with a payload, not flushed on its own.
    pub async fn publish(&mut self, subject: &str, payload: &[u8]) -> Result<()> {
        let mut frame = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        self.sink.feed(Message::Binary(frame.into())).await?;
        Ok(())
    }

    /// Sends a `PING` and flushes everything fed before it.
    pub async fn ping(&mut self) -> Result<()> {
        self.sink.send(Message::Binary(b"PING\r\n".to_vec().into())).await?;
        Ok(())
    }
}

impl NatsReader {
    /// The next protocol message, answering `PING`s is left to the caller.
    pub async fn next(&mut self) -> Result<Incoming> {
        loop {
            if let Some(message) = self.parse()? {
                return Ok(message);
            }
            match self.stream.next().await {
                Some(Ok(Message::Binary(b))) => self.buffer.extend_from_slice(&b),
                Some(Ok(Message::Text(t))) => self.buffer.extend_from_slice(t.as_bytes()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("nats-server closed the connection"),
            }
        }
    }

    fn parse(&mut self) -> Result<Option<Incoming>> {
        loop {
            let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") else {
                return Ok(None);
            };
            let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
            if let Some(rest) = line.strip_prefix("MSG ") {
                let size: usize = rest
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse().ok())
                    .context("MSG size")?;
                let start = end + 2;
                if self.buffer.len() < start + size + 2 {
                    return Ok(None);
                }
                let payload = self.buffer[start..start + size].to_vec();
                self.buffer.drain(..start + size + 2);
                return Ok(Some(Incoming::Msg { payload }));
            }
            self.buffer.drain(..end + 2);
            match line.as_str() {
                "PONG" => return Ok(Some(Incoming::Pong)),
                "PING" => return Ok(Some(Incoming::Ping)),
                l if l.starts_with("-ERR") => return Ok(Some(Incoming::Err(l.to_owned()))),
                _ => continue,
            }
        }
    }
}
