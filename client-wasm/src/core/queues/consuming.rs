//! Push consumers in the core: `consume`, `stop_consumer`, what the hub sends consumers, and
//! re-issuing every consumer after a reconnect.
//!
//! # Restoring
//! Hub consumers end with their session, but their leases do not. After each `welcome` every
//! consumer asks for a new hub consumer — after the topic subscriptions and the stream readers,
//! before any queued request — with its prefetch minus the tasks it still holds; one holding
//! its whole prefetch waits until one of them ends. The hub's new consumer id is mapped to the
//! same local consumer, so the application sees one uninterrupted stream of tasks. See
//! `consumers` for the top-up that restores the full prefetch once the old tasks have ended.
//!
//! A restore the hub refuses for a passing reason (`too_many_in_flight`, `internal`,
//! `shutting_down`, `storage_failure`) is retried after `min_delay_ms`; any other refusal ends
//! the consumer with that error.
//!
//! # Tasks nobody takes
//! Tasks for a hub consumer id the core does not know (a consumer stopped while tasks were on
//! their way, or started by a `consume` whose answer came too late) are released at once, so
//! they go to another consumer instead of waiting out their lease.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{
    ClientFrame, Consume, ConsumerClosed, ReplyBody, StopConsume, TaskDelivery,
};

use super::consumers::Consumer;
use super::{Abandoned, lease_key};
use crate::core::requests::{Purpose, Request};
use crate::core::{ClientCore, ClientError, ClientNotice, ConsumerEvent, ConsumerId, OpId, Output};

impl ClientCore {
    /// Starts a push consumer on `queue` that holds at most `prefetch` unsettled tasks. The
    /// returned id is both the operation's and the consumer's. The operation completes with
    /// [`ReplyBody::Consuming`] once the hub started it (after the next `welcome` if
    /// disconnected); from then on [`Output::Consumer`] carries its tasks until
    /// [`ConsumerEvent::Ended`], and the consumer survives reconnects.
    ///
    /// The completion fails with `invalid_name`, `invalid_argument` (a zero prefetch, or more
    /// than the hub allows), `backlogged`, `timeout`, `closed`, or the hub's error.
    pub fn consume(&mut self, now_ms: u64, queue: &str, prefetch: u32) -> ConsumerId {
        let consumer = self.new_op();
        let Some(queue) = self.queue_name(consumer, queue) else {
            return consumer;
        };
        if prefetch == 0 {
            let error =
                ClientError::new(ErrorCode::InvalidArgument, "a consumer needs a prefetch of 1");
            self.complete(consumer, Err(error));
            return consumer;
        }
        if let Err(e) = self.admit() {
            self.complete(consumer, Err(e));
            return consumer;
        }
        let timer = now_ms.saturating_add(self.config.request_timeout_ms);
        self.queues.consumers.insert(consumer, Consumer::new(queue, prefetch, timer));
        // Disconnected: the next `welcome` sends it with the others.
        if self.is_ready() {
            self.send_consume(now_ms, consumer, false);
        }
        self.pump(now_ms);
        consumer
    }

    /// Stops a consumer: it ends at once locally ([`ConsumerEvent::Ended`] without error) and
    /// the hub is told. Tasks already delivered stay leased until settled or expired; the
    /// transport should release those the application never took. The operation completes
    /// when the hub answered, or at once when there is no session; stopping an ended consumer
    /// succeeds.
    pub fn stop_consumer(&mut self, now_ms: u64, consumer: ConsumerId) -> OpId {
        let op = self.new_op();
        let Some(state) = self.remove_consumer(consumer) else {
            self.complete(op, Ok(None));
            return op;
        };
        if state.started {
            let event = ConsumerEvent::Ended { error: None };
            self.emit(Output::Consumer { consumer, event });
        } else {
            let error = ClientError::new(ErrorCode::Closed, "stopped before the consumer started");
            self.complete(consumer, Err(error));
        }
        let hubs: Vec<u64> = state.hubs.iter().map(|&(hub, _)| hub).collect();
        match hubs.split_last().filter(|_| self.is_ready()) {
            Some((&last, others)) => {
                for &hub in others {
                    self.stop_hub_consumer(now_ms, hub, None);
                }
                self.stop_hub_consumer(now_ms, last, Some(op));
            }
            None => self.complete(op, Ok(None)),
        }
        self.pump(now_ms);
        op
    }

    /// Unsettled tasks delivered to `consumer` whose leases have not expired, for bindings
    /// that want to show it.
    pub fn consumer_held(&self, consumer: ConsumerId) -> Option<u32> {
        self.queues.consumers.get(consumer).map(Consumer::held)
    }

    /// Queues a `consume` of `consumer` for the current session if it wants one.
    fn send_consume(&mut self, now_ms: u64, consumer: ConsumerId, front: bool) {
        let Some(state) = self.queues.consumers.get(consumer) else {
            return;
        };
        let Some(prefetch) = state.wanted() else {
            return;
        };
        let queue = state.queue.clone();
        let build = |id| ClientFrame::Consume(Consume { id, queue, prefetch });
        let purpose = Purpose::Consume { consumer, prefetch };
        let id = self.enqueue_internal(now_ms, build, purpose, front);
        if let Some(state) = self.queues.consumers.get_mut(consumer) {
            state.request = Some((id, prefetch));
        }
    }

    /// A lease of `consumer` ended: ask for more if that lets it.
    pub(crate) fn top_up(&mut self, now_ms: u64, consumer: ConsumerId) {
        let started = self.queues.consumers.get(consumer).is_some_and(|c| c.started);
        if started && self.is_ready() {
            self.send_consume(now_ms, consumer, false);
        }
    }

    /// After `welcome`: re-issues every consumer. Called before the readers and subscriptions
    /// are queued, all at the front, so the order is subscriptions, readers, consumers, then
    /// everything else.
    pub(crate) fn restore_consumers(&mut self, now_ms: u64) {
        for consumer in self.queues.consumers.ids().into_iter().rev() {
            self.send_consume(now_ms, consumer, true);
        }
    }

    pub(crate) fn stop_hub_consumer(&mut self, now_ms: u64, hub: u64, op: Option<OpId>) {
        let build = |id| ClientFrame::StopConsume(StopConsume { id, consumer: hub });
        self.enqueue_internal(now_ms, build, Purpose::StopConsume { op }, false);
    }

    /// Removes a consumer and cancels its `consume` request (a sent one is abandoned, so a hub
    /// consumer it starts is stopped).
    fn remove_consumer(&mut self, consumer: ConsumerId) -> Option<Consumer> {
        let state = self.queues.consumers.remove(consumer)?;
        if let Some((id, _)) = state.request {
            let sent = self.requests.is_sent(id);
            self.requests.take(id);
            if sent {
                self.queues.abandoned.insert(id, Abandoned::Consume);
            }
        }
        Some(state)
    }

    /// Ends a consumer on an error: the application's `consume` fails if it had not started,
    /// or the consumer ends and the application gets a notice. Its hub consumers other than
    /// `closed` are stopped.
    fn fail_consumer(
        &mut self,
        now_ms: u64,
        consumer: ConsumerId,
        error: ClientError,
        closed: Option<u64>,
    ) {
        let Some(state) = self.remove_consumer(consumer) else {
            return;
        };
        if self.is_ready() {
            for &(hub, _) in state.hubs.iter().filter(|(hub, _)| Some(*hub) != closed) {
                self.stop_hub_consumer(now_ms, hub, None);
            }
        }
        if state.started {
            let event = ConsumerEvent::Ended { error: Some(error.clone()) };
            self.emit(Output::Consumer { consumer, event });
            self.emit(Output::Notice(ClientNotice::Error(error)));
        } else {
            self.complete(consumer, Err(error));
        }
    }

    pub(crate) fn on_task(&mut self, now_ms: u64, delivery: TaskDelivery) {
        let key = lease_key(&delivery.task);
        let Some(consumer) = self.queues.consumers.by_hub(delivery.consumer) else {
            self.release_internal(now_ms, key);
            return;
        };
        let owner = self.queues.consumers.owner(consumer);
        if self.queues.leases.insert(key, delivery.task.deadline, Some(owner)) {
            self.queues.consumers.lease_started(owner);
        }
        let event = ConsumerEvent::Task(delivery.task);
        self.emit(Output::Consumer { consumer, event });
    }

    pub(crate) fn on_consumer_closed(&mut self, now_ms: u64, frame: ConsumerClosed) {
        if let Some(consumer) = self.queues.consumers.by_hub(frame.consumer) {
            self.fail_consumer(now_ms, consumer, frame.error.into(), Some(frame.consumer));
        }
    }

    /// The answer to a consumer's `consume` request `id`.
    pub(crate) fn on_consume_reply(
        &mut self,
        now_ms: u64,
        id: u64,
        consumer: ConsumerId,
        prefetch: u32,
        result: Result<Option<ReplyBody>, ClientError>,
    ) {
        let current = self
            .queues
            .consumers
            .get(consumer)
            .is_some_and(|c| c.request.is_some_and(|(r, _)| r == id));
        if !current {
            if let Ok(Some(ReplyBody::Consuming { consumer: hub })) = result {
                self.stop_hub_consumer(now_ms, hub, None);
            }
            return;
        }
        let started = self.queues.consumers.get(consumer).is_some_and(|c| c.started);
        if let Some(state) = self.queues.consumers.get_mut(consumer) {
            state.request = None;
        }
        match result {
            Ok(Some(ReplyBody::Consuming { consumer: hub })) => {
                self.queues.consumers.add_hub(consumer, hub, prefetch);
                if !started {
                    if let Some(state) = self.queues.consumers.get_mut(consumer) {
                        state.started = true;
                    }
                    self.queues.consumers.set_timer(consumer, None);
                    self.complete(consumer, Ok(Some(ReplyBody::Consuming { consumer: hub })));
                }
                // Old tasks may have ended while this was on its way.
                self.top_up(now_ms, consumer);
            }
            Ok(other) => {
                let error = ClientError::new(
                    ErrorCode::Internal,
                    format!(
                        "the hub answered a consume with {}",
                        other.as_ref().map_or("no result", ReplyBody::name)
                    ),
                );
                self.fail_consumer(now_ms, consumer, error, None);
            }
            Err(error) if started && error.is_passing() => {
                let retry = now_ms.saturating_add(self.config.min_delay_ms);
                self.queues.consumers.set_timer(consumer, Some(retry));
            }
            Err(error) => self.fail_consumer(now_ms, consumer, error, None),
        }
    }

    /// A consumer's `consume` request timed out, queued or in flight.
    pub(crate) fn on_consume_timeout(
        &mut self,
        now_ms: u64,
        id: u64,
        consumer: ConsumerId,
        request: &Request,
    ) {
        if request.sent {
            self.queues.abandoned.insert(id, Abandoned::Consume);
        }
        let Some(state) = self.queues.consumers.get_mut(consumer) else {
            return;
        };
        if state.request.is_none_or(|(r, _)| r != id) {
            return;
        }
        state.request = None;
        let expired = !state.started && state.timer.is_none_or(|at| at <= now_ms);
        if expired {
            self.fail_consumer(now_ms, consumer, ClientError::timeout(), None);
        } else if self.is_ready() {
            self.send_consume(now_ms, consumer, false);
        }
    }

    /// Consumer timers: `consume` operations that waited too long, and restores to retry.
    pub(crate) fn on_consumer_timers(&mut self, now_ms: u64) {
        while let Some(consumer) = self.queues.consumers.take_expired(now_ms) {
            let Some(state) = self.queues.consumers.get(consumer) else {
                continue;
            };
            if !state.started {
                self.fail_consumer(now_ms, consumer, ClientError::timeout(), None);
            } else if self.is_ready() {
                self.send_consume(now_ms, consumer, false);
            }
        }
    }

    /// The client is done: every consumer ends with `error` (`None` for the application's
    /// close), `consume` operations still waiting fail with `op_error`, and leases are
    /// forgotten.
    pub(crate) fn end_consumers(&mut self, error: Option<&ClientError>, op_error: &ClientError) {
        for (consumer, state) in self.queues.consumers.drain() {
            if state.started {
                let event = ConsumerEvent::Ended { error: error.cloned() };
                self.emit(Output::Consumer { consumer, event });
            } else {
                self.complete(consumer, Err(op_error.clone()));
            }
        }
        self.queues.leases.clear();
        self.queues.abandoned.clear();
    }
}
