//! Every queue consumer of one client: by its local id (the op id of `consume`, stable across
//! sessions), by the hub's ids on the current session, and what each may still ask for.
//!
//! # Prefetch across reconnects
//! A consumer promises the application at most `prefetch` unsettled tasks. The hub keeps that
//! promise per hub consumer, but hub consumers die with their session while the leases they
//! handed out live on, so after a reconnect the tasks still held count too:
//!
//! `held from earlier sessions + the prefetch of every hub consumer of this session <= prefetch`
//!
//! A restore therefore asks for `prefetch - held`, and waits while that is zero. Once every task
//! from earlier sessions has ended (settled, or its lease expired), a second `consume` tops the
//! consumer up to its full prefetch; a consumer has at most two hub consumers per session.

use crate::core::sorted::{SortedMap, SortedSet};

use super::leases::Owner;
use crate::core::ConsumerId;

/// One consumer.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    pub(crate) queue: String,
    pub(crate) prefetch: u32,
    /// The first `consume` was answered: the application holds the consumer.
    pub(crate) started: bool,
    /// Not started: when the `consume` operation times out. Started: when to retry a restore
    /// the hub refused for a passing reason.
    pub(crate) timer: Option<u64>,
    /// Hub consumers of the current session and the prefetch each was given.
    pub(crate) hubs: Vec<(u64, u32)>,
    /// The `consume` request of the current session, queued or in flight, and its prefetch.
    pub(crate) request: Option<(u64, u32)>,
    /// Unended leases delivered on the current session.
    held_now: u32,
    /// Unended leases delivered on earlier sessions.
    held_old: u32,
}

impl Consumer {
    pub(crate) fn new(queue: String, prefetch: u32, timer: u64) -> Self {
        Consumer {
            queue,
            prefetch,
            started: false,
            timer: Some(timer),
            hubs: Vec::new(),
            request: None,
            held_now: 0,
            held_old: 0,
        }
    }

    /// Tasks delivered and not yet settled or expired.
    pub(crate) fn held(&self) -> u32 {
        self.held_now.saturating_add(self.held_old)
    }

    /// The prefetch a `consume` sent now should ask for, if one should be sent: none while one
    /// is on its way; the first of a session takes what is free; a second only tops up once the
    /// tasks of earlier sessions have all ended (see the module documentation).
    pub(crate) fn wanted(&self) -> Option<u32> {
        if self.request.is_some() || (!self.hubs.is_empty() && self.held_old > 0) {
            return None;
        }
        let promised: u32 = self.hubs.iter().map(|&(_, p)| p).sum();
        let free = self.prefetch.saturating_sub(promised).saturating_sub(self.held_old);
        (free > 0).then_some(free)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Consumers {
    consumers: SortedMap<ConsumerId, Consumer>,
    /// Hub consumer id → local id, for the current session only.
    by_hub: SortedMap<u64, ConsumerId>,
    /// (deadline, consumer) of every consumer whose `timer` is set.
    timers: SortedSet<(u64, ConsumerId)>,
    /// Counts sessions: leases delivered under another generation are from earlier sessions.
    generation: u64,
}

impl Consumers {
    pub(crate) fn insert(&mut self, id: ConsumerId, consumer: Consumer) {
        if let Some(at) = consumer.timer {
            self.timers.insert((at, id));
        }
        self.consumers.insert(id, consumer);
    }

    pub(crate) fn get(&self, id: ConsumerId) -> Option<&Consumer> {
        self.consumers.get(&id)
    }

    /// The consumer, to change anything but its timer and hub ids.
    pub(crate) fn get_mut(&mut self, id: ConsumerId) -> Option<&mut Consumer> {
        self.consumers.get_mut(&id)
    }

    pub(crate) fn set_timer(&mut self, id: ConsumerId, at: Option<u64>) {
        let Some(consumer) = self.consumers.get_mut(&id) else {
            return;
        };
        if let Some(old) = consumer.timer.take() {
            self.timers.remove(&(old, id));
        }
        consumer.timer = at;
        if let Some(at) = at {
            self.timers.insert((at, id));
        }
    }

    /// The hub started hub consumer `hub` with `prefetch` for `id` on this session.
    pub(crate) fn add_hub(&mut self, id: ConsumerId, hub: u64, prefetch: u32) {
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer.hubs.push((hub, prefetch));
            self.by_hub.insert(hub, id);
        }
    }

    /// The local consumer the hub's `hub` id stands for on this session.
    pub(crate) fn by_hub(&self, hub: u64) -> Option<ConsumerId> {
        self.by_hub.get(&hub).copied()
    }

    pub(crate) fn remove(&mut self, id: ConsumerId) -> Option<Consumer> {
        let consumer = self.consumers.remove(&id)?;
        if let Some(at) = consumer.timer {
            self.timers.remove(&(at, id));
        }
        for (hub, _) in &consumer.hubs {
            self.by_hub.remove(hub);
        }
        Some(consumer)
    }

    /// Every consumer id, oldest first.
    pub(crate) fn ids(&self) -> Vec<ConsumerId> {
        self.consumers.keys().copied().collect()
    }

    /// Consumers the application waits for that have no request in the queue: they count
    /// against `max_pending` like queued requests do.
    pub(crate) fn waiting(&self) -> usize {
        self.consumers.values().filter(|c| !c.started && c.request.is_none()).count()
    }

    /// The owner of a lease delivered to `id` now.
    pub(crate) fn owner(&self, id: ConsumerId) -> Owner {
        Owner { consumer: id, generation: self.generation }
    }

    /// A lease of `owner` was delivered.
    pub(crate) fn lease_started(&mut self, owner: Owner) {
        if let Some(consumer) = self.consumers.get_mut(&owner.consumer) {
            if owner.generation == self.generation {
                consumer.held_now = consumer.held_now.saturating_add(1);
            } else {
                consumer.held_old = consumer.held_old.saturating_add(1);
            }
        }
    }

    /// A lease of `owner` ended.
    pub(crate) fn lease_ended(&mut self, owner: Owner) {
        if let Some(consumer) = self.consumers.get_mut(&owner.consumer) {
            if owner.generation == self.generation {
                consumer.held_now = consumer.held_now.saturating_sub(1);
            } else {
                consumer.held_old = consumer.held_old.saturating_sub(1);
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// One consumer whose timer is at or before `now`; its timer is cleared.
    pub(crate) fn take_expired(&mut self, now: u64) -> Option<ConsumerId> {
        let &(at, id) = self.timers.first().filter(|&&(at, _)| at <= now)?;
        self.timers.remove(&(at, id));
        if let Some(consumer) = self.consumers.get_mut(&id) {
            consumer.timer = None;
        }
        Some(id)
    }

    /// The session ended: hub consumers, requests and retries belonged to it, and every task
    /// held now comes from an earlier session. Consumers that have not started keep their
    /// operation deadline.
    pub(crate) fn disconnect(&mut self) {
        self.by_hub.clear();
        self.generation += 1;
        let ids = self.ids();
        for id in ids {
            let started = self.consumers.get(&id).is_some_and(|c| c.started);
            if started {
                self.set_timer(id, None);
            }
            if let Some(consumer) = self.consumers.get_mut(&id) {
                consumer.hubs.clear();
                consumer.request = None;
                consumer.held_old = consumer.held_old.saturating_add(consumer.held_now);
                consumer.held_now = 0;
            }
        }
    }

    /// Removes every consumer, for a client that is shutting down.
    pub(crate) fn drain(&mut self) -> Vec<(ConsumerId, Consumer)> {
        self.by_hub.clear();
        self.timers.clear();
        std::mem::take(&mut self.consumers).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(prefetch: u32) -> (Consumers, ConsumerId) {
        let mut consumers = Consumers::default();
        let mut consumer = Consumer::new("q".into(), prefetch, 0);
        consumer.started = true;
        consumers.insert(1, consumer);
        consumers.set_timer(1, None);
        (consumers, 1)
    }

    fn wanted(consumers: &Consumers, id: ConsumerId) -> Option<u32> {
        consumers.get(id).and_then(Consumer::wanted)
    }

    #[test]
    fn a_restore_should_ask_for_the_prefetch_minus_the_tasks_still_held_then_top_up() {
        let (mut c, id) = started(10);
        assert_eq!(wanted(&c, id), Some(10));
        c.add_hub(id, 50, 10);
        let owner = c.owner(id);
        for _ in 0..4 {
            c.lease_started(owner);
        }
        assert_eq!(wanted(&c, id), None, "the hub consumer has it all");

        c.disconnect();
        assert_eq!(c.by_hub(50), None);
        assert_eq!(wanted(&c, id), Some(6));
        c.add_hub(id, 60, 6);
        assert_eq!(wanted(&c, id), None, "no top-up while old tasks are held");
        for _ in 0..3 {
            c.lease_ended(owner);
        }
        assert_eq!(wanted(&c, id), None);
        c.lease_ended(owner);
        assert_eq!(wanted(&c, id), Some(4), "old tasks all ended: top up");
        c.add_hub(id, 61, 4);
        assert_eq!(wanted(&c, id), None);
        assert_eq!(c.by_hub(61), Some(id));
    }

    #[test]
    fn a_consumer_holding_its_whole_prefetch_should_wait_for_a_task_to_end() {
        let (mut c, id) = started(2);
        c.add_hub(id, 50, 2);
        let owner = c.owner(id);
        c.lease_started(owner);
        c.lease_started(owner);
        c.disconnect();
        assert_eq!(wanted(&c, id), None);
        c.lease_ended(owner);
        assert_eq!(wanted(&c, id), Some(1));
        assert_eq!(c.get(id).map(Consumer::held), Some(1));
    }
}
