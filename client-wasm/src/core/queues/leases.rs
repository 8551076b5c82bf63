//! The leases this client holds: every task a `pull` or a consumer delivered and nobody has
//! settled yet, with its deadline on the transport's monotonic clock. Pure bookkeeping, no
//! frames: [`super::settling`] turns it into requests and failures.
//!
//! # Deadlines
//! The hub states a lease's deadline in wall-clock milliseconds; the core only has a monotonic
//! clock. The transport tells the core how the two relate ([`crate::ClientCore::set_wall_clock`])
//! and each deadline is converted once, when its task arrives (or an `extend` answers). Without
//! that input deadlines are unknown: leases never expire locally, tasks of `pull`s are not
//! recorded at all, and only the hub's answers end leases.
//!
//! The local clock is trusted as it is. A clock running ahead of the hub's fails settles
//! locally that early, but only settles that were still waiting for a connection (on a live
//! socket the hub decides); one running behind sends settles the hub then refuses with
//! `lease_expired`, which is the truth anyway.
//!
//! # Ending
//! A lease ends when a settle other than `extend` succeeds, when the hub answers
//! `lease_expired` or `not_found`, or when its deadline passes locally. An expired lease is
//! remembered for [`FORGET_AFTER_MS`] more, so that a settle arriving after the deadline fails
//! at once instead of waiting for a connection only to be refused.

use crate::core::sorted::{SortedMap, SortedSet};

use crate::core::ConsumerId;

/// How long an expired lease is remembered after its deadline.
pub(crate) const FORGET_AFTER_MS: u64 = 60_000;

/// Names one lease: the hub settles by exactly these three.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LeaseKey {
    pub(crate) queue: String,
    pub(crate) task: u64,
    pub(crate) lease: u64,
}

/// The consumer a lease was delivered to, and on which session (see
/// [`super::consumers::Consumers::generation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) consumer: ConsumerId,
    pub(crate) generation: u64,
}

#[derive(Debug, Clone)]
struct Lease {
    /// On the monotonic clock; `None` without a wall clock.
    deadline: Option<u64>,
    owner: Option<Owner>,
    /// The deadline passed locally; kept only to fail late settles at once.
    expired: bool,
    /// Settle requests naming this lease, queued or in flight.
    settles: SortedSet<u64>,
}

/// What became of a lease whose timer fired.
#[derive(Debug)]
pub(crate) struct Expired {
    pub(crate) key: LeaseKey,
    pub(crate) owner: Option<Owner>,
    pub(crate) settles: Vec<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Leases {
    leases: SortedMap<LeaseKey, Lease>,
    /// (when, lease): the deadline of a live lease, or when to forget an expired one.
    timers: SortedSet<(u64, LeaseKey)>,
    /// Wall-clock ms minus monotonic ms, once the transport said.
    offset: Option<i128>,
}

impl Leases {
    /// The transport's wall clock reads `wall_ms` at monotonic `now_ms`.
    pub(crate) fn set_clock(&mut self, now_ms: u64, wall_ms: u64) {
        self.offset = Some(i128::from(wall_ms) - i128::from(now_ms));
    }

    /// The wall clock at monotonic `now_ms`, if the transport gave one.
    pub(crate) fn wall(&self, now_ms: u64) -> Option<u64> {
        let wall = i128::from(now_ms) + self.offset?;
        u64::try_from(wall.max(0)).ok()
    }

    /// A wall-clock time on the monotonic clock, if the transport gave a wall clock.
    fn local(&self, wall_ms: u64) -> Option<u64> {
        let local = i128::from(wall_ms) - self.offset?;
        Some(u64::try_from(local.max(0)).unwrap_or(u64::MAX))
    }

    /// Records a lease that just arrived. Returns whether it is new (a duplicate delivery is not
    /// counted twice). Without a wall clock, leases of `pull`s (no owner) are not recorded:
    /// nothing could ever be checked against them.
    pub(crate) fn insert(
        &mut self,
        key: LeaseKey,
        wall_deadline: u64,
        owner: Option<Owner>,
    ) -> bool {
        let deadline = self.local(wall_deadline);
        if self.leases.contains_key(&key) || (deadline.is_none() && owner.is_none()) {
            return false;
        }
        if let Some(at) = deadline {
            self.timers.insert((at, key.clone()));
        }
        self.leases
            .insert(key, Lease { deadline, owner, expired: false, settles: SortedSet::new() });
        true
    }

    /// Whether `key` is known to be past its deadline at `now`.
    pub(crate) fn is_past(&self, key: &LeaseKey, now: u64) -> bool {
        self.leases.get(key).is_some_and(|l| l.expired || l.deadline.is_some_and(|d| d <= now))
    }

    /// Remembers that settle request `request` names `key`.
    pub(crate) fn add_settle(&mut self, key: &LeaseKey, request: u64) {
        if let Some(lease) = self.leases.get_mut(key) {
            lease.settles.insert(request);
        }
    }

    /// Forgets settle request `request` of `key` (answered or timed out).
    pub(crate) fn remove_settle(&mut self, key: &LeaseKey, request: u64) {
        if let Some(lease) = self.leases.get_mut(key) {
            lease.settles.remove(&request);
        }
    }

    /// The lease ended (settled, or the hub says it is gone). Returns its owner if it still
    /// counted against a consumer, that is if it had not expired locally already.
    pub(crate) fn end(&mut self, key: &LeaseKey) -> Option<Owner> {
        let lease = self.leases.remove(key)?;
        self.drop_timer(key, lease.expired, lease.deadline);
        if lease.expired { None } else { lease.owner }
    }

    /// An `extend` answered with a new wall-clock deadline. Returns the owner if the lease had
    /// expired locally and so counts against its consumer again (a local clock ahead of the
    /// hub's).
    pub(crate) fn extend(&mut self, key: &LeaseKey, wall_deadline: u64) -> Option<Owner> {
        let deadline = self.local(wall_deadline);
        let lease = self.leases.get_mut(key)?;
        let (was_expired, old) = (lease.expired, lease.deadline);
        lease.deadline = deadline;
        lease.expired = false;
        let owner = lease.owner;
        self.drop_timer(key, was_expired, old);
        if let Some(at) = deadline {
            self.timers.insert((at, key.clone()));
        }
        if was_expired { owner } else { None }
    }

    /// Removes the timer a lease in that state has.
    fn drop_timer(&mut self, key: &LeaseKey, expired: bool, deadline: Option<u64>) {
        let Some(deadline) = deadline else {
            return;
        };
        let at = if expired { deadline.saturating_add(FORGET_AFTER_MS) } else { deadline };
        self.timers.remove(&(at, key.clone()));
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// One lease whose deadline is at or before `now`, now marked expired (and forgotten
    /// [`FORGET_AFTER_MS`] later). Expired leases due to be forgotten are dropped on the way.
    pub(crate) fn take_expired(&mut self, now: u64) -> Option<Expired> {
        loop {
            let (at, key) = self.timers.first().filter(|(at, _)| *at <= now)?.clone();
            self.timers.remove(&(at, key.clone()));
            let Some(lease) = self.leases.get_mut(&key) else {
                continue;
            };
            if lease.expired {
                self.leases.remove(&key);
                continue;
            }
            lease.expired = true;
            let settles = lease.settles.iter().copied().collect();
            let owner = lease.owner;
            self.timers.insert((at.saturating_add(FORGET_AFTER_MS), key.clone()));
            return Some(Expired { key, owner, settles });
        }
    }

    /// Settle requests of leases past their deadline at `now`.
    pub(crate) fn past_settles(&self, now: u64) -> Vec<(LeaseKey, u64)> {
        self.leases
            .iter()
            .filter(|(_, l)| l.expired || l.deadline.is_some_and(|d| d <= now))
            .flat_map(|(key, l)| l.settles.iter().map(move |&id| (key.clone(), id)))
            .collect()
    }

    /// Forgets everything, for a client that is shutting down.
    pub(crate) fn clear(&mut self) {
        self.leases.clear();
        self.timers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(task: u64) -> LeaseKey {
        LeaseKey { queue: "q".into(), task, lease: 1 }
    }

    #[test]
    fn deadlines_should_be_converted_from_the_wall_clock_to_the_monotonic_one() {
        let mut leases = Leases::default();
        leases.set_clock(1_000, 1_700_000_000_000);
        assert!(leases.insert(key(1), 1_700_000_030_000, None));
        assert_eq!(leases.next_deadline(), Some(31_000));
        assert!(!leases.is_past(&key(1), 30_999));
        assert!(leases.is_past(&key(1), 31_000));
    }

    #[test]
    fn an_expired_lease_should_stop_counting_and_be_forgotten_later() {
        let mut leases = Leases::default();
        leases.set_clock(0, 0);
        let owner = Owner { consumer: 7, generation: 1 };
        assert!(leases.insert(key(1), 100, Some(owner)));
        assert!(!leases.insert(key(1), 100, Some(owner)), "a duplicate is not new");
        leases.add_settle(&key(1), 42);
        assert!(leases.take_expired(99).is_none());
        let expired = leases.take_expired(100).expect("due");
        assert_eq!((expired.owner, expired.settles), (Some(owner), vec![42]));
        assert!(leases.is_past(&key(1), 0), "remembered as expired");
        assert_eq!(leases.next_deadline(), Some(100 + FORGET_AFTER_MS));
        assert!(leases.take_expired(100 + FORGET_AFTER_MS).is_none());
        assert!(!leases.is_past(&key(1), 0), "forgotten");
        assert_eq!(leases.end(&key(1)), None);
    }

    #[test]
    fn ending_a_lease_should_report_its_owner_only_while_it_counted() {
        let mut leases = Leases::default();
        leases.set_clock(0, 0);
        let owner = Owner { consumer: 7, generation: 1 };
        leases.insert(key(1), 100, Some(owner));
        leases.insert(key(2), 100, Some(owner));
        assert_eq!(leases.end(&key(1)), Some(owner));
        leases.take_expired(100);
        assert_eq!(leases.end(&key(2)), None, "already stopped counting when it expired");
        assert_eq!(leases.next_deadline(), None);
    }

    #[test]
    fn extend_should_move_the_deadline_and_revive_a_lease_expired_locally() {
        let mut leases = Leases::default();
        leases.set_clock(0, 0);
        let owner = Owner { consumer: 7, generation: 1 };
        leases.insert(key(1), 100, Some(owner));
        assert_eq!(leases.extend(&key(1), 500), None);
        assert_eq!(leases.next_deadline(), Some(500));
        leases.take_expired(500);
        assert_eq!(leases.extend(&key(1), 900), Some(owner), "counts again");
        assert_eq!(leases.next_deadline(), Some(900));
        assert!(!leases.is_past(&key(1), 899));
    }

    #[test]
    fn without_a_wall_clock_pulled_leases_should_not_be_recorded_and_none_should_expire() {
        let mut leases = Leases::default();
        assert!(!leases.insert(key(1), 100, None));
        assert!(leases.insert(key(2), 100, Some(Owner { consumer: 1, generation: 0 })));
        assert_eq!(leases.next_deadline(), None);
        assert!(!leases.is_past(&key(2), u64::MAX));
    }
}
