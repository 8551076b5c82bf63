//! Topics end to end: the real hub process and the real native client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::FutureExt;
use switchboard_client::{Client, ClientOptions, ConnectionState, Subscription, connect};
use switchboard_protocol::codec::Format;
use switchboard_protocol::{ErrorCode, ServerFrame};
use switchboard_tests::{RawClient, TestServer};

async fn client(server: &TestServer) -> Client {
    connect(&server.ws_url(), ClientOptions::default()).await.expect("connect")
}

/// Everything the subscription holds right now. Call after a round trip on the subscriber's own
/// connection (`ping`): the hub queues deliveries before the publish is acknowledged, and the
/// ping's reply comes after them on the same socket, so by then they have all arrived.
fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(Some(m)) = sub.next().now_or_never() {
        out.push(format!("{}={}", m.topic, String::from_utf8_lossy(&m.data)));
    }
    out
}

#[tokio::test]
async fn a_publish_should_reach_every_subscriber() {
    let server = TestServer::start().await;
    let mut subscribers = Vec::new();
    for _ in 0..50 {
        let c = client(&server).await;
        let sub = c.subscribe("room.1").await.unwrap();
        subscribers.push((c, sub));
    }
    let publisher = client(&server).await;
    for i in 0..100 {
        let receivers =
            publisher.publish("room.1", format!("{i}"), Default::default()).await.unwrap();
        assert_eq!(receivers, 50);
    }
    let expected: Vec<String> = (0..100).map(|i| format!("room.1={i}")).collect();
    for (c, sub) in &mut subscribers {
        c.ping().await.unwrap();
        assert_eq!(drain(sub), expected);
    }
}

#[tokio::test]
async fn wildcards_should_match_exactly_the_right_topics() {
    let server = TestServer::start().await;
    let listener = client(&server).await;
    let mut star = listener.subscribe("prices.*").await.unwrap();
    let mut tail = listener.subscribe("prices.>").await.unwrap();
    let mut exact = listener.subscribe("prices.btc").await.unwrap();
    let mut mid = listener.subscribe("*.eth.usd").await.unwrap();
    let publisher = client(&server).await;
    for topic in [
        "prices.btc",
        "prices.btc.usd",
        "prices",
        "prices.eth.usd",
        "stocks.eth.usd",
        "pricesx.btc",
    ] {
        publisher.publish(topic, "x", Default::default()).await.unwrap();
    }
    listener.ping().await.unwrap();
    assert_eq!(drain(&mut star), vec!["prices.btc=x"]);
    assert_eq!(drain(&mut tail), vec!["prices.btc=x", "prices.btc.usd=x", "prices.eth.usd=x"]);
    assert_eq!(drain(&mut exact), vec!["prices.btc=x"]);
    assert_eq!(drain(&mut mid), vec!["prices.eth.usd=x", "stocks.eth.usd=x"]);
}

#[tokio::test]
async fn overlapping_patterns_should_cost_one_delivery_per_session() {
    let server = TestServer::start().await;
    let (mut raw, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    raw.subscribe("a.*").await;
    raw.subscribe("a.>").await;
    raw.subscribe("a.b").await;
    let publisher = client(&server).await;
    assert_eq!(publisher.publish("a.b", "once", Default::default()).await.unwrap(), 1);
    assert!(matches!(raw.frame().await, ServerFrame::Deliver(_)));
    assert!(raw.recv_within(Duration::from_millis(200)).await.is_none(), "delivered twice");
}

#[tokio::test]
async fn unsubscribe_should_stop_deliveries() {
    let server = TestServer::start().await;
    let listener = client(&server).await;
    let keep = listener.subscribe("news.>").await.unwrap();
    let mut keep = keep;
    let gone = listener.subscribe("news.sport").await.unwrap();
    let publisher = client(&server).await;
    publisher.publish("news.sport", "1", Default::default()).await.unwrap();
    gone.unsubscribe().await.unwrap();
    publisher.publish("news.sport", "2", Default::default()).await.unwrap();
    listener.ping().await.unwrap();
    assert_eq!(drain(&mut keep), vec!["news.sport=1", "news.sport=2"]);

    let other = client(&server).await;
    let only = other.subscribe("solo").await.unwrap();
    only.unsubscribe().await.unwrap();
    assert_eq!(publisher.publish("solo", "x", Default::default()).await.unwrap(), 0);
}

#[tokio::test]
async fn each_publishers_messages_should_arrive_in_publish_order() {
    let server = TestServer::start().await;
    let listener = client(&server).await;
    let mut sub = listener.subscribe("orders").await.unwrap();
    let reader = tokio::spawn(async move {
        let mut next = [0u32; 4];
        for _ in 0..2000 {
            let m =
                tokio::time::timeout(Duration::from_secs(10), sub.next()).await.unwrap().unwrap();
            let text = String::from_utf8(m.data.to_vec()).unwrap();
            let (p, i) = text.split_once(':').unwrap();
            let (p, i): (usize, u32) = (p.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[p], "publisher {p} out of order");
            next[p] += 1;
        }
        assert_eq!(sub.missed(), 0);
        next
    });
    let mut publishers = Vec::new();
    for p in 0..4 {
        let c = client(&server).await;
        publishers.push(tokio::spawn(async move {
            for i in 0..500 {
                c.publish("orders", format!("{p}:{i}"), Default::default()).await.unwrap();
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let next = reader.await.unwrap();
    assert_eq!(next, [500; 4]);
}

#[tokio::test]
async fn json_and_msgpack_sessions_should_interoperate() {
    let server = TestServer::start().await;
    let (mut json, _) = RawClient::hello(&server.ws_url(), Format::Json).await;
    json.send_text(r#"{"subscribe":{"id":1,"pattern":"chat.*"}}"#).await;
    assert!(matches!(json.frame().await, ServerFrame::Ok(r) if r.id == 1));
    let publisher = client(&server).await;
    let headers = [("from".to_string(), "ann".to_string())].into_iter().collect();
    publisher.publish("chat.lobby", "hi there", headers).await.unwrap();
    match json.frame().await {
        ServerFrame::Deliver(d) => {
            assert_eq!(d.topic, "chat.lobby");
            assert_eq!(d.data.as_bytes(), b"hi there");
            assert_eq!(d.headers.get("from").map(String::as_str), Some("ann"));
        }
        other => panic!("{other:?}"),
    }
    let mut sub = publisher.subscribe("chat.>").await.unwrap();
    json.send_text(r#"{"publish":{"id":2,"topic":"chat.lobby","data":{"base64":"AP8="}}}"#).await;
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!(&m.data[..], &[0x00, 0xff]);
}

#[tokio::test]
async fn invalid_names_should_be_refused_by_the_client_and_the_hub() {
    let server = TestServer::start().await;
    let c = client(&server).await;
    let err = c.subscribe("a..b").await.err().unwrap();
    assert!(err.is(ErrorCode::InvalidName), "{err:?}");
    let err = c.publish("a.*", "x", Default::default()).await.err().unwrap();
    assert!(err.is(ErrorCode::InvalidName), "{err:?}");
    c.ping().await.unwrap();
}

#[tokio::test]
async fn the_client_should_reconnect_and_resubscribe_after_a_hub_restart() {
    let mut server = TestServer::start().await;
    let options = ClientOptions {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let listener = connect(&server.ws_url(), options).await.unwrap();
    let mut sub = listener.subscribe("alerts.*").await.unwrap();
    let mut states = listener.watch_state();
    let first_session = listener.session_id();

    server.stop().await;
    tokio::time::timeout(
        Duration::from_secs(5),
        states.wait_for(|s| *s == ConnectionState::Reconnecting),
    )
    .await
    .expect("client notices the hub is gone")
    .unwrap();
    server.restart().await;
    tokio::time::timeout(
        Duration::from_secs(10),
        states.wait_for(|s| *s == ConnectionState::Connected),
    )
    .await
    .expect("client reconnects")
    .unwrap();
    assert_ne!(listener.session_id(), None);
    let _ = first_session;

    // The subscription is restored without the caller doing anything.
    let publisher = client(&server).await;
    let mut delivered = None;
    for _ in 0..50 {
        if publisher.publish("alerts.fire", "again", Default::default()).await.unwrap() == 1 {
            delivered = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered.is_some(), "the pattern was never resubscribed");
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!((m.topic.as_str(), &m.data[..]), ("alerts.fire", &b"again"[..]));
}

#[tokio::test]
async fn close_should_end_the_session_and_fail_later_calls() {
    let server = TestServer::start().await;
    let c = client(&server).await;
    let mut sub = c.subscribe("x").await.unwrap();
    c.close().await;
    assert_eq!(c.state(), ConnectionState::Closed);
    let err = c.publish("x", "y", Default::default()).await.err().unwrap();
    assert!(err.is(ErrorCode::Closed), "{err:?}");
    assert!(tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_subscription_the_app_does_not_read_should_drop_and_count_locally() {
    let server = TestServer::start().await;
    let options = ClientOptions { subscription_buffer: 16, ..ClientOptions::default() };
    let listener = connect(&server.ws_url(), options).await.unwrap();
    let mut sub = listener.subscribe("burst").await.unwrap();
    let publisher = client(&server).await;
    for i in 0..100 {
        publisher.publish("burst", format!("{i}"), Default::default()).await.unwrap();
    }
    listener.ping().await.unwrap();
    let kept = drain(&mut sub);
    assert_eq!(kept, (0..16).map(|i| format!("burst={i}")).collect::<Vec<_>>());
    assert_eq!(sub.missed(), 84);
}
