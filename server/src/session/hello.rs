//! The opening of a session: wait for `hello` under a deadline, check it, answer `welcome`.

use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::{
    ClientFrame, CloseCode, ErrorCode, ErrorFrame, Hello, PROTOCOL_VERSION, ServerFrame, Welcome,
};

use super::outbox::encode_message;
use super::send_close;
use crate::Hub;

/// How the opening went.
pub(super) enum Opening {
    /// A valid hello; frames use `format`.
    Accepted { hello: Hello, format: Format },
    /// The session was refused and closed, or the peer went away.
    Ended,
}

/// Waits for a valid `hello` and answers `welcome`, or refuses the session.
pub(super) async fn open<S, R>(sink: &mut S, stream: &mut R, hub: &Hub, session: u64) -> Opening
where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(u64::from(hub.config.hello_timeout_ms));
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let (bytes, format) = match next {
            Err(_) => {
                send_close(sink, stream, CloseCode::HelloTimeout).await;
                return Opening::Ended;
            }
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Opening::Ended,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(b)))) => (b, Format::MsgPack),
            Ok(Some(Ok(Message::Text(t)))) => (bytes::Bytes::from(t), Format::Json),
        };
        let refusal = match check(&bytes, format, hub) {
            Ok(hello) => {
                let welcome = ServerFrame::Welcome(Welcome {
                    session,
                    server: crate::VERSION.to_owned(),
                    protocol: PROTOCOL_VERSION,
                    limits: hub.config.limits(),
                });
                let Some(message) = encode_message(&welcome, format) else {
                    send_close(sink, stream, CloseCode::InternalError).await;
                    return Opening::Ended;
                };
                if sink.send(message).await.is_err() {
                    return Opening::Ended;
                }
                return Opening::Accepted { hello, format };
            }
            Err(refusal) => refusal,
        };
        let (error, close) = refusal;
        tracing::debug!(session, code = %error.name, "session refused: {}", error.message);
        if let Some(message) = encode_message(&ServerFrame::Error(error), format) {
            let _ = sink.send(message).await;
        }
        send_close(sink, stream, close).await;
        return Opening::Ended;
    }
}

fn check(bytes: &[u8], format: Format, hub: &Hub) -> Result<Hello, (ErrorFrame, CloseCode)> {
    let refuse =
        |id, code, message: String, close| Err((ErrorFrame::new(id, code, message), close));
    let max = hub.config.max_frame_bytes as usize;
    if bytes.len() > max {
        return refuse(
            None,
            ErrorCode::FrameTooLarge,
            format!("frame of {} bytes exceeds max_frame_bytes {max}", bytes.len()),
            CloseCode::HelloRequired,
        );
    }
    let hello = match codec::decode_client(bytes, format) {
        Ok(ClientFrame::Hello(hello)) => hello,
        Ok(other) => {
            return refuse(
                other.request_id(),
                ErrorCode::HelloRequired,
                format!("the first frame must be hello, got {}", other.op()),
                CloseCode::HelloRequired,
            );
        }
        Err(e) => {
            let message = format!("the first frame must be hello: {}", e.message);
            return refuse(e.request_id, e.code, message, CloseCode::HelloRequired);
        }
    };
    if hello.version != PROTOCOL_VERSION {
        return refuse(
            None,
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {} is not supported; this hub speaks {PROTOCOL_VERSION}",
                hello.version
            ),
            CloseCode::UnsupportedVersion,
        );
    }
    let tokens = &hub.config.tokens;
    if !tokens.is_empty() && !hello.token.as_ref().is_some_and(|t| tokens.contains(t)) {
        return refuse(
            None,
            ErrorCode::Unauthorized,
            "a valid token is required".to_owned(),
            CloseCode::Unauthorized,
        );
    }
    Ok(hello)
}
