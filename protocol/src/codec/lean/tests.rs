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
        reply(257, ReplyBody::AckedMany { failed: vec![] }),
        reply(
            258,
            ReplyBody::AckedMany {
                failed: vec![
                    SettleFailure::new(1, u64::MAX, ErrorCode::LeaseExpired, "gone"),
                    SettleFailure::new(u64::MAX, 0, ErrorCode::NotFound, ""),
                ],
            },
        ),
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

/// Values at every boundary of a MessagePack length or integer form.
const SIZES: [usize; 8] = [0, 1, 15, 16, 31, 32, 255, 256];
const NUMBERS: [u64; 10] = [0, 127, 128, 255, 256, 65_535, 65_536, 0xffff_ffff, 1 << 32, u64::MAX];

fn text(len: usize) -> String {
    "é".repeat(len / 2) + &"x".repeat(len % 2)
}

fn many_headers(n: usize) -> Headers {
    (0..n).map(|i| (format!("h{i}"), text(i))).collect()
}

/// Every client frame, each field present and absent, with lengths and numbers at each
/// boundary of their encoding.
fn every_client_frame() -> Vec<ClientFrame> {
    use crate::queues::QueueOptions;
    use crate::streams::{PartitionOffset, ReadFrom};
    let mut frames = Vec::new();
    for (i, &n) in NUMBERS.iter().enumerate() {
        let size = SIZES[i % SIZES.len()];
        let some = i % 2 == 0;
        let name = text(size.max(1));
        let data = Payload::from(vec![7u8; size * 300]);
        frames.extend([
            ClientFrame::Hello(Hello {
                version: n as u32,
                token: some.then(|| text(size)),
                client: (!some).then(|| text(size)),
            }),
            ClientFrame::Ping(Ping { id: n }),
            ClientFrame::Publish(Publish {
                id: n,
                topic: name.clone(),
                data: data.clone(),
                headers: many_headers(size % 20),
            }),
            ClientFrame::Subscribe(Subscribe { id: n, pattern: name.clone() }),
            ClientFrame::Unsubscribe(Unsubscribe { id: n, pattern: name.clone() }),
            ClientFrame::CreateStream(CreateStream {
                id: n,
                stream: name.clone(),
                partitions: some.then_some(n as u32),
                retention: some.then_some(Retention {
                    max_age_ms: Some(n),
                    max_bytes: None,
                    max_records: Some(n / 2),
                }),
                durability: Some(if some {
                    Durability::Interval(n)
                } else {
                    Durability::Immediate
                }),
            }),
            ClientFrame::Append(Append {
                id: n,
                stream: name.clone(),
                data: data.clone(),
                key: some.then(|| text(size)),
                headers: many_headers(size % 17),
                idempotency_key: (!some).then(|| text(size)),
            }),
            ClientFrame::Read(Read {
                id: n,
                stream: name.clone(),
                partition: some.then_some(n as u32),
                from: [
                    ReadFrom::Earliest,
                    ReadFrom::Latest,
                    ReadFrom::Offset(n),
                    ReadFrom::Time(n),
                ][i % 4],
                positions: (0..size as u32 % 20)
                    .map(|p| PartitionOffset { partition: p, offset: n.wrapping_sub(u64::from(p)) })
                    .collect(),
                epoch: some.then_some(n),
                credit: n as u32,
                group: some.then(|| name.clone()),
                member: (!some).then(|| text(size)),
                auto_commit: some,
            }),
            ClientFrame::Credit(Credit { id: n, reader: n, n: n as u32 }),
            ClientFrame::CloseReader(CloseReader { id: n, reader: n }),
            ClientFrame::Commit(Commit {
                id: n,
                stream: name.clone(),
                group: text(size),
                partition: n as u32,
                offset: n,
                generation: n,
            }),
            ClientFrame::ListStreams(ListStreams { id: n }),
            ClientFrame::DescribeStream(StreamRef { id: n, stream: name.clone() }),
            ClientFrame::DeleteStream(StreamRef { id: n, stream: name.clone() }),
            ClientFrame::CreateQueue(CreateQueue {
                id: n,
                queue: name.clone(),
                options: if some {
                    QueueOptions {
                        lease_ms: Some(n),
                        max_lease_ms: Some(n),
                        max_attempts: Some(n as u32),
                        backoff_ms: Some(NUMBERS[..i].to_vec()),
                        dead_letter: Some(text(size)),
                        dedup_window_ms: Some(n),
                        max_length: Some(n),
                        ordered_by_key: Some(i % 4 == 0),
                    }
                } else {
                    QueueOptions::default()
                },
            }),
            ClientFrame::Enqueue(Enqueue {
                id: n,
                queue: name.clone(),
                data: data.clone(),
                headers: many_headers(size % 18),
                delay_ms: some.then_some(n),
                not_before: (!some).then_some(n),
                key: some.then(|| text(size)),
                priority: some.then_some(n as u8),
                idempotency_key: some.then(|| text(size)),
            }),
            ClientFrame::Pull(Pull {
                id: n,
                queue: name.clone(),
                max: some.then_some(n as u32),
                wait_ms: some.then_some(n),
            }),
            ClientFrame::Consume(Consume { id: n, queue: name.clone(), prefetch: n as u32 }),
            ClientFrame::StopConsume(StopConsume { id: n, consumer: n }),
            ClientFrame::Ack(Settle { id: n, queue: name.clone(), task: n, lease: n }),
            ClientFrame::Release(Settle { id: n, queue: name.clone(), task: n, lease: !n }),
            ClientFrame::Nack(Nack {
                id: n,
                queue: name.clone(),
                task: n,
                lease: n,
                delay_ms: some.then_some(n),
                reason: some.then(|| text(size)),
            }),
            ClientFrame::Extend(Extend { id: n, queue: name.clone(), task: n, lease: n, ms: n }),
            ClientFrame::Reject(Reject {
                id: n,
                queue: name.clone(),
                task: n,
                lease: n,
                reason: text(size),
            }),
            ClientFrame::Redrive(Redrive {
                id: n,
                queue: name.clone(),
                ids: NUMBERS[..i].to_vec(),
                all: some,
            }),
            ClientFrame::QueueStats(QueueRef { id: n, queue: name.clone() }),
            ClientFrame::ListQueues(ListQueues { id: n }),
            ClientFrame::DeleteQueue(QueueRef { id: n, queue: name.clone() }),
            ClientFrame::AckMany(AckMany {
                id: n,
                queue: name,
                tasks: NUMBERS[..i].iter().map(|&k| LeaseRef { task: k, lease: !k }).collect(),
            }),
        ]);
    }
    frames
}

#[test]
fn lean_encoding_should_equal_the_serde_encoding_byte_for_byte() {
    let frames = every_client_frame();
    let mut ops: Vec<&str> = frames.iter().map(ClientFrame::op).collect();
    ops.sort_unstable();
    ops.dedup();
    assert_eq!(ops.len(), ClientFrame::OPS.len(), "every operation is covered");
    for frame in &frames {
        let ours = super::encode_client(frame);
        assert_eq!(ours, encode(frame, Format::MsgPack).unwrap(), "{frame:?}");
        let back = crate::codec::decode_client(&ours, Format::MsgPack).unwrap();
        assert_eq!(&back, frame);
    }
}

#[test]
fn records_should_encode_as_serde_stores_them_byte_for_byte() {
    let mut records: Vec<_> = (0..7).map(record).collect();
    for (i, &n) in NUMBERS.iter().enumerate() {
        let size = [0, 1, 255, 256, 65_535, 65_536, 100_000][i % 7];
        records.push(crate::streams::Record {
            offset: n,
            timestamp: NUMBERS[NUMBERS.len() - 1 - i],
            key: (i % 2 == 0).then(|| text(SIZES[i % SIZES.len()])),
            headers: many_headers(if i % 3 == 0 { 0 } else { 17 }),
            data: Payload::from(vec![i as u8; size]),
        });
    }
    let mut out = vec![7u8];
    for r in &records {
        let at = out.len();
        super::encode_record_into(&mut out, r);
        assert_eq!(out[at..], rmp_serde::encode::to_vec_named(r).unwrap()[..], "{r:?}");
        let back: crate::streams::Record = rmp_serde::from_slice(&out[at..]).unwrap();
        assert_eq!(&back, r);
    }
    assert_eq!(out[0], 7, "appended after what the buffer held");
}

/// Client frames through the serde path alone, as the hub decoded them before the lean one.
fn serde_client(bytes: &[u8]) -> Result<ClientFrame, (ErrorCode, Option<u64>)> {
    crate::codec::decode_frame::<ClientFrame>(bytes, Format::MsgPack, ClientFrame::OPS)
        .map_err(|e| (e.code, e.request_id))
}

/// Whatever the lean path takes decodes through serde to the same frame, and the hub's
/// `decode_client` answers every input as the serde path alone does.
fn assert_client_same(bytes: &[u8]) {
    let serde = serde_client(bytes);
    if let Some(frame) = super::decode_client_hot(bytes) {
        assert_eq!(serde.as_ref(), Ok(&frame), "input {bytes:02x?}");
    }
    let hub =
        crate::codec::decode_client(bytes, Format::MsgPack).map_err(|e| (e.code, e.request_id));
    assert_eq!(hub, serde, "input {bytes:02x?}");
}

fn hot_client_frames() -> Vec<ClientFrame> {
    every_client_frame()
        .into_iter()
        .filter(|f| {
            matches!(f, ClientFrame::Append(_) | ClientFrame::Enqueue(_) | ClientFrame::Publish(_))
        })
        .collect()
}

#[test]
fn appends_enqueues_and_publishes_should_decode_without_serde_to_the_same_frames() {
    let frames = hot_client_frames();
    assert!(frames.len() >= 30);
    for frame in &frames {
        let bytes = encode(frame, Format::MsgPack).unwrap();
        assert_eq!(super::decode_client_hot(&bytes).as_ref(), Some(frame));
        assert_client_same(&bytes);
    }
    // Other operations are left to serde.
    let ping = encode(&ClientFrame::Ping(Ping { id: 1 }), Format::MsgPack).unwrap();
    assert_eq!(super::decode_client_hot(&ping), None);
}

#[test]
fn hot_client_frames_should_read_loose_fields_as_serde_reads_them() {
    let stream = [0xa1, b's'];
    let cases = [
        // Unknown fields, nil optionals, wide integers, a payload as a string and as an array.
        frame_of(
            "append",
            &[
                ("id", &[0xcf, 0, 0, 0, 0, 0, 0, 0, 1]),
                ("later", &[0x92, 1, 0xc0]),
                ("stream", &stream),
                ("data", &[0xa2, b'h', b'i']),
                ("key", &[0xc0]),
                ("idempotency_key", &[0xc0]),
            ],
        ),
        frame_of("append", &[("id", &[2]), ("stream", &stream), ("data", &[0x92, 1, 0xcc, 200])]),
        frame_of(
            "enqueue",
            &[("id", &[3]), ("queue", &stream), ("data", &[0xc4, 0]), ("priority", &[0xd0, 9])],
        ),
        frame_of(
            "publish",
            &[("id", &[4]), ("topic", &stream), ("data", &[0xc4, 0]), ("headers", &[0x80])],
        ),
        // Refused by both: a missing field, a duplicate one, a priority out of range, a
        // payload array element out of range, a field of the wrong type.
        frame_of("append", &[("id", &[5]), ("stream", &stream)]),
        frame_of("append", &[("id", &[6]), ("id", &[6]), ("stream", &stream), ("data", &stream)]),
        frame_of(
            "enqueue",
            &[("id", &[7]), ("queue", &stream), ("data", &stream), ("priority", &[0xcd, 1, 0])],
        ),
        frame_of("publish", &[("id", &[8]), ("topic", &stream), ("data", &[0x91, 0xcd, 1, 0])]),
        frame_of("publish", &[("id", &[9]), ("topic", &[7]), ("data", &stream)]),
    ];
    for bytes in &cases {
        assert_client_same(bytes);
    }
    // Structs written as arrays of their fields, and the operation given as its index.
    let mut array = vec![0x81];
    rmp::encode::write_str(&mut array, "append").unwrap();
    array.extend_from_slice(&[0x93, 10, 0xa1, b's', 0xc4, 1, 7]);
    assert!(super::decode_client_hot(&array).is_some());
    assert_client_same(&array);
    let index = ClientFrame::OPS.iter().position(|&op| op == "append").unwrap() as u8;
    let by_index = [0x81, index, 0x93, 11, 0xa1, b's', 0xc4, 0];
    assert_client_same(&by_index);
}

#[test]
fn corrupted_hot_client_frames_should_decode_as_the_serde_path_does() {
    let mut rng = Rng(0x0dd_c0ff_ee15_900d);
    let frames: Vec<Vec<u8>> =
        hot_client_frames().iter().map(|f| encode(f, Format::MsgPack).unwrap()).collect();
    for bytes in &frames {
        for cut in 0..bytes.len().min(200) {
            assert_client_same(&bytes[..cut]);
        }
    }
    for _ in 0..30_000 {
        let mut bytes = frames[rng.below(frames.len())].clone();
        for _ in 0..1 + rng.below(3) {
            // Mostly in the head, where the structure is; payloads are long.
            let at = rng.below(bytes.len().min(64));
            bytes[at] = rng.next() as u8;
        }
        assert_client_same(&bytes);
    }
}
