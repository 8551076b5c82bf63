//! A session's bounded outbound queue, shared by everything that sends to the session.
//!
//! Three kinds of traffic share it, each bounded differently:
//! - topic deliveries: bounded by `outbox_bytes`. At the bound the slow-consumer policy decides:
//!   `notify` drops the message for this session and counts it per topic until the writer has
//!   taken everything queued, then queues one `lagged` notice per topic; `disconnect` closes the
//!   session with 4005. Either way the publisher never waits.
//! - stream frames (records, assignments): never dropped; bounded by each reader's credit.
//! - replies: never dropped. Their number is bounded because the session stops reading requests
//!   while `max_in_flight` replies wait to be written.
//! - control (pings, the final close): at most a few at a time.
//!
//! While the writer is busy with one batch a full queue can build up behind it, so a session
//! holds at most about twice `outbox_bytes` of topic messages.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::{Message, Utf8Bytes};
use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::{CloseCode, Notice, ServerFrame};
use tokio::sync::Notify;

use crate::config::SlowConsumerPolicy;
use crate::stats::Stats;

/// One item for the socket writer.
#[derive(Debug)]
pub enum Out {
    /// A frame ready to send.
    Message(Message),
    /// A WebSocket ping.
    Ping,
}

/// What [`Outbox::deliver`] did with a topic message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    Dropped,
    Closed,
}

/// A session's outbound queue.
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when something is queued or the session closes.
    wake_writer: Notify,
    /// Wakes the session loop when replies were taken by the writer.
    space: Notify,
    /// Wakes the session loop when the outbox decided to close the session.
    closing: Notify,
    limit_bytes: usize,
    policy: SlowConsumerPolicy,
    format: Format,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct State {
    items: VecDeque<Out>,
    topic_bytes: usize,
    replies: usize,
    lagging: bool,
    missed: HashMap<String, u64>,
    close: Option<CloseCode>,
}

/// A batch taken by the writer.
#[derive(Debug, Default)]
pub struct Batch {
    pub items: Vec<Out>,
    /// Set when the session is closing: send the items, then this close code, then stop.
    pub close: Option<CloseCode>,
}

impl Outbox {
    /// An empty outbox for a session whose hello came in `format`.
    pub fn new(
        limit_bytes: u64,
        policy: SlowConsumerPolicy,
        format: Format,
        stats: Arc<Stats>,
    ) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            wake_writer: Notify::new(),
            space: Notify::new(),
            closing: Notify::new(),
            limit_bytes: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            policy,
            format,
            stats,
        }
    }

    /// The format server-initiated frames use on this session.
    pub fn format(&self) -> Format {
        self.format
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every update is
        // a single push or take), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a topic message, or applies the slow-consumer policy if the queue is full.
    pub fn deliver(&self, topic: &str, message: Message, len: usize) -> Delivery {
        let mut state = self.lock();
        if state.close.is_some() {
            return Delivery::Closed;
        }
        if state.lagging || state.topic_bytes + len > self.limit_bytes {
            match self.policy {
                SlowConsumerPolicy::Notify => {
                    state.lagging = true;
                    match state.missed.get_mut(topic) {
                        Some(n) => *n += 1,
                        None => {
                            state.missed.insert(topic.to_owned(), 1);
                        }
                    }
                    Stats::add(&self.stats.dropped_slow, 1);
                    return Delivery::Dropped;
                }
                SlowConsumerPolicy::Disconnect => {
                    state.close = Some(CloseCode::SlowConsumer);
                    state.items.clear();
                    drop(state);
                    Stats::add(&self.stats.slow_disconnects, 1);
                    self.closing.notify_one();
                    self.wake_writer.notify_one();
                    return Delivery::Closed;
                }
            }
        }
        state.topic_bytes += len;
        // The writer takes everything at once, so only the first item after it emptied the
        // queue needs to wake it: a fan-out to many sessions then wakes each writer once per
        // batch instead of once per message.
        let wake = state.items.is_empty();
        state.items.push_back(Out::Message(message));
        drop(state);
        if wake {
            self.wake_writer.notify_one();
        }
        Delivery::Queued
    }

    /// Queues a reply or notice; these are never dropped. Returns false once closing.
    pub fn reply(&self, message: Message) -> bool {
        let mut state = self.lock();
        if state.close.is_some() {
            return false;
        }
        state.replies += 1;
        state.items.push_back(Out::Message(message));
        drop(state);
        self.wake_writer.notify_one();
        true
    }

    /// Queues a stream frame (records, assignments); never dropped, because readers bound
    /// what they send by the client's credit. Returns false once closing.
    pub fn stream(&self, message: Message) -> bool {
        let mut state = self.lock();
        if state.close.is_some() {
            return false;
        }
        state.items.push_back(Out::Message(message));
        drop(state);
        self.wake_writer.notify_one();
        true
    }

    /// Whether the session is closing.
    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Queues a WebSocket ping.
    pub fn ping(&self) {
        let mut state = self.lock();
        if state.close.is_none() {
            state.items.push_back(Out::Ping);
            drop(state);
            self.wake_writer.notify_one();
        }
    }

    /// Asks the writer to send what is queued, then close with `code`. The first close wins.
    pub fn close(&self, code: CloseCode) {
        let mut state = self.lock();
        if state.close.is_none() {
            state.close = Some(code);
        }
        drop(state);
        self.wake_writer.notify_one();
    }

    /// Replies queued and not yet taken by the writer.
    pub fn pending_replies(&self) -> usize {
        self.lock().replies
    }

    /// Waits until the writer takes queued replies.
    pub async fn space(&self) {
        self.space.notified().await;
    }

    /// Waits until the outbox itself decides to close the session (slow consumer).
    pub async fn closing(&self) -> CloseCode {
        loop {
            if let Some(code) = self.lock().close {
                return code;
            }
            self.closing.notified().await;
        }
    }

    /// Takes everything queued, waiting until there is something or the session closes. When
    /// the session was lagging, the `lagged` notices follow the taken items.
    pub async fn next_batch(&self) -> Batch {
        loop {
            {
                let mut state = self.lock();
                if !state.items.is_empty() || state.close.is_some() {
                    // The queue's buffer becomes the batch (no copy while it has not wrapped).
                    let mut items = Vec::from(std::mem::take(&mut state.items));
                    state.topic_bytes = 0;
                    let had_replies = std::mem::take(&mut state.replies) > 0;
                    if state.lagging && state.close.is_none() {
                        state.lagging = false;
                        for (topic, missed) in state.missed.drain() {
                            if let Some(m) = self.encode_notice(Notice::Lagged { topic, missed }) {
                                items.push(Out::Message(m));
                            }
                        }
                    }
                    let close = state.close;
                    drop(state);
                    if had_replies {
                        self.space.notify_one();
                    }
                    return Batch { items, close };
                }
            }
            self.wake_writer.notified().await;
        }
    }

    fn encode_notice(&self, notice: Notice) -> Option<Message> {
        encode_message(&ServerFrame::Notice(notice), self.format)
    }
}

/// Encodes a frame as a WebSocket message of `format`.
pub fn encode_message(frame: &ServerFrame, format: Format) -> Option<Message> {
    match codec::encode(frame, format) {
        Ok(bytes) => Some(match format {
            Format::MsgPack => Message::Binary(bytes.into()),
            Format::Json => match Utf8Bytes::try_from(bytes) {
                Ok(text) => Message::Text(text),
                Err(_) => return None,
            },
        }),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a server frame");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(limit: u64, policy: SlowConsumerPolicy) -> Outbox {
        Outbox::new(limit, policy, Format::Json, Arc::new(Stats::default()))
    }

    fn msg(n: usize) -> Message {
        Message::Binary(vec![0u8; n].into())
    }

    fn texts(batch: &Batch) -> Vec<String> {
        batch
            .items
            .iter()
            .filter_map(|o| match o {
                Out::Message(Message::Text(t)) => Some(t.to_string()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn notify_policy_should_drop_until_drained_then_report_missed_per_topic() {
        let o = outbox(100, SlowConsumerPolicy::Notify);
        assert_eq!(o.deliver("a", msg(60), 60), Delivery::Queued);
        assert_eq!(o.deliver("a", msg(60), 60), Delivery::Dropped);
        // Once lagging, even a message that would fit is dropped until the queue drains.
        assert_eq!(o.deliver("b", msg(10), 10), Delivery::Dropped);
        assert_eq!(o.deliver("a", msg(10), 10), Delivery::Dropped);
        let batch = o.next_batch().await;
        assert_eq!(batch.items.len(), 3);
        let mut notices = texts(&batch);
        notices.sort();
        assert_eq!(
            notices,
            vec![
                r#"{"notice":{"lagged":{"topic":"a","missed":2}}}"#,
                r#"{"notice":{"lagged":{"topic":"b","missed":1}}}"#
            ]
        );
        assert_eq!(o.deliver("a", msg(60), 60), Delivery::Queued);
        assert_eq!(o.stats.dropped_slow.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn disconnect_policy_should_close_with_slow_consumer() {
        let o = outbox(100, SlowConsumerPolicy::Disconnect);
        assert_eq!(o.deliver("a", msg(60), 60), Delivery::Queued);
        assert_eq!(o.deliver("a", msg(60), 60), Delivery::Closed);
        assert_eq!(o.closing().await, CloseCode::SlowConsumer);
        let batch = o.next_batch().await;
        assert_eq!(batch.close, Some(CloseCode::SlowConsumer));
        assert!(batch.items.is_empty());
        assert!(!o.reply(msg(1)));
    }

    #[tokio::test]
    async fn replies_should_never_be_dropped_and_be_counted_until_taken() {
        let o = outbox(10, SlowConsumerPolicy::Notify);
        assert_eq!(o.deliver("a", msg(10), 10), Delivery::Queued);
        for _ in 0..5 {
            assert!(o.reply(msg(100)));
        }
        assert_eq!(o.pending_replies(), 5);
        let batch = o.next_batch().await;
        assert_eq!(batch.items.len(), 6);
        assert_eq!(o.pending_replies(), 0);
    }

    #[tokio::test]
    async fn close_should_flush_queued_items_first() {
        let o = outbox(100, SlowConsumerPolicy::Notify);
        assert!(o.reply(msg(1)));
        o.close(CloseCode::GoingAway);
        o.close(CloseCode::Normal);
        let batch = o.next_batch().await;
        assert_eq!(batch.items.len(), 1);
        assert_eq!(batch.close, Some(CloseCode::GoingAway));
    }
}
