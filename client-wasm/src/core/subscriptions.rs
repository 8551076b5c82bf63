//! Local subscriptions and the desired set of hub patterns they need.
//!
//! Many local subscriptions may share one pattern; the hub is subscribed once per distinct
//! pattern (a refcount) and delivers each message once per session, so dispatch to every
//! matching local subscription happens here.

use crate::core::sorted::{SortedMap, SortedSet};

use switchboard_protocol::names::pattern_matches;

use super::output::SubId;

/// One subscription the application holds (or is waiting for).
#[derive(Debug, Clone)]
pub(crate) struct LocalSub {
    pub(crate) pattern: String,
    /// Acknowledged and handed to the application: messages are dispatched to it.
    pub(crate) active: bool,
    /// While not active: when the `subscribe` operation times out.
    pub(crate) deadline: Option<u64>,
    /// Messages the hub reported as lost for this subscription's pattern.
    pub(crate) missed: u64,
}

/// The hub-side state of one distinct pattern.
#[derive(Debug, Clone, Default)]
pub(crate) struct PatternState {
    /// The local subscriptions using it; the pattern leaves the desired set with the last one.
    pub(crate) subs: SortedSet<SubId>,
    /// The hub acknowledged it on the current session.
    pub(crate) acked: bool,
    /// The `subscribe` request asking for it on the current session, queued or in flight.
    pub(crate) request: Option<u64>,
}

/// What releasing a local subscription left to do on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Released {
    /// Other local subscriptions still use the pattern.
    StillUsed,
    /// The last one went; the hub was subscribed (`acked`) or asked to be (`request`).
    Last { acked: bool, request: Option<u64> },
}

/// Every local subscription, the desired pattern set and the pending-subscribe timers.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    subs: SortedMap<SubId, LocalSub>,
    patterns: SortedMap<String, PatternState>,
    timers: SortedSet<(u64, SubId)>,
    pending: usize,
}

impl Subscriptions {
    /// Subscriptions still waiting for their pattern's acknowledgement.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    pub(crate) fn get(&self, sub: SubId) -> Option<&LocalSub> {
        self.subs.get(&sub)
    }

    pub(crate) fn pattern(&self, pattern: &str) -> Option<&PatternState> {
        self.patterns.get(pattern)
    }

    pub(crate) fn pattern_mut(&mut self, pattern: &str) -> Option<&mut PatternState> {
        self.patterns.get_mut(pattern)
    }

    /// Adds a pending local subscription and returns its pattern's state.
    pub(crate) fn add(&mut self, sub: SubId, pattern: &str, deadline: u64) -> &mut PatternState {
        self.subs.insert(
            sub,
            LocalSub {
                pattern: pattern.to_owned(),
                active: false,
                deadline: Some(deadline),
                missed: 0,
            },
        );
        self.timers.insert((deadline, sub));
        self.pending += 1;
        let state = self.patterns.get_or_insert_with(pattern.to_owned(), PatternState::default);
        state.subs.insert(sub);
        state
    }

    /// Marks the pending subscriptions of `pattern` active and returns them, in id order.
    pub(crate) fn activate(&mut self, pattern: &str) -> Vec<SubId> {
        let Some(state) = self.patterns.get(pattern) else {
            return Vec::new();
        };
        let mut activated = Vec::new();
        for &sub in &state.subs {
            if let Some(local) = self.subs.get_mut(&sub)
                && !local.active
            {
                local.active = true;
                if let Some(deadline) = local.deadline.take() {
                    self.timers.remove(&(deadline, sub));
                }
                self.pending -= 1;
                activated.push(sub);
            }
        }
        activated
    }

    /// Removes a local subscription and updates its pattern's refcount.
    pub(crate) fn remove(&mut self, sub: SubId) -> Option<(LocalSub, Released)> {
        let local = self.subs.remove(&sub)?;
        if let Some(deadline) = local.deadline {
            self.timers.remove(&(deadline, sub));
        }
        if !local.active {
            self.pending -= 1;
        }
        let released = match self.patterns.get_mut(&local.pattern) {
            Some(state) => {
                state.subs.remove(&sub);
                if state.subs.is_empty() {
                    let (acked, request) = (state.acked, state.request);
                    self.patterns.remove(&local.pattern);
                    Released::Last { acked, request }
                } else {
                    Released::StillUsed
                }
            }
            None => Released::StillUsed,
        };
        Some((local, released))
    }

    /// Removes every local subscription of `pattern` and the pattern itself.
    pub(crate) fn remove_pattern(&mut self, pattern: &str) -> Vec<(SubId, LocalSub)> {
        let Some(state) = self.patterns.remove(pattern) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for sub in state.subs {
            if let Some(local) = self.subs.remove(&sub) {
                if let Some(deadline) = local.deadline {
                    self.timers.remove(&(deadline, sub));
                }
                if !local.active {
                    self.pending -= 1;
                }
                removed.push((sub, local));
            }
        }
        removed
    }

    /// Removes everything, for a client that is shutting down.
    pub(crate) fn drain(&mut self) -> Vec<(SubId, LocalSub)> {
        self.patterns.clear();
        self.timers.clear();
        self.pending = 0;
        std::mem::take(&mut self.subs).into_iter().collect()
    }

    /// The socket was lost: the next session starts with no hub subscriptions.
    pub(crate) fn disconnect(&mut self) {
        for state in self.patterns.values_mut() {
            state.acked = false;
            state.request = None;
        }
    }

    /// Every pattern of the desired set, in order.
    pub(crate) fn desired(&self) -> Vec<String> {
        self.patterns.keys().cloned().collect()
    }

    /// The earliest pending-subscribe deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(deadline, _)| deadline)
    }

    /// One pending subscription whose deadline is at or before `now`.
    pub(crate) fn expired(&self, now: u64) -> Option<SubId> {
        self.timers.first().filter(|&&(deadline, _)| deadline <= now).map(|&(_, sub)| sub)
    }

    /// Active local subscriptions whose pattern matches `topic`, in id order.
    pub(crate) fn matching(&self, topic: &str) -> Vec<SubId> {
        let mut out = Vec::new();
        self.matching_into(topic, &mut out);
        out
    }

    /// [`Subscriptions::matching`] into `out` (cleared first), so that a caller can reuse one
    /// buffer rather than allocate one per message.
    pub(crate) fn matching_into(&self, topic: &str, out: &mut Vec<SubId>) {
        out.clear();
        for (pattern, state) in &self.patterns {
            if matches(pattern, topic) {
                for &sub in &state.subs {
                    if self.subs.get(&sub).is_some_and(|l| l.active)
                        && let Err(at) = out.binary_search(&sub)
                    {
                        out.insert(at, sub);
                    }
                }
            }
        }
    }

    /// Adds `missed` to a subscription's lost-message count.
    pub(crate) fn add_missed(&mut self, sub: SubId, missed: u64) {
        if let Some(local) = self.subs.get_mut(&sub) {
            local.missed = local.missed.saturating_add(missed);
        }
    }
}

/// Whether `topic` matches `pattern`. A pattern without wildcards matches only itself, which
/// one comparison tells without splitting both into segments.
fn matches(pattern: &str, topic: &str) -> bool {
    pattern == topic
        || (pattern.bytes().any(|b| b == b'*' || b == b'>') && pattern_matches(pattern, topic))
}
