//! Subscriptions: one hub subscription per distinct pattern, dispatch to every matching local
//! subscription, restoration after reconnect, lagged notices.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{ClientFrame, Notice};

use super::*;

/// Subscribes and answers the resulting `subscribe` frame, if any; returns the sub id.
fn subscribed(h: &mut Harness, pattern: &str) -> u64 {
    let sub = h.core.subscribe(h.now, pattern);
    let mut out = h.take();
    for id in sent_ids(&out) {
        h.ok(id);
    }
    out.extend(h.take());
    assert_eq!(result_of(&out, sub), Ok(None));
    sub
}

fn delivered_to(out: &[Output]) -> Vec<(u64, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver { sub, message } => Some((*sub, message.topic.clone())),
            _ => None,
        })
        .collect()
}

fn patterns_sent(out: &[Output], op: &str) -> Vec<String> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Subscribe(s) if op == "subscribe" => Some(s.pattern),
            ClientFrame::Unsubscribe(u) if op == "unsubscribe" => Some(u.pattern),
            _ => None,
        })
        .collect()
}

#[test]
fn subscribing_twice_to_one_pattern_should_send_one_subscribe_and_one_unsubscribe_with_the_last() {
    let mut h = Harness::connected(config(), limits());
    let first = h.core.subscribe(h.now, "a.>");
    let second = h.core.subscribe(h.now, "a.>");
    let out = h.take();
    assert_eq!(patterns_sent(&out, "subscribe"), vec!["a.>"]);
    assert!(completions(&out).is_empty(), "both wait for the hub");
    h.ok(sent_ids(&out)[0]);
    let out = h.take();
    assert_eq!(result_of(&out, first), Ok(None));
    assert_eq!(result_of(&out, second), Ok(None));

    // A third joins an acknowledged pattern: no frame, immediate completion.
    let third = h.core.subscribe(h.now, "a.>");
    let out = h.take();
    assert!(sent(&out).is_empty());
    assert_eq!(result_of(&out, third), Ok(None));

    for sub in [first, second] {
        let op = h.core.unsubscribe(h.now, sub);
        let out = h.take();
        assert!(sent(&out).is_empty());
        assert_eq!(result_of(&out, op), Ok(None));
    }
    let last = h.core.unsubscribe(h.now, third);
    let out = h.take();
    assert_eq!(patterns_sent(&out, "unsubscribe"), vec!["a.>"]);
    assert!(completions(&out).is_empty(), "waits for the hub");
    h.ok(sent_ids(&out)[0]);
    assert_eq!(result_of(&h.take(), last), Ok(None));

    // Unsubscribing again is harmless.
    let again = h.core.unsubscribe(h.now, third);
    assert_eq!(result_of(&h.take(), again), Ok(None));
}

#[test]
fn one_deliver_should_reach_every_matching_local_subscription_once() {
    let mut h = Harness::connected(config(), limits());
    let all = subscribed(&mut h, "prices.>");
    let btc = subscribed(&mut h, "prices.btc");
    let btc_again = subscribed(&mut h, "prices.btc");
    let star = subscribed(&mut h, "*.btc");
    let other = subscribed(&mut h, "prices.eth");

    h.deliver("prices.btc", "1");
    let out = h.take();
    let mut got = delivered_to(&out);
    got.sort();
    let mut expected: Vec<(u64, String)> =
        [all, btc, btc_again, star].into_iter().map(|s| (s, "prices.btc".to_owned())).collect();
    expected.sort();
    assert_eq!(got, expected);
    assert!(!got.iter().any(|(s, _)| *s == other));

    h.core.unsubscribe(h.now, btc);
    h.take();
    h.deliver("prices.btc", "2");
    let got = delivered_to(&h.take());
    assert_eq!(got.len(), 3);
    assert!(!got.iter().any(|(s, _)| *s == btc), "an ended subscription gets nothing");
}

#[test]
fn a_message_should_reach_its_subscriptions_in_the_order_they_were_made_whatever_their_pattern() {
    let mut h = Harness::connected(config(), limits());
    let exact = subscribed(&mut h, "prices.btc");
    let all = subscribed(&mut h, "prices.>");
    let exact_again = subscribed(&mut h, "prices.btc");
    let star = subscribed(&mut h, "*.btc");
    subscribed(&mut h, "prices.btc2");
    subscribed(&mut h, "prices");

    h.deliver("prices.btc", "1");
    let out = h.take();
    let got: Vec<u64> = delivered_to(&out).into_iter().map(|(sub, _)| sub).collect();
    assert_eq!(got, vec![exact, all, exact_again, star]);
    let bodies = out.iter().filter_map(|o| match o {
        Output::Deliver { message, .. } => Some(&message.data[..]),
        _ => None,
    });
    assert!(bodies.eq([b"1"; 4].iter().map(|b| &b[..])), "every copy carries the message");

    // One exact pattern alone: its subscriptions, in order, and nothing for a near miss.
    h.deliver("prices", "2");
    let got = delivered_to(&h.take());
    assert_eq!(got.len(), 1);
    h.deliver("prices.btc2.x", "3");
    assert_eq!(delivered_to(&h.take()), vec![(all, "prices.btc2.x".to_owned())]);
}

#[test]
fn reconnect_should_resubscribe_every_pattern_before_queued_requests() {
    let mut h = Harness::connected(config(), limits());
    for pattern in ["a", "b.*", "c.>"] {
        subscribed(&mut h, pattern);
    }
    subscribed(&mut h, "a");
    h.drop_socket(Some(1001));
    let publish = h.publish("q");
    let ping = h.core.ping(h.now);
    h.tick_until_open();
    h.open_and_welcome(limits());
    let out = h.take();
    let ops: Vec<String> = sent(&out)
        .iter()
        .map(|f| match f {
            ClientFrame::Subscribe(s) => format!("subscribe {}", s.pattern),
            other => other.op().to_owned(),
        })
        .collect();
    assert_eq!(
        ops,
        vec!["hello", "subscribe a", "subscribe b.*", "subscribe c.>", "publish", "ping"]
    );
    assert!(completions(&out).iter().all(|c| c.op != publish && c.op != ping));
}

#[test]
fn restored_subscriptions_should_keep_receiving_without_being_completed_again() {
    let mut h = Harness::connected(config(), limits());
    let sub = subscribed(&mut h, "a");
    h.reconnect(None, limits());
    let out = h.take();
    assert!(completions(&out).is_empty());
    h.ok(sent_ids(&out)[0]);
    assert!(completions(&h.take()).is_empty());
    h.deliver("a", "after");
    assert_eq!(delivered_to(&h.take()), vec![(sub, "a".to_owned())]);
}

#[test]
fn subscribe_while_disconnected_should_complete_when_the_pattern_is_acknowledged_after_reconnect() {
    let mut h = Harness::connected(config(), limits());
    h.drop_socket(None);
    let sub = h.core.subscribe(h.now, "x.*");
    h.tick_until_open();
    let out = h.take();
    assert!(sent(&out).is_empty());
    assert!(completions(&out).is_empty());

    h.open_and_welcome(limits());
    let out = h.take();
    assert_eq!(patterns_sent(&out, "subscribe"), vec!["x.*"]);
    assert!(completions(&out).is_empty(), "not before the hub's answer");
    h.ok(sent_ids(&out)[0]);
    assert_eq!(result_of(&h.take(), sub), Ok(None));
}

#[test]
fn subscribe_should_time_out_when_no_session_comes_in_time() {
    let mut h = Harness::connected(
        CoreConfig { min_delay_ms: 10_000, max_delay_ms: 10_000, seed: 2, ..config() },
        limits(),
    );
    h.drop_socket(None);
    let sub = h.core.subscribe(h.now, "x");
    h.advance(1_000);
    let out = h.take();
    assert_eq!(error_of(&out, sub), ErrorCode::Timeout);
    // The pattern left the desired set with its only subscription.
    h.tick_until_open();
    h.open_and_welcome(limits());
    assert!(patterns_sent(&h.take(), "subscribe").is_empty());
}

#[test]
fn hub_refusing_a_pattern_should_fail_its_pending_subscriptions() {
    let mut h = Harness::connected(config(), limits());
    let first = h.core.subscribe(h.now, "p");
    let second = h.core.subscribe(h.now, "p");
    let id = sent_ids(&h.take())[0];
    h.error(Some(id), ErrorCode::TooManySubscriptions);
    let out = h.take();
    assert_eq!(error_of(&out, first), ErrorCode::TooManySubscriptions);
    assert_eq!(error_of(&out, second), ErrorCode::TooManySubscriptions);
    // The pattern is gone: a new subscribe asks the hub again.
    h.core.subscribe(h.now, "p");
    assert_eq!(patterns_sent(&h.take(), "subscribe"), vec!["p"]);
}

#[test]
fn hub_refusing_a_restored_pattern_should_end_its_subscriptions_with_the_error() {
    let mut h = Harness::connected(config(), limits());
    let sub = subscribed(&mut h, "p");
    h.reconnect(None, limits());
    let id = sent_ids(&h.take())[0];
    h.error(Some(id), ErrorCode::TooManySubscriptions);
    let out = h.take();
    assert!(
        matches!(
            &out[..],
            [Output::SubscriptionClosed { sub: s, error: Some(e) }]
                if *s == sub && e.is(ErrorCode::TooManySubscriptions)
        ),
        "{out:?}"
    );
}

#[test]
fn unsubscribing_before_the_subscribe_was_sent_should_send_neither() {
    let mut h = Harness::connected(config(), Limits { max_in_flight: 1, ..limits() });
    h.core.ping(h.now);
    let ping_id = sent_ids(&h.take())[0];
    let sub = h.core.subscribe(h.now, "z");
    let op = h.core.unsubscribe(h.now, sub);
    let out = h.take();
    assert_eq!(result_of(&out, op), Ok(None));
    assert_eq!(error_of(&out, sub), ErrorCode::Closed);
    h.ok(ping_id);
    assert!(sent(&h.take()).is_empty());
}

#[test]
fn invalid_pattern_should_fail_with_invalid_name_without_sending() {
    let mut h = Harness::connected(config(), limits());
    let sub = h.core.subscribe(h.now, "a.>.b");
    let out = h.take();
    assert_eq!(error_of(&out, sub), ErrorCode::InvalidName);
    assert!(sent(&out).is_empty());
}

#[test]
fn lagged_notice_should_reach_every_matching_subscription_and_the_app() {
    let mut h = Harness::connected(config(), limits());
    let wide = subscribed(&mut h, "t.>");
    let exact = subscribed(&mut h, "t.x");
    let other = subscribed(&mut h, "u");
    h.hub(ServerFrame::Notice(Notice::Lagged { topic: "t.x".into(), missed: 3 }));
    h.hub(ServerFrame::Notice(Notice::Lagged { topic: "t.y".into(), missed: 2 }));
    let out = h.take();
    assert_eq!(h.core.missed(wide), Some(5));
    assert_eq!(h.core.missed(exact), Some(3));
    assert_eq!(h.core.missed(other), Some(0));
    assert!(out.contains(&Output::Lagged { sub: exact, missed: 3 }));
    assert!(out.contains(&Output::Notice(ClientNotice::Lagged { topic: "t.x".into(), missed: 3 })));
}
