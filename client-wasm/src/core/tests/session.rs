//! Sessions: hello first, replies matched by id, timeouts, flow control and close.

use switchboard_protocol::frame::{ClientFrame, Hello, ReplyBody};
use switchboard_protocol::{ErrorCode, Headers, Limits, PROTOCOL_VERSION, Payload};

use super::*;

#[test]
fn hello_should_be_the_first_frame_and_nothing_else_before_welcome() {
    let mut h = Harness::new(CoreConfig {
        token: Some("secret".into()),
        name: Some("tester".into()),
        ..config()
    });
    // Commands made before the socket is even open must wait.
    let publish = h.publish("a.b");
    let ping = h.core.ping(h.now);
    h.core.subscribe(h.now, "a.>");
    assert!(sent(&h.take()).is_empty());

    h.core.on_socket_open(h.socket, h.now);
    let out = h.take();
    assert_eq!(
        sent(&out),
        vec![ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            token: Some("secret".into()),
            client: Some("tester".into()),
        })]
    );
    // Replies and deliveries before welcome are not acted on, nor do they release anything.
    h.deliver("a.b", "early");
    assert!(sent(&h.take()).is_empty());

    h.hub(ServerFrame::Welcome(Welcome {
        session: 7,
        server: "t".into(),
        protocol: 1,
        limits: limits(),
    }));
    let out = h.take();
    let ops: Vec<&str> = sent(&out).iter().map(ClientFrame::op).collect();
    assert_eq!(ops, vec!["subscribe", "publish", "ping"]);
    assert_eq!(states(&out), vec![ConnectionState::Connected]);
    assert_eq!(h.core.session_id(), Some(7));
    assert!(completions(&out).iter().all(|c| c.op != publish && c.op != ping));
}

#[test]
fn replies_should_complete_the_request_with_the_same_id_in_any_order() {
    let mut h = Harness::connected(config(), limits());
    let first = h.publish("a");
    let second = h.publish("b");
    let ids = sent_ids(&h.take());
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);

    h.published(ids[1], 5);
    let out = h.take();
    assert_eq!(result_of(&out, second), Ok(Some(ReplyBody::Published { receivers: 5 })));
    assert!(completions(&out).iter().all(|c| c.op != first));

    h.error(Some(ids[0]), ErrorCode::InvalidArgument);
    let out = h.take();
    assert_eq!(error_of(&out, first), ErrorCode::InvalidArgument);

    // A duplicate or unknown answer completes nothing.
    h.published(ids[1], 9);
    h.ok(9_999);
    assert!(completions(&h.take()).is_empty());
}

#[test]
fn unanswered_request_should_fail_with_timeout_and_its_late_answer_be_ignored() {
    let mut h = Harness::connected(config(), limits());
    let op = h.core.ping(h.now);
    let id = sent_ids(&h.take())[0];
    h.advance(999);
    assert!(completions(&h.take()).is_empty(), "not before the timeout");
    assert_eq!(h.core.next_deadline(), Some(h.now + 1));
    h.advance(1);
    assert_eq!(error_of(&h.take(), op), ErrorCode::Timeout);
    h.ok(id);
    assert!(completions(&h.take()).is_empty());
}

#[test]
fn max_in_flight_should_hold_back_requests_until_replies_free_a_slot() {
    let mut h = Harness::connected(config(), Limits { max_in_flight: 2, ..limits() });
    let ops: Vec<u64> = (0..5).map(|_| h.core.ping(h.now)).collect();
    let first = sent_ids(&h.take());
    assert_eq!(first.len(), 2, "only max_in_flight requests go out");
    assert_eq!(h.core.pending(), (3, 2));

    h.ok(first[0]);
    let out = h.take();
    let next = sent_ids(&out);
    assert_eq!(next.len(), 1, "one reply frees one slot");
    assert_eq!(result_of(&out, ops[0]), Ok(None));

    h.ok(first[1]);
    h.ok(next[0]);
    let rest = sent_ids(&h.take());
    assert_eq!(rest.len(), 2);
    assert_eq!(h.core.pending(), (0, 2));
    for id in rest {
        h.ok(id);
    }
    let done: Vec<u64> = completions(&h.take()).iter().map(|c| c.op).collect();
    assert_eq!(done, vec![ops[3], ops[4]]);
    assert_eq!(h.core.pending(), (0, 0));
}

#[test]
fn operations_beyond_max_pending_should_fail_fast_with_backlogged() {
    let mut h = Harness::new(CoreConfig { max_pending: 3, ..config() });
    let waiting: Vec<u64> = (0..3).map(|_| h.core.ping(h.now)).collect();
    let refused = h.core.ping(h.now);
    let refused_sub = h.core.subscribe(h.now, "x");
    let out = h.take();
    assert_eq!(error_of(&out, refused), ErrorCode::Backlogged);
    assert_eq!(error_of(&out, refused_sub), ErrorCode::Backlogged);
    assert!(completions(&out).iter().all(|c| !waiting.contains(&c.op)));

    h.open_and_welcome(limits());
    assert_eq!(sent_ids(&h.take()).len(), 3, "the waiting ones are sent");
    let accepted = h.core.ping(h.now);
    assert_eq!(sent_ids(&h.take()).len(), 1, "{accepted} goes straight out");
}

#[test]
fn frame_larger_than_max_frame_bytes_should_fail_locally_and_not_be_sent() {
    let mut h = Harness::connected(config(), Limits { max_frame_bytes: 100, ..limits() });
    let small = h.core.publish(h.now, "t", Payload::from("hi"), Headers::new());
    let big = h.core.publish(h.now, "t", Payload::from(vec![0u8; 200]), Headers::new());
    let out = h.take();
    assert_eq!(error_of(&out, big), ErrorCode::FrameTooLarge);
    assert_eq!(sent(&out).len(), 1);
    assert!(completions(&out).iter().all(|c| c.op != small));
}

#[test]
fn frame_queued_while_disconnected_should_be_checked_against_the_new_sessions_limit() {
    let mut h = Harness::new(config());
    let big = h.core.publish(h.now, "t", Payload::from(vec![0u8; 200]), Headers::new());
    let ping = h.core.ping(h.now);
    h.open_and_welcome(Limits { max_frame_bytes: 100, ..limits() });
    let out = h.take();
    assert_eq!(error_of(&out, big), ErrorCode::FrameTooLarge);
    assert_eq!(sent(&out).iter().map(ClientFrame::op).collect::<Vec<_>>(), vec!["hello", "ping"]);
    assert!(completions(&out).iter().all(|c| c.op != ping));
}

#[test]
fn invalid_topic_should_fail_with_invalid_name_without_sending() {
    let mut h = Harness::connected(config(), limits());
    let op = h.publish("a.*");
    let out = h.take();
    assert_eq!(error_of(&out, op), ErrorCode::InvalidName);
    assert!(sent(&out).is_empty());
}

#[test]
fn close_should_fail_pending_ops_close_with_1000_and_send_nothing_more() {
    let mut h = Harness::connected(config(), Limits { max_in_flight: 1, ..limits() });
    let in_flight = h.core.ping(h.now);
    let queued = h.publish("a");
    let pending_sub = h.core.subscribe(h.now, "s");
    let socket = h.socket;
    h.take();

    h.core.close(h.now);
    let out = h.take();
    assert!(sent(&out).is_empty(), "close sends no frame of its own: {out:?}");
    assert!(out.contains(&Output::CloseSocket { socket, code: 1000, reason: "normal".into() }));
    for op in [in_flight, queued, pending_sub] {
        assert_eq!(error_of(&out, op), ErrorCode::Closed);
    }
    assert_eq!(states(&out), vec![ConnectionState::Closed]);
    assert_eq!(h.core.next_deadline(), None);

    // Afterwards: late frames are ignored, new commands fail at once, nothing reconnects.
    h.ok(1);
    let late = h.core.ping(h.now);
    h.advance(60_000);
    let out = h.take();
    assert_eq!(error_of(&out, late), ErrorCode::Closed);
    assert!(!out.iter().any(|o| matches!(o, Output::OpenSocket { .. } | Output::Send(_))));
}

#[test]
fn close_should_end_active_subscriptions_without_an_error() {
    let mut h = Harness::connected(config(), limits());
    let sub = h.core.subscribe(h.now, "a");
    let id = sent_ids(&h.take())[0];
    h.ok(id);
    h.take();
    h.core.close(h.now);
    let out = h.take();
    assert!(out.contains(&Output::SubscriptionClosed { sub, error: None }));
}
