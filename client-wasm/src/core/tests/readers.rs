//! Readers: delivery in order, duplicates and gaps, credit, restoring after a reconnect, and
//! the ways a reader ends.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{ClientFrame, ErrorFrame, ReaderClosed};
use switchboard_protocol::streams::{PartitionOffset, ReadFrom};

use super::*;

fn options(credit: u32) -> ReadOptions {
    ReadOptions { from: ReadFrom::Earliest, credit, ..ReadOptions::default() }
}

/// Reconnects and returns the restore `read` (request id and frame); outputs are consumed.
fn restore(h: &mut Harness) -> (u64, Read, Vec<Output>) {
    h.reconnect(None, limits());
    let out = h.take();
    let (id, read) = read_frame(&out);
    (id, read, out)
}

#[test]
fn read_should_start_with_the_window_as_credit_and_deliver_records_in_order() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.core.read(h.now, "s", options(8));
    let (id, read) = read_frame(&h.take());
    assert_eq!((read.stream.as_str(), read.credit, read.from), ("s", 8, ReadFrom::Earliest));
    assert!(read.positions.is_empty() && read.epoch.is_none());

    h.read_started(id, 50, 7, None, &[(0, 0), (1, 3)]);
    let out = h.take();
    assert!(matches!(result_of(&out, reader), Ok(Some(ReplyBody::ReadStarted { reader: 50, .. }))));
    h.records(50, 0, 0..2);
    h.records(50, 1, 3..5);
    let out = h.take();
    assert_eq!(offsets_of(&out, reader), vec![(0, 0), (0, 1), (1, 3), (1, 4)]);
    let ReaderEvent::Records(records) = &events_of(&out, reader)[0] else {
        panic!("records first");
    };
    assert_eq!(
        (records[0].stream.as_str(), &records[0].data[..], records[0].timestamp),
        ("s", &b"r0"[..], 1_000)
    );
    assert_eq!(h.core.reader_epoch(reader), Some(7));
    assert_eq!(h.core.reader_position(reader), Some(vec![(0, 0), (1, 3)]), "nothing consumed yet");
    h.core.reader_consumed(h.now, reader, 3);
    assert_eq!(h.core.reader_position(reader), Some(vec![(0, 2), (1, 4)]));
}

#[test]
fn duplicate_records_after_a_resume_should_be_dropped() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(16), 50, &[(0, 0)]);
    h.records(50, 0, 0..4);
    h.take();
    let (id, read, _) = restore(&mut h);
    assert_eq!(read.positions, vec![PartitionOffset { partition: 0, offset: 4 }]);
    h.read_started(id, 60, 7, None, &[(0, 4)]);
    // A hub that overlaps what was already delivered.
    h.records(60, 0, 2..6);
    let out = h.take();
    assert_eq!(offsets_of(&out, reader), vec![(0, 4), (0, 5)]);
    assert!(error_notices(&out).is_empty());
}

#[test]
fn a_gap_should_end_the_reader_with_an_error_never_skip() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(16), 50, &[(0, 0)]);
    h.records(50, 0, [0, 1, 3, 4]);
    let out = h.take();
    assert_eq!(offsets_of(&out, reader), vec![(0, 0), (0, 1)]);
    let error = ended_with(&out, reader).expect("an error");
    assert!(error.message.contains("expected offset 2"), "{error}");
    assert_eq!(error_notices(&out), vec![error]);
    let closes: Vec<u64> = sent(&out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::CloseReader(c) => Some(c.reader),
            _ => None,
        })
        .collect();
    assert_eq!(closes, vec![50], "the hub's reader is stopped too");

    h.records(50, 0, [5]);
    assert!(events_of(&h.take(), reader).is_empty(), "nothing after the end");
}

#[test]
fn credit_should_be_granted_in_batches_of_half_the_window() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(8), 50, &[(0, 0)]);
    h.records(50, 0, 0..6);
    h.take();
    h.core.reader_consumed(h.now, reader, 3);
    assert!(credits(&h.take()).is_empty(), "3 < 4: not yet");
    h.core.reader_consumed(h.now, reader, 1);
    let out = h.take();
    assert_eq!(credits(&out), vec![(50, 4)]);
    h.ok(sent_ids(&out)[0]);
    h.core.reader_consumed(h.now, reader, 2);
    assert!(credits(&h.take()).is_empty());
}

#[test]
fn credit_should_be_granted_at_once_when_the_hub_has_used_it_all() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(8), 50, &[(0, 0)]);
    h.records(50, 0, 0..8);
    h.take();
    h.core.reader_consumed(h.now, reader, 1);
    assert_eq!(credits(&h.take()), vec![(50, 1)], "the hub waits for us");
}

#[test]
fn credit_should_go_ahead_of_queued_requests() {
    let mut h = Harness::connected(config(), Limits { max_in_flight: 1, ..limits() });
    let reader = h.reader("s", options(2), 50, &[(0, 0)]);
    h.records(50, 0, 0..2);
    let blocker = h.core.ping(h.now);
    h.core.ping(h.now);
    let out = h.take();
    h.core.reader_consumed(h.now, reader, 2);
    assert!(credits(&h.take()).is_empty(), "no free slot yet");
    h.ok(sent_ids(&out)[0]);
    let out = h.take();
    assert!(result_of(&out, blocker).is_ok());
    assert_eq!(credits(&out), vec![(50, 2)], "before the queued ping");
}

#[test]
fn restore_should_send_positions_epoch_and_the_credit_left_by_unconsumed_records() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(10), 50, &[(0, 0), (1, 20)]);
    h.records(50, 0, 0..4);
    h.records(50, 1, 20..23);
    h.core.reader_consumed(h.now, reader, 5);
    h.take();

    let (id, read, out) = restore(&mut h);
    assert_eq!(
        read.positions,
        vec![
            PartitionOffset { partition: 0, offset: 4 },
            PartitionOffset { partition: 1, offset: 23 }
        ]
    );
    assert_eq!(read.epoch, Some(7));
    assert_eq!(read.credit, 8, "10 minus the 2 delivered records not yet consumed");
    assert_eq!(read.from, ReadFrom::Earliest);
    assert!(completions(&out).is_empty());

    h.read_started(id, 60, 7, None, &[(0, 4), (1, 23)]);
    let out = h.take();
    assert_eq!(events_of(&out, reader), vec![ReaderEvent::Resumed { epoch: 7, member: None }]);
    h.records(60, 0, 4..7);
    assert_eq!(offsets_of(&h.take(), reader), vec![(0, 4), (0, 5), (0, 6)]);
    // The two old records consumed now count toward the new session's credit.
    h.core.reader_consumed(h.now, reader, 3);
    assert!(credits(&h.take()).is_empty());
    h.core.reader_consumed(h.now, reader, 2);
    assert_eq!(credits(&h.take()), vec![(60, 5)]);
}

#[test]
fn restore_should_come_after_resubscribe_and_before_queued_requests() {
    let mut h = Harness::connected(config(), limits());
    let sub = h.core.subscribe(h.now, "t.>");
    let out = h.take();
    h.ok(sent_ids(&out)[0]);
    assert!(result_of(&h.take(), sub).is_ok());
    h.reader("s", options(4), 50, &[(0, 0)]);
    // In flight when the socket drops: resent, ahead of what was queued since.
    h.core.create_stream(h.now, "x", Default::default());
    h.take();
    h.drop_socket(None);
    h.publish("queued");
    h.tick_until_open();
    h.open_and_welcome(limits());
    let ops: Vec<&str> = sent(&h.take()).iter().map(ClientFrame::op).collect();
    assert_eq!(ops, vec!["hello", "subscribe", "read", "create_stream", "publish"]);
}

#[test]
fn offset_out_of_range_on_restore_should_end_the_reader_and_notify_the_app() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    let (id, _, _) = restore(&mut h);
    let mut refusal = ErrorFrame::new(Some(id), ErrorCode::OffsetOutOfRange, "retention");
    refusal.low_watermark = Some(100);
    h.error_frame(refusal);
    let out = h.take();
    let error = ended_with(&out, reader).expect("an error");
    assert!(error.is(ErrorCode::OffsetOutOfRange));
    assert_eq!(error_notices(&out), vec![error]);
    assert_eq!(h.core.reader_position(reader), None);
    h.reconnect(None, limits());
    assert!(!sent(&h.take()).iter().any(|f| f.op() == "read"), "an ended reader is not restored");
}

#[test]
fn epoch_mismatch_on_restore_should_end_the_reader_and_notify_the_app() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    let (id, _, _) = restore(&mut h);
    let mut refusal = ErrorFrame::new(Some(id), ErrorCode::EpochMismatch, "recreated");
    refusal.epoch = Some(8);
    h.error_frame(refusal);
    let out = h.take();
    let error = ended_with(&out, reader).expect("an error");
    assert!(error.is(ErrorCode::EpochMismatch));
    assert_eq!(error_notices(&out).len(), 1);
}

#[test]
fn a_restore_answered_in_another_epoch_should_end_the_reader() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    let (id, _, _) = restore(&mut h);
    h.read_started(id, 60, 8, None, &[(0, 0)]);
    let error = ended_with(&h.take(), reader).expect("an error");
    assert!(error.is(ErrorCode::EpochMismatch));
}

#[test]
fn a_restore_starting_past_the_position_should_end_the_reader() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    h.records(50, 0, 0..2);
    let (id, _, _) = restore(&mut h);
    h.read_started(id, 60, 7, None, &[(0, 5)]);
    let out = h.take();
    let error = ended_with(&out, reader).expect("an error");
    assert!(error.message.contains("expected offset 2"), "{error}");
}

#[test]
fn a_passing_refusal_of_a_restore_should_be_retried_not_end_the_reader() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    let (id, _, _) = restore(&mut h);
    h.error(Some(id), ErrorCode::TooManyInFlight);
    let out = h.take();
    assert!(events_of(&out, reader).is_empty());
    assert!(error_notices(&out).is_empty());
    h.advance(100);
    let (retry, read) = read_frame(&h.take());
    assert_ne!(retry, id);
    assert_eq!(read.epoch, Some(7));
    h.read_started(retry, 61, 7, None, &[(0, 0)]);
    h.records(61, 0, 0..1);
    assert_eq!(offsets_of(&h.take(), reader), vec![(0, 0)]);
}

#[test]
fn reader_closed_should_end_the_reader_with_the_hubs_error() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    h.hub(ServerFrame::ReaderClosed(ReaderClosed {
        reader: 50,
        error: ErrorFrame::new(None, ErrorCode::NotFound, "stream deleted"),
    }));
    let out = h.take();
    let error = ended_with(&out, reader).expect("an error");
    assert!(error.is(ErrorCode::NotFound));
    assert_eq!(error_notices(&out), vec![error]);
    assert!(sent(&out).is_empty(), "the hub already stopped it: no close_reader");
}

#[test]
fn a_refused_first_read_should_fail_the_operation_without_a_notice() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.core.read(h.now, "s", options(4));
    let (id, _) = read_frame(&h.take());
    h.error(Some(id), ErrorCode::NotFound);
    let out = h.take();
    assert_eq!(error_of(&out, reader), ErrorCode::NotFound);
    assert!(events_of(&out, reader).is_empty());
    assert!(error_notices(&out).is_empty());
}

#[test]
fn a_read_made_while_disconnected_should_start_after_the_next_welcome() {
    let mut h = Harness::connected(config(), limits());
    h.drop_socket(None);
    let reader = h.core.read(h.now, "s", options(4));
    assert_eq!(h.core.pending().0, 1);
    h.tick_until_open();
    h.open_and_welcome(limits());
    let (id, read) = read_frame(&h.take());
    assert!(read.positions.is_empty());
    h.read_started(id, 50, 7, None, &[(0, 0)]);
    assert!(result_of(&h.take(), reader).is_ok());
}

#[test]
fn a_read_that_never_starts_should_time_out_and_a_late_answer_close_its_reader() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.core.read(h.now, "s", options(4));
    let (id, _) = read_frame(&h.take());
    h.advance(1_000);
    assert_eq!(error_of(&h.take(), reader), ErrorCode::Timeout);
    h.read_started(id, 50, 7, None, &[(0, 0)]);
    let closes: Vec<ClientFrame> = sent(&h.take());
    assert!(matches!(&closes[..], [ClientFrame::CloseReader(c)] if c.reader == 50), "{closes:?}");
}

#[test]
fn close_should_end_the_reader_and_stop_it_on_the_hub() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    let op = h.core.close_reader(h.now, reader);
    let out = h.take();
    assert_eq!(ended_with(&out, reader), None);
    let frames = sent(&out);
    assert!(matches!(&frames[..], [ClientFrame::CloseReader(c)] if c.reader == 50));
    assert!(completions(&out).is_empty(), "waits for the hub");
    h.ok(frames[0].request_id().unwrap());
    assert_eq!(result_of(&h.take(), op), Ok(None));

    h.records(50, 0, 0..1);
    assert!(h.take().is_empty(), "records in flight are ignored");
    h.reconnect(None, limits());
    assert!(!sent(&h.take()).iter().any(|f| f.op() == "read"));
}

#[test]
fn closing_the_client_should_end_every_reader() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(4), 50, &[(0, 0)]);
    let waiting = h.core.read(h.now, "t", options(4));
    h.core.close(h.now);
    let out = h.take();
    assert_eq!(ended_with(&out, reader), None);
    assert_eq!(error_of(&out, waiting), ErrorCode::Closed);
}

#[test]
fn records_beyond_the_credit_should_end_the_reader() {
    let mut h = Harness::connected(config(), limits());
    let reader = h.reader("s", options(2), 50, &[(0, 0)]);
    h.records(50, 0, 0..3);
    let error = ended_with(&h.take(), reader).expect("an error");
    assert!(error.message.contains("credit"), "{error}");
}
