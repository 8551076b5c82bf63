//! Streams through the native transport against the scripted fake hub: appends resent with
//! their key, readers handing out records and returning credit, resuming after a reconnect,
//! ending on the hub's error, group commits and closing.
#![cfg(all(feature = "native", not(target_arch = "wasm32")))]
// Helpers outside `#[test]` functions: a panic there is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_hub;

use fake_hub::{Conn, FakeHub, WAIT, options};
use futures_util::StreamExt;
use switchboard_client::{
    AppendOptions, Appended, Client, ClientNotice, ErrorCode, PartitionOffset, ReadFrom,
    ReadOptions, Reader, StreamOptions, connect,
};
use switchboard_protocol::frame::{
    Assigned, ClientFrame, ErrorFrame, Read, ReaderClosed, Records, ReplyBody, ServerFrame,
};
use switchboard_protocol::streams::{Durability, ReaderPartition, Record, Retention, StreamInfo};
use switchboard_protocol::{Headers, Payload};
use tokio::time::timeout;

async fn connected(hub: &FakeHub) -> (Client, Conn) {
    let (client, conn) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    (client.unwrap(), conn)
}

async fn expect_read(conn: &mut Conn) -> Read {
    match conn.frame().await {
        ClientFrame::Read(read) => read,
        other => panic!("expected read, got {other:?}"),
    }
}

async fn read_started(
    conn: &mut Conn,
    id: u64,
    hub: u64,
    member: Option<&str>,
    parts: &[(u32, u64)],
) {
    let partitions = parts
        .iter()
        .map(|&(partition, next)| ReaderPartition { partition, next, low: 0, high: next })
        .collect();
    let body = ReplyBody::ReadStarted {
        reader: hub,
        epoch: 7,
        member: member.map(str::to_owned),
        partitions,
    };
    conn.ok(id, Some(body)).await;
}

async fn records(conn: &mut Conn, hub: u64, partition: u32, offsets: std::ops::Range<u64>) {
    let records = offsets
        .map(|offset| Record {
            offset,
            timestamp: offset,
            key: None,
            headers: Headers::new(),
            data: Payload::from(format!("r{offset}")),
        })
        .collect();
    conn.send(ServerFrame::Records(Records { reader: hub, partition, records })).await;
}

/// Starts a reader on "s" answered as hub reader `hub` at partition 0, offset 0.
async fn reader(client: &Client, conn: &mut Conn, options: ReadOptions, hub: u64) -> Reader {
    let (reader, ()) = tokio::join!(client.read("s", options), async {
        let read = expect_read(conn).await;
        read_started(conn, read.id, hub, None, &[(0, 0)]).await;
    });
    reader.unwrap()
}

async fn next_offset(reader: &mut Reader) -> u64 {
    timeout(WAIT, reader.next())
        .await
        .expect("a record in time")
        .expect("not ended")
        .expect("not an error")
        .offset
}

/// Answers frames until the `credit` grants for hub reader `hub` add up to `total`.
async fn credits_until(conn: &mut Conn, hub: u64, total: u32) {
    let mut granted = 0;
    while granted < total {
        match conn.frame().await {
            ClientFrame::Credit(c) => {
                assert_eq!(c.reader, hub);
                granted += c.n;
                conn.ok(c.id, None).await;
            }
            other => panic!("expected credit, got {other:?}"),
        }
    }
    assert_eq!(granted, total, "never more credit than records taken");
}

#[tokio::test]
async fn append_should_return_its_position_and_be_resent_with_the_same_key_after_a_reconnect() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let appending = tokio::spawn({
        let client = client.clone();
        async move { client.append("orders", "one", AppendOptions::default()).await }
    });
    let ClientFrame::Append(first) = conn.frame().await else {
        panic!("expected append");
    };
    let key = first.idempotency_key.clone().expect("a generated key");
    assert_eq!(key.len(), 44);
    conn.close(1001).await;
    drop(conn);

    let mut conn = hub.accept().await;
    conn.welcome(2).await;
    let ClientFrame::Append(again) = conn.frame().await else {
        panic!("expected the append again");
    };
    assert_eq!(again, first, "same id, same key, same record");
    let body = ReplyBody::Appended { partition: 0, offset: 12, timestamp: 99 };
    conn.ok(again.id, Some(body)).await;
    let appended = timeout(WAIT, appending).await.unwrap().unwrap().unwrap();
    assert_eq!(appended, Appended { partition: 0, offset: 12, timestamp: 99 });
}

#[tokio::test]
async fn reader_should_hand_out_records_in_order_and_return_exactly_the_credit_taken() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let options = ReadOptions { from: ReadFrom::Earliest, credit: 4, ..ReadOptions::default() };
    let mut reader = reader(&client, &mut conn, options, 50).await;
    assert_eq!(reader.epoch(), 7);
    records(&mut conn, 50, 0, 0..4).await;
    for expected in 0..4 {
        assert_eq!(next_offset(&mut reader).await, expected);
    }
    assert_eq!(reader.position().get(&0), Some(&4));
    credits_until(&mut conn, 50, 4).await;

    // The returned credit is used: four more arrive and are handed out, as a stream too.
    records(&mut conn, 50, 0, 4..8).await;
    let more: Vec<u64> = (&mut reader).take(4).map(|r| r.unwrap().offset).collect().await;
    assert_eq!(more, vec![4, 5, 6, 7]);
}

#[tokio::test]
async fn reader_should_resume_after_a_reconnect_without_duplicates_or_gaps() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let options = ReadOptions { credit: 4, ..ReadOptions::default() };
    let mut reader = reader(&client, &mut conn, options, 50).await;
    records(&mut conn, 50, 0, 0..3).await;
    assert_eq!(next_offset(&mut reader).await, 0);
    conn.close(1001).await;
    drop(conn);

    let mut conn = hub.accept().await;
    conn.welcome(2).await;
    let read = expect_read(&mut conn).await;
    assert_eq!(read.positions, vec![PartitionOffset { partition: 0, offset: 3 }]);
    assert_eq!(read.epoch, Some(7));
    // Two records wait unread; whether the one taken was reported before the drop, the
    // credit never lets the buffer exceed the window.
    assert!(read.credit <= 2, "credit {}", read.credit);
    read_started(&mut conn, read.id, 60, None, &[(0, 3)]).await;
    records(&mut conn, 60, 0, 3..3 + u64::from(read.credit)).await;
    let expected: Vec<u64> = (1..3 + u64::from(read.credit)).collect();
    let mut got = Vec::new();
    for _ in &expected {
        got.push(next_offset(&mut reader).await);
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn reader_closed_should_yield_the_records_then_the_error_once_and_notify() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let mut notices = client.notices();
    let mut reader = reader(&client, &mut conn, ReadOptions::default(), 50).await;
    records(&mut conn, 50, 0, 0..2).await;
    conn.send(ServerFrame::ReaderClosed(ReaderClosed {
        reader: 50,
        error: ErrorFrame::new(None, ErrorCode::NotFound, "stream deleted"),
    }))
    .await;
    assert_eq!(next_offset(&mut reader).await, 0);
    assert_eq!(next_offset(&mut reader).await, 1);
    let error = timeout(WAIT, reader.next()).await.unwrap().unwrap().unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::NotFound));
    assert!(timeout(WAIT, reader.next()).await.unwrap().is_none());
    let notice = timeout(WAIT, notices.recv()).await.unwrap().unwrap();
    assert!(matches!(notice, ClientNotice::Error(e) if e.is(ErrorCode::NotFound)));
}

#[tokio::test]
async fn group_reader_commit_should_quote_the_partition_generation() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let options = ReadOptions { group: Some("workers".into()), ..ReadOptions::default() };
    let (reader, ()) = tokio::join!(client.read("s", options), async {
        let read = expect_read(&mut conn).await;
        assert_eq!(read.group.as_deref(), Some("workers"));
        read_started(&mut conn, read.id, 50, Some("m1"), &[]).await;
    });
    let mut reader = reader.unwrap();
    assert_eq!(reader.member().as_deref(), Some("m1"));
    conn.send(ServerFrame::Assigned(Assigned {
        reader: 50,
        generation: 2,
        partitions: vec![PartitionOffset { partition: 1, offset: 40 }],
    }))
    .await;
    records(&mut conn, 50, 1, 40..41).await;
    let record = timeout(WAIT, reader.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((record.partition, record.offset), (1, 40));
    assert_eq!(reader.position().get(&1), Some(&41));

    let (committed, ()) = tokio::join!(reader.commit(&record), async {
        loop {
            match conn.frame().await {
                ClientFrame::Commit(c) => {
                    assert_eq!(
                        (c.group.as_str(), c.partition, c.offset, c.generation),
                        ("workers", 1, 41, 2)
                    );
                    conn.ok(c.id, None).await;
                    break;
                }
                // The record taken may return credit first.
                ClientFrame::Credit(c) => conn.ok(c.id, None).await,
                other => panic!("expected commit, got {other:?}"),
            }
        }
    });
    committed.unwrap();
}

#[tokio::test]
async fn closing_or_dropping_a_reader_should_stop_it_on_the_hub() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let first = reader(&client, &mut conn, ReadOptions::default(), 50).await;
    let ((), ()) = tokio::join!(first.close(), async {
        let ClientFrame::CloseReader(c) = conn.frame().await else {
            panic!("expected close_reader");
        };
        assert_eq!(c.reader, 50);
        conn.ok(c.id, None).await;
    });

    let second = reader(&client, &mut conn, ReadOptions::default(), 51).await;
    drop(second);
    let ClientFrame::CloseReader(c) = conn.frame().await else {
        panic!("expected close_reader");
    };
    assert_eq!(c.reader, 51);
}

#[tokio::test]
async fn stream_requests_should_return_the_hubs_answers() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let info = StreamInfo {
        stream: "s".into(),
        partitions: 2,
        epoch: 7,
        retention: Retention { max_records: Some(10), ..Retention::default() },
        durability: Durability::Immediate,
        created: 1,
    };
    let options =
        StreamOptions { partitions: Some(2), retention: Some(info.retention), durability: None };
    let (created, ()) = tokio::join!(client.create_stream("s", options), async {
        let ClientFrame::CreateStream(c) = conn.frame().await else {
            panic!("expected create_stream");
        };
        assert_eq!((c.stream.as_str(), c.partitions), ("s", Some(2)));
        conn.ok(c.id, Some(ReplyBody::Stream(info.clone()))).await;
    });
    assert_eq!(created.unwrap(), info);

    let (listed, ()) = tokio::join!(client.list_streams(), async {
        let frame = conn.frame().await;
        let streams = vec![info.clone()];
        conn.ok(frame.request_id().unwrap(), Some(ReplyBody::Streams { streams })).await;
    });
    assert_eq!(listed.unwrap(), vec![info.clone()]);

    let (deleted, ()) = tokio::join!(client.delete_stream("s"), async {
        let ClientFrame::DeleteStream(d) = conn.frame().await else {
            panic!("expected delete_stream");
        };
        conn.send(ServerFrame::Error(ErrorFrame::new(
            Some(d.id),
            ErrorCode::NotFound,
            "no such stream",
        )))
        .await;
    });
    assert_eq!(deleted.unwrap_err().error_code(), Some(ErrorCode::NotFound));
}
