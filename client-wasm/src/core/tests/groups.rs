//! Group readers: assignments and revocations, commits quoting the generation, and the member
//! id carried across reconnects.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{Assigned, ClientFrame, Commit, Revoked};
use switchboard_protocol::streams::{PartitionOffset, ReadFrom};

use super::*;

fn group(credit: u32, auto_commit: bool) -> ReadOptions {
    ReadOptions {
        from: ReadFrom::Earliest,
        group: Some("g".into()),
        auto_commit,
        credit,
        ..ReadOptions::default()
    }
}

fn po(partition: u32, offset: u64) -> PartitionOffset {
    PartitionOffset { partition, offset }
}

fn assigned(h: &mut Harness, hub: u64, generation: u64, partitions: Vec<PartitionOffset>) {
    h.hub(ServerFrame::Assigned(Assigned { reader: hub, generation, partitions }));
}

fn commits(out: &[Output]) -> Vec<Commit> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Commit(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// A group reader started as member "m1" of hub reader 50, assigned partitions 0 (at 10) and 2
/// (at 0) in generation 3.
fn member(h: &mut Harness, options: ReadOptions) -> ReaderId {
    let reader = h.core.read(h.now, "s", options);
    let (id, read) = read_frame(&h.take());
    assert_eq!(read.group.as_deref(), Some("g"));
    assert!(read.member.is_none());
    h.read_started(id, 50, 7, Some("m1"), &[]);
    assert!(result_of(&h.take(), reader).is_ok());
    assert_eq!(h.core.reader_member(reader), Some("m1"));
    assigned(h, 50, 3, vec![po(0, 10), po(2, 0)]);
    let out = h.take();
    assert_eq!(
        events_of(&out, reader),
        vec![ReaderEvent::Assigned { generation: 3, partitions: vec![po(0, 10), po(2, 0)] }]
    );
    reader
}

#[test]
fn assigned_should_set_positions_and_commit_record_should_quote_the_generation() {
    let mut h = Harness::connected(config(), limits());
    let reader = member(&mut h, group(8, false));
    assert_eq!(h.core.reader_generation(reader, 0), Some(3));
    h.records(50, 0, 10..12);
    assert_eq!(offsets_of(&h.take(), reader), vec![(0, 10), (0, 11)]);

    let op = h.core.commit_record(h.now, reader, 0, 11);
    let out = h.take();
    let sent = commits(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].stream.as_str(),
            sent[0].group.as_str(),
            sent[0].partition,
            sent[0].offset,
            sent[0].generation
        ),
        ("s", "g", 0, 12, 3),
        "the next offset to read, under the partition's generation"
    );
    h.ok(sent[0].id);
    assert_eq!(result_of(&h.take(), op), Ok(None));
}

#[test]
fn revoked_partitions_should_be_forgotten_and_their_commits_refused_as_stale() {
    let mut h = Harness::connected(config(), limits());
    let reader = member(&mut h, group(8, false));
    h.records(50, 0, 10..11);
    h.take();
    h.hub(ServerFrame::Revoked(Revoked { reader: 50, partitions: vec![0] }));
    let out = h.take();
    assert_eq!(events_of(&out, reader), vec![ReaderEvent::Revoked { partitions: vec![0] }]);
    let op = h.core.commit_record(h.now, reader, 0, 10);
    let out = h.take();
    assert_eq!(error_of(&out, op), ErrorCode::StaleGeneration);
    assert!(commits(&out).is_empty());

    // Records of a partition this member no longer holds belong to another member.
    h.records(50, 0, 11..12);
    assert!(offsets_of(&h.take(), reader).is_empty());
    assert_eq!(h.core.reader_position(reader).unwrap().len(), 1);
}

#[test]
fn a_later_generation_should_take_the_groups_offset_and_a_commit_quote_it() {
    let mut h = Harness::connected(config(), limits());
    let reader = member(&mut h, group(8, false));
    h.records(50, 0, 10..12);
    h.take();
    assigned(&mut h, 50, 4, vec![po(0, 5)]);
    let out = h.take();
    assert_eq!(
        events_of(&out, reader),
        vec![ReaderEvent::Assigned { generation: 4, partitions: vec![po(0, 5)] }]
    );
    h.records(50, 0, 5..6);
    assert_eq!(offsets_of(&h.take(), reader), vec![(0, 5)]);
    h.core.commit_record(h.now, reader, 0, 5);
    assert_eq!(commits(&h.take())[0].generation, 4);
}

#[test]
fn restore_should_reattach_the_member_with_the_positions_of_its_assigned_partitions() {
    let mut h = Harness::connected(config(), limits());
    let reader = member(&mut h, group(8, false));
    h.records(50, 0, 10..12);
    h.take();
    h.reconnect(None, limits());
    let (id, read) = read_frame(&h.take());
    assert_eq!(read.member.as_deref(), Some("m1"));
    assert_eq!(read.group.as_deref(), Some("g"));
    assert_eq!(read.positions, vec![po(0, 12), po(2, 0)]);
    assert_eq!(read.epoch, Some(7));
    assert_eq!(read.credit, 6);

    h.read_started(id, 60, 7, Some("m1"), &[]);
    let out = h.take();
    assert_eq!(
        events_of(&out, reader),
        vec![ReaderEvent::Resumed { epoch: 7, member: Some("m1".into()) }],
        "the same partitions: nothing revoked"
    );
    // A hub that announces the unchanged assignment again changes nothing.
    assigned(&mut h, 60, 3, vec![po(0, 12), po(2, 0)]);
    h.records(60, 0, 12..13);
    let out = h.take();
    assert_eq!(offsets_of(&out, reader), vec![(0, 12)]);
    assert!(!events_of(&out, reader).iter().any(|e| matches!(e, ReaderEvent::Assigned { .. })));
    h.core.commit_record(h.now, reader, 0, 12);
    let sent = commits(&h.take());
    assert_eq!((sent[0].offset, sent[0].generation), (13, 3));
}

#[test]
fn a_new_member_id_on_restore_should_revoke_the_old_partitions() {
    let mut h = Harness::connected(config(), limits());
    let reader = member(&mut h, group(8, false));
    h.reconnect(None, limits());
    let (id, _) = read_frame(&h.take());
    h.read_started(id, 60, 7, Some("m2"), &[]);
    let out = h.take();
    assert_eq!(
        events_of(&out, reader),
        vec![
            ReaderEvent::Revoked { partitions: vec![0, 2] },
            ReaderEvent::Resumed { epoch: 7, member: Some("m2".into()) }
        ]
    );
    let op = h.core.commit_record(h.now, reader, 0, 10);
    assert_eq!(error_of(&h.take(), op), ErrorCode::StaleGeneration);
    h.reconnect(None, limits());
    let (_, read) = read_frame(&h.take());
    assert_eq!(read.member.as_deref(), Some("m2"));
    assert!(read.positions.is_empty());
}

#[test]
fn the_same_generation_starting_past_the_position_should_end_the_reader() {
    let mut h = Harness::connected(config(), limits());
    let reader = member(&mut h, group(8, false));
    assigned(&mut h, 50, 3, vec![po(0, 15)]);
    let error = ended_with(&h.take(), reader).expect("an error");
    assert!(error.message.contains("expected offset 10"), "{error}");
}

#[test]
fn auto_commit_readers_should_grant_credit_as_soon_as_the_app_catches_up() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.core.read(h.now, "s", group(8, true));
    let (id, read) = read_frame(&h.take());
    assert!(read.auto_commit);
    h.read_started(id, 50, 7, Some("m1"), &[]);
    assigned(&mut h, 50, 1, vec![po(0, 0)]);
    h.records(50, 0, 0..3);
    h.take();
    h.core.reader_consumed(h.now, reader, 2);
    assert!(credits(&h.take()).is_empty(), "one record still unconsumed");
    h.core.reader_consumed(h.now, reader, 1);
    assert_eq!(credits(&h.take()), vec![(50, 3)], "caught up: the hub commits what was consumed");
}

#[test]
fn commit_record_should_be_refused_for_readers_without_a_group() {
    let mut h = Harness::connected(config(), limits());
    let options = ReadOptions { auto_commit: true, ..ReadOptions::default() };
    let reader = h.core.read(h.now, "s", options);
    let (id, read) = read_frame(&h.take());
    assert!(!read.auto_commit, "auto_commit means nothing without a group");
    h.read_started(id, 50, 7, None, &[(0, 0)]);
    h.take();
    let op = h.core.commit_record(h.now, reader, 0, 0);
    assert_eq!(error_of(&h.take(), op), ErrorCode::InvalidArgument);
}
