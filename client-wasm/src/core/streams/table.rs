//! Every reader of one client: by its local id (the op id of `read`, stable across sessions),
//! by the hub's id on the current session, and the timers of those waiting for something.

use crate::core::sorted::{SortedMap, SortedSet};

use super::reader::Reader;
use crate::core::ReaderId;

#[derive(Debug, Default)]
pub(crate) struct Readers {
    readers: SortedMap<ReaderId, Reader>,
    /// Hub reader id → local id, for the current session only.
    by_hub: SortedMap<u64, ReaderId>,
    /// (deadline, reader) of every reader whose `timer` is set.
    timers: SortedSet<(u64, ReaderId)>,
    /// Ids of `read` requests sent on this session whose answer nobody waits for any more (they
    /// timed out, or their reader was closed first). A hub reader they start is closed at once.
    abandoned: SortedSet<u64>,
}

impl Readers {
    pub(crate) fn insert(&mut self, id: ReaderId, reader: Reader) {
        if let Some(at) = reader.timer {
            self.timers.insert((at, id));
        }
        self.readers.insert(id, reader);
    }

    pub(crate) fn get(&self, id: ReaderId) -> Option<&Reader> {
        self.readers.get(&id)
    }

    /// The reader, to change anything but its timer and hub id (see `set_timer`, `set_hub`).
    pub(crate) fn get_mut(&mut self, id: ReaderId) -> Option<&mut Reader> {
        self.readers.get_mut(&id)
    }

    pub(crate) fn set_timer(&mut self, id: ReaderId, at: Option<u64>) {
        let Some(reader) = self.readers.get_mut(&id) else {
            return;
        };
        if let Some(old) = reader.timer.take() {
            self.timers.remove(&(old, id));
        }
        reader.timer = at;
        if let Some(at) = at {
            self.timers.insert((at, id));
        }
    }

    pub(crate) fn set_hub(&mut self, id: ReaderId, hub: u64) {
        let Some(reader) = self.readers.get_mut(&id) else {
            return;
        };
        if let Some(old) = reader.hub.replace(hub) {
            self.by_hub.remove(&old);
        }
        self.by_hub.insert(hub, id);
    }

    /// The local reader the hub's `hub` id stands for on this session.
    pub(crate) fn by_hub(&self, hub: u64) -> Option<ReaderId> {
        self.by_hub.get(&hub).copied()
    }

    pub(crate) fn remove(&mut self, id: ReaderId) -> Option<Reader> {
        let reader = self.readers.remove(&id)?;
        if let Some(at) = reader.timer {
            self.timers.remove(&(at, id));
        }
        if let Some(hub) = reader.hub {
            self.by_hub.remove(&hub);
        }
        Some(reader)
    }

    /// Every reader id, oldest first.
    pub(crate) fn ids(&self) -> Vec<ReaderId> {
        self.readers.keys().copied().collect()
    }

    /// Readers the application waits for that have no request in the queue: they count
    /// against `max_pending` like queued requests do.
    pub(crate) fn waiting(&self) -> usize {
        self.readers.values().filter(|r| !r.started && r.request.is_none()).count()
    }

    pub(crate) fn abandon(&mut self, request: u64) {
        self.abandoned.insert(request);
    }

    /// Whether `request` was abandoned; forgets it either way.
    pub(crate) fn take_abandoned(&mut self, request: u64) -> bool {
        self.abandoned.remove(&request)
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// One reader whose timer is at or before `now`; its timer is cleared.
    pub(crate) fn take_expired(&mut self, now: u64) -> Option<ReaderId> {
        let &(at, id) = self.timers.first().filter(|&&(at, _)| at <= now)?;
        self.timers.remove(&(at, id));
        if let Some(reader) = self.readers.get_mut(&id) {
            reader.timer = None;
        }
        Some(id)
    }

    /// The session ended: hub ids, requests and retries belonged to it. Readers that have not
    /// started keep their operation deadline.
    pub(crate) fn disconnect(&mut self) {
        self.by_hub.clear();
        self.abandoned.clear();
        let ids = self.ids();
        for id in ids {
            let started = self.readers.get(&id).is_some_and(|r| r.started);
            if started {
                self.set_timer(id, None);
            }
            if let Some(reader) = self.readers.get_mut(&id) {
                reader.hub = None;
                reader.request = None;
            }
        }
    }

    /// Removes every reader, for a client that is shutting down.
    pub(crate) fn drain(&mut self) -> Vec<(ReaderId, Reader)> {
        self.by_hub.clear();
        self.timers.clear();
        self.abandoned.clear();
        std::mem::take(&mut self.readers).into_iter().collect()
    }
}
