//! [`RawClient`]: a bare WebSocket speaking the protocol frame by frame.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::{
    ClientFrame, Hello, PROTOCOL_VERSION, Payload, Publish, ServerFrame, Subscribe, Welcome,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long [`RawClient::recv`] waits before failing the test.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// What arrived on the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Frame(ServerFrame),
    /// The hub closed the socket with this close code (`None`: without a close frame).
    Closed(Option<u16>),
}

/// A raw protocol client.
pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    format: Format,
    next_id: u64,
    /// Frames read while waiting for a reply, kept for later `recv` calls.
    backlog: VecDeque<ServerFrame>,
}

impl RawClient {
    /// Opens a socket without saying hello.
    pub async fn connect(url: &str, format: Format) -> RawClient {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        RawClient { ws, format, next_id: 1, backlog: VecDeque::new() }
    }

    /// Opens a socket and completes the hello/welcome exchange.
    pub async fn hello(url: &str, format: Format) -> (RawClient, Welcome) {
        let mut client = RawClient::connect(url, format).await;
        client
            .send(&ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                token: None,
                client: Some("raw-test".into()),
            }))
            .await;
        match client.recv().await {
            Received::Frame(ServerFrame::Welcome(w)) => (client, w),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a frame in this client's format.
    pub async fn send(&mut self, frame: &ClientFrame) {
        let bytes = codec::encode(frame, self.format).expect("encode");
        match self.format {
            Format::MsgPack => self.send_binary(bytes).await,
            Format::Json => self.send_text(&String::from_utf8(bytes).expect("utf8")).await,
        }
    }

    /// Sends a frame; false if the socket is gone (for tests that kill the hub).
    pub async fn try_send(&mut self, frame: &ClientFrame) -> bool {
        let bytes = codec::encode(frame, self.format).expect("encode");
        let message = match self.format {
            Format::MsgPack => Message::Binary(bytes.into()),
            Format::Json => Message::Text(String::from_utf8(bytes).expect("utf8").into()),
        };
        self.ws.send(message).await.is_ok()
    }

    /// Sends arbitrary bytes as a binary message.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.expect("send");
    }

    /// Sends arbitrary text as a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// The next frame or the close, within [`RECV_TIMEOUT`].
    pub async fn recv(&mut self) -> Received {
        if let Some(frame) = self.backlog.pop_front() {
            return Received::Frame(frame);
        }
        self.recv_within(RECV_TIMEOUT).await.expect("nothing received in time")
    }

    /// The next frame or the close, or `None` if nothing arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Received> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(Received::Frame(frame));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?;
            let (bytes, format) = match next {
                None | Some(Err(_)) => return Some(Received::Closed(None)),
                Some(Ok(Message::Close(frame))) => {
                    return Some(Received::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(Message::Binary(b))) => (b.to_vec(), Format::MsgPack),
                Some(Ok(Message::Text(t))) => (t.as_bytes().to_vec(), Format::Json),
                Some(Ok(_)) => continue,
            };
            let frame = codec::decode_server(&bytes, format).expect("hub sent a bad frame");
            return Some(Received::Frame(frame));
        }
    }

    /// The next frame; panics on close.
    pub async fn frame(&mut self) -> ServerFrame {
        match self.recv().await {
            Received::Frame(f) => f,
            Received::Closed(code) => panic!("socket closed ({code:?}) while a frame was expected"),
        }
    }

    /// Reads until the hub closes the socket; returns the close code. Frames before the close
    /// are returned too.
    pub async fn until_close(&mut self) -> (Vec<ServerFrame>, Option<u16>) {
        let mut frames = Vec::new();
        loop {
            match self.recv().await {
                Received::Frame(f) => frames.push(f),
                Received::Closed(code) => return (frames, code),
            }
        }
    }

    /// Sends a request and returns its `ok` or `error`, keeping other frames for later.
    pub async fn request(&mut self, frame: ClientFrame) -> ServerFrame {
        let id = frame.request_id().expect("a request");
        self.send(&frame).await;
        let mut kept = Vec::new();
        let reply = loop {
            let next = match self.backlog.pop_front() {
                Some(f) => f,
                None => match self.recv_within(RECV_TIMEOUT).await {
                    Some(Received::Frame(f)) => f,
                    other => panic!("no reply to request {id}: {other:?}"),
                },
            };
            match &next {
                ServerFrame::Ok(r) if r.id == id => break next,
                ServerFrame::Error(e) if e.id == Some(id) => break next,
                _ => kept.push(next),
            }
        };
        self.backlog.extend(kept);
        reply
    }

    /// Subscribes and asserts it succeeded.
    pub async fn subscribe(&mut self, pattern: &str) {
        let id = self.id();
        let reply =
            self.request(ClientFrame::Subscribe(Subscribe { id, pattern: pattern.into() })).await;
        assert!(matches!(reply, ServerFrame::Ok(_)), "subscribe {pattern}: {reply:?}");
    }

    /// Publishes and asserts it succeeded.
    pub async fn publish(&mut self, topic: &str, data: impl Into<Payload>) {
        let id = self.id();
        let frame = ClientFrame::Publish(Publish {
            id,
            topic: topic.into(),
            data: data.into(),
            headers: Default::default(),
        });
        let reply = self.request(frame).await;
        assert!(matches!(reply, ServerFrame::Ok(_)), "publish {topic}: {reply:?}");
    }

    /// The underlying socket, for tests that need to stop reading it.
    pub fn socket(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}
