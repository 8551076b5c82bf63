//! A subscription handle: a stream of the messages matching one pattern.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use super::client::Command;
use super::mailbox;
use crate::core::{ClientError, Message, SubId};

/// The messages of one subscription, as a [`Stream`] or through [`Subscription::next`].
///
/// Messages wait in a buffer of `subscription_buffer` entries. The driver never waits for a
/// slow reader: when the buffer is full, new messages for this subscription are dropped and
/// counted in [`Subscription::missed`], together with the losses the hub reports.
///
/// Dropping the handle unsubscribes (best effort: if the command channel is full at that
/// moment, the driver notices at the next message for it).
#[derive(Debug)]
pub struct Subscription {
    pub(super) id: SubId,
    pub(super) pattern: String,
    pub(super) messages: mailbox::Receiver,
    pub(super) missed: Arc<AtomicU64>,
    /// Weak, so that subscriptions alone do not keep a client whose handles are all gone open.
    pub(super) commands: mpsc::WeakSender<Command>,
    pub(super) done: bool,
}

impl Subscription {
    /// The subscription's id, unique within its client.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The pattern it was created with.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The next message; `None` once the subscription ended (the client closed or the hub
    /// refused to restore it) and every buffered message was read.
    pub async fn next(&mut self) -> Option<Message> {
        self.messages.recv().await
    }

    /// Messages this subscription lost: those the hub reported dropped (`lagged`) for its
    /// pattern, plus those dropped here because the buffer was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Ends the subscription; the hub is told when it was the last one of its pattern.
    ///
    /// # Errors
    /// The hub's error or `timeout` for the `unsubscribe` request. A closed client has nothing
    /// to unsubscribe from, so that case succeeds.
    pub async fn unsubscribe(mut self) -> Result<(), ClientError> {
        self.done = true;
        let Some(commands) = self.commands.upgrade() else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        let command = Command::Unsubscribe { sub: self.id, reply: Some(reply) };
        if commands.send(command).await.is_err() {
            return Ok(());
        }
        answer.await.unwrap_or(Ok(()))
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.messages.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.try_send(Command::Unsubscribe { sub: self.id, reply: None });
        }
    }
}
