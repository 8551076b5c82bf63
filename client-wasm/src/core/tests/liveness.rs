//! Keep-alive: the core pings a silent hub and treats an unanswered ping as a dead socket.

use switchboard_protocol::Limits;
use switchboard_protocol::frame::ClientFrame;

use super::*;

fn every(ping_interval_ms: u32) -> Limits {
    Limits { ping_interval_ms, ..limits() }
}

fn pings(out: &[Output]) -> Vec<u64> {
    sent(out)
        .iter()
        .filter(|f| matches!(f, ClientFrame::Ping(_)))
        .filter_map(ClientFrame::request_id)
        .collect()
}

#[test]
fn silent_socket_should_get_a_ping_after_the_ping_interval() {
    let mut h = Harness::connected(config(), every(5_000));
    assert_eq!(h.core.next_deadline(), Some(h.now + 5_000));
    h.advance(4_999);
    assert!(pings(&h.take()).is_empty());
    h.advance(1);
    assert_eq!(pings(&h.take()).len(), 1);
}

#[test]
fn traffic_should_postpone_the_ping() {
    let mut h = Harness::connected(config(), every(5_000));
    h.advance(4_000);
    h.deliver("t", "keeps it alive");
    h.advance(4_000);
    assert!(pings(&h.take()).is_empty());
    // WebSocket control frames count too.
    h.core.on_activity(h.socket, h.now);
    h.advance(4_999);
    assert!(pings(&h.take()).is_empty());
    h.advance(1);
    assert_eq!(pings(&h.take()).len(), 1);
}

#[test]
fn answered_ping_should_keep_the_session_and_schedule_the_next() {
    let mut h = Harness::connected(config(), every(5_000));
    h.advance(5_000);
    let id = pings(&h.take())[0];
    h.ok(id);
    h.advance(999);
    let out = h.take();
    assert!(!out.iter().any(|o| matches!(o, Output::CloseSocket { .. })));
    assert!(completions(&out).is_empty(), "the keep-alive is no app operation");
    h.advance(4_001);
    assert_eq!(pings(&h.take()).len(), 1);
}

#[test]
fn unanswered_ping_should_close_the_socket_and_reconnect() {
    let mut h = Harness::connected(config(), every(5_000));
    let socket = h.socket;
    h.advance(5_000);
    assert_eq!(pings(&h.take()).len(), 1);
    h.advance(999);
    assert!(h.take().is_empty(), "still within the request timeout");
    h.advance(1);
    let out = h.take();
    assert!(out.contains(&Output::CloseSocket {
        socket,
        code: 4006,
        reason: "no answer to the keep-alive ping".into()
    }));
    assert_eq!(states(&out), vec![ConnectionState::Reconnecting]);
    h.tick_until_open();
    assert_ne!(h.socket, socket);
}

#[test]
fn ping_should_go_ahead_of_queued_requests() {
    let mut h = Harness::connected(
        CoreConfig { request_timeout_ms: 60_000, ..config() },
        Limits { max_in_flight: 1, ..every(5_000) },
    );
    h.core.ping(h.now);
    let in_flight = sent_ids(&h.take())[0];
    let queued = [h.core.ping(h.now), h.core.ping(h.now)];
    h.advance(5_000);
    assert!(pings(&h.take()).is_empty(), "no free slot yet");
    h.ok(in_flight);
    let next = pings(&h.take());
    assert_eq!(next.len(), 1);
    assert!(next[0] > in_flight + 2, "the keep-alive (newest id) goes first");
    h.ok(next[0]);
    let out = h.take();
    assert_eq!(pings(&out).len(), 1, "then the queued app pings resume");
    assert!(completions(&out).iter().all(|c| !queued.contains(&c.op)));
}
