//! The channel from the driver to one [`super::Subscription`]: bounded, never waited on by the
//! driver, and emptied by the subscription a whole batch at a time.
//!
//! A tokio `mpsc` channel did the same job with several atomic operations per message on each
//! side and a lock on the receiving side (to hand back the slot); here the driver takes one
//! uncontended lock per batch of messages it read, and the subscription one per batch it
//! takes. The bound is
//! the same: messages the subscription has not returned yet, whether still in the shared queue
//! or already in its own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};

use crate::core::Message;

/// A new mailbox holding at most `capacity` messages (at least one).
pub(crate) fn mailbox(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            waker: None,
            sender: true,
            receiver: true,
        }),
        held: AtomicUsize::new(0),
        capacity: capacity.max(1),
    });
    (Sender(Arc::clone(&shared)), Receiver { shared, local: VecDeque::new() })
}

struct Shared {
    state: Mutex<State>,
    /// How many messages the receiver took from the queue and has not returned yet.
    held: AtomicUsize,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the queue is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State {
    queue: VecDeque<Message>,
    /// The receiver's task, waiting for the queue to fill.
    waker: Option<Waker>,
    /// Whether each end still exists.
    sender: bool,
    receiver: bool,
}

/// The driver's end.
pub(crate) struct Sender(Arc<Shared>);

/// The subscription was dropped: it takes no more messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl Sender {
    /// Queues `messages` (leaving it empty) without waiting, in order, as many as there is room
    /// for; returns how many of the last ones there was no room for, which are dropped.
    pub(crate) fn push_all(&self, messages: &mut Vec<Message>) -> Result<usize, Closed> {
        let (dropped, waker) = {
            let mut state = self.0.lock();
            if !state.receiver {
                messages.clear();
                return Err(Closed);
            }
            let held = state.queue.len() + self.0.held.load(Ordering::Relaxed);
            let room = self.0.capacity.saturating_sub(held);
            let dropped = messages.len().saturating_sub(room);
            messages.truncate(messages.len() - dropped);
            state.queue.extend(messages.drain(..));
            (dropped, state.waker.take())
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(dropped)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock();
            state.sender = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The subscription's end.
pub(crate) struct Receiver {
    shared: Arc<Shared>,
    /// The batch taken from the queue, returned one message at a time.
    local: VecDeque<Message>,
}

impl Receiver {
    /// The next message; `None` once the sender is gone and everything was returned.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        // Take part in tokio's cooperative budget as its channels do, so a subscription that
        // always has messages cannot keep its task from yielding.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        if self.local.is_empty() {
            let mut state = self.shared.lock();
            if state.queue.is_empty() {
                if !state.sender {
                    coop.made_progress();
                    return Poll::Ready(None);
                }
                match &state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => state.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            // Swapping keeps both queues' allocations in use rather than growing new ones.
            std::mem::swap(&mut self.local, &mut state.queue);
            // Counted before the lock is released, so the sender never sees these messages in
            // neither place.
            self.shared.held.store(self.local.len(), Ordering::Relaxed);
        }
        let message = self.local.pop_front();
        self.shared.held.store(self.local.len(), Ordering::Relaxed);
        coop.made_progress();
        Poll::Ready(message)
    }

    /// The next message; `None` once the sender is gone and everything was returned.
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let unread = {
            let mut state = self.shared.lock();
            state.receiver = false;
            state.waker = None;
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock: message bodies may be large.
        drop(unread);
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("held", &self.local.len()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn message(n: u8) -> Message {
        Message { topic: "t".to_owned(), data: vec![n].into(), headers: Default::default() }
    }

    /// Pushes one message; how many were dropped.
    fn push(sender: &Sender, n: u8) -> Result<usize, Closed> {
        sender.push_all(&mut vec![message(n)])
    }

    fn poll(receiver: &mut Receiver) -> Poll<Option<u8>> {
        let mut cx = Context::from_waker(Waker::noop());
        receiver.poll_recv(&mut cx).map(|m| m.map(|m| m.data[0]))
    }

    #[test]
    fn messages_should_arrive_in_order_and_the_end_after_the_last() {
        let (sender, mut receiver) = mailbox(8);
        assert_eq!(poll(&mut receiver), Poll::Pending);
        assert_eq!(sender.push_all(&mut (0..3).map(message).collect()), Ok(0));
        assert_eq!(poll(&mut receiver), Poll::Ready(Some(0)));
        assert_eq!(push(&sender, 3), Ok(0));
        drop(sender);
        let rest: Vec<_> = (0..4).map(|_| poll(&mut receiver)).collect();
        let expected = [Some(1), Some(2), Some(3), None].map(Poll::Ready);
        assert_eq!(rest, expected);
    }

    #[test]
    fn a_full_mailbox_should_refuse_until_the_receiver_returns_a_message() {
        let (sender, mut receiver) = mailbox(2);
        let mut three = (0..3).map(message).collect();
        assert_eq!(sender.push_all(&mut three), Ok(1), "the last one has no room");
        assert!(three.is_empty());
        assert_eq!(push(&sender, 9), Ok(1));
        // Taken into the receiver's batch but not returned: still counted.
        assert_eq!(poll(&mut receiver), Poll::Ready(Some(0)));
        assert_eq!(push(&sender, 2), Ok(0));
        assert_eq!(push(&sender, 3), Ok(1));
        assert_eq!(poll(&mut receiver), Poll::Ready(Some(1)));
        assert_eq!(poll(&mut receiver), Poll::Ready(Some(2)));
        assert_eq!(poll(&mut receiver), Poll::Pending);
    }

    #[test]
    fn a_dropped_receiver_should_make_pushes_fail_as_closed() {
        let (sender, receiver) = mailbox(2);
        assert_eq!(push(&sender, 0), Ok(0));
        drop(receiver);
        assert_eq!(push(&sender, 1), Err(Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_should_be_woken_by_a_push() {
        let (sender, mut receiver) = mailbox(2);
        let waiting = tokio::spawn(async move { receiver.recv().await.map(|m| m.data[0]) });
        tokio::task::yield_now().await;
        assert_eq!(push(&sender, 7), Ok(0));
        assert_eq!(waiting.await.unwrap(), Some(7));
    }
}
