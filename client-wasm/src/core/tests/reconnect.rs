//! Losing the socket: settling what was in flight, backoff, reconnecting, and when not to.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{ClientFrame, Ping};

use super::super::requests::OnDisconnect;
use super::*;

/// Drops the socket and returns the delay until the core asked for the next one.
fn reconnect_delay(h: &mut Harness, code: Option<u16>) -> u64 {
    let lost_at = h.now;
    h.drop_socket(code);
    h.take();
    h.tick_until_open();
    h.take();
    h.now - lost_at
}

#[test]
fn reconnect_should_close_the_old_socket_before_opening_a_new_one() {
    let mut h = Harness::connected(config(), limits());
    let old = h.socket;
    h.drop_socket(Some(1001));
    h.tick_until_open();
    let out = h.take();
    let close =
        out.iter().position(|o| matches!(o, Output::CloseSocket { socket, .. } if *socket == old));
    let open =
        out.iter().position(|o| matches!(o, Output::OpenSocket { socket } if *socket != old));
    assert!(matches!((close, open), (Some(c), Some(o)) if c < o), "{out:?}");
    assert_eq!(
        states(&out),
        vec![ConnectionState::Reconnecting],
        "reconnecting until the next welcome"
    );
    h.open_and_welcome(limits());
    assert_eq!(states(&h.take()), vec![ConnectionState::Connected]);
}

#[test]
fn reconnect_delays_should_stay_within_full_jitter_bounds_grow_and_cap() {
    let mut caps_seen_above_half = [false; 6];
    for seed in 0..40 {
        let mut h = Harness::connected(CoreConfig { seed, ..config() }, limits());
        for (attempt, &cap) in [100u64, 200, 400, 800, 1_600, 1_600].iter().enumerate() {
            let delay = reconnect_delay(&mut h, None);
            assert!(delay <= cap, "attempt {attempt}: delay {delay} above cap {cap}");
            caps_seen_above_half[attempt] |= delay > cap / 2;
            // The attempt fails before a welcome: the next cap doubles.
            h.core.on_socket_open(h.socket, h.now);
        }
    }
    // Jitter is full, not just "up to the previous cap": large delays do occur at each step.
    assert_eq!(caps_seen_above_half, [true; 6]);
}

#[test]
fn backoff_should_restart_from_the_smallest_delay_after_a_welcome() {
    for seed in 0..20 {
        let mut h = Harness::connected(CoreConfig { seed, ..config() }, limits());
        for _ in 0..5 {
            reconnect_delay(&mut h, None);
        }
        h.open_and_welcome(limits());
        h.take();
        let delay = reconnect_delay(&mut h, None);
        assert!(delay <= 100, "seed {seed}: {delay}");
    }
}

#[test]
fn publish_in_flight_on_disconnect_should_fail_disconnected_and_never_be_resent() {
    let mut h = Harness::connected(config(), limits());
    let publish = h.publish("a");
    let ping = h.core.ping(h.now);
    h.take();
    h.drop_socket(None);
    let out = h.take();
    assert_eq!(error_of(&out, publish), ErrorCode::Disconnected);
    assert_eq!(error_of(&out, ping), ErrorCode::Disconnected);

    h.tick_until_open();
    h.open_and_welcome(limits());
    let out = h.take();
    let ops: Vec<&str> = sent(&out).iter().map(ClientFrame::op).collect();
    assert_eq!(ops, vec!["hello"], "nothing is resent");
}

#[test]
fn requests_made_while_reconnecting_should_wait_and_go_out_after_welcome() {
    let mut h = Harness::connected(config(), limits());
    h.drop_socket(Some(4005));
    let op = h.publish("later");
    h.tick_until_open();
    let out = h.take();
    assert!(sent(&out).is_empty());
    assert!(completions(&out).is_empty());

    h.open_and_welcome(limits());
    let out = h.take();
    let frames = sent(&out);
    assert!(matches!(&frames[1], ClientFrame::Publish(p) if p.topic == "later"), "{frames:?}");
    h.published(frames[1].request_id().unwrap(), 0);
    assert_eq!(result_of(&h.take(), op), Ok(Some(ReplyBody::Published { receivers: 0 })));
}

#[test]
fn request_waiting_for_a_connection_should_time_out() {
    let mut h = Harness::connected(
        CoreConfig { min_delay_ms: 5_000, max_delay_ms: 5_000, seed: 1, ..config() },
        limits(),
    );
    h.drop_socket(None);
    let op = h.core.ping(h.now);
    h.run_for(1_000);
    assert_eq!(error_of(&h.take(), op), ErrorCode::Timeout);
}

#[test]
fn resend_policy_should_requeue_in_flight_requests_ahead_of_newer_ones_with_the_same_id() {
    let mut h = Harness::connected(config(), limits());
    let op = h.core.new_op();
    h.core.submit(h.now, op, OnDisconnect::Resend, |id| ClientFrame::Ping(Ping { id }));
    let original = sent_ids(&h.take());
    h.drop_socket(None);
    let newer = h.core.ping(h.now);
    let out = h.take();
    assert!(completions(&out).is_empty(), "a resendable request does not fail");

    h.tick_until_open();
    h.open_and_welcome(limits());
    let resent = sent_ids(&h.take());
    assert_eq!(resent.len(), 2);
    assert_eq!(resent[0], original[0], "same request, same id, first in line");
    h.ok(resent[0]);
    h.ok(resent[1]);
    let out = h.take();
    assert_eq!(result_of(&out, op), Ok(None));
    assert_eq!(result_of(&out, newer), Ok(None));
}

#[test]
fn terminal_close_codes_should_stop_reconnecting_and_report_the_error() {
    for (code, expected) in [(4002, ErrorCode::UnsupportedVersion), (4003, ErrorCode::Unauthorized)]
    {
        let mut h = Harness::connected(config(), limits());
        h.drop_socket(Some(code));
        let out = h.take();
        assert_eq!(states(&out), vec![ConnectionState::Closed], "code {code}");
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Notice(ClientNotice::Error(e)) if e.is(expected)
        )));
        assert_eq!(h.core.close_reason().and_then(ClientError::error_code), Some(expected));
        let later = h.core.ping(h.now);
        h.run_for(60_000);
        let out = h.take();
        assert_eq!(error_of(&out, later), expected, "code {code}");
        assert!(!out.iter().any(|o| matches!(o, Output::OpenSocket { .. })), "code {code}");
    }
}

#[test]
fn terminal_close_should_notify_the_app_and_fail_waiting_ops_with_its_error() {
    let mut h = Harness::connected(config(), limits());
    h.drop_socket(None);
    let waiting = h.core.ping(h.now);
    h.tick_until_open();
    h.take();
    h.core.on_socket_open(h.socket, h.now);
    h.core.on_socket_closed(h.socket, h.now, Some(4003), "bad token");
    let out = h.take();
    assert_eq!(error_of(&out, waiting), ErrorCode::Unauthorized);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Notice(ClientNotice::Error(e)) if e.is(ErrorCode::Unauthorized)
            && e.message.contains("bad token")
    )));
    assert_eq!(states(&out), vec![ConnectionState::Closed]);
}

#[test]
fn non_terminal_close_codes_and_abnormal_drops_should_reconnect() {
    for code in [Some(1000), Some(1001), Some(1011), Some(4005), Some(4006), None] {
        let mut h = Harness::connected(config(), limits());
        h.drop_socket(code);
        h.tick_until_open();
        let out = h.take();
        assert!(out.iter().any(|o| matches!(o, Output::OpenSocket { .. })), "{code:?}: {out:?}");
        assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    }
}

#[test]
fn failed_first_attempt_should_close_with_the_error_and_not_retry() {
    let mut h = Harness::new(config());
    h.core.on_socket_closed(h.socket, h.now, None, "connection refused");
    let out = h.take();
    assert_eq!(states(&out), vec![ConnectionState::Closed]);
    let reason = h.core.close_reason().cloned().unwrap();
    assert!(reason.is(ErrorCode::Disconnected));
    assert!(reason.message.contains("connection refused"), "{reason}");
    h.run_for(60_000);
    assert!(!h.take().iter().any(|o| matches!(o, Output::OpenSocket { .. })));
}

#[test]
fn first_attempt_should_be_retried_when_configured() {
    let mut h = Harness::new(CoreConfig { retry_initial_connect: true, ..config() });
    h.core.on_socket_closed(h.socket, h.now, None, "refused");
    h.tick_until_open();
    let out = h.take();
    assert!(out.iter().any(|o| matches!(o, Output::OpenSocket { .. })));
    assert!(states(&out).is_empty(), "still connecting: {out:?}");
}

#[test]
fn disabled_reconnect_should_close_when_the_socket_is_lost() {
    let mut h = Harness::connected(CoreConfig { reconnect: false, ..config() }, limits());
    h.drop_socket(Some(1001));
    h.run_for(60_000);
    let out = h.take();
    assert_eq!(states(&out), vec![ConnectionState::Closed]);
    assert!(!out.iter().any(|o| matches!(o, Output::OpenSocket { .. })));
}

#[test]
fn socket_that_never_opens_or_never_welcomes_should_be_given_up_on() {
    let mut h = Harness::connected(config(), limits());
    h.drop_socket(None);
    h.tick_until_open();
    let first = h.socket;
    h.take();
    h.advance(1_000);
    let out = h.take();
    assert!(
        out.iter().any(|o| matches!(o, Output::CloseSocket { socket, .. } if *socket == first))
    );

    // Opened, hello sent, but no welcome within the timeout.
    h.tick_until_open();
    let second = h.socket;
    assert_ne!(second, first);
    h.core.on_socket_open(second, h.now);
    h.advance(999);
    assert!(!h.take().iter().any(|o| matches!(o, Output::CloseSocket { .. })));
    h.advance(1);
    let out = h.take();
    assert!(
        out.iter().any(|o| matches!(o, Output::CloseSocket { socket, .. } if *socket == second))
    );
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
}

#[test]
fn events_from_an_old_socket_should_be_ignored() {
    let mut h = Harness::connected(config(), limits());
    let old = h.socket;
    h.drop_socket(None);
    h.tick_until_open();
    h.take();
    assert_ne!(h.socket, old);
    // The old socket's late close must not end the new attempt.
    h.core.on_socket_closed(old, h.now, Some(4003), "");
    h.core.on_socket_open(old, h.now);
    assert!(h.take().is_empty());
    h.open_and_welcome(limits());
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn request_ids_should_never_repeat_across_sessions() {
    let mut h = Harness::connected(config(), limits());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        h.core.ping(h.now);
        h.core.subscribe(h.now, "a");
        for id in sent_ids(&h.take()) {
            assert!(seen.insert(id), "id {id} reused");
        }
        h.reconnect(None, limits());
        for id in sent_ids(&h.take()) {
            assert!(seen.insert(id), "id {id} reused");
        }
    }
}
