//! Topics: ephemeral publish/subscribe in memory.
//!
//! The engine owns the subscription index. A publish encodes its `deliver` frame once per wire
//! format in use (MessagePack always, JSON only if a JSON session matches) and hands the shared
//! bytes to every matching session's [`Outbox`]. Publishing never waits on a subscriber: a full
//! outbox applies the slow-consumer policy instead. Nothing touches the disk.
//!
//! Order: a session handles its publishes one at a time and each outbox is FIFO, so every
//! subscriber sees one publisher's messages on a topic in publish order.

mod index;

use std::cell::OnceCell;
use std::sync::{Arc, RwLock};

use axum::extract::ws::Message;
use switchboard_protocol::codec::Format;
use switchboard_protocol::{Deliver, ServerFrame};

pub use index::PatternIndex;

use crate::session::outbox::{Delivery, Outbox, encode_message};
use crate::stats::Stats;

/// The topic engine. Shared by all sessions.
pub struct Topics {
    index: RwLock<PatternIndex<Arc<Outbox>>>,
    stats: Arc<Stats>,
}

impl Topics {
    /// An engine with no subscriptions.
    pub fn new(stats: Arc<Stats>) -> Topics {
        Topics { index: RwLock::new(PatternIndex::default()), stats }
    }

    /// Subscribes `session` to a valid `pattern`. Returns false if it already was.
    pub fn subscribe(&self, session: u64, pattern: &str, outbox: &Arc<Outbox>) -> bool {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        index.insert(pattern, session, outbox.clone())
    }

    /// Removes a subscription. Returns false if there was none.
    pub fn unsubscribe(&self, session: u64, pattern: &str) -> bool {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        index.remove(pattern, session)
    }

    /// Removes every subscription of a closing session.
    pub fn remove_session<'a>(&self, session: u64, patterns: impl IntoIterator<Item = &'a str>) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        for pattern in patterns {
            index.remove(pattern, session);
        }
    }

    /// Number of (pattern, session) subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.index.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Hands a message to every session subscribed to a pattern matching its topic. Returns how
    /// many sessions queued it.
    pub fn publish(&self, deliver: Deliver) -> u64 {
        Stats::add(&self.stats.published, 1);
        let topic = deliver.topic.clone();
        let frame = ServerFrame::Deliver(deliver);
        let encoded = Encoded::new(&frame);
        let mut receivers = 0;
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        index.for_each_match(&topic, |_, outbox| {
            let Some((message, len)) = encoded.get(outbox.format()) else {
                return;
            };
            if outbox.deliver(&topic, message, len) == Delivery::Queued {
                receivers += 1;
            }
        });
        drop(index);
        Stats::add(&self.stats.delivered, receivers);
        receivers
    }
}

/// A frame encoded at most once per format, on first use.
struct Encoded<'a> {
    frame: &'a ServerFrame,
    msgpack: OnceCell<Option<(Message, usize)>>,
    json: OnceCell<Option<(Message, usize)>>,
}

impl<'a> Encoded<'a> {
    fn new(frame: &'a ServerFrame) -> Self {
        Encoded { frame, msgpack: OnceCell::new(), json: OnceCell::new() }
    }

    fn get(&self, format: Format) -> Option<(Message, usize)> {
        let cell = match format {
            Format::MsgPack => &self.msgpack,
            Format::Json => &self.json,
        };
        cell.get_or_init(|| {
            let message = encode_message(self.frame, format)?;
            let len = match &message {
                Message::Binary(b) => b.len(),
                Message::Text(t) => t.len(),
                _ => 0,
            };
            Some((message, len))
        })
        .clone()
    }
}
