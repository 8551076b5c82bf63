//! The lean decoder against the serde path: the same frames from the same bytes, the same error
//! codes for bad input, and no panics on any input.

use super::decode_server as lean;
use crate::codec::tests::{headers, info, record, server_frames};
use crate::codec::{Format, decode_server, encode};
use crate::codes::ErrorCode;
use crate::frame::*;
use crate::payload::{Headers, Payload};
use crate::queues::{DeadLetter, QueueInfo, QueueStats, Task};
use crate::streams::{Durability, Retention, StreamInfo};

fn task(id: u64, dead: bool) -> Task {
    Task {
        queue: "jobs".into(),
        id,
        lease: u64::MAX,
        deadline: 1 << 40,
        attempt: u32::MAX,
        priority: u8::MAX,
        key: id.is_multiple_of(2).then(|| "ключ".into()),
        headers: if dead { headers() } else { Headers::new() },
        data: Payload::from(if dead { vec![] } else { "héllo ✓".as_bytes().to_vec() }),
        enqueued: 0,
        dead_letter: dead.then(|| DeadLetter {
            queue: "jobs".into(),
            task: 9,
            attempts: 5,
            failures: 0,
            reason: Some("lease expired".into()),
            enqueued: 127,
            died: 128,
        }),
    }
}

fn queue_info(dead_letter: Option<&str>) -> QueueInfo {
    QueueInfo {
        queue: "jobs".into(),
        lease_ms: 255,
        max_lease_ms: 256,
        max_attempts: 65_535,
        backoff_ms: vec![0, 127, 128, 65_536, u64::from(u32::MAX), u64::from(u32::MAX) + 1],
        dead_letter: dead_letter.map(Into::into),
        dedup_window_ms: 120_000,
        max_length: 1_000_000,
        ordered_by_key: dead_letter.is_none(),
        created: u64::MAX - 1,
    }
}

/// Frames beyond the round-trip set: every reply, edge integers, absent and present optionals,
/// empty and non-UTF-8 payloads.
fn more_frames() -> Vec<ServerFrame> {
    let reply = |id, body| ServerFrame::Ok(Reply { id, result: Some(body) });
    let mut frames = vec![
        reply(0, ReplyBody::Published { receivers: 0 }),
        reply(u64::MAX, ReplyBody::Enqueued { task: u64::MAX }),
        reply(128, ReplyBody::Consuming { consumer: 1 << 32 }),
        reply(255, ReplyBody::Extended { deadline: 1 << 16 }),
        reply(256, ReplyBody::Redriven { count: 65_535 }),
        reply(1, ReplyBody::Tasks { tasks: vec![] }),
        reply(2, ReplyBody::Tasks { tasks: vec![task(1, false), task(2, true)] }),
        reply(3, ReplyBody::Queue(queue_info(Some("jobs.dlq")))),
        reply(4, ReplyBody::Queues { queues: vec![queue_info(None), queue_info(Some(""))] }),
        reply(5, ReplyBody::Streams { streams: vec![] }),
        reply(
            6,
            ReplyBody::ReadStarted { reader: 0, epoch: u64::MAX, member: None, partitions: vec![] },
        ),
        reply(
            7,
            ReplyBody::Stream(StreamInfo {
                retention: Retention {
                    max_age_ms: Some(0),
                    max_bytes: Some(u64::MAX),
                    max_records: None,
                },
                durability: Durability::Interval(50),
                ..info()
            }),
        ),
        ServerFrame::Error(ErrorFrame {
            epoch: Some(u64::MAX),
            low_watermark: Some(0),
            ..ErrorFrame::new(Some(0), ErrorCode::EpochMismatch, "")
        }),
        ServerFrame::Deliver(Deliver {
            topic: "ü.ñ".into(),
            data: Payload::from(vec![0xc1, 0xff, 0x00, 0x80]),
            headers: Headers::new(),
        }),
        ServerFrame::Deliver(Deliver {
            topic: "a".into(),
            data: Payload::from(vec![7u8; 70_000]),
            headers: (0..20).map(|i| (format!("h{i}"), "ü".repeat(i))).collect(),
        }),
        ServerFrame::Records(Records { reader: 0, partition: u32::MAX, records: vec![] }),
        ServerFrame::Records(Records {
            reader: 1,
            partition: 0,
            records: (0..40).map(record).collect(),
        }),
        ServerFrame::Revoked(Revoked { reader: 1, partitions: vec![] }),
        ServerFrame::Task(TaskDelivery { consumer: 3, task: task(4, true) }),
        ServerFrame::Task(TaskDelivery { consumer: 3, task: task(5, false) }),
        ServerFrame::ConsumerClosed(ConsumerClosed {
            consumer: 3,
            error: ErrorFrame::new(None, ErrorCode::NotFound, "queue deleted"),
        }),
    ];
    for acks_per_sec in [0.0, 1.5, -0.25, f64::MAX, f64::MIN_POSITIVE] {
        frames.push(reply(
            8,
            ReplyBody::QueueStats(QueueStats {
                queue: "jobs".into(),
                scheduled: 1,
                available: 2,
                leased: 3,
                dead: 4,
                redeliveries: 5,
                oldest_available_ms: 6,
                acks_per_sec,
                consumers: 7,
            }),
        ));
    }
    frames
}

fn all_frames() -> Vec<ServerFrame> {
    server_frames().into_iter().chain(more_frames()).collect()
}

fn msgpack(frame: &ServerFrame) -> Vec<u8> {
    encode(frame, Format::MsgPack).unwrap()
}

/// What a caller of either decoder can see: the frame, or the error's code and request id.
fn outcome(
    result: Result<ServerFrame, crate::DecodeError>,
) -> Result<ServerFrame, (ErrorCode, Option<u64>)> {
    result.map_err(|e| (e.code, e.request_id))
}

fn assert_same(bytes: &[u8]) {
    let (lean, serde) = (outcome(lean(bytes)), outcome(decode_server(bytes, Format::MsgPack)));
    match (&lean, &serde) {
        // Compared by encoding, so that a NaN rate compares equal to itself.
        (Ok(a), Ok(b)) => assert_eq!(msgpack(a), msgpack(b), "input {bytes:02x?}"),
        _ => assert_eq!(lean, serde, "input {bytes:02x?}"),
    }
}

#[test]
fn every_server_frame_should_decode_to_what_the_serde_path_decodes() {
    for frame in all_frames() {
        let bytes = msgpack(&frame);
        assert_eq!(lean(&bytes).as_ref(), Ok(&frame));
        assert_same(&bytes);
    }
}

/// `{op: {extra: value, ...fields}}` from a frame whose body is a struct of fewer than 15 fields.
fn with_extra_field(frame: &ServerFrame, key: &str, value: &[u8]) -> Option<Vec<u8>> {
    if matches!(frame, ServerFrame::Notice(_)) {
        return None;
    }
    let bytes = msgpack(frame);
    // The outer fixmap, then the op as a fixstr, then the body's fixmap header.
    let at = 2 + usize::from(bytes[1] & 0x1f);
    if bytes[at] & 0xf0 != 0x80 || bytes[at] == 0x8f {
        return None;
    }
    let mut out = bytes[..at].to_vec();
    out.push(bytes[at] + 1);
    rmp::encode::write_str(&mut out, key).unwrap();
    out.extend_from_slice(value);
    out.extend_from_slice(&bytes[at + 1..]);
    Some(out)
}

#[test]
fn unknown_fields_of_any_type_should_be_skipped() {
    let values: [&[u8]; 7] = [
        &[0xc0],
        &[0x92, 0x81, 0xa1, b'x', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xc4, 1, 9],
        &[0xd4, 1, 2],
        &[0xc7, 2, 5, 1, 2],
        &[0xdc, 0, 1, 0xff],
        &[0xde, 0, 1, 0xa2, b'i', b'd', 0x80],
        &[0xdb, 0, 0, 0, 1, b'z'],
    ];
    for frame in all_frames() {
        for value in values {
            let Some(bytes) = with_extra_field(&frame, "from_a_newer_hub", value) else {
                continue;
            };
            assert_eq!(lean(&bytes).as_ref(), Ok(&frame));
            assert_same(&bytes);
        }
    }
}

/// `{op: {fields}}` written by hand.
fn frame_of(op: &str, fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![0x81];
    rmp::encode::write_str(&mut out, op).unwrap();
    rmp::encode::write_map_len(&mut out, fields.len() as u32).unwrap();
    for (key, value) in fields {
        rmp::encode::write_str(&mut out, key).unwrap();
        out.extend_from_slice(value);
    }
    out
}

#[test]
fn nil_optionals_and_wide_or_signed_integers_should_read_as_serde_reads_them() {
    let name = [0xa3, b'b', b'a', b'd'];
    let cases = [
        frame_of("ok", &[("id", &[0xcf, 0, 0, 0, 0, 0, 0, 0, 1]), ("result", &[0xc0])]),
        frame_of("ok", &[("id", &[0xd3, 0, 0, 0, 0, 0, 0, 0, 2])]),
        frame_of("ok", &[("id", &[0xd0, 0x7f])]),
        frame_of(
            "error",
            &[
                ("id", &[0xc0]),
                ("code", &[0xcd, 0x01, 0x00]),
                ("name", &name),
                ("message", &[0xd9, 0]),
                ("epoch", &[0xc0]),
            ],
        ),
        frame_of("deliver", &[("topic", &name), ("data", &name)]),
    ];
    for bytes in &cases {
        assert!(lean(bytes).is_ok(), "{bytes:02x?}");
        assert_same(bytes);
    }
}

#[test]
fn wrong_types_should_be_invalid_and_keep_the_request_id() {
    let cases: [(Vec<u8>, Option<u64>); 7] = [
        (frame_of("ok", &[("id", &[3]), ("result", &[0xa1, b'x'])]), Some(3)),
        (frame_of("ok", &[("id", &[0xff])]), None),
        (frame_of("ok", &[("id", &[4]), ("id", &[4])]), Some(4)),
        (frame_of("error", &[("id", &[5]), ("code", &[0xce, 0, 1, 0, 0])]), Some(5)),
        (frame_of("revoked", &[("reader", &[1]), ("partitions", &[0x91, 0xc3])]), None),
        (frame_of("deliver", &[("topic", &[0xa1, 0xff]), ("data", &[0xc4, 0])]), None),
        (frame_of("welcome", &[("id", &[6])]), Some(6)),
    ];
    for (bytes, id) in &cases {
        assert_eq!(outcome(lean(bytes)), Err((ErrorCode::InvalidFrame, *id)), "{bytes:02x?}");
        assert_same(bytes);
    }
    let unknown = frame_of("frobnicate", &[("id", &[11])]);
    assert_eq!(outcome(lean(&unknown)), Err((ErrorCode::UnknownOp, Some(11))));
    for not_a_frame in [&[0x2a][..], &[0x80], &[0x92, 1, 2], &[0xa2, b'o', b'k'], &[0x81, 1, 0x80]]
    {
        assert_eq!(outcome(lean(not_a_frame)), Err((ErrorCode::InvalidFrame, None)));
        assert_same(not_a_frame);
    }
}

#[test]
fn every_truncation_and_trailing_byte_should_be_malformed() {
    for frame in all_frames() {
        let mut bytes = msgpack(&frame);
        for cut in 0..bytes.len() {
            assert_eq!(outcome(lean(&bytes[..cut])), Err((ErrorCode::MalformedFrame, None)));
        }
        bytes.push(0);
        assert_eq!(outcome(lean(&bytes)), Err((ErrorCode::MalformedFrame, None)));
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_corrupted_input_should_be_classified_as_the_serde_path_does() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let frames: Vec<Vec<u8>> = all_frames().iter().map(msgpack).collect();
    for _ in 0..20_000 {
        let len = rng.below(48);
        let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert_same(&garbage);
    }
    for _ in 0..20_000 {
        let mut bytes = frames[rng.below(frames.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        assert_same(&bytes);
    }
}

#[test]
fn a_reply_body_name_should_be_its_tag_on_the_wire() {
    let bodies: Vec<ReplyBody> = all_frames()
        .into_iter()
        .filter_map(|f| match f {
            ServerFrame::Ok(Reply { result: Some(body), .. }) => Some(body),
            _ => None,
        })
        .collect();
    let mut named: Vec<&str> = bodies.iter().map(ReplyBody::name).collect();
    named.sort_unstable();
    named.dedup();
    let mut every = super::REPLY_BODIES.to_vec();
    every.sort_unstable();
    assert_eq!(named, every, "every reply body is in the sample");
    for body in bodies {
        let bytes = rmp_serde::to_vec_named(&body).unwrap();
        // {tag: ...}: a one-entry map whose key is a short string.
        let tag = &bytes[2..2 + usize::from(bytes[1] & 0x1f)];
        assert_eq!(std::str::from_utf8(tag).unwrap(), body.name());
    }
}
