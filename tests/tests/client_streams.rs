//! Streams through the real hub with the native client: appends and reads, a reader that
//! resumes across a hub restart without gap or duplicate, and consumer groups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchboard_client::{
    AppendOptions, Client, ClientOptions, ReadFrom, ReadOptions, Reader, StreamOptions, connect,
};
use switchboard_tests::TestServer;

fn options() -> ClientOptions {
    ClientOptions {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(300),
        ..Default::default()
    }
}

async fn next_offset(reader: &mut Reader) -> (u32, u64, Vec<u8>) {
    let record = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .expect("a record in time")
        .expect("the reader is open")
        .expect("no reader error");
    (record.partition, record.offset, record.data.to_vec())
}

async fn append_n(client: &Client, stream: &str, range: std::ops::Range<u32>) {
    for i in range {
        client.append(stream, i.to_be_bytes().to_vec(), AppendOptions::default()).await.unwrap();
    }
}

#[tokio::test]
async fn a_reader_should_resume_across_a_hub_restart_without_gap_or_duplicate() {
    let mut server = TestServer::start().await;
    let producer = connect(&server.ws_url(), options()).await.unwrap();
    let consumer = connect(&server.ws_url(), options()).await.unwrap();
    append_n(&producer, "ticks", 0..200).await;
    let read = ReadOptions { from: ReadFrom::Earliest, credit: 32, ..Default::default() };
    let mut reader = consumer.read("ticks", read).await.unwrap();
    for expected in 0..100u64 {
        let (_, offset, data) = next_offset(&mut reader).await;
        assert_eq!(offset, expected);
        assert_eq!(data, (expected as u32).to_be_bytes());
    }
    server.stop().await;
    server.restart().await;
    let producer = connect(&server.ws_url(), options()).await.unwrap();
    append_n(&producer, "ticks", 200..300).await;
    for expected in 100..300u64 {
        let (_, offset, data) = next_offset(&mut reader).await;
        assert_eq!(offset, expected, "each record once, in order, across the restart");
        assert_eq!(data, (expected as u32).to_be_bytes());
    }
    assert_eq!(reader.position().get(&0), Some(&300));
}

#[tokio::test]
async fn group_members_should_split_the_partitions_and_resume_from_commits() {
    let server = TestServer::start().await;
    let admin = connect(&server.ws_url(), options()).await.unwrap();
    admin
        .create_stream("events", StreamOptions { partitions: Some(4), ..Default::default() })
        .await
        .unwrap();
    for i in 0..40u32 {
        let key = Some(format!("key-{i}"));
        admin
            .append("events", i.to_be_bytes().to_vec(), AppendOptions { key, ..Default::default() })
            .await
            .unwrap();
    }
    let group = || ReadOptions {
        from: ReadFrom::Earliest,
        group: Some("billing".into()),
        auto_commit: true,
        credit: 64,
        ..Default::default()
    };
    let a = connect(&server.ws_url(), options()).await.unwrap();
    let mut reader_a = a.read("events", group()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen.push(next_offset(&mut reader_a).await);
    }
    seen.sort();
    assert_eq!(seen.len(), 40);
    // Let the auto-commits land, then a second member joins and takes half the partitions.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = connect(&server.ws_url(), options()).await.unwrap();
    let _reader_b = b.read("events", group()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = admin.describe_stream("events").await.unwrap();
    let billing = d.groups.iter().find(|g| g.group == "billing").unwrap();
    assert_eq!(billing.members, 2);
    let committed: u64 = billing.partitions.iter().map(|p| p.committed.unwrap_or(0)).sum();
    let lag: u64 = billing.partitions.iter().map(|p| p.lag).sum();
    assert!(committed >= 30, "auto-commit followed consumption ({committed})");
    assert_eq!(committed + lag, 40);
}

#[tokio::test]
async fn an_append_repeated_with_its_idempotency_key_should_return_the_first_position() {
    let server = TestServer::start().await;
    let client = connect(&server.ws_url(), options()).await.unwrap();
    let key = Some("payment-42".to_string());
    let first = client
        .append(
            "payments",
            "42 EUR",
            AppendOptions { idempotency_key: key.clone(), ..Default::default() },
        )
        .await
        .unwrap();
    let again = client
        .append("payments", "42 EUR", AppendOptions { idempotency_key: key, ..Default::default() })
        .await
        .unwrap();
    assert_eq!((first.partition, first.offset), (again.partition, again.offset));
    let d = client.describe_stream("payments").await.unwrap();
    assert_eq!(d.partitions[0].records, 1);
}
