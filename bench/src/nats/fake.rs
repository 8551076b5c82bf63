//! A scripted stand-in for nats-server in unit tests: a WebSocket listener on 127.0.0.1 that
//! answers the handshake, then lets each test play the server's part.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The fake server's end of the connection.
pub type Server = WebSocketStream<TcpStream>;

/// Starts a fake server for one connection and returns its URL: it sends `INFO`, expects
/// `CONNECT`, answers the handshake's `PING`, then runs `script`.
pub async fn fake<F, Fut>(script: F) -> String
where
    F: FnOnce(Server) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        say(&mut ws, "INFO {}\r\n").await;
        let connect = ws.next().await.unwrap().unwrap();
        assert!(connect.into_data().starts_with(b"CONNECT "));
        say(&mut ws, "PONG\r\n").await;
        script(ws).await;
    });
    url
}

/// Sends protocol text to the client.
pub async fn say(ws: &mut Server, text: &str) {
    ws.send(Message::Binary(text.as_bytes().to_vec().into())).await.unwrap();
}

/// Receives until every one of `needles` has been seen; returns what was received.
pub async fn until(ws: &mut Server, needles: &[&[u8]]) -> Vec<u8> {
    let mut seen = Vec::new();
    while !needles.iter().all(|n| seen.windows(n.len()).any(|w| w == *n)) {
        seen.extend_from_slice(&ws.next().await.unwrap().unwrap().into_data());
    }
    seen
}
