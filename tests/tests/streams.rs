//! Streams through the real hub process: crash safety under SIGKILL, restart survival, the
//! protocol's stream frames in both encodings, and flow control limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use switchboard_protocol::codec::Format;
use switchboard_protocol::streams::{ReadFrom, Record};
use switchboard_protocol::{
    Append, ClientFrame, CreateStream, Credit, ErrorCode, Read, ReplyBody, ServerFrame,
};
use switchboard_tests::raw::Received;
use switchboard_tests::{RawClient, TestServer};

fn append(id: u64, stream: &str, key: Option<String>, data: Vec<u8>) -> ClientFrame {
    ClientFrame::Append(Append {
        id,
        stream: stream.into(),
        data: data.into(),
        key,
        headers: Default::default(),
        idempotency_key: None,
    })
}

fn read(id: u64, stream: &str, partition: Option<u32>, from: ReadFrom, credit: u32) -> ClientFrame {
    ClientFrame::Read(Read {
        id,
        stream: stream.into(),
        partition,
        from,
        positions: Vec::new(),
        epoch: None,
        credit,
        group: None,
        member: None,
        auto_commit: false,
    })
}

/// Every record of a partition, read from earliest with credit granted as records arrive.
async fn read_back(client: &mut RawClient, stream: &str, partition: u32) -> Vec<Record> {
    let id = client.id();
    let reply = client.request(read(id, stream, Some(partition), ReadFrom::Earliest, 1000)).await;
    let ServerFrame::Ok(ok) = reply else { panic!("{reply:?}") };
    let Some(ReplyBody::ReadStarted { reader, partitions, .. }) = ok.result else { panic!() };
    let want = (partitions[0].high - partitions[0].next) as usize;
    let mut records = Vec::new();
    while records.len() < want {
        match client.frame().await {
            ServerFrame::Records(r) => {
                let n = r.records.len() as u32;
                records.extend(r.records);
                let id = client.id();
                client.send(&ClientFrame::Credit(Credit { id, reader, n })).await;
            }
            ServerFrame::Ok(_) => {}
            other => panic!("{other:?}"),
        }
    }
    records
}

/// Appends numbered records from one client, `window` at a time, until the hub goes away or
/// `total` are acknowledged. Returns what was acknowledged: (partition, offset) → data.
async fn append_until_killed(
    url: String,
    client: u32,
    total: u32,
) -> BTreeMap<(u32, u64), Vec<u8>> {
    let mut acked = BTreeMap::new();
    let (mut c, _) = RawClient::hello(&url, Format::MsgPack).await;
    let mut sent: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut seq = 0u32;
    'outer: while seq < total {
        for _ in 0..32 {
            let data = format!("client {client} record {seq}").into_bytes();
            let id = c.id();
            let frame = append(id, "crash", Some(format!("c{client}-{}", seq % 5)), data.clone());
            if !c.try_send(&frame).await {
                break 'outer;
            }
            sent.insert(id, data);
            seq += 1;
        }
        while !sent.is_empty() {
            match c.recv_within(Duration::from_secs(10)).await {
                Some(Received::Frame(ServerFrame::Ok(ok))) => {
                    let data = sent.remove(&ok.id).unwrap();
                    let Some(ReplyBody::Appended { partition, offset, .. }) = ok.result else {
                        panic!()
                    };
                    acked.insert((partition, offset), data);
                }
                Some(Received::Frame(other)) => panic!("{other:?}"),
                Some(Received::Closed(_)) | None => break 'outer,
            }
        }
    }
    acked
}

#[tokio::test]
async fn every_acknowledged_append_should_survive_sigkill_at_its_offset() {
    let mut server = TestServer::start().await;
    let mut all_acked: BTreeMap<(u32, u64), Vec<u8>> = BTreeMap::new();
    {
        let (mut admin, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
        let id = admin.id();
        let reply = admin
            .request(ClientFrame::CreateStream(CreateStream {
                id,
                stream: "crash".into(),
                partitions: Some(3),
                retention: None,
                durability: None,
            }))
            .await;
        assert!(matches!(reply, ServerFrame::Ok(_)), "{reply:?}");
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..4 {
        let clients: Vec<_> = (0..3)
            .map(|c| tokio::spawn(append_until_killed(server.ws_url(), round * 10 + c, 1_000_000)))
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(150 + seed % 400)).await;
        server.kill().await;
        for c in clients {
            all_acked.extend(c.await.unwrap());
        }
        server.restart().await;
        let (mut reader, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
        let mut acked_here = 0;
        for partition in 0..3 {
            let records = read_back(&mut reader, "crash", partition).await;
            for (i, r) in records.iter().enumerate() {
                assert_eq!(
                    r.offset, i as u64,
                    "round {round}: offsets of partition {partition} have no gap"
                );
            }
            for ((p, offset), data) in all_acked.range((partition, 0)..(partition + 1, 0)) {
                let stored = records.get(*offset as usize).unwrap_or_else(|| {
                    panic!("round {round}: acknowledged {p}/{offset} is missing after SIGKILL")
                });
                assert_eq!(
                    stored.data.as_bytes(),
                    data.as_slice(),
                    "round {round}: bytes of {p}/{offset}"
                );
                acked_here += 1;
            }
        }
        assert!(acked_here > 0, "round {round}: the clients should have had appends acknowledged");
    }
}

#[tokio::test]
async fn stream_frames_should_work_in_json_too() {
    let server = TestServer::start().await;
    let (mut json, _) = RawClient::hello(&server.ws_url(), Format::Json).await;
    json.send_text(r#"{"append":{"id":1,"stream":"chat","data":"hello","key":"room-1"}}"#).await;
    let ServerFrame::Ok(ok) = json.frame().await else { panic!() };
    assert!(matches!(ok.result, Some(ReplyBody::Appended { offset: 0, .. })));
    json.send_text(r#"{"read":{"id":2,"stream":"chat","from":"earliest","credit":10}}"#).await;
    let ServerFrame::Ok(ok) = json.frame().await else { panic!() };
    assert!(matches!(ok.result, Some(ReplyBody::ReadStarted { .. })));
    match json.frame().await {
        ServerFrame::Records(r) => {
            assert_eq!(r.records.len(), 1);
            assert_eq!(r.records[0].data.as_bytes(), b"hello");
            assert_eq!(r.records[0].key.as_deref(), Some("room-1"));
        }
        other => panic!("{other:?}"),
    }
    json.send_text(r#"{"describe_stream":{"id":3,"stream":"nope"}}"#).await;
    match json.frame().await {
        ServerFrame::Error(e) => assert_eq!(e.error_code(), Some(ErrorCode::NotFound)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn records_should_be_back_after_a_graceful_restart() {
    let mut server = TestServer::start().await;
    let (mut c, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    for i in 0..100u32 {
        let id = c.id();
        let reply = c.request(append(id, "keep", None, i.to_be_bytes().to_vec())).await;
        assert!(matches!(reply, ServerFrame::Ok(_)));
    }
    drop(c);
    assert!(server.stop().await.success());
    server.restart().await;
    let (mut c, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let records = read_back(&mut c, "keep", 0).await;
    let values: Vec<u32> =
        records.iter().map(|r| u32::from_be_bytes(r.data.as_bytes().try_into().unwrap())).collect();
    assert_eq!(values, (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn requests_beyond_max_in_flight_should_be_refused_with_too_many_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "max_in_flight = 4\n").unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]).await;
    let (mut c, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    for i in 0..64u64 {
        c.send(&append(100 + i, "busy", None, vec![1; 16])).await;
    }
    let mut ok = 0;
    let mut refused = 0;
    while ok + refused < 64 {
        match c.frame().await {
            ServerFrame::Ok(_) => ok += 1,
            ServerFrame::Error(e) => {
                assert_eq!(e.error_code(), Some(ErrorCode::TooManyInFlight));
                assert!(e.id.is_some());
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(ok >= 4, "requests within the limit succeed ({ok})");
    assert!(refused > 0, "64 pipelined appends against a limit of 4 must hit it");
}
