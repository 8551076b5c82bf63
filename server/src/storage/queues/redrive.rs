//! Redrive: dead tasks back to where they failed, all or nothing.

use std::collections::HashMap;

use switchboard_protocol::queues::QueueInfo;

use super::{Changes, Phase, QueuesState};
use crate::storage::OpError;
use crate::storage::tables::Tables;

impl QueuesState {
    /// Moves dead tasks of `name` back to the queues they failed in (tasks kept dead in place
    /// become available again). An unknown origin queue is created from `template`, with
    /// `name` as its dead-letter queue. Checks every target has room first, so a redrive either
    /// moves everything it picked or nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn redrive(
        &mut self,
        t: &mut Tables<'_>,
        next_id: &mut u64,
        name: &str,
        ids: &[u64],
        all: bool,
        template: &QueueInfo,
        now: u64,
        changes: &mut Changes,
    ) -> Result<u64, OpError> {
        let q = self.queue(name)?;
        let candidates: Vec<u64> = if all {
            let mut v: Vec<u64> = q.tasks.keys().copied().collect();
            v.sort_unstable();
            v
        } else {
            ids.to_vec()
        };
        // (task, origin queue or None for in place)
        let mut picked: Vec<(u64, Option<String>)> = Vec::new();
        for id in candidates {
            let Some(m) = q.tasks.get(&id) else { continue };
            if matches!(m.row.phase, Phase::Leased { .. }) {
                continue;
            }
            match (&m.row.dead_letter, m.row.phase) {
                (Some(history), _) => picked.push((id, Some(history.queue.clone()))),
                (None, Phase::Dead) => picked.push((id, None)),
                _ => {}
            }
        }
        let mut incoming: HashMap<String, u64> = HashMap::new();
        for (_, origin) in &picked {
            if let Some(origin) = origin {
                *incoming.entry(origin.clone()).or_default() += 1;
            }
        }
        for (origin, count) in &incoming {
            let (held, max) = match self.by_name.get(origin) {
                Some(o) => (o.tasks.len() as u64, o.meta.info.max_length),
                None => (0, template.max_length),
            };
            if held + count > max {
                return Err(OpError::Full(format!(
                    "queue {origin} has no room for {count} redriven tasks"
                )));
            }
        }
        let mut moved = 0;
        for (id, origin) in picked {
            let q = self.queue(name)?;
            let qid = q.meta.id;
            let ordered = q.meta.info.ordered_by_key;
            let Some(m) = q.tasks.get(&id) else { continue };
            let Some(origin) = origin else {
                // Dead in place: back in its key's line (in order) and available.
                let key = m.row.key.clone();
                if ordered && let Some(k) = key {
                    q.keys.entry(k).or_default().insert(id);
                }
                if let Some(m) = q.tasks.get_mut(&id) {
                    m.row.failures = 0;
                    m.row.reason = None;
                }
                q.set_phase(t, id, Phase::Available)?;
                changes.touched.insert(qid);
                moved += 1;
                continue;
            };
            let task = m.copy_as_new();
            if let Phase::Scheduled { at } = m.row.phase {
                self.due.remove(&(at, qid, id));
            }
            if !self.exists(&origin) {
                let info = QueueInfo {
                    queue: origin.clone(),
                    dead_letter: Some(name.to_owned()),
                    created: now,
                    ..template.clone()
                };
                self.create(t, next_id, info, false)?;
            }
            self.enqueue(t, &origin, task, None, now, changes)?;
            let q = self.queue(name)?;
            q.remove(t, id)?;
            changes.touched.insert(qid);
            moved += 1;
        }
        Ok(moved)
    }
}
