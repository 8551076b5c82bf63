//! The session protocol through the real hub: hello, errors for every kind of bad input, close
//! codes, limits, keep-alive and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use switchboard_protocol::codec::{self, Format};
use switchboard_protocol::{
    ClientFrame, CloseCode, ErrorCode, Hello, Ping, Publish, ServerFrame, Subscribe, Unsubscribe,
};
use switchboard_tests::raw::Received;
use switchboard_tests::{RawClient, TestServer};

fn error_of(frame: &ServerFrame) -> (Option<u64>, ErrorCode) {
    match frame {
        ServerFrame::Error(e) => (e.id, e.error_code().expect("known code")),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn assert_alive(client: &mut RawClient) {
    let id = client.id();
    let reply = client.request(ClientFrame::Ping(Ping { id })).await;
    assert!(matches!(&reply, ServerFrame::Ok(r) if r.id == id), "{reply:?}");
}

#[tokio::test]
async fn hello_should_be_answered_with_welcome_and_limits() {
    let server = TestServer::start().await;
    for format in [Format::MsgPack, Format::Json] {
        let (_client, welcome) = RawClient::hello(&server.ws_url(), format).await;
        assert_eq!(welcome.protocol, switchboard_protocol::PROTOCOL_VERSION);
        assert_eq!(welcome.limits.max_frame_bytes, 1024 * 1024);
        assert!(welcome.session > 0);
    }
}

#[tokio::test]
async fn a_first_frame_that_is_not_hello_should_be_refused_with_4000() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(&server.ws_url(), Format::Json).await;
    client.send(&ClientFrame::Ping(Ping { id: 5 })).await;
    let (frames, code) = client.until_close().await;
    assert_eq!(frames.len(), 1);
    assert_eq!(error_of(&frames[0]), (Some(5), ErrorCode::HelloRequired));
    assert_eq!(code, Some(CloseCode::HelloRequired.as_u16()));

    let mut client = RawClient::connect(&server.ws_url(), Format::MsgPack).await;
    client.send_binary(vec![0xc1, 0xff]).await;
    let (frames, code) = client.until_close().await;
    assert_eq!(error_of(&frames[0]), (None, ErrorCode::MalformedFrame));
    assert_eq!(code, Some(CloseCode::HelloRequired.as_u16()));
}

#[tokio::test]
async fn an_unsupported_version_should_be_refused_with_4002() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(&server.ws_url(), Format::MsgPack).await;
    client.send(&ClientFrame::Hello(Hello { version: 99, token: None, client: None })).await;
    let (frames, code) = client.until_close().await;
    assert_eq!(error_of(&frames[0]).1, ErrorCode::UnsupportedVersion);
    assert_eq!(code, Some(CloseCode::UnsupportedVersion.as_u16()));
}

#[tokio::test]
async fn a_missing_hello_should_be_closed_after_the_hello_deadline() {
    let server = TestServer::start_with(&["--hello-timeout-ms", "300"]).await;
    let mut client = RawClient::connect(&server.ws_url(), Format::MsgPack).await;
    let started = std::time::Instant::now();
    let (_, code) = client.until_close().await;
    assert_eq!(code, Some(CloseCode::HelloTimeout.as_u16()));
    assert!(started.elapsed() >= Duration::from_millis(250), "closed too early");
}

#[tokio::test]
async fn every_kind_of_bad_frame_should_get_its_error_and_the_session_should_go_on() {
    let server = TestServer::start_with(&["--max-frame-bytes", "4096"]).await;
    let (mut bin, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let (mut json, _) = RawClient::hello(&server.ws_url(), Format::Json).await;

    bin.send_binary(b"\x00garbage\xff\xfe".to_vec()).await;
    assert_eq!(error_of(&bin.frame().await), (None, ErrorCode::MalformedFrame));

    let publish = ClientFrame::Publish(Publish {
        id: 77,
        topic: "a.b".into(),
        data: vec![1u8; 64].into(),
        headers: Default::default(),
    });
    let full = codec::encode(&publish, Format::MsgPack).unwrap();
    bin.send_binary(full[..full.len() / 2].to_vec()).await;
    assert_eq!(error_of(&bin.frame().await), (None, ErrorCode::MalformedFrame));

    json.send_text(r#"{"publish":{"id":8,"topic":["a"],"data":"x"}}"#).await;
    assert_eq!(error_of(&json.frame().await), (Some(8), ErrorCode::InvalidFrame));

    json.send_text(r#"{"teleport":{"id":9}}"#).await;
    assert_eq!(error_of(&json.frame().await), (Some(9), ErrorCode::UnknownOp));

    bin.send_binary(vec![0x90; 5000]).await;
    assert_eq!(error_of(&bin.frame().await), (None, ErrorCode::FrameTooLarge));

    json.send(&ClientFrame::Subscribe(Subscribe { id: 10, pattern: "a..b".into() })).await;
    assert_eq!(error_of(&json.frame().await), (Some(10), ErrorCode::InvalidName));
    json.send(&ClientFrame::Publish(Publish {
        id: 11,
        topic: "a.*".into(),
        data: "x".into(),
        headers: Default::default(),
    }))
    .await;
    assert_eq!(error_of(&json.frame().await), (Some(11), ErrorCode::InvalidName));

    json.send(&ClientFrame::Hello(Hello { version: 1, token: None, client: None })).await;
    assert_eq!(error_of(&json.frame().await), (None, ErrorCode::UnexpectedHello));

    assert_alive(&mut bin).await;
    assert_alive(&mut json).await;
    let (mut other, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    assert_alive(&mut other).await;
}

#[tokio::test]
async fn a_message_over_the_transport_limit_should_close_with_1009() {
    let server = TestServer::start_with(&["--max-frame-bytes", "4096"]).await;
    let (mut client, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    client.send_binary(vec![0u8; 4 * 4096 + 1]).await;
    let (_, code) = client.until_close().await;
    assert_eq!(code, Some(CloseCode::MessageTooBig.as_u16()));
    let (mut other, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    assert_alive(&mut other).await;
}

#[tokio::test]
async fn a_session_that_keeps_sending_bad_frames_should_be_closed_with_4004() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::hello(&server.ws_url(), Format::Json).await;
    for _ in 0..10 {
        client.send_text("{nope").await;
    }
    let (frames, code) = client.until_close().await;
    assert_eq!(frames.len(), 10);
    assert!(frames.iter().all(|f| error_of(f).1 == ErrorCode::MalformedFrame));
    assert_eq!(code, Some(CloseCode::TooManyBadFrames.as_u16()));
}

#[tokio::test]
async fn a_good_frame_should_reset_the_bad_frame_count() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::hello(&server.ws_url(), Format::Json).await;
    for _ in 0..3 {
        for _ in 0..9 {
            client.send_text("{nope").await;
            let _ = client.frame().await;
        }
        assert_alive(&mut client).await;
    }
}

#[tokio::test]
async fn subscriptions_beyond_the_limit_should_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "max_subscriptions = 3\n").unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]).await;
    let (mut client, welcome) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    assert_eq!(welcome.limits.max_subscriptions, 3);
    for p in ["a", "b", "c", "c"] {
        client.subscribe(p).await;
    }
    let reply =
        client.request(ClientFrame::Subscribe(Subscribe { id: 50, pattern: "d".into() })).await;
    assert_eq!(error_of(&reply), (Some(50), ErrorCode::TooManySubscriptions));
    let reply =
        client.request(ClientFrame::Unsubscribe(Unsubscribe { id: 51, pattern: "a".into() })).await;
    assert!(matches!(reply, ServerFrame::Ok(_)));
    client.subscribe("d").await;
}

#[tokio::test]
async fn a_client_that_never_answers_pings_should_be_closed_with_4006() {
    let server =
        TestServer::start_with(&["--ping-interval-ms", "100", "--idle-timeout-ms", "400"]).await;
    let (mut silent, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let (mut lively, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    // Not reading means tungstenite never answers the hub's pings.
    let lively_task = tokio::spawn(async move {
        for _ in 0..10 {
            assert_alive(&mut lively).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        lively
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, code) = silent.until_close().await;
    assert_eq!(code, Some(CloseCode::KeepaliveTimeout.as_u16()));
    let mut lively = lively_task.await.unwrap();
    assert_alive(&mut lively).await;
}

#[tokio::test]
async fn connections_over_the_limit_should_be_closed_with_1013() {
    let server = TestServer::start_with(&["--max-connections", "2"]).await;
    let (_a, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let (mut b, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let mut c = RawClient::connect(&server.ws_url(), Format::MsgPack).await;
    assert_eq!(c.recv().await, Received::Closed(Some(CloseCode::TryAgainLater.as_u16())));
    assert_alive(&mut b).await;
    drop(b);
    // The slot frees once the hub notices the closed socket.
    let mut admitted = false;
    for _ in 0..50 {
        let mut d = RawClient::connect(&server.ws_url(), Format::MsgPack).await;
        d.send(&ClientFrame::Hello(Hello { version: 1, token: None, client: None })).await;
        if matches!(d.recv().await, Received::Frame(ServerFrame::Welcome(_))) {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a freed slot should admit a new session");
}

#[tokio::test]
async fn tokens_should_be_checked_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(&config, "tokens = [\"s3cret\"]\n").unwrap();
    let server = TestServer::start_with(&["--config", config.to_str().unwrap()]).await;
    let mut client = RawClient::connect(&server.ws_url(), Format::Json).await;
    client
        .send(&ClientFrame::Hello(Hello { version: 1, token: Some("wrong".into()), client: None }))
        .await;
    let (frames, code) = client.until_close().await;
    assert_eq!(error_of(&frames[0]).1, ErrorCode::Unauthorized);
    assert_eq!(code, Some(CloseCode::Unauthorized.as_u16()));
    let mut client = RawClient::connect(&server.ws_url(), Format::Json).await;
    client
        .send(&ClientFrame::Hello(Hello { version: 1, token: Some("s3cret".into()), client: None }))
        .await;
    assert!(matches!(client.frame().await, ServerFrame::Welcome(_)));
}

#[tokio::test]
async fn sigterm_should_flush_sessions_close_them_with_1001_and_exit_cleanly() {
    let mut server = TestServer::start().await;
    let (mut subscriber, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    subscriber.subscribe("news").await;
    let (mut publisher, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    for i in 0..100 {
        publisher.publish("news", format!("m{i}")).await;
    }
    let status = server.stop().await;
    assert!(status.success(), "exit status {status:?}");
    let (frames, code) = subscriber.until_close().await;
    let delivered = frames.iter().filter(|f| matches!(f, ServerFrame::Deliver(_))).count();
    assert_eq!(delivered, 100, "queued messages are flushed before the close");
    assert_eq!(code, Some(CloseCode::GoingAway.as_u16()));
    let logs = server.logs();
    assert!(logs.contains("database closed"), "{logs}");
}

#[tokio::test]
async fn the_hub_should_serve_its_page_health_and_stats_over_http() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    client.subscribe("x.>").await;
    let id = client.id();
    let append = ClientFrame::Append(switchboard_protocol::Append {
        id,
        stream: "counted".into(),
        data: b"one".to_vec().into(),
        key: None,
        headers: Default::default(),
        idempotency_key: None,
    });
    assert!(matches!(client.request(append).await, ServerFrame::Ok(_)));
    let body = http_get(&server, "/api/stats").await;
    let stats: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(stats["sessions"], 1);
    assert_eq!(stats["subscriptions"], 1);
    let writes = stats["writes"].as_u64().unwrap();
    assert!(writes >= 1, "the append went through the writer: {stats}");
    assert!(stats["commits"].as_u64().unwrap() >= 1 && stats["fsyncs"].as_u64().unwrap() >= 1);
    assert!(http_get(&server, "/healthz").await.starts_with("HTTP/1.1 200"));
    let missing = http_get(&server, "/api/nothing").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert!(missing.contains("\"name\":\"not_found\""), "{missing}");
    let page = http_get(&server, "/").await;
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("Switchboard"), "{page}");
}

async fn http_get(server: &TestServer, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
