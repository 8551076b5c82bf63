//! The fake hub both native test files script: a listener whose connections the tests drive
//! frame by frame, so the real socket path is tested without the server crate.
// Helpers outside `#[test]` functions: a panic there is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_client::{ClientOptions, Headers};
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::frame::{
    ClientFrame, Deliver, Hello, Reply, ReplyBody, ServerFrame, Welcome,
};
use switchboard_protocol::{Limits, Payload};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{WebSocketStream, accept_async};

pub const WAIT: Duration = Duration::from_secs(5);

/// A listener whose connections the test scripts frame by frame.
pub struct FakeHub {
    listener: TcpListener,
    pub url: String,
}

impl FakeHub {
    pub async fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        FakeHub { listener, url }
    }

    pub async fn accept(&self) -> Conn {
        let (tcp, _) = timeout(WAIT, self.listener.accept()).await.unwrap().unwrap();
        Conn { ws: accept_async(tcp).await.unwrap() }
    }
}

pub struct Conn {
    pub ws: WebSocketStream<TcpStream>,
}

impl Conn {
    /// The next client frame; `None` when the client closed the socket (with the close code).
    pub async fn recv(&mut self) -> Result<ClientFrame, Option<u16>> {
        loop {
            match timeout(WAIT, self.ws.next()).await.expect("client went quiet") {
                Some(Ok(Message::Binary(b))) => {
                    return Ok(codec::decode_client(&b, Format::MsgPack).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code.into())),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    pub async fn frame(&mut self) -> ClientFrame {
        self.recv().await.expect("a frame, not a close")
    }

    pub async fn send(&mut self, frame: ServerFrame) {
        let bytes = codec::encode(&frame, Format::MsgPack).unwrap();
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    pub async fn welcome(&mut self, session: u64) -> Hello {
        let ClientFrame::Hello(hello) = self.frame().await else {
            panic!("hello should come first");
        };
        self.send(ServerFrame::Welcome(Welcome {
            session,
            server: "fake".into(),
            protocol: 1,
            limits: Limits::default(),
        }))
        .await;
        hello
    }

    pub async fn ok(&mut self, id: u64, result: Option<ReplyBody>) {
        self.send(ServerFrame::Ok(Reply { id, result })).await;
    }

    /// Answers the next frame, which must be a `subscribe`, and returns its pattern.
    pub async fn ack_subscribe(&mut self) -> String {
        let ClientFrame::Subscribe(s) = self.frame().await else {
            panic!("expected subscribe");
        };
        self.ok(s.id, None).await;
        s.pattern
    }

    pub async fn deliver(&mut self, topic: &str, data: &str) {
        self.send(ServerFrame::Deliver(Deliver {
            topic: topic.into(),
            data: Payload::from(data),
            headers: Headers::new(),
        }))
        .await;
    }

    pub async fn close(&mut self, code: u16) {
        let frame = CloseFrame { code: code.into(), reason: "".into() };
        let _ = self.ws.close(Some(frame)).await;
    }
}

pub fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(2),
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}
