//! Round trips of every frame in both formats, and classification of bad input.

use super::*;
use crate::frame::*;
use crate::limits::Limits;
use crate::payload::{Headers, Payload};

fn headers() -> Headers {
    [("k".to_owned(), "v".to_owned())].into_iter().collect()
}

fn client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Hello(Hello {
            version: 1,
            token: Some("t".into()),
            client: None,
        }),
        ClientFrame::Hello(Hello {
            version: 1,
            token: None,
            client: Some("c".into()),
        }),
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
        ClientFrame::Subscribe(Subscribe {
            id: 2,
            pattern: "a.>".into(),
        }),
        ClientFrame::Unsubscribe(Unsubscribe {
            id: 3,
            pattern: "*.b".into(),
        }),
    ]
}

fn server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Welcome(Welcome {
            session: 9,
            server: "0.1.0".into(),
            protocol: 1,
            limits: Limits::default(),
        }),
        ServerFrame::Ok(Reply {
            id: 1,
            result: None,
        }),
        ServerFrame::Ok(Reply {
            id: 2,
            result: Some(ReplyBody::Published { receivers: 3 }),
        }),
        ServerFrame::Error(ErrorFrame::new(Some(4), ErrorCode::InvalidName, "bad")),
        ServerFrame::Error(ErrorFrame::new(None, ErrorCode::MalformedFrame, "bad")),
        ServerFrame::Deliver(Deliver {
            topic: "a.b".into(),
            data: Payload::from(vec![1, 2, 255]),
            headers: headers(),
        }),
        ServerFrame::Notice(Notice::Lagged {
            topic: "a.b".into(),
            missed: 12,
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
    let frame: ClientFrame = decode_client(
        br#"{"publish":{"id":5,"topic":"a.b","data":"hi"}}"#,
        Format::Json,
    )
    .unwrap();
    assert_eq!(
        frame,
        ClientFrame::Publish(Publish {
            id: 5,
            topic: "a.b".into(),
            data: Payload::from("hi"),
            headers: Headers::new()
        })
    );
    let ok = encode(
        &ServerFrame::Ok(Reply {
            id: 5,
            result: None,
        }),
        Format::Json,
    )
    .unwrap();
    assert_eq!(ok, br#"{"ok":{"id":5}}"#);
}

#[test]
fn msgpack_should_use_named_fields() {
    let bytes = encode(&ClientFrame::Ping(Ping { id: 1 }), Format::MsgPack).unwrap();
    // {"ping": {"id": 1}}
    assert_eq!(
        bytes,
        [
            0x81, 0xa4, b'p', b'i', b'n', b'g', 0x81, 0xa2, b'i', b'd', 0x01
        ]
    );
}

fn code_of(bytes: &[u8], format: Format) -> (ErrorCode, Option<u64>) {
    let err = decode_client(bytes, format).unwrap_err();
    (err.code, err.request_id)
}

#[test]
fn garbage_should_be_malformed() {
    assert_eq!(
        code_of(b"\xc1\xc1", Format::MsgPack).0,
        ErrorCode::MalformedFrame
    );
    assert_eq!(
        code_of(b"not json", Format::Json).0,
        ErrorCode::MalformedFrame
    );
    assert_eq!(code_of(b"", Format::MsgPack).0, ErrorCode::MalformedFrame);
    assert_eq!(
        code_of(b"{\"ping\":", Format::Json).0,
        ErrorCode::MalformedFrame
    );
}

#[test]
fn truncated_msgpack_should_be_malformed() {
    let bytes = encode(&client_frames()[3], Format::MsgPack).unwrap();
    for cut in 0..bytes.len() {
        assert_eq!(
            code_of(&bytes[..cut], Format::MsgPack).0,
            ErrorCode::MalformedFrame,
            "{cut}"
        );
    }
}

#[test]
fn trailing_bytes_should_be_malformed() {
    let mut bytes = encode(&ClientFrame::Ping(Ping { id: 1 }), Format::MsgPack).unwrap();
    bytes.push(0x01);
    assert_eq!(
        code_of(&bytes, Format::MsgPack).0,
        ErrorCode::MalformedFrame
    );
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
    assert_eq!(
        code_of(&bytes, Format::MsgPack),
        (ErrorCode::UnknownOp, Some(11))
    );
}

#[test]
fn wrong_field_types_should_be_invalid_and_keep_the_id() {
    assert_eq!(
        code_of(
            br#"{"publish":{"id":3,"topic":5,"data":"x"}}"#,
            Format::Json
        ),
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
    for doc in [
        &b"42"[..],
        b"[1,2]",
        b"{}",
        br#"{"ping":{"id":1},"publish":{}}"#,
        b"\"ping\"",
    ] {
        assert_eq!(
            code_of(doc, Format::Json).0,
            ErrorCode::InvalidFrame,
            "{doc:?}"
        );
    }
}
