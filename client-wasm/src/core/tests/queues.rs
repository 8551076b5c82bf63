//! Queue requests: enqueues with idempotency keys, pulls and their timeout, settles resent
//! while their lease is valid and failed locally once it is not, and what a lost connection
//! does to each request.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{ClientFrame, Enqueue, Pull};
use switchboard_protocol::queues::{QueueOptions, Task};

use super::super::{EnqueueOptions, PullOptions};
use super::*;

/// The wall clock of these tests reads `WALL + now`.
pub(super) const WALL: u64 = 1_700_000_000_000;

/// A connected core whose wall clock reads `WALL + now`.
pub(super) fn connected() -> Harness {
    let mut h = Harness::connected(config(), limits());
    h.core.set_wall_clock(h.now, WALL + h.now);
    h
}

/// A task of `queue` whose lease ends at `deadline` on the harness clock.
pub(super) fn task(queue: &str, id: u64, lease: u64, deadline: u64) -> Task {
    Task {
        queue: queue.into(),
        id,
        lease,
        deadline: WALL + deadline,
        attempt: 1,
        priority: 0,
        key: None,
        headers: Headers::new(),
        data: Payload::from(format!("t{id}")),
        enqueued: WALL,
        dead_letter: None,
    }
}

/// The frames among `out` other than `hello`.
pub(super) fn requests(out: &[Output]) -> Vec<ClientFrame> {
    sent(out).into_iter().filter(|f| !matches!(f, ClientFrame::Hello(_))).collect()
}

fn enqueues(out: &[Output]) -> Vec<Enqueue> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Enqueue(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn pulls(out: &[Output]) -> Vec<Pull> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Pull(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// Pulls from "q" and answers with `tasks`; outputs are consumed.
fn pulled(h: &mut Harness, tasks: Vec<Task>) {
    let op = h.core.pull(h.now, "q", PullOptions::default());
    let id = pulls(&h.take())[0].id;
    h.reply(id, ReplyBody::Tasks { tasks: tasks.clone() });
    assert_eq!(result_of(&h.take(), op), Ok(Some(ReplyBody::Tasks { tasks })));
}

#[test]
fn enqueue_should_carry_a_generated_idempotency_key_and_be_resent_with_the_same_id_and_key() {
    let mut h = connected();
    let op = h.core.enqueue(h.now, "jobs", Payload::from("a"), EnqueueOptions::default());
    let first = enqueues(&h.take());
    assert_eq!(first.len(), 1);
    let key = first[0].idempotency_key.clone().expect("a generated key");
    assert_eq!(key.len(), 44, "the wall-clock time, then 128 bits, in hex: {key}");

    h.reconnect(None, limits());
    let out = h.take();
    assert!(completions(&out).is_empty(), "an enqueue is not failed");
    assert_eq!(enqueues(&out), first, "same request id, same key, same task");

    h.reply(first[0].id, ReplyBody::Enqueued { task: 41 });
    assert_eq!(result_of(&h.take(), op), Ok(Some(ReplyBody::Enqueued { task: 41 })));
}

#[test]
fn enqueue_should_send_its_options_and_keep_a_callers_key() {
    let mut h = connected();
    h.core.enqueue(h.now, "jobs", Payload::from("a"), EnqueueOptions::default());
    let options = EnqueueOptions {
        delay_ms: Some(5),
        key: Some("user-1".into()),
        priority: Some(9),
        idempotency_key: Some("mine".into()),
        ..EnqueueOptions::default()
    };
    h.core.enqueue(h.now, "jobs", Payload::from("b"), options);
    let sent = enqueues(&h.take());
    assert_ne!(sent[0].idempotency_key.as_deref(), Some("mine"));
    assert_eq!(sent[1].idempotency_key.as_deref(), Some("mine"));
    assert_eq!(
        (sent[1].delay_ms, sent[1].key.as_deref(), sent[1].priority),
        (Some(5), Some("user-1"), Some(9))
    );
}

#[test]
fn pull_should_time_out_only_after_wait_ms_plus_the_request_timeout() {
    let mut h = connected();
    let op = h.core.pull(h.now, "q", PullOptions { max: 4, wait_ms: 5_000 });
    let sent = pulls(&h.take());
    assert_eq!((sent[0].max, sent[0].wait_ms), (Some(4), Some(5_000)));
    h.run_for(5_999);
    assert!(completions(&h.take()).is_empty(), "the hub may still be waiting for a task");
    h.run_for(1);
    assert_eq!(error_of(&h.take(), op), ErrorCode::Timeout);
}

#[test]
fn a_pull_in_flight_when_the_socket_drops_should_fail_with_disconnected_and_not_be_resent() {
    let mut h = connected();
    let op = h.core.pull(h.now, "q", PullOptions::default());
    h.take();
    h.drop_socket(None);
    assert_eq!(error_of(&h.take(), op), ErrorCode::Disconnected);
    h.tick_until_open();
    h.open_and_welcome(limits());
    assert!(pulls(&h.take()).is_empty(), "a resent pull could lease twice");
}

#[test]
fn a_pull_answered_after_its_timeout_should_release_the_tasks_it_leased() {
    let mut h = connected();
    let op = h.core.pull(h.now, "q", PullOptions { max: 2, wait_ms: 0 });
    let id = pulls(&h.take())[0].id;
    h.advance(1_000);
    assert_eq!(error_of(&h.take(), op), ErrorCode::Timeout);
    let tasks = vec![task("q", 1, 10, 60_000), task("q", 2, 20, 60_000)];
    h.reply(id, ReplyBody::Tasks { tasks });
    let released: Vec<(u64, u64)> = sent(&h.take())
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Release(s) => Some((s.task, s.lease)),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![(1, 10), (2, 20)], "nobody will process them");
}

#[test]
fn settles_should_be_resent_after_a_reconnect_while_the_lease_is_valid() {
    let mut h = connected();
    let deadline = h.now + 30_000;
    pulled(&mut h, (1..=5).map(|id| task("q", id, id * 10, deadline)).collect());
    let ops = [
        h.core.ack(h.now, "q", 1, 10),
        h.core.nack(h.now, "q", 2, 20, Some(50), Some("busy".into())),
        h.core.extend(h.now, "q", 3, 30, 10_000),
        h.core.release(h.now, "q", 4, 40),
        h.core.reject(h.now, "q", 5, 50, "bad"),
    ];
    let first = sent(&h.take());
    assert_eq!(first.len(), 5);

    h.reconnect(None, limits());
    let out = h.take();
    assert!(completions(&out).is_empty(), "settles are not failed");
    let again = requests(&out);
    assert_eq!(again, first, "the same five settles, same ids and leases");

    let ids: Vec<u64> = again.iter().filter_map(ClientFrame::request_id).collect();
    for (i, &id) in ids.iter().enumerate() {
        if i == 2 {
            h.reply(id, ReplyBody::Extended { deadline: WALL + deadline + 10_000 });
        } else {
            h.ok(id);
        }
    }
    let out = h.take();
    for op in ops {
        assert!(result_of(&out, op).is_ok());
    }
}

#[test]
fn a_settle_waiting_for_the_connection_should_fail_locally_with_lease_expired_at_the_deadline() {
    let mut h = connected();
    let deadline = h.now + 500;
    pulled(&mut h, vec![task("q", 1, 10, deadline)]);
    h.drop_socket(None);
    h.take();
    let op = h.core.ack(h.now, "q", 1, 10);
    h.run_for(499);
    assert!(completions(&h.take()).is_empty());
    h.run_for(1);
    let out = h.take();
    assert_eq!(error_of(&out, op), ErrorCode::LeaseExpired);
    h.tick_until_open();
    h.open_and_welcome(limits());
    assert!(requests(&h.take()).is_empty(), "nothing left to send");
}

#[test]
fn a_settle_in_flight_at_the_deadline_should_be_left_to_the_hub_and_not_resent_after_it() {
    let mut h = connected();
    let deadline = h.now + 500;
    pulled(&mut h, vec![task("q", 1, 10, deadline), task("q", 2, 20, deadline)]);
    let late = h.core.ack(h.now, "q", 1, 10);
    let lost = h.core.ack(h.now, "q", 2, 20);
    let ids = sent_ids(&h.take());
    h.advance(600);
    assert!(completions(&h.take()).is_empty(), "on a live socket the hub decides");
    h.error(Some(ids[0]), ErrorCode::LeaseExpired);
    assert_eq!(error_of(&h.take(), late), ErrorCode::LeaseExpired);

    h.drop_socket(None);
    assert_eq!(error_of(&h.take(), lost), ErrorCode::LeaseExpired, "not resent: it is past");
    h.tick_until_open();
    h.open_and_welcome(limits());
    assert!(requests(&h.take()).is_empty());
}

#[test]
fn a_settle_after_the_deadline_should_fail_at_once_without_being_sent() {
    let mut h = connected();
    let deadline = h.now + 500;
    pulled(&mut h, vec![task("q", 1, 10, deadline)]);
    h.advance(500);
    let op = h.core.nack(h.now, "q", 1, 10, None, None);
    let out = h.take();
    assert_eq!(error_of(&out, op), ErrorCode::LeaseExpired);
    assert!(sent(&out).is_empty());

    // A lease the client never saw is the hub's to judge.
    let unknown = h.core.ack(h.now, "q", 9, 90);
    let out = h.take();
    assert_eq!(sent_ids(&out).len(), 1);
    assert!(completions(&out).iter().all(|c| c.op != unknown));
}

#[test]
fn extend_should_move_the_deadline_later_settles_are_checked_against() {
    let mut h = connected();
    let deadline = h.now + 500;
    pulled(&mut h, vec![task("q", 1, 10, deadline)]);
    let op = h.core.extend(h.now, "q", 1, 10, 5_000);
    let id = sent_ids(&h.take())[0];
    h.reply(id, ReplyBody::Extended { deadline: WALL + h.now + 5_000 });
    assert_eq!(
        result_of(&h.take(), op),
        Ok(Some(ReplyBody::Extended { deadline: WALL + h.now + 5_000 }))
    );
    h.advance(600);
    h.core.ack(h.now, "q", 1, 10);
    assert_eq!(sent_ids(&h.take()).len(), 1, "still valid: sent");
}

#[test]
fn reads_and_create_should_be_resent_but_delete_and_redrive_fail_with_disconnected() {
    let mut h = connected();
    let create = h.core.create_queue(h.now, "q", QueueOptions::default());
    let stats = h.core.queue_stats(h.now, "q");
    let list = h.core.list_queues(h.now);
    let delete = h.core.delete_queue(h.now, "old");
    let redrive = h.core.redrive(h.now, "q.dlq", Vec::new());
    let first = sent(&h.take());
    let ClientFrame::Redrive(r) = &first[4] else {
        panic!("expected redrive, got {:?}", first[4]);
    };
    assert!(r.all && r.ids.is_empty(), "no ids means all");

    h.reconnect(None, limits());
    let out = h.take();
    assert_eq!(error_of(&out, delete), ErrorCode::Disconnected);
    assert_eq!(error_of(&out, redrive), ErrorCode::Disconnected);
    assert_eq!(requests(&out), first[..3].to_vec());
    assert!(completions(&out).iter().all(|c| ![create, stats, list].contains(&c.op)));
}

#[test]
fn bad_names_and_a_zero_pull_should_fail_without_sending() {
    let mut h = connected();
    let ops = [
        h.core.enqueue(h.now, "bad name", Payload::from("x"), EnqueueOptions::default()),
        h.core.ack(h.now, "", 1, 1),
        h.core.consume(h.now, "a b", 1),
    ];
    let zero = h.core.pull(h.now, "q", PullOptions { max: 0, wait_ms: 0 });
    let nothing = h.core.consume(h.now, "q", 0);
    let out = h.take();
    assert!(sent(&out).is_empty());
    for op in ops {
        assert_eq!(error_of(&out, op), ErrorCode::InvalidName);
    }
    assert_eq!(error_of(&out, zero), ErrorCode::InvalidArgument);
    assert_eq!(error_of(&out, nothing), ErrorCode::InvalidArgument);
}

#[test]
fn ack_many_should_send_one_frame_be_resent_after_a_reconnect_and_end_the_acked_leases() {
    use switchboard_protocol::frame::{LeaseRef, SettleFailure};
    let mut h = connected();
    let deadline = h.now + 30_000;
    pulled(&mut h, (1..=3).map(|id| task("q", id, id * 10, deadline)).collect());
    let refs: Vec<LeaseRef> = (1..=3).map(|id| LeaseRef { task: id, lease: id * 10 }).collect();
    let op = h.core.ack_many(h.now, "q", &refs);
    let first = requests(&h.take());
    let [ClientFrame::AckMany(batch)] = first.as_slice() else {
        panic!("one ack_many frame, not {first:?}");
    };
    assert_eq!((batch.queue.as_str(), batch.tasks.as_slice()), ("q", refs.as_slice()));

    h.reconnect(None, limits());
    let out = h.take();
    assert!(completions(&out).is_empty(), "an ack_many is not failed by a reconnect");
    assert_eq!(requests(&out), first, "resent with the same id and tasks");

    // Task 2's lease is gone at the hub, task 3 failed for another reason: 3 stays leased.
    let failed = vec![
        SettleFailure::new(2, 20, ErrorCode::LeaseExpired, "expired"),
        SettleFailure::new(3, 30, ErrorCode::StorageFailure, "disk"),
    ];
    h.reply(batch.id, ReplyBody::AckedMany { failed: failed.clone() });
    assert_eq!(result_of(&h.take(), op), Ok(Some(ReplyBody::AckedMany { failed })));
    // Past the deadline, a settle of a lease the client still holds fails locally; one of a
    // lease it no longer tracks is sent for the hub to judge.
    h.advance(30_000);
    h.take();
    let still = h.core.ack(h.now, "q", 3, 30);
    assert_eq!(error_of(&h.take(), still), ErrorCode::LeaseExpired, "3 is still leased");
    h.core.ack(h.now, "q", 1, 10);
    h.core.ack(h.now, "q", 2, 20);
    assert_eq!(sent_ids(&h.take()).len(), 2, "1 and 2 are no longer tracked");
}

#[test]
fn ack_many_should_leave_a_lease_that_expired_while_offline_to_the_hub() {
    use switchboard_protocol::frame::LeaseRef;
    let mut h = connected();
    let (deadline, later) = (h.now + 50, h.now + 60_000);
    pulled(&mut h, vec![task("q", 1, 10, deadline), task("q", 2, 20, later)]);
    h.drop_socket(None);
    h.take();
    let refs = [LeaseRef { task: 1, lease: 10 }, LeaseRef { task: 2, lease: 20 }];
    let op = h.core.ack_many(h.now, "q", &refs);
    h.tick_until_open();
    assert!(h.now > deadline, "the reconnect comes after the first lease's deadline");
    h.open_and_welcome(limits());
    let out = h.take();
    assert!(completions(&out).iter().all(|c| c.op != op), "not failed locally");
    let again = requests(&out);
    assert!(
        matches!(again.as_slice(), [ClientFrame::AckMany(a)] if a.tasks == refs),
        "both tasks go to the hub, which answers each: {again:?}"
    );
}

#[test]
fn ack_many_should_refuse_no_tasks_or_too_many_without_sending() {
    use switchboard_protocol::frame::{LeaseRef, MAX_ACK_MANY};
    let mut h = connected();
    let none = h.core.ack_many(h.now, "q", &[]);
    let out = h.take();
    assert_eq!(error_of(&out, none), ErrorCode::InvalidArgument);
    let many = vec![LeaseRef { task: 1, lease: 1 }; MAX_ACK_MANY + 1];
    let too_many = h.core.ack_many(h.now, "q", &many);
    let bad_name = h.core.ack_many(h.now, "bad name!", &many[..1]);
    let out2 = h.take();
    assert_eq!(error_of(&out2, too_many), ErrorCode::InvalidArgument);
    assert_eq!(error_of(&out2, bad_name), ErrorCode::InvalidName);
    assert!(sent(&out).is_empty() && sent(&out2).is_empty());
}
