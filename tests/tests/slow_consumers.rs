//! Slow subscribers: the outbox bound, both policies, and that nobody else is slowed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchboard_protocol::codec::Format;
use switchboard_protocol::{CloseCode, Notice, ServerFrame};
use switchboard_tests::{RawClient, TestServer};

const MESSAGES: usize = 400;
const SIZE: usize = 64 * 1024;

/// Publishes `MESSAGES` numbered messages of `SIZE` bytes while `fast` reads along; returns what
/// `fast` received. The hub must never make the publisher wait for the stalled subscriber.
async fn publish_while_one_subscriber_stalls(server: &TestServer) -> Vec<u32> {
    let (mut fast, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    fast.subscribe("feed").await;
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < MESSAGES {
            if let ServerFrame::Deliver(d) = fast.frame().await {
                seen.push(u32::from_be_bytes(d.data.as_bytes()[..4].try_into().unwrap()));
            }
        }
        seen
    });
    let (mut publisher, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    for i in 0..MESSAGES as u32 {
        let mut data = vec![0u8; SIZE];
        data[..4].copy_from_slice(&i.to_be_bytes());
        publisher.publish("feed", data).await;
    }
    reader.await.unwrap()
}

#[tokio::test]
async fn a_slow_subscriber_should_miss_messages_and_be_told_how_many_per_topic() {
    let server = TestServer::start_with(&["--outbox-bytes", "262144"]).await;
    let (mut slow, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    slow.subscribe("feed").await;

    let fast = publish_while_one_subscriber_stalls(&server).await;
    assert_eq!(
        fast,
        (0..MESSAGES as u32).collect::<Vec<_>>(),
        "the fast subscriber gets all, in order"
    );

    // Now the slow subscriber reads: deliveries plus reported misses account for every message.
    let mut delivered = Vec::new();
    let mut missed = 0;
    while delivered.len() as u64 + missed < MESSAGES as u64 {
        match slow.frame().await {
            ServerFrame::Deliver(d) => {
                delivered.push(u32::from_be_bytes(d.data.as_bytes()[..4].try_into().unwrap()));
            }
            ServerFrame::Notice(Notice::Lagged { topic, missed: n }) => {
                assert_eq!(topic, "feed");
                missed += n;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(missed > 0, "the stalled subscriber should have lost messages");
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "what arrives stays in order");
    // It receives again after draining.
    let (mut publisher, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    publisher.publish("feed", vec![0xff; 8]).await;
    assert!(matches!(slow.frame().await, ServerFrame::Deliver(_)));
}

#[tokio::test]
async fn with_the_disconnect_policy_a_slow_subscriber_should_be_closed_with_4005() {
    let server =
        TestServer::start_with(&["--outbox-bytes", "262144", "--slow-consumer", "disconnect"])
            .await;
    let (mut slow, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    slow.subscribe("feed").await;

    let fast = publish_while_one_subscriber_stalls(&server).await;
    assert_eq!(fast.len(), MESSAGES);

    let (frames, code) = slow.until_close().await;
    assert!(frames.len() < MESSAGES, "it was cut off before the end");
    assert_eq!(code, Some(CloseCode::SlowConsumer.as_u16()));
}
