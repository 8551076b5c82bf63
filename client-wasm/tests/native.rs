//! The native transport against a scripted fake hub: the real socket path (connect, frames,
//! close codes, reconnect, subscription buffers) without depending on the server crate.
#![cfg(all(feature = "native", not(target_arch = "wasm32")))]
// Helpers outside `#[test]` functions: a panic there is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_hub;

use std::time::Duration;

use fake_hub::{FakeHub, WAIT, options};
use switchboard_client::{
    ClientError, ClientNotice, ClientOptions, ConnectionState, ErrorCode, Headers, connect,
};
use switchboard_protocol::frame::{ClientFrame, ErrorFrame, Notice, ReplyBody, ServerFrame};
use tokio::time::timeout;

#[tokio::test]
async fn connect_should_resolve_after_welcome_with_the_session_id() {
    let hub = FakeHub::start().await;
    let options =
        ClientOptions { token: Some("t0k".into()), name: Some("unit".into()), ..options() };
    let (client, (_conn, hello)) = tokio::join!(connect(&hub.url, options), async {
        let mut conn = hub.accept().await;
        let hello = conn.welcome(42).await;
        (conn, hello)
    });
    let client = client.unwrap();
    assert_eq!(hello.token.as_deref(), Some("t0k"));
    assert_eq!(hello.client.as_deref(), Some("unit"));
    assert_eq!(client.session_id(), Some(42));
    assert_eq!(client.state(), ConnectionState::Connected);
}

#[tokio::test]
async fn publish_should_return_the_receiver_count_from_the_reply() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    let client = client.unwrap();
    let (published, ()) = tokio::join!(client.publish("a.b", "hi", Headers::new()), async {
        let ClientFrame::Publish(p) = conn.frame().await else {
            panic!("expected publish");
        };
        assert_eq!((p.topic.as_str(), p.data.as_bytes()), ("a.b", &b"hi"[..]));
        conn.ok(p.id, Some(ReplyBody::Published { receivers: 3 })).await;
    });
    assert_eq!(published, Ok(3));

    let invalid = client.publish("a.*", "x", Headers::new()).await;
    assert_eq!(invalid.unwrap_err().error_code(), Some(ErrorCode::InvalidName));
}

#[tokio::test]
async fn refused_token_should_fail_connect_with_unauthorized() {
    let hub = FakeHub::start().await;
    let (client, ()) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.frame().await;
        conn.send(ServerFrame::Error(ErrorFrame::new(None, ErrorCode::Unauthorized, "bad token")))
            .await;
        conn.close(4003).await;
        let _ = conn.recv().await;
    });
    let error: ClientError = client.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::Unauthorized), "{error}");
}

#[tokio::test]
async fn connect_to_a_closed_port_should_fail_at_once() {
    let hub = FakeHub::start().await;
    let url = hub.url.clone();
    drop(hub);
    let started = std::time::Instant::now();
    let error = connect(&url, options()).await.unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::Disconnected), "{error}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn overlapping_subscriptions_should_each_get_a_delivered_message() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    let client = client.unwrap();
    let (wide, pattern) = tokio::join!(client.subscribe("s.>"), conn.ack_subscribe());
    assert_eq!(pattern, "s.>");
    let (exact, pattern) = tokio::join!(client.subscribe("s.x"), conn.ack_subscribe());
    assert_eq!(pattern, "s.x");
    let (mut wide, mut exact) = (wide.unwrap(), exact.unwrap());

    conn.deliver("s.x", "one").await;
    for sub in [&mut wide, &mut exact] {
        let message = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        assert_eq!((message.topic.as_str(), &message.data[..]), ("s.x", &b"one"[..]));
    }
}

#[tokio::test]
async fn lost_connection_should_reconnect_and_restore_subscriptions() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    let client = client.unwrap();
    let mut states = client.watch_state();
    let (sub, _) = tokio::join!(client.subscribe("r.*"), conn.ack_subscribe());
    let mut sub = sub.unwrap();

    conn.close(1001).await;
    drop(conn);
    let mut conn = hub.accept().await;
    conn.welcome(2).await;
    assert_eq!(conn.ack_subscribe().await, "r.*");
    timeout(WAIT, states.wait_for(|s| *s == ConnectionState::Connected)).await.unwrap().unwrap();
    assert_eq!(client.session_id(), Some(2));
    conn.deliver("r.1", "back").await;
    let message = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(&message.data[..], b"back");
}

#[tokio::test]
async fn close_should_send_code_1000_and_fail_pending_operations_with_closed() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    let client = client.unwrap();
    let pinger = client.clone();
    let ping = tokio::spawn(async move { pinger.ping().await });
    assert!(matches!(conn.frame().await, ClientFrame::Ping(_)));
    client.close().await;
    assert_eq!(conn.recv().await.unwrap_err(), Some(1000));
    let error = ping.await.unwrap().unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::Closed));
    assert_eq!(client.state(), ConnectionState::Closed);
    let after = client.ping().await.unwrap_err();
    assert_eq!(after.error_code(), Some(ErrorCode::Closed));
}

#[tokio::test]
async fn dropping_every_handle_should_close_the_connection() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    let client = client.unwrap();
    let (sub, _) = tokio::join!(client.subscribe("d"), conn.ack_subscribe());
    let mut sub = sub.unwrap();
    drop(client);
    assert_eq!(conn.recv().await.unwrap_err(), Some(1000));
    assert!(timeout(WAIT, sub.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn unread_subscription_should_drop_and_count_instead_of_blocking() {
    let hub = FakeHub::start().await;
    let options = ClientOptions { subscription_buffer: 2, ..options() };
    let (client, mut conn) = tokio::join!(connect(&hub.url, options), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    let client = client.unwrap();
    let mut notices = client.notices();
    let (sub, _) = tokio::join!(client.subscribe("f"), conn.ack_subscribe());
    let mut sub = sub.unwrap();
    for i in 0..10 {
        conn.deliver("f", &i.to_string()).await;
    }
    conn.send(ServerFrame::Notice(Notice::Lagged { topic: "f".into(), missed: 5 })).await;
    // A ping answered after the deliveries proves the driver handled them all and kept going.
    let (pong, ()) = tokio::join!(client.ping(), async {
        let ping = conn.frame().await;
        conn.ok(ping.request_id().unwrap(), None).await;
    });
    pong.unwrap();
    assert_eq!(sub.missed(), 8 + 5);
    for expected in ["0", "1"] {
        let message = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        assert_eq!(&message.data[..], expected.as_bytes());
    }
    assert_eq!(
        notices.recv().await.unwrap(),
        ClientNotice::Lagged { topic: "f".into(), missed: 5 }
    );
}

#[tokio::test]
async fn unsubscribe_should_tell_the_hub_when_the_last_local_subscription_goes() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = tokio::join!(connect(&hub.url, options()), async {
        let mut conn = hub.accept().await;
        conn.welcome(1).await;
        conn
    });
    let client = client.unwrap();
    let (first, _) = tokio::join!(client.subscribe("u"), conn.ack_subscribe());
    let second = client.subscribe("u").await.unwrap();
    first.unwrap().unsubscribe().await.unwrap();
    let (done, ()) = tokio::join!(second.unsubscribe(), async {
        let ClientFrame::Unsubscribe(u) = conn.frame().await else {
            panic!("expected unsubscribe");
        };
        assert_eq!(u.pattern, "u");
        conn.ok(u.id, None).await;
    });
    done.unwrap();
}
