//! Queues through the real hub with the native client: pull and push workers, and a lease
//! held across a hub restart that is still settled after the client reconnects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_client::{ClientOptions, EnqueueOptions, PullOptions, QueueOptions, connect};
use switchboard_tests::TestServer;

fn options() -> ClientOptions {
    ClientOptions {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(300),
        ..Default::default()
    }
}

#[tokio::test]
async fn push_and_pull_workers_should_share_the_tasks_and_ack_each_once() {
    let server = TestServer::start().await;
    let producer = connect(&server.ws_url(), options()).await.unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..300u32 {
        ids.insert(
            producer
                .enqueue("emails", i.to_be_bytes().to_vec(), EnqueueOptions::default())
                .await
                .unwrap(),
        );
    }
    let pusher = connect(&server.ws_url(), options()).await.unwrap();
    let mut consumer = pusher.consume("emails", 16).await.unwrap();
    let puller = connect(&server.ws_url(), options()).await.unwrap();
    let push = tokio::spawn(async move {
        let mut done = Vec::new();
        while let Ok(Some(task)) =
            tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
        {
            let task = task.unwrap();
            task.ack().await.unwrap();
            done.push(task.task.id);
        }
        done
    });
    let mut pulled = Vec::new();
    loop {
        let tasks = puller.pull("emails", PullOptions { max: 8, wait_ms: 300 }).await.unwrap();
        if tasks.is_empty() {
            break;
        }
        for t in tasks {
            t.ack().await.unwrap();
            pulled.push(t.task.id);
        }
    }
    let pushed = push.await.unwrap();
    assert!(!pushed.is_empty() && !pulled.is_empty(), "both workers got tasks");
    let all: Vec<u64> = pushed.into_iter().chain(pulled).collect();
    assert_eq!(all.len(), 300, "no task acked twice");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), ids);
}

#[tokio::test]
async fn a_lease_held_across_a_hub_restart_should_still_be_acked_after_reconnect() {
    let mut server = TestServer::start().await;
    let client = connect(&server.ws_url(), options()).await.unwrap();
    let queue = QueueOptions { lease_ms: Some(20_000), ..Default::default() };
    client.create_queue("reports", queue).await.unwrap();
    client.enqueue("reports", "monthly", EnqueueOptions::default()).await.unwrap();
    let task = client.pull("reports", PullOptions { max: 1, wait_ms: 0 }).await.unwrap().remove(0);
    server.stop().await;
    server.restart().await;
    task.ack().await.unwrap();
    let stats = client.queue_stats("reports").await.unwrap();
    assert_eq!((stats.available, stats.leased, stats.scheduled), (0, 0, 0));
}

#[tokio::test]
async fn ack_many_should_ack_a_pulled_batch_in_one_request_and_report_stale_leases() {
    let server = TestServer::start().await;
    let client = connect(&server.ws_url(), options()).await.unwrap();
    let queue =
        QueueOptions { lease_ms: Some(300), backoff_ms: Some(vec![0]), ..Default::default() };
    client.create_queue("batch", queue).await.unwrap();
    for i in 0..5u32 {
        client.enqueue("batch", i.to_be_bytes().to_vec(), EnqueueOptions::default()).await.unwrap();
    }
    let stale = client.pull("batch", PullOptions { max: 1, wait_ms: 0 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut tasks = Vec::new();
    while tasks.len() < 5 {
        let more = client.pull("batch", PullOptions { max: 5, wait_ms: 1_000 }).await.unwrap();
        assert!(!more.is_empty(), "the expired task is back with the other four");
        tasks.extend(more);
    }
    let mut batch = stale.clone();
    batch.extend(tasks);
    let failed = client.ack_many(&batch).await.unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].task, failed[0].lease), (stale[0].task.id, stale[0].task.lease));
    assert_eq!(failed[0].name, "lease_expired");
    let stats = client.queue_stats("batch").await.unwrap();
    assert_eq!((stats.available, stats.leased, stats.scheduled), (0, 0, 0), "all five acked");
    assert!(client.ack_many(&[]).await.unwrap().is_empty(), "nothing to ack asks nothing");
}
