//! One reader's state: where it is in each partition, what the application holds, and its
//! credit window. Pure bookkeeping, no frames: [`super::reading`] turns it into requests.
//!
//! # Credit
//! The hub sends at most `credit` records that were not yet acknowledged; `credit {n}` grants n
//! more and acknowledges the n oldest. Everything a reader holds is accounted for by one
//! conservation rule, which keeps the application buffer within the window and the reader live:
//!
//! `hub may still send + buffered (this session) + buffered (earlier sessions) + pending + owed
//! = window`
//!
//! - *pending*: records consumed by the application (or dropped as duplicates) whose
//!   acknowledgement has not been sent; granted in batches.
//! - *owed*: records from an earlier session consumed since a restore, for `auto_commit`
//!   readers only. Granting them would acknowledge the new session's oldest records, which the
//!   hub would then commit before the application consumed them, so they are granted only when
//!   that cannot happen: the hub has used all its credit and every record it sent is consumed.
//!   Other readers grant them with the pending ones (acknowledgements carry no meaning there).
//!
//! A restore starts a session with `credit = window - buffered`, so records the application has
//! not consumed yet are never re-sent and the buffer never exceeds the window.

use std::collections::VecDeque;

use crate::core::sorted::SortedMap;

use switchboard_protocol::ErrorCode;
use switchboard_protocol::streams::{PartitionOffset, ReadFrom, ReaderPartition, Record};

use crate::core::ClientError;
use crate::core::StreamRecord;

/// A reader's state in one partition it holds.
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    /// The next offset the hub must deliver; anything lower is a duplicate, anything higher a
    /// gap.
    pub(crate) next: u64,
    /// The assignment generation (group readers), quoted in commits.
    pub(crate) generation: Option<u64>,
    /// The next offset the application has not consumed.
    consumed: u64,
    /// Which holding of the partition this is: records buffered under an earlier holding (before
    /// a revoke and a new assignment) do not move `consumed`.
    tag: u64,
}

/// A record handed to the application and not yet consumed.
#[derive(Debug, Clone, Copy)]
struct Buffered {
    partition: u32,
    offset: u64,
    tag: u64,
}

/// What came of one `records` frame.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    /// Records for the application, in order.
    pub(crate) records: Vec<StreamRecord>,
    /// Set when the frame breaks the reader (a gap, or more records than credit): the reader
    /// must end with it after the records before the break are delivered.
    pub(crate) error: Option<ClientError>,
}

/// What `read` asked for; fixed for the reader's life.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) stream: String,
    pub(crate) partition: Option<u32>,
    pub(crate) from: ReadFrom,
    pub(crate) group: Option<String>,
    /// Only ever set for group readers.
    pub(crate) auto_commit: bool,
    pub(crate) window: u32,
}

/// One reader.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    pub(crate) spec: Spec,
    /// The first `read` was answered: the application holds the reader.
    pub(crate) started: bool,
    /// Not started: when the `read` operation times out. Started: when to retry a restore the
    /// hub refused for a passing reason.
    pub(crate) timer: Option<u64>,
    /// The hub's id for this reader on the current session.
    pub(crate) hub: Option<u64>,
    /// The `read` request of the current session, queued or in flight.
    pub(crate) request: Option<u64>,
    pub(crate) epoch: Option<u64>,
    pub(crate) member: Option<String>,
    partitions: SortedMap<u32, Partition>,
    last_tag: u64,
    buffer: VecDeque<Buffered>,
    /// How many of `buffer` (its front) came in earlier sessions.
    buffered_old: usize,
    /// This session: credit given to the hub (the read's and every grant since).
    granted: u64,
    /// This session: records received.
    received: u64,
    pending: u32,
    owed: u32,
}

impl Reader {
    pub(crate) fn new(spec: Spec) -> Self {
        Reader {
            spec,
            started: false,
            timer: None,
            hub: None,
            request: None,
            epoch: None,
            member: None,
            partitions: SortedMap::new(),
            last_tag: 0,
            buffer: VecDeque::new(),
            buffered_old: 0,
            granted: 0,
            received: 0,
            pending: 0,
            owed: 0,
        }
    }

    fn hold(&mut self, partition: u32, next: u64, generation: Option<u64>) {
        self.last_tag += 1;
        let state = Partition { next, generation, consumed: next, tag: self.last_tag };
        self.partitions.insert(partition, state);
    }

    pub(crate) fn partition(&self, partition: u32) -> Option<&Partition> {
        self.partitions.get(&partition)
    }

    /// Where the hub must resume each held partition.
    pub(crate) fn resume_positions(&self) -> Vec<PartitionOffset> {
        self.partitions
            .iter()
            .map(|(&partition, p)| PartitionOffset { partition, offset: p.next })
            .collect()
    }

    /// The next offset the application has not consumed, per held partition.
    pub(crate) fn consumed_positions(&self) -> Vec<(u32, u64)> {
        self.partitions.iter().map(|(&partition, p)| (partition, p.consumed)).collect()
    }

    /// Records handed to the application and not yet consumed.
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Starts the accounting of a new session and returns the credit its `read` carries: the
    /// window minus what the application still has to consume.
    pub(crate) fn begin_session(&mut self) -> u32 {
        self.buffered_old = self.buffer.len();
        // Acknowledgements of the old session died with it; its records are free again except
        // those still buffered.
        self.pending = 0;
        self.owed = 0;
        self.received = 0;
        let credit =
            self.spec.window.saturating_sub(u32::try_from(self.buffered_old).unwrap_or(u32::MAX));
        self.granted = u64::from(credit);
        credit
    }

    /// Applies the partitions of `read_started`. A held partition the hub starts past its
    /// position would skip records: that is an error, never a silent jump.
    pub(crate) fn start(&mut self, partitions: &[ReaderPartition]) -> Result<(), ClientError> {
        for p in partitions {
            match self.partitions.get(&p.partition) {
                Some(held) if p.next > held.next => {
                    return Err(self.gap(p.partition, held.next, p.next));
                }
                // Lower: what was already delivered comes again and is dropped as duplicates.
                Some(_) => {}
                None => self.hold(p.partition, p.next, None),
            }
        }
        Ok(())
    }

    /// Applies an assignment and returns the partitions newly held (or held under a new
    /// generation), with the offsets reading starts at.
    pub(crate) fn assign(
        &mut self,
        generation: u64,
        partitions: &[PartitionOffset],
    ) -> Result<Vec<PartitionOffset>, ClientError> {
        let mut fresh = Vec::new();
        for p in partitions {
            match self.partitions.get(&p.partition) {
                // The same assignment again (a member re-attached): the position stands.
                Some(held) if held.generation == Some(generation) => {
                    if p.offset > held.next {
                        return Err(self.gap(p.partition, held.next, p.offset));
                    }
                }
                // A new assignment starts where the group is, wherever this reader was.
                _ => {
                    self.hold(p.partition, p.offset, Some(generation));
                    fresh.push(*p);
                }
            }
        }
        Ok(fresh)
    }

    /// Forgets revoked partitions and returns those that were held.
    pub(crate) fn revoke(&mut self, partitions: &[u32]) -> Vec<u32> {
        partitions.iter().copied().filter(|p| self.partitions.remove(p).is_some()).collect()
    }

    /// Forgets every partition (the group forgot this member) and returns them.
    pub(crate) fn revoke_all(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.partitions).into_keys().collect()
    }

    /// Takes in one `records` frame of `partition`.
    pub(crate) fn accept(&mut self, partition: u32, records: Vec<Record>) -> Accepted {
        let mut accepted = Accepted::default();
        let allowed = self.granted.saturating_sub(self.received);
        let count = records.len() as u64;
        self.received = self.received.saturating_add(count);
        if count > allowed {
            accepted.error = Some(ClientError::new(
                ErrorCode::Internal,
                format!(
                    "the hub sent {count} records of stream {} with credit for {allowed}",
                    self.spec.stream
                ),
            ));
            return accepted;
        }
        if !self.partitions.contains_key(&partition) {
            if self.spec.group.is_some() {
                // Not (or no longer) this member's partition: its records belong to whoever
                // holds it now. They still used credit, so acknowledge them.
                self.pending += u32::try_from(count).unwrap_or(u32::MAX);
                return accepted;
            }
            // A partition this reader has not seen yet (one created after it started).
            let Some(first) = records.first() else {
                return accepted;
            };
            self.hold(partition, first.offset, None);
        }
        let Some(state) = self.partitions.get_mut(&partition) else {
            return accepted;
        };
        let (tag, mut next) = (state.tag, state.next);
        let mut gap = None;
        for record in records {
            if record.offset < next {
                // Already delivered (a resume overlapping what arrived before).
                self.pending += 1;
                continue;
            }
            if record.offset > next {
                gap = Some(record.offset);
                break;
            }
            next = record.offset.saturating_add(1);
            self.buffer.push_back(Buffered { partition, offset: record.offset, tag });
            accepted.records.push(StreamRecord {
                stream: self.spec.stream.clone(),
                partition,
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key,
                headers: record.headers,
                data: record.data.0,
            });
        }
        state.next = next;
        if let Some(offset) = gap {
            accepted.error = Some(self.gap(partition, next, offset));
        }
        accepted
    }

    fn gap(&self, partition: u32, expected: u64, got: u64) -> ClientError {
        ClientError::new(
            ErrorCode::Internal,
            format!(
                "stream {} partition {partition}: expected offset {expected} next but the hub \
                 went on at {got}; the reader stops rather than skip records",
                self.spec.stream
            ),
        )
    }

    /// The application consumed its `n` oldest buffered records.
    pub(crate) fn consume(&mut self, n: usize) {
        for _ in 0..n {
            let Some(record) = self.buffer.pop_front() else {
                return;
            };
            if let Some(p) = self.partitions.get_mut(&record.partition)
                && p.tag == record.tag
            {
                p.consumed = record.offset.saturating_add(1);
            }
            if self.buffered_old > 0 {
                self.buffered_old -= 1;
                if self.spec.auto_commit {
                    self.owed += 1;
                    continue;
                }
            }
            self.pending += 1;
        }
    }

    /// How much credit to grant now, if any; the caller sends it. Grants come in batches of
    /// half the window, or sooner when the hub has run out of credit (it waits for us), or for
    /// `auto_commit` readers when the application has caught up (so the hub commits promptly).
    pub(crate) fn grant(&mut self) -> Option<u32> {
        let remaining = self.granted.saturating_sub(self.received);
        let buffered_new = self.buffer.len() - self.buffered_old;
        let threshold = (self.spec.window / 2).max(1);
        let mut n = 0;
        if self.pending > 0
            && (self.pending >= threshold
                || remaining == 0
                || (self.spec.auto_commit && self.buffer.is_empty()))
        {
            n = self.pending;
        }
        // Nothing in flight and nothing unconsumed: the hub's unacknowledged records are
        // exactly the pending ones, so the extra credit acknowledges nothing else.
        if self.owed > 0 && remaining == 0 && buffered_new == 0 {
            n = self.pending + self.owed;
        }
        if n == 0 {
            return None;
        }
        let acknowledged = n.min(self.pending);
        self.pending -= acknowledged;
        self.owed -= n - acknowledged;
        self.granted += u64::from(n);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::Payload;

    use super::*;

    fn reader(window: u32, group: bool, auto_commit: bool) -> Reader {
        Reader::new(Spec {
            stream: "s".into(),
            partition: None,
            from: ReadFrom::Earliest,
            group: group.then(|| "g".to_owned()),
            auto_commit,
            window,
        })
    }

    fn records(offsets: impl IntoIterator<Item = u64>) -> Vec<Record> {
        offsets
            .into_iter()
            .map(|offset| Record {
                offset,
                timestamp: 0,
                key: None,
                headers: Default::default(),
                data: Payload::from("x"),
            })
            .collect()
    }

    fn partition(p: u32, next: u64) -> ReaderPartition {
        ReaderPartition { partition: p, next, low: 0, high: next }
    }

    /// Checks the conservation rule from the module documentation.
    fn assert_conserved(r: &Reader) {
        let remaining = r.granted - r.received;
        let total = remaining + r.buffer.len() as u64 + u64::from(r.pending + r.owed);
        assert_eq!(total, u64::from(r.spec.window), "{r:?}");
    }

    #[test]
    fn the_window_should_be_conserved_through_receiving_consuming_and_granting() {
        let mut r = reader(8, false, false);
        assert_eq!(r.begin_session(), 8);
        r.start(&[partition(0, 0)]).unwrap();
        for round in 0..10u64 {
            let got = r.accept(0, records(round * 4..round * 4 + 4));
            assert_eq!(got.records.len(), 4);
            assert_conserved(&r);
            r.consume(4);
            assert_conserved(&r);
            assert_eq!(r.grant(), Some(4), "half the window consumed");
            assert_conserved(&r);
        }
        assert_eq!(r.consumed_positions(), vec![(0, 40)]);
    }

    #[test]
    fn a_restore_should_offer_only_the_room_left_by_unconsumed_records() {
        let mut r = reader(8, false, false);
        r.begin_session();
        r.start(&[partition(0, 0)]).unwrap();
        r.accept(0, records(0..6));
        r.consume(2);
        assert_eq!(r.begin_session(), 4, "6 delivered, 2 consumed: 4 still buffered");
        assert_conserved(&r);
        assert_eq!(r.resume_positions()[0].offset, 6);
    }

    #[test]
    fn a_full_buffer_restore_should_get_credit_back_as_old_records_are_consumed() {
        for auto_commit in [false, true] {
            let mut r = reader(4, true, auto_commit);
            r.begin_session();
            r.assign(1, &[PartitionOffset { partition: 0, offset: 0 }]).unwrap();
            r.accept(0, records(0..4));
            assert_eq!(r.begin_session(), 0);
            r.consume(4);
            assert_conserved(&r);
            assert_eq!(r.grant(), Some(4), "auto_commit {auto_commit}");
            assert_conserved(&r);
        }
    }

    #[test]
    fn auto_commit_readers_should_not_acknowledge_unconsumed_records_for_old_ones() {
        let mut r = reader(4, true, true);
        r.begin_session();
        r.assign(1, &[PartitionOffset { partition: 0, offset: 0 }]).unwrap();
        r.accept(0, records(0..2));
        assert_eq!(r.begin_session(), 2);
        r.accept(0, records(2..4));
        r.consume(2);
        assert_eq!(r.grant(), None, "two new records unconsumed: granting would ack them");
        r.consume(1);
        assert_eq!(r.grant(), Some(1), "the hub waits: acknowledge exactly the consumed one");
        r.consume(1);
        assert_eq!(r.grant(), Some(1), "one more in flight may come: still nothing owed");
        assert_conserved(&r);
        r.accept(0, records(4..6));
        r.consume(2);
        assert_eq!(r.grant(), Some(4), "nothing in flight or unconsumed: the owed two go too");
        assert_conserved(&r);
    }

    #[test]
    fn duplicates_should_be_dropped_and_acknowledged_and_gaps_reported() {
        let mut r = reader(16, false, false);
        r.begin_session();
        r.start(&[partition(0, 5)]).unwrap();
        let got = r.accept(0, records([3, 4, 5, 6]));
        let offsets: Vec<u64> = got.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![5, 6]);
        assert!(got.error.is_none());
        assert_conserved(&r);
        let got = r.accept(0, records([7, 9, 10]));
        assert_eq!(got.records.len(), 1);
        let error = got.error.expect("a gap");
        assert!(error.message.contains("expected offset 8"), "{error}");
    }

    #[test]
    fn records_beyond_the_credit_should_be_an_error() {
        let mut r = reader(2, false, false);
        r.begin_session();
        r.start(&[partition(0, 0)]).unwrap();
        assert!(r.accept(0, records(0..3)).error.is_some());
    }

    #[test]
    fn consumed_positions_should_ignore_records_buffered_under_an_earlier_assignment() {
        let mut r = reader(16, true, false);
        r.begin_session();
        r.assign(1, &[PartitionOffset { partition: 0, offset: 10 }]).unwrap();
        r.accept(0, records(10..14));
        assert_eq!(r.revoke(&[0]), vec![0]);
        r.assign(2, &[PartitionOffset { partition: 0, offset: 11 }]).unwrap();
        r.consume(4);
        assert_eq!(r.consumed_positions(), vec![(0, 11)]);
    }
}
