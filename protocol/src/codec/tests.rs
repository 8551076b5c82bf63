//! Round trips of every frame in both formats, and classification of bad input.

use super::*;
use crate::frame::*;
use crate::limits::Limits;
use crate::payload::{Headers, Payload};
use crate::streams::*;

pub(super) fn headers() -> Headers {
    [("k".to_owned(), "v".to_owned())].into_iter().collect()
}

pub(super) fn record(offset: u64) -> Record {
    Record {
        offset,
        timestamp: 1_700_000_000_000 + offset,
        key: offset.is_multiple_of(2).then(|| format!("k{offset}")),
        headers: if offset.is_multiple_of(3) { headers() } else { Headers::new() },
        data: Payload::from(vec![offset as u8; offset as usize]),
    }
}

pub(super) fn info() -> StreamInfo {
    StreamInfo {
        stream: "orders".into(),
        partitions: 3,
        epoch: u64::MAX,
        retention: Retention::default(),
        durability: Durability::Immediate,
        created: 5,
    }
}

#[test]
fn a_records_frame_built_from_stored_records_should_equal_the_encoded_frame() {
    for (reader, partition, n) in [(1, 0, 0), (300, 70_000, 3), (u64::MAX, u32::MAX, 40)] {
        let records: Vec<Record> = (0..n).map(record).collect();
        let stored: Vec<Vec<u8>> =
            records.iter().map(|r| encode(r, Format::MsgPack).unwrap()).collect();
        let expected =
            encode(&ServerFrame::Records(Records { reader, partition, records }), Format::MsgPack)
                .unwrap();
        assert_eq!(encode_records_msgpack(reader, partition, &stored), expected);
    }
}

fn client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Hello(Hello { version: 1, token: Some("t".into()), client: None }),
        ClientFrame::Hello(Hello { version: 1, token: None, client: Some("c".into()) }),
        ClientFrame::Ping(Ping { id: 7 }),
        ClientFrame::Publish(Publish {
            id: u64::MAX,
            topic: "a.b".into(),
            data: Payload::from(vec![0, 159, 146, 150]),
            headers: headers(),
        }),
        ClientFrame::Publish(Publish {
            id: 1,
            topic: "a".into(),
            data: Payload::from("text"),
            headers: Headers::new(),
        }),
        ClientFrame::Subscribe(Subscribe { id: 2, pattern: "a.>".into() }),
        ClientFrame::Unsubscribe(Unsubscribe { id: 3, pattern: "*.b".into() }),
        ClientFrame::CreateStream(CreateStream {
            id: 4,
            stream: "orders".into(),
            partitions: Some(4),
            retention: Some(Retention {
                max_age_ms: Some(1000),
                max_bytes: None,
                max_records: Some(5),
            }),
            durability: Some(Durability::Interval(20)),
        }),
        ClientFrame::Append(Append {
            id: 5,
            stream: "orders".into(),
            data: Payload::from("x"),
            key: Some("k".into()),
            headers: headers(),
            idempotency_key: Some("i".into()),
        }),
        ClientFrame::Read(Read {
            id: 6,
            stream: "orders".into(),
            partition: None,
            from: ReadFrom::Time(123),
            positions: vec![PartitionOffset { partition: 1, offset: 7 }],
            epoch: Some(99),
            credit: 100,
            group: Some("g".into()),
            member: Some("m".into()),
            auto_commit: true,
        }),
        ClientFrame::Credit(Credit { id: 7, reader: 1, n: 10 }),
        ClientFrame::CloseReader(CloseReader { id: 8, reader: 1 }),
        ClientFrame::Commit(Commit {
            id: 9,
            stream: "orders".into(),
            group: "g".into(),
            partition: 0,
            offset: 10,
            generation: 3,
        }),
        ClientFrame::ListStreams(ListStreams { id: 10 }),
        ClientFrame::DescribeStream(StreamRef { id: 11, stream: "orders".into() }),
        ClientFrame::DeleteStream(StreamRef { id: 12, stream: "orders".into() }),
    ]
}

pub(super) fn server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Welcome(Welcome {
            session: 9,
            server: "0.1.0".into(),
            protocol: 1,
            limits: Limits::default(),
        }),
        ServerFrame::Ok(Reply { id: 1, result: None }),
        ServerFrame::Ok(Reply { id: 2, result: Some(ReplyBody::Published { receivers: 3 }) }),
        ServerFrame::Error(ErrorFrame::new(Some(4), ErrorCode::InvalidName, "bad")),
        ServerFrame::Error(ErrorFrame::new(None, ErrorCode::MalformedFrame, "bad")),
        ServerFrame::Deliver(Deliver {
            topic: "a.b".into(),
            data: Payload::from(vec![1, 2, 255]),
            headers: headers(),
        }),
        ServerFrame::Notice(Notice::Lagged { topic: "a.b".into(), missed: 12 }),
        ServerFrame::Records(Records {
            reader: 1,
            partition: 2,
            records: vec![record(7), record(8)],
        }),
        ServerFrame::Assigned(Assigned {
            reader: 1,
            generation: 4,
            partitions: vec![PartitionOffset { partition: 0, offset: 3 }],
        }),
        ServerFrame::Revoked(Revoked { reader: 1, partitions: vec![0, 2] }),
        ServerFrame::ReaderClosed(ReaderClosed {
            reader: 1,
            error: ErrorFrame {
                low_watermark: Some(40),
                ..ErrorFrame::new(None, ErrorCode::OffsetOutOfRange, "gone")
            },
        }),
        ServerFrame::Ok(Reply {
            id: 3,
            result: Some(ReplyBody::Appended { partition: 1, offset: 2, timestamp: 3 }),
        }),
        ServerFrame::Ok(Reply { id: 7, result: Some(ReplyBody::Stream(info())) }),
        ServerFrame::Ok(Reply {
            id: 4,
            result: Some(ReplyBody::ReadStarted {
                reader: 1,
                epoch: 2,
                member: Some("m".into()),
                partitions: vec![ReaderPartition { partition: 0, next: 1, low: 0, high: 5 }],
            }),
        }),
        ServerFrame::Ok(Reply {
            id: 5,
            result: Some(ReplyBody::Streams { streams: vec![info()] }),
        }),
        ServerFrame::Ok(Reply {
            id: 6,
            result: Some(ReplyBody::Described(StreamDescription {
                info: info(),
                partitions: vec![PartitionInfo {
                    partition: 0,
                    low: 1,
                    high: 4,
                    bytes: 30,
                    records: 3,
                }],
                groups: vec![GroupInfo {
                    group: "g".into(),
                    members: 2,
                    partitions: vec![GroupPartitionInfo {
                        partition: 0,
                        committed: Some(2),
                        lag: 2,
                    }],
                }],
            })),
        }),
    ]
}

#[test]
fn every_client_frame_should_round_trip_in_both_formats() {
    for format in [Format::MsgPack, Format::Json] {
        for frame in client_frames() {
            let bytes = encode(&frame, format).unwrap();
            assert_eq!(decode_client(&bytes, format).unwrap(), frame, "{format:?}");
        }
    }
}

#[test]
fn every_server_frame_should_round_trip_in_both_formats() {
    for format in [Format::MsgPack, Format::Json] {
        for frame in server_frames() {
            let bytes = encode(&frame, format).unwrap();
            assert_eq!(decode_server(&bytes, format).unwrap(), frame, "{format:?}");
        }
    }
}

#[test]
fn json_frames_should_be_readable_by_hand() {
    let frame: ClientFrame =
        decode_client(br#"{"publish":{"id":5,"topic":"a.b","data":"hi"}}"#, Format::Json).unwrap();
    assert_eq!(
        frame,
        ClientFrame::Publish(Publish {
            id: 5,
            topic: "a.b".into(),
            data: Payload::from("hi"),
            headers: Headers::new()
        })
    );
    let ok = encode(&ServerFrame::Ok(Reply { id: 5, result: None }), Format::Json).unwrap();
    assert_eq!(ok, br#"{"ok":{"id":5}}"#);
}

#[test]
fn msgpack_should_use_named_fields() {
    let bytes = encode(&ClientFrame::Ping(Ping { id: 1 }), Format::MsgPack).unwrap();
    // {"ping": {"id": 1}}
    assert_eq!(bytes, [0x81, 0xa4, b'p', b'i', b'n', b'g', 0x81, 0xa2, b'i', b'd', 0x01]);
}

fn code_of(bytes: &[u8], format: Format) -> (ErrorCode, Option<u64>) {
    let err = decode_client(bytes, format).unwrap_err();
    (err.code, err.request_id)
}

#[test]
fn garbage_should_be_malformed() {
    assert_eq!(code_of(b"\xc1\xc1", Format::MsgPack).0, ErrorCode::MalformedFrame);
    assert_eq!(code_of(b"not json", Format::Json).0, ErrorCode::MalformedFrame);
    assert_eq!(code_of(b"", Format::MsgPack).0, ErrorCode::MalformedFrame);
    assert_eq!(code_of(b"{\"ping\":", Format::Json).0, ErrorCode::MalformedFrame);
}

#[test]
fn truncated_msgpack_should_be_malformed() {
    let bytes = encode(&client_frames()[3], Format::MsgPack).unwrap();
    for cut in 0..bytes.len() {
        assert_eq!(code_of(&bytes[..cut], Format::MsgPack).0, ErrorCode::MalformedFrame, "{cut}");
    }
}

#[test]
fn trailing_bytes_should_be_malformed() {
    let mut bytes = encode(&ClientFrame::Ping(Ping { id: 1 }), Format::MsgPack).unwrap();
    bytes.push(0x01);
    assert_eq!(code_of(&bytes, Format::MsgPack).0, ErrorCode::MalformedFrame);
}

#[test]
fn unknown_op_should_be_named_and_keep_the_id() {
    assert_eq!(
        code_of(br#"{"frobnicate":{"id":9}}"#, Format::Json),
        (ErrorCode::UnknownOp, Some(9))
    );
    let bytes = rmp_serde::to_vec_named(&std::collections::BTreeMap::from([(
        "frobnicate",
        std::collections::BTreeMap::from([("id", 11u64)]),
    )]))
    .unwrap();
    assert_eq!(code_of(&bytes, Format::MsgPack), (ErrorCode::UnknownOp, Some(11)));
}

#[test]
fn wrong_field_types_should_be_invalid_and_keep_the_id() {
    assert_eq!(
        code_of(br#"{"publish":{"id":3,"topic":5,"data":"x"}}"#, Format::Json),
        (ErrorCode::InvalidFrame, Some(3))
    );
    assert_eq!(
        code_of(br#"{"subscribe":{"id":4}}"#, Format::Json),
        (ErrorCode::InvalidFrame, Some(4))
    );
    assert_eq!(
        code_of(br#"{"subscribe":{"id":"x","pattern":"a"}}"#, Format::Json),
        (ErrorCode::InvalidFrame, None)
    );
    assert_eq!(
        code_of(br#"{"subscribe":{"id":-1,"pattern":"a"}}"#, Format::Json),
        (ErrorCode::InvalidFrame, None)
    );
}

#[test]
fn documents_that_are_not_frames_should_be_invalid() {
    for doc in [&b"42"[..], b"[1,2]", b"{}", br#"{"ping":{"id":1},"publish":{}}"#, b"\"ping\""] {
        assert_eq!(code_of(doc, Format::Json).0, ErrorCode::InvalidFrame, "{doc:?}");
    }
}
