//! Queues through the native transport against the scripted fake hub: enqueues resent with
//! their key, pulls and settles, consumers handing out tasks, re-issued after a reconnect with
//! the prefetch their held tasks leave, ending on the hub's error, and stopping.
#![cfg(all(feature = "native", not(target_arch = "wasm32")))]
// Helpers outside `#[test]` functions: a panic there is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_hub;

use std::time::{SystemTime, UNIX_EPOCH};

use fake_hub::{Conn, FakeHub, WAIT, options};
use futures_util::StreamExt;
use switchboard_client::{
    Client, Consumer, EnqueueOptions, ErrorCode, PullOptions, Task, TaskHandle, connect,
};
use switchboard_protocol::frame::{
    ClientFrame, Consume, ConsumerClosed, ErrorFrame, ReplyBody, ServerFrame, TaskDelivery,
};
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

fn wall_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Task `id` of `queue` with lease `id * 10`, valid for a minute.
fn task(queue: &str, id: u64) -> Task {
    Task {
        queue: queue.into(),
        id,
        lease: id * 10,
        deadline: wall_ms() + 60_000,
        attempt: 1,
        priority: 0,
        key: None,
        headers: Headers::new(),
        data: Payload::from(format!("t{id}")),
        enqueued: wall_ms(),
        dead_letter: None,
    }
}

async fn push(conn: &mut Conn, hub: u64, queue: &str, id: u64) {
    conn.send(ServerFrame::Task(TaskDelivery { consumer: hub, task: task(queue, id) })).await;
}

async fn expect_consume(conn: &mut Conn) -> Consume {
    match conn.frame().await {
        ClientFrame::Consume(c) => c,
        other => panic!("expected consume, got {other:?}"),
    }
}

/// Starts a consumer on `queue` answered as hub consumer `hub`.
async fn consumer(
    client: &Client,
    conn: &mut Conn,
    queue: &str,
    prefetch: u32,
    hub: u64,
) -> Consumer {
    let (consumer, ()) = tokio::join!(client.consume(queue, prefetch), async {
        let consume = expect_consume(conn).await;
        assert_eq!((consume.queue.as_str(), consume.prefetch), (queue, prefetch));
        conn.ok(consume.id, Some(ReplyBody::Consuming { consumer: hub })).await;
    });
    consumer.unwrap()
}

async fn next_task(consumer: &mut Consumer) -> TaskHandle {
    timeout(WAIT, consumer.next()).await.expect("a task in time").expect("not ended").unwrap()
}

#[tokio::test]
async fn enqueue_should_return_the_task_id_and_be_resent_with_the_same_key_after_a_reconnect() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let enqueueing = tokio::spawn({
        let client = client.clone();
        async move { client.enqueue("jobs", "one", EnqueueOptions::default()).await }
    });
    let ClientFrame::Enqueue(first) = conn.frame().await else {
        panic!("expected enqueue");
    };
    assert_eq!(first.idempotency_key.as_ref().map(String::len), Some(44));
    conn.close(1001).await;
    drop(conn);

    let mut conn = hub.accept().await;
    conn.welcome(2).await;
    let ClientFrame::Enqueue(again) = conn.frame().await else {
        panic!("expected the enqueue again");
    };
    assert_eq!(again, first, "same id, same key, same task");
    conn.ok(again.id, Some(ReplyBody::Enqueued { task: 12 })).await;
    assert_eq!(timeout(WAIT, enqueueing).await.unwrap().unwrap(), Ok(12));
}

#[tokio::test]
async fn pulled_tasks_should_settle_through_their_handles() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let options = PullOptions { max: 2, wait_ms: 100 };
    let (tasks, ()) = tokio::join!(client.pull("q", options), async {
        let ClientFrame::Pull(pull) = conn.frame().await else {
            panic!("expected pull");
        };
        assert_eq!((pull.max, pull.wait_ms), (Some(2), Some(100)));
        let tasks = vec![task("q", 1), task("q", 2)];
        conn.ok(pull.id, Some(ReplyBody::Tasks { tasks })).await;
    });
    let tasks = tasks.unwrap();
    assert_eq!(tasks.iter().map(|t| t.task.id).collect::<Vec<_>>(), vec![1, 2]);

    let (acked, ()) = tokio::join!(tasks[0].ack(), async {
        let ClientFrame::Ack(ack) = conn.frame().await else {
            panic!("expected ack");
        };
        assert_eq!((ack.queue.as_str(), ack.task, ack.lease), ("q", 1, 10));
        conn.ok(ack.id, None).await;
    });
    acked.unwrap();
    let (extended, ()) = tokio::join!(tasks[1].extend(5_000), async {
        let ClientFrame::Extend(extend) = conn.frame().await else {
            panic!("expected extend");
        };
        assert_eq!((extend.task, extend.lease, extend.ms), (2, 20, 5_000));
        conn.ok(extend.id, Some(ReplyBody::Extended { deadline: 777 })).await;
    });
    assert_eq!(extended, Ok(777));
}

#[tokio::test]
async fn a_pull_waiting_when_the_connection_drops_should_fail_with_disconnected() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let pulling = tokio::spawn({
        let client = client.clone();
        async move { client.pull("q", PullOptions::default()).await }
    });
    assert!(matches!(conn.frame().await, ClientFrame::Pull(_)));
    conn.close(1001).await;
    drop(conn);
    let error = timeout(WAIT, pulling).await.unwrap().unwrap().unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::Disconnected));
}

#[tokio::test]
async fn consumer_should_be_reissued_after_a_reconnect_with_the_prefetch_its_tasks_leave() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let mut consumer = consumer(&client, &mut conn, "q", 2, 50).await;
    push(&mut conn, 50, "q", 1).await;
    let first = next_task(&mut consumer).await;
    assert_eq!((first.task.id, first.task.lease), (1, 10));
    conn.close(1001).await;
    drop(conn);

    let mut conn = hub.accept().await;
    conn.welcome(2).await;
    let restore = expect_consume(&mut conn).await;
    assert_eq!(restore.prefetch, 1, "one task is still held");
    conn.ok(restore.id, Some(ReplyBody::Consuming { consumer: 60 })).await;
    push(&mut conn, 60, "q", 2).await;
    assert_eq!(next_task(&mut consumer).await.task.id, 2, "the new hub id maps to it");

    // The task from before the drop still settles, and then the prefetch is whole again.
    let (acked, ()) = tokio::join!(first.ack(), async {
        let ClientFrame::Ack(ack) = conn.frame().await else {
            panic!("expected ack");
        };
        conn.ok(ack.id, None).await;
    });
    acked.unwrap();
    let top_up = expect_consume(&mut conn).await;
    assert_eq!(top_up.prefetch, 1);
}

#[tokio::test]
async fn consumer_closed_should_yield_the_tasks_then_the_error_once() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let mut consumer = consumer(&client, &mut conn, "q", 4, 50).await;
    push(&mut conn, 50, "q", 1).await;
    conn.send(ServerFrame::ConsumerClosed(ConsumerClosed {
        consumer: 50,
        error: ErrorFrame::new(None, ErrorCode::NotFound, "queue q was deleted"),
    }))
    .await;
    assert_eq!(next_task(&mut consumer).await.task.id, 1);
    let error = timeout(WAIT, consumer.next()).await.unwrap().unwrap().unwrap_err();
    assert_eq!(error.error_code(), Some(ErrorCode::NotFound));
    assert!(timeout(WAIT, consumer.next()).await.unwrap().is_none());
}

#[tokio::test]
async fn stopping_a_consumer_should_release_the_tasks_it_never_handed_out() {
    let hub = FakeHub::start().await;
    let (client, mut conn) = connected(&hub).await;
    let mut consumer = consumer(&client, &mut conn, "q", 4, 50).await;
    for id in 1..=3 {
        push(&mut conn, 50, "q", id).await;
    }
    let taken = (&mut consumer).take(1).collect::<Vec<_>>().await;
    assert_eq!(taken[0].as_ref().unwrap().task.id, 1);
    // Tasks 2 and 3 are released whether the stop finds them buffered or they arrive after
    // it, for a consumer the client no longer knows.
    let (_, released) = tokio::join!(consumer.stop(), async {
        let ClientFrame::StopConsume(stop) = conn.frame().await else {
            panic!("the stop goes first");
        };
        assert_eq!(stop.consumer, 50);
        conn.ok(stop.id, None).await;
        let mut released = Vec::new();
        for _ in 0..2 {
            let ClientFrame::Release(release) = conn.frame().await else {
                panic!("expected release");
            };
            conn.ok(release.id, None).await;
            released.push(release.task);
        }
        released
    });
    assert_eq!(released, vec![2, 3]);
}
