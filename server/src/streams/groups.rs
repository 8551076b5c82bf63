//! Consumer groups: membership, sticky partition assignment with generations, and session
//! timeouts.
//!
//! Membership lives in memory; committed offsets live in redb. Each partition's assignment
//! carries the generation it was made in, and a commit is accepted only with the generation of
//! the partition's current assignment, so a member that lost a partition cannot move the group's
//! offset (fencing). Generations come from the wall clock's milliseconds, so a generation seen
//! before a restart is never handed out again after it.
//!
//! A member whose session ends keeps its partitions for the session timeout: a client that
//! reconnects in time rejoins with its member id and resumes without a rebalance. After the
//! timeout its partitions move to the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::reader::Ctl;

/// (stream id, group name).
pub type GroupKey = (u64, String);

/// A message for a member's reader, to send once the lock is released.
pub type Action = (mpsc::Sender<Ctl>, Ctl);

/// Every group of every stream.
#[derive(Default)]
pub struct Groups {
    inner: Mutex<HashMap<GroupKey, Group>>,
}

struct Group {
    partitions: u32,
    generation: u64,
    members: BTreeMap<String, Member>,
    /// Per partition: the owning member and the generation of that assignment.
    owner: Vec<Option<(String, u64)>>,
}

struct Member {
    ctl: Option<mpsc::Sender<Ctl>>,
    /// When the member's session ended, if it did.
    left_at: Option<u64>,
}

impl Groups {
    /// Adds a member (or reattaches a known one) and rebalances if the membership changed.
    /// Returns the member id and the messages to send to readers.
    pub fn join(
        &self,
        key: &GroupKey,
        partitions: u32,
        member: Option<String>,
        ctl: mpsc::Sender<Ctl>,
        now: u64,
        new_member_id: impl FnOnce() -> String,
    ) -> (String, Vec<Action>) {
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let group = all.entry(key.clone()).or_insert_with(|| Group {
            partitions,
            generation: now,
            members: BTreeMap::new(),
            owner: vec![None; partitions as usize],
        });
        if let Some((id, m)) =
            member.as_ref().and_then(|id| group.members.get_mut(id).map(|m| (id, m)))
        {
            // A member coming back within its session timeout keeps what it had.
            let previous = m.ctl.replace(ctl.clone());
            m.left_at = None;
            let mut actions = Vec::new();
            if let Some(old) = previous {
                actions.push((old, Ctl::Close));
            }
            let owned = group.owned_by(id);
            if !owned.is_empty() {
                actions.push((ctl, Ctl::Assign(owned)));
            }
            return (id.clone(), actions);
        }
        let id = member.unwrap_or_else(new_member_id);
        group.members.insert(id.clone(), Member { ctl: Some(ctl), left_at: None });
        let actions = group.rebalance(now);
        (id, actions)
    }

    /// The member's reader (`ctl`) closed on purpose: it leaves at once. A reader that was
    /// already replaced by a newer one with the same member id leaves nothing.
    pub fn leave(
        &self,
        key: &GroupKey,
        member: &str,
        ctl: &mpsc::Sender<Ctl>,
        now: u64,
    ) -> Vec<Action> {
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(group) = all.get_mut(key) else {
            return Vec::new();
        };
        let current = group
            .members
            .get(member)
            .is_some_and(|m| m.ctl.as_ref().is_some_and(|c| c.same_channel(ctl)));
        if !current || group.members.remove(member).is_none() {
            return Vec::new();
        }
        let actions = group.rebalance(now);
        if group.members.is_empty() {
            all.remove(key);
        }
        actions
    }

    /// The member's session ended: it keeps its partitions until the session timeout.
    pub fn disconnect(&self, key: &GroupKey, member: &str, ctl: &mpsc::Sender<Ctl>, now: u64) {
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = all.get_mut(key).and_then(|g| g.members.get_mut(member))
            && m.ctl.as_ref().is_some_and(|c| c.same_channel(ctl))
        {
            m.ctl = None;
            m.left_at = Some(now);
        }
    }

    /// Removes members whose session ended more than `timeout_ms` ago and rebalances.
    pub fn expire(&self, now: u64, timeout_ms: u64) -> Vec<Action> {
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut actions = Vec::new();
        all.retain(|_, group| {
            let before = group.members.len();
            group
                .members
                .retain(|_, m| m.left_at.is_none_or(|t| now.saturating_sub(t) < timeout_ms));
            if group.members.len() != before {
                actions.extend(group.rebalance(now));
            }
            !group.members.is_empty()
        });
        actions
    }

    /// Drops every group of a deleted stream.
    pub fn forget_stream(&self, stream: u64) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).retain(|(s, _), _| *s != stream);
    }

    /// Whether `generation` is that of the partition's current assignment.
    pub fn generation_is_current(&self, key: &GroupKey, partition: u32, generation: u64) -> bool {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.get(key)
            .and_then(|g| g.owner.get(partition as usize).cloned().flatten())
            .is_some_and(|(_, g)| g == generation)
    }

    /// Number of members (connected or within their timeout) of a group.
    pub fn members(&self, key: &GroupKey) -> u32 {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.get(key).map(|g| g.members.len() as u32).unwrap_or(0)
    }

    /// Ids of members whose session ended and who still hold their partitions.
    pub fn disconnected_members(&self) -> Vec<String> {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.values()
            .flat_map(|g| {
                g.members.iter().filter(|(_, m)| m.left_at.is_some()).map(|(id, _)| id.clone())
            })
            .collect()
    }

    /// Every group name of a stream with live members.
    pub fn names(&self, stream: u64) -> Vec<String> {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        all.keys().filter(|(s, _)| *s == stream).map(|(_, g)| g.clone()).collect()
    }
}

impl Group {
    fn owned_by(&self, member: &str) -> Vec<(u32, u64)> {
        self.owner
            .iter()
            .enumerate()
            .filter_map(|(p, o)| match o {
                Some((m, generation)) if m == member => Some((p as u32, *generation)),
                _ => None,
            })
            .collect()
    }

    /// Sticky assignment: every member keeps what it can within its fair share; only the
    /// partitions that must move do. Returns the revocations, then the new assignments.
    fn rebalance(&mut self, now: u64) -> Vec<Action> {
        let members: Vec<String> = self.members.keys().cloned().collect();
        let mut revoked: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        // Partitions of members that are gone become free.
        for slot in self.owner.iter_mut() {
            if slot.as_ref().is_some_and(|(m, _)| !self.members.contains_key(m)) {
                *slot = None;
            }
        }
        if members.is_empty() {
            return Vec::new();
        }
        let n = members.len();
        let base = self.partitions as usize / n;
        let extra = self.partitions as usize % n;
        // Members holding the most get the larger shares first, so fewer partitions move.
        let mut order: Vec<(usize, String)> =
            members.iter().map(|m| (self.owned_by(m).len(), m.clone())).collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let quota: HashMap<String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, (_, m))| (m.clone(), base + usize::from(i < extra)))
            .collect();
        for (m, share) in &quota {
            let mut owned: Vec<u32> = self.owned_by(m).into_iter().map(|(p, _)| p).collect();
            while owned.len() > *share {
                if let Some(p) = owned.pop() {
                    self.owner[p as usize] = None;
                    revoked.entry(m.clone()).or_default().push(p);
                }
            }
        }
        let generation = self.generation.saturating_add(1).max(now);
        self.generation = generation;
        let mut assigned: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
        let free: BTreeSet<u32> =
            (0..self.partitions).filter(|p| self.owner[*p as usize].is_none()).collect();
        let mut free = free.into_iter();
        for (_, m) in &order {
            let have = self.owned_by(m).len();
            for _ in have..quota[m] {
                let Some(p) = free.next() else { break };
                self.owner[p as usize] = Some((m.clone(), generation));
                assigned.entry(m.clone()).or_default().push((p, generation));
            }
        }
        let mut actions = Vec::new();
        for (m, partitions) in revoked {
            if let Some(ctl) = self.members.get(&m).and_then(|x| x.ctl.clone()) {
                actions.push((ctl, Ctl::Revoke(partitions)));
            }
        }
        for (m, partitions) in assigned {
            if let Some(ctl) = self.members.get(&m).and_then(|x| x.ctl.clone()) {
                actions.push((ctl, Ctl::Assign(partitions)));
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl() -> (mpsc::Sender<Ctl>, mpsc::Receiver<Ctl>) {
        mpsc::channel(16)
    }

    fn owners(groups: &Groups, key: &GroupKey) -> Vec<Option<String>> {
        let all = groups.inner.lock().unwrap();
        all[key].owner.iter().map(|o| o.as_ref().map(|(m, _)| m.clone())).collect()
    }

    #[test]
    fn a_join_should_move_as_few_partitions_as_possible() {
        let groups = Groups::default();
        let key = (1, "g".to_string());
        let (a, _ra) = ctl();
        let (b, _rb) = ctl();
        let (c, _rc) = ctl();
        groups.join(&key, 6, Some("a".into()), a, 100, String::new);
        assert_eq!(owners(&groups, &key), vec![Some("a".to_string()); 6]);
        let (_, actions) = groups.join(&key, 6, Some("b".into()), b, 101, String::new);
        let before = owners(&groups, &key);
        assert_eq!(before.iter().filter(|o| o.as_deref() == Some("a")).count(), 3);
        assert_eq!(actions.len(), 2, "one revoke for a, one assign for b");
        groups.join(&key, 6, Some("c".into()), c, 102, String::new);
        let after = owners(&groups, &key);
        let moved = before.iter().zip(&after).filter(|(x, y)| x != y).count();
        assert_eq!(moved, 2, "only the partitions c needs move: {before:?} -> {after:?}");
        for m in ["a", "b", "c"] {
            assert_eq!(after.iter().filter(|o| o.as_deref() == Some(m)).count(), 2);
        }
    }

    #[test]
    fn a_disconnected_member_should_keep_its_partitions_until_the_timeout() {
        let groups = Groups::default();
        let key = (1, "g".to_string());
        let (a, _ra) = ctl();
        let (b, _rb) = ctl();
        groups.join(&key, 2, Some("a".into()), a.clone(), 0, String::new);
        groups.join(&key, 2, Some("b".into()), b, 0, String::new);
        groups.disconnect(&key, "a", &a, 1_000);
        assert!(groups.expire(5_000, 10_000).is_empty());
        assert_eq!(groups.members(&key), 2);
        let (a2, _ra2) = ctl();
        let (id, actions) = groups.join(&key, 2, Some("a".into()), a2, 6_000, String::new);
        assert_eq!(id, "a");
        assert!(matches!(actions.as_slice(), [(_, Ctl::Assign(p))] if p.len() == 1));
        groups.disconnect(&key, "a", &actions[0].0, 7_000);
        let actions = groups.expire(17_001, 10_000);
        assert_eq!(groups.members(&key), 1);
        assert!(matches!(actions.as_slice(), [(_, Ctl::Assign(p))] if p.len() == 1));
        assert_eq!(owners(&groups, &key), vec![Some("b".to_string()); 2]);
    }

    #[test]
    fn only_the_current_generation_should_be_accepted() {
        let groups = Groups::default();
        let key = (1, "g".to_string());
        let (a, _ra) = ctl();
        let (b, _rb) = ctl();
        groups.join(&key, 2, Some("a".into()), a, 500, String::new);
        let first = groups.inner.lock().unwrap()[&key].owner[1].clone().unwrap().1;
        assert!(groups.generation_is_current(&key, 1, first));
        groups.join(&key, 2, Some("b".into()), b, 501, String::new);
        let second = groups.inner.lock().unwrap()[&key].owner[1].clone().unwrap().1;
        assert_ne!(first, second);
        assert!(!groups.generation_is_current(&key, 1, first), "the old owner is fenced");
        assert!(groups.generation_is_current(&key, 1, second));
    }
}
