//! A queue's dispatch line: which available tasks may be leased next (priority, then id; for
//! ordered queues, one task per key at a time), kept in step with every phase change.

use std::collections::{BTreeSet, VecDeque};

use foldhash::{HashMap, HashMapExt};

use super::{Mem, Phase, QueueMeta, QueueState, RECENT_ACKS};
use crate::storage::OpError;
use crate::storage::tables::Tables;

impl QueueState {
    pub(super) fn new(meta: QueueMeta) -> QueueState {
        QueueState {
            meta,
            tasks: HashMap::new(),
            ready: BTreeSet::new(),
            keys: HashMap::new(),
            redeliveries: 0,
            acks: VecDeque::new(),
            recently_acked: Default::default(),
            recent_order: VecDeque::new(),
        }
    }

    pub(super) fn remember_ack(&mut self, task: u64, lease: u64) {
        if self.recently_acked.insert((task, lease)) {
            self.recent_order.push_back((task, lease));
        }
        while self.recent_order.len() > RECENT_ACKS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recently_acked.remove(&old);
            }
        }
    }

    pub(super) fn eligible(&self, task: u64) -> bool {
        let Some(m) = self.tasks.get(&task) else { return false };
        if m.row.phase != Phase::Available {
            return false;
        }
        match (&m.row.key, self.meta.info.ordered_by_key) {
            // The first of its key's line, and no task of the key leased (a redriven task
            // rejoins the line ahead of one that may be leased already).
            (Some(k), true) => self.keys.get(k).is_some_and(|line| {
                line.first() == Some(&task)
                    && !line.iter().any(|t| {
                        self.tasks
                            .get(t)
                            .is_some_and(|m| matches!(m.row.phase, Phase::Leased { .. }))
                    })
            }),
            _ => true,
        }
    }

    pub(super) fn ready_key(&self, task: u64) -> Option<(u8, u64)> {
        self.tasks.get(&task).map(|m| (9u8.saturating_sub(m.row.priority), task))
    }

    pub(super) fn refresh_ready(&mut self, task: u64) {
        let Some(key) = self.ready_key(task) else { return };
        if self.eligible(task) {
            self.ready.insert(key);
        } else {
            self.ready.remove(&key);
        }
    }

    pub(super) fn insert(&mut self, t: &mut Tables<'_>, id: u64, m: Mem) -> Result<(), OpError> {
        m.store(t, self.meta.id, id)?;
        if self.meta.info.ordered_by_key
            && let Some(k) = &m.row.key
        {
            self.keys.entry(k.clone()).or_default().insert(id);
        }
        self.tasks.insert(id, m);
        self.refresh_ready(id);
        Ok(())
    }

    pub(super) fn set_phase(
        &mut self,
        t: &mut Tables<'_>,
        task: u64,
        phase: Phase,
    ) -> Result<(), OpError> {
        let Some(m) = self.tasks.get_mut(&task) else { return Ok(()) };
        m.row.phase = phase;
        if phase != Phase::Available && !matches!(phase, Phase::Leased { .. }) {
            m.consumer = 0;
        }
        m.store(t, self.meta.id, task)?;
        let dead = phase == Phase::Dead;
        let key = m.row.key.clone();
        if dead && self.meta.info.ordered_by_key {
            self.release_key(key.as_deref(), task);
        }
        self.refresh_ready(task);
        Ok(())
    }

    /// A task left its key's line (acked, dead): the next one may go.
    pub(super) fn release_key(&mut self, key: Option<&str>, task: u64) {
        let Some(k) = key else { return };
        let next = match self.keys.get_mut(k) {
            Some(line) => {
                line.remove(&task);
                let next = line.first().copied();
                if line.is_empty() {
                    self.keys.remove(k);
                }
                next
            }
            None => None,
        };
        if let Some(next) = next {
            self.refresh_ready(next);
        }
    }

    pub(super) fn remove(&mut self, t: &mut Tables<'_>, task: u64) -> Result<(), OpError> {
        if let Some(key) = self.ready_key(task) {
            self.ready.remove(&key);
        }
        let Some(m) = self.tasks.remove(&task) else { return Ok(()) };
        t.remove_task(self.meta.id, task);
        if self.meta.info.ordered_by_key {
            self.release_key(m.row.key.as_deref(), task);
        }
        Ok(())
    }
}
