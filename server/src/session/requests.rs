//! Decoding, validating and handling one client frame: decode → validate → handle → reply.

use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::names;
use switchboard_protocol::{
    ClientFrame, CloseCode, Deliver, ErrorCode, ErrorFrame, Reply, ReplyBody, ServerFrame,
};

use super::outbox::encode_message;
use super::{Flow, Session};
use crate::stats::Stats;

/// A request that failed, and whether it counts as a bad frame (input that breaks the protocol).
struct Failure {
    error: ErrorFrame,
    bad: bool,
}

impl Failure {
    fn bad(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            error: ErrorFrame::new(id, code, message),
            bad: true,
        }
    }

    fn refused(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            error: ErrorFrame::new(Some(id), code, message),
            bad: false,
        }
    }
}

impl Session {
    /// Handles one data message and queues its answer in the format it came in.
    pub(super) fn handle(&mut self, bytes: &[u8], format: Format) -> Flow {
        Stats::add(&self.hub.stats.frames_in, 1);
        let outcome = self.dispatch(bytes, format);
        let frame = match outcome {
            Ok(reply) => {
                self.bad_frames = 0;
                ServerFrame::Ok(reply)
            }
            Err(failure) => {
                if failure.bad {
                    Stats::add(&self.hub.stats.bad_frames, 1);
                    self.bad_frames += 1;
                }
                ServerFrame::Error(failure.error)
            }
        };
        if let Some(message) = encode_message(&frame, format) {
            self.outbox.reply(message);
        }
        if self.bad_frames >= self.hub.config.max_bad_frames {
            return Flow::Close(CloseCode::TooManyBadFrames);
        }
        Flow::Continue
    }

    fn dispatch(&mut self, bytes: &[u8], format: Format) -> Result<Reply, Failure> {
        let max = self.hub.config.max_frame_bytes as usize;
        if bytes.len() > max {
            return Err(Failure::bad(
                None,
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {} bytes exceeds max_frame_bytes {max}",
                    bytes.len()
                ),
            ));
        }
        let frame = codec::decode_client(bytes, format)
            .map_err(|e| Failure::bad(e.request_id, e.code, e.message))?;
        match frame {
            ClientFrame::Hello(_) => Err(Failure::bad(
                None,
                ErrorCode::UnexpectedHello,
                "this session already said hello",
            )),
            ClientFrame::Ping(ping) => Ok(Reply {
                id: ping.id,
                result: None,
            }),
            ClientFrame::Publish(p) => {
                names::validate_topic(&p.topic)
                    .map_err(|e| Failure::bad(Some(p.id), ErrorCode::InvalidName, e.to_string()))?;
                let receivers = self.hub.topics.publish(Deliver {
                    topic: p.topic,
                    data: p.data,
                    headers: p.headers,
                });
                Ok(Reply {
                    id: p.id,
                    result: Some(ReplyBody::Published { receivers }),
                })
            }
            ClientFrame::Subscribe(s) => {
                names::validate_pattern(&s.pattern)
                    .map_err(|e| Failure::bad(Some(s.id), ErrorCode::InvalidName, e.to_string()))?;
                if !self.subscriptions.contains(&s.pattern) {
                    let max = self.hub.config.max_subscriptions as usize;
                    if self.subscriptions.len() >= max {
                        return Err(Failure::refused(
                            s.id,
                            ErrorCode::TooManySubscriptions,
                            format!("this session already holds max_subscriptions ({max})"),
                        ));
                    }
                    self.hub.topics.subscribe(self.id, &s.pattern, &self.outbox);
                    self.subscriptions.insert(s.pattern);
                }
                Ok(Reply {
                    id: s.id,
                    result: None,
                })
            }
            ClientFrame::Unsubscribe(u) => {
                names::validate_pattern(&u.pattern)
                    .map_err(|e| Failure::bad(Some(u.id), ErrorCode::InvalidName, e.to_string()))?;
                if self.subscriptions.remove(&u.pattern) {
                    self.hub.topics.unsubscribe(self.id, &u.pattern);
                }
                Ok(Reply {
                    id: u.id,
                    result: None,
                })
            }
        }
    }
}
