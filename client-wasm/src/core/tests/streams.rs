//! Stream requests: reply bodies, what a lost connection does to each, and appends with
//! idempotency keys.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{Append, ClientFrame};
use switchboard_protocol::streams::{Durability, Retention, StreamInfo};

use super::super::{AppendOptions, StreamOptions};
use super::*;

fn appends(out: &[Output]) -> Vec<Append> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Append(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn info(stream: &str) -> StreamInfo {
    StreamInfo {
        stream: stream.into(),
        partitions: 3,
        epoch: 11,
        retention: Retention::default(),
        durability: Durability::Immediate,
        created: 5,
    }
}

#[test]
fn append_should_carry_a_generated_idempotency_key_and_be_resent_with_the_same_id_and_key() {
    let mut h = Harness::connected(config(), limits());
    let op = h.core.append(h.now, "orders", Payload::from("a"), AppendOptions::default());
    let first = appends(&h.take());
    assert_eq!(first.len(), 1);
    let key = first[0].idempotency_key.clone().expect("a generated key");
    assert_eq!(key.len(), 32, "128 bits in hex: {key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));

    h.reconnect(None, limits());
    let out = h.take();
    assert!(completions(&out).is_empty(), "an append is not failed");
    let again = appends(&out);
    assert_eq!(again, first, "same request id, same key, same record");

    h.reply(again[0].id, ReplyBody::Appended { partition: 1, offset: 41, timestamp: 9 });
    assert_eq!(
        result_of(&h.take(), op),
        Ok(Some(ReplyBody::Appended { partition: 1, offset: 41, timestamp: 9 }))
    );
}

#[test]
fn appends_should_get_distinct_keys_and_a_callers_key_should_be_kept() {
    let mut h = Harness::connected(config(), limits());
    for _ in 0..3 {
        h.core.append(h.now, "s", Payload::from("x"), AppendOptions::default());
    }
    let options = AppendOptions {
        key: Some("user-1".into()),
        idempotency_key: Some("mine".into()),
        ..AppendOptions::default()
    };
    h.core.append(h.now, "s", Payload::from("x"), options);
    let sent = appends(&h.take());
    let keys: Vec<String> = sent.iter().map(|a| a.idempotency_key.clone().unwrap()).collect();
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    assert_eq!(keys[3], "mine");
    assert_eq!(sent[3].key.as_deref(), Some("user-1"));
}

#[test]
fn clients_with_different_entropy_should_generate_different_keys() {
    let key = |entropy| {
        let mut h = Harness::connected(CoreConfig { entropy: Some(entropy), ..config() }, limits());
        h.core.append(h.now, "s", Payload::from("x"), AppendOptions::default());
        appends(&h.take())[0].idempotency_key.clone().unwrap()
    };
    assert_ne!(key([1; 32]), key([2; 32]));
}

#[test]
fn append_without_entropy_or_a_key_should_fail_rather_than_share_keys_with_other_clients() {
    let mut h = Harness::connected(CoreConfig { entropy: None, ..config() }, limits());
    let op = h.core.append(h.now, "s", Payload::from("x"), AppendOptions::default());
    let out = h.take();
    assert_eq!(error_of(&out, op), ErrorCode::InvalidArgument);
    assert!(sent(&out).is_empty());

    let keyed = AppendOptions { idempotency_key: Some("k".into()), ..AppendOptions::default() };
    h.core.append(h.now, "s", Payload::from("x"), keyed);
    assert_eq!(appends(&h.take()).len(), 1);
}

#[test]
fn create_list_describe_and_commit_should_be_resent_after_a_reconnect() {
    let mut h = Harness::connected(config(), limits());
    let options = StreamOptions { partitions: Some(3), ..StreamOptions::default() };
    let create = h.core.create_stream(h.now, "s", options);
    h.core.list_streams(h.now);
    h.core.describe_stream(h.now, "s");
    h.core.commit(h.now, "s", "g", 0, 10, 2);
    let before = sent(&h.take());
    assert_eq!(before.len(), 4);

    h.reconnect(None, limits());
    let out = h.take();
    assert!(completions(&out).is_empty());
    let after: Vec<ClientFrame> = sent(&out).into_iter().skip(1).collect();
    assert_eq!(after, before, "the same frames, ids and order");

    h.reply(after[0].request_id().unwrap(), ReplyBody::Stream(info("s")));
    assert_eq!(result_of(&h.take(), create), Ok(Some(ReplyBody::Stream(info("s")))));
}

#[test]
fn delete_stream_in_flight_on_disconnect_should_fail_and_never_be_resent() {
    let mut h = Harness::connected(config(), limits());
    let delete = h.core.delete_stream(h.now, "s");
    h.take();
    h.drop_socket(None);
    assert_eq!(error_of(&h.take(), delete), ErrorCode::Disconnected);
    h.tick_until_open();
    h.open_and_welcome(limits());
    let ops: Vec<&str> = sent(&h.take()).iter().map(ClientFrame::op).collect();
    assert_eq!(ops, vec!["hello"]);
}

#[test]
fn invalid_stream_names_should_fail_before_anything_is_sent() {
    let mut h = Harness::connected(config(), limits());
    let ops = [
        h.core.create_stream(h.now, "a b", StreamOptions::default()),
        h.core.describe_stream(h.now, ""),
        h.core.delete_stream(h.now, "x.*"),
        h.core.append(h.now, "a..b", Payload::from("x"), AppendOptions::default()),
        h.core.read(h.now, ">", ReadOptions::default()),
        h.core.commit(h.now, "a/b", "g", 0, 0, 0),
    ];
    let out = h.take();
    for op in ops {
        assert_eq!(error_of(&out, op), ErrorCode::InvalidName);
    }
    assert!(sent(&out).is_empty());
}
