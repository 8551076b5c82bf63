//! The pending-request table: every request the core created and the hub has not answered,
//! whether it still waits in the local queue or is in flight on the socket.
//!
//! The table knows nothing of what a request means. Each entry carries a [`Purpose`] (who waits
//! for the answer), an [`OnDisconnect`] policy (what a lost socket does to it) and a deadline,
//! so stream and queue operations can reuse it by adding purposes, not machinery.

use std::collections::VecDeque;

use crate::core::sorted::{SortedMap, SortedSet};

use bytes::Bytes;
use switchboard_protocol::frame::LeaseRef;

use super::output::{ConsumerId, OpId, ReaderId};
use super::queues::LeaseKey;

/// What happens to a request that was sent when its socket is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDisconnect {
    /// The hub may or may not have acted on it; resending could do it twice. Fail the operation
    /// with `disconnected`. Topic publishes and pings are at-most-once, so they use this.
    Fail,
    /// Safe to resend (idempotent, or carries an idempotency key): queue it again, ahead of
    /// newer requests, with the same id and deadline.
    Resend,
    /// Drop it: the state it was changing is restored as a whole after the next `welcome`
    /// (subscriptions are re-sent from the desired set, readers are read again).
    Restore,
}

/// Who waits for a request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// An application operation, completed with the answer.
    Op(OpId),
    /// A hub subscription to this pattern, on behalf of every local subscription using it.
    Subscribe { pattern: String },
    /// Removing the hub's subscription to a pattern; `op` is the application `unsubscribe`
    /// that released the last local subscription, if it waits.
    Unsubscribe { pattern: String, op: Option<OpId> },
    /// The core's own keep-alive ping.
    Liveness,
    /// A reader's `read` on the current session: its first or a restore.
    Read { reader: ReaderId },
    /// Credit for a reader; nobody waits for the answer.
    Credit,
    /// Stopping a hub reader; `op` is the application's `close_reader`, if it waits.
    CloseReader { op: Option<OpId> },
    /// A `pull`: the leases of the tasks it returns are recorded before `op` completes.
    Pull { op: OpId },
    /// A settle of `lease` (`ack`, `nack`, `release`, `reject`, or `extend` when `extend`);
    /// `op` is the application's, if it waits (the core's own releases have none).
    Settle { op: Option<OpId>, lease: LeaseKey, extend: bool },
    /// An application's `ack_many` of `tasks` in `queue`.
    AckMany { op: OpId, queue: String, tasks: Vec<LeaseRef> },
    /// A consumer's `consume` on the current session (its first, a restore or a top-up),
    /// asking for `prefetch`.
    Consume { consumer: ConsumerId, prefetch: u32 },
    /// Stopping a hub consumer; `op` is the application's `stop_consumer`, if it waits.
    StopConsume { op: Option<OpId> },
}

/// One request: its encoded frame and what to do with its answer.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) frame: Bytes,
    pub(crate) purpose: Purpose,
    pub(crate) on_disconnect: OnDisconnect,
    pub(crate) deadline: u64,
    /// Whether it is on the socket (in flight) rather than in the local queue.
    pub(crate) sent: bool,
}

/// The table, the send queue and the in-flight count.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    table: SortedMap<u64, Request>,
    /// Ids waiting to be sent, in send order. Entries whose request was answered, cancelled or
    /// timed out while queued stay until they reach the front (removing from the middle of a
    /// deque is linear); `queued` counts the live ones.
    queue: VecDeque<u64>,
    queued: usize,
    in_flight: usize,
    /// (deadline, id) of every request, so the earliest deadline is the first entry.
    timers: SortedSet<(u64, u64)>,
    last_id: u64,
}

impl Requests {
    /// A new request id, never used before by this client.
    pub(crate) fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Requests waiting in the local queue.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Requests on the socket awaiting an answer.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Adds a request to the queue: at the back, or at the front to go before everything
    /// already waiting.
    pub(crate) fn enqueue(&mut self, id: u64, mut request: Request, front: bool) {
        request.sent = false;
        self.timers.insert((request.deadline, id));
        self.table.insert(id, request);
        self.queued += 1;
        if front {
            self.queue.push_front(id);
        } else {
            self.queue.push_back(id);
        }
    }

    /// The next queued request's id and frame length, skipping stale queue entries.
    pub(crate) fn peek_queued(&mut self) -> Option<(u64, usize)> {
        while let Some(&id) = self.queue.front() {
            match self.table.get(&id) {
                Some(r) if !r.sent => return Some((id, r.frame.len())),
                _ => {
                    self.queue.pop_front();
                }
            }
        }
        None
    }

    /// Moves the front of the queue onto the socket and returns its frame.
    pub(crate) fn send_front(&mut self) -> Option<Bytes> {
        let (id, _) = self.peek_queued()?;
        self.queue.pop_front();
        let request = self.table.get_mut(&id)?;
        request.sent = true;
        self.queued -= 1;
        self.in_flight += 1;
        Some(request.frame.clone())
    }

    /// Removes a request (answered, timed out or cancelled) and returns it.
    ///
    /// A request that times out in flight frees its slot although the hub may still be working
    /// on it, so a session can briefly exceed `max_in_flight` by such requests. Keeping the
    /// slot instead would let a hub that never answers block the client for good; a dead hub
    /// is found by the keep-alive ping, and an over-limit request is refused by the hub with
    /// `too_many_in_flight`, not dropped.
    pub(crate) fn take(&mut self, id: u64) -> Option<Request> {
        let request = self.table.remove(&id)?;
        self.timers.remove(&(request.deadline, id));
        if request.sent {
            self.in_flight -= 1;
        } else {
            self.queued -= 1;
        }
        Some(request)
    }

    /// Whether the request is in flight (as opposed to queued or gone).
    pub(crate) fn is_sent(&self, id: u64) -> bool {
        self.table.get(&id).is_some_and(|r| r.sent)
    }

    /// The earliest deadline of any request.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(deadline, _)| deadline)
    }

    /// Removes and returns one request whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: u64) -> Option<(u64, Request)> {
        let &(deadline, id) = self.timers.first()?;
        if deadline > now {
            return None;
        }
        let request = self.take(id)?;
        Some((id, request))
    }

    /// The socket was lost. Requests in flight are settled by their policy: `Resend` ones go
    /// back to the front of the queue in their original order; `Fail` and `Restore` ones are
    /// removed and returned for the caller to settle. Queued requests stay queued unless
    /// `drop_queued` says their purpose is restored another way.
    pub(crate) fn disconnect(
        &mut self,
        drop_queued: impl Fn(&Purpose) -> bool,
    ) -> Vec<(u64, Request)> {
        let mut removed = Vec::new();
        let mut resend = Vec::new();
        let ids: Vec<u64> = self.table.keys().copied().collect();
        for id in ids {
            let Some(request) = self.table.get(&id) else {
                continue;
            };
            let remove = if request.sent {
                request.on_disconnect != OnDisconnect::Resend
            } else {
                drop_queued(&request.purpose)
            };
            if remove {
                if let Some(r) = self.take(id) {
                    removed.push((id, r));
                }
            } else if request.sent {
                resend.push(id);
            }
        }
        // Oldest first: push the resent ones to the front in reverse so the oldest leads.
        for &id in resend.iter().rev() {
            if let Some(request) = self.table.get_mut(&id) {
                request.sent = false;
                self.in_flight -= 1;
                self.queued += 1;
                self.queue.push_front(id);
            }
        }
        removed
    }

    /// Removes every request, for a client that is shutting down.
    pub(crate) fn drain(&mut self) -> Vec<(u64, Request)> {
        self.queue.clear();
        self.timers.clear();
        self.queued = 0;
        self.in_flight = 0;
        std::mem::take(&mut self.table).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(purpose: Purpose, on_disconnect: OnDisconnect, deadline: u64) -> Request {
        Request {
            frame: Bytes::from_static(b"frame"),
            purpose,
            on_disconnect,
            deadline,
            sent: false,
        }
    }

    #[test]
    fn disconnect_should_settle_sent_requests_by_policy_and_keep_queued_ones() {
        let mut t = Requests::default();
        let policies =
            [OnDisconnect::Fail, OnDisconnect::Resend, OnDisconnect::Restore, OnDisconnect::Resend];
        for (i, policy) in policies.into_iter().enumerate() {
            let id = t.next_id();
            t.enqueue(id, request(Purpose::Op(i as u64), policy, 100), false);
        }
        for _ in 0..4 {
            assert!(t.send_front().is_some());
        }
        let queued_id = t.next_id();
        t.enqueue(queued_id, request(Purpose::Op(9), OnDisconnect::Fail, 100), false);
        assert_eq!((t.in_flight(), t.queued()), (4, 1));

        let removed: Vec<u64> = t.disconnect(|_| false).into_iter().map(|(id, _)| id).collect();
        assert_eq!(removed, vec![1, 3]);
        assert_eq!((t.in_flight(), t.queued()), (0, 3));
        let mut order = Vec::new();
        while let Some((id, _)) = t.peek_queued() {
            order.push(id);
            t.send_front();
        }
        assert_eq!(order, vec![2, 4, queued_id], "resent requests lead, oldest first");
    }

    #[test]
    fn take_should_keep_counts_right_for_queued_and_sent_requests() {
        let mut t = Requests::default();
        for _ in 0..3 {
            let id = t.next_id();
            t.enqueue(id, request(Purpose::Liveness, OnDisconnect::Fail, id * 10), false);
        }
        t.send_front();
        assert!(t.take(1).is_some_and(|r| r.sent));
        assert!(t.take(3).is_some_and(|r| !r.sent));
        assert!(t.take(3).is_none());
        assert_eq!((t.in_flight(), t.queued()), (0, 1));
        assert_eq!(t.next_deadline(), Some(20));
        assert_eq!(t.peek_queued().map(|(id, _)| id), Some(2));
    }
}
