//! Queues through the real hub process: competing consumers, a consumer that disconnects
//! without acking, and SIGKILL under load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use switchboard_protocol::codec::Format;
use switchboard_protocol::queues::{QueueOptions, Task};
use switchboard_protocol::{
    ClientFrame, Consume, CreateQueue, Enqueue, ErrorCode, Pull, QueueRef, ReplyBody, ServerFrame,
    Settle,
};
use switchboard_tests::raw::Received;
use switchboard_tests::{RawClient, TestServer};

fn enqueue(id: u64, queue: &str, data: Vec<u8>) -> ClientFrame {
    ClientFrame::Enqueue(Enqueue {
        id,
        queue: queue.into(),
        data: data.into(),
        headers: Default::default(),
        delay_ms: None,
        not_before: None,
        key: None,
        priority: None,
        idempotency_key: None,
    })
}

fn ack(id: u64, t: &Task) -> ClientFrame {
    ClientFrame::Ack(Settle { id, queue: t.queue.clone(), task: t.id, lease: t.lease })
}

async fn create(c: &mut RawClient, queue: &str, options: QueueOptions) {
    let id = c.id();
    let reply =
        c.request(ClientFrame::CreateQueue(CreateQueue { id, queue: queue.into(), options })).await;
    assert!(matches!(reply, ServerFrame::Ok(_)), "{reply:?}");
}

async fn pull(c: &mut RawClient, queue: &str, max: u32, wait_ms: u64) -> Vec<Task> {
    let id = c.id();
    let reply = c
        .request(ClientFrame::Pull(Pull {
            id,
            queue: queue.into(),
            max: Some(max),
            wait_ms: Some(wait_ms),
        }))
        .await;
    match reply {
        ServerFrame::Ok(ok) => match ok.result {
            Some(ReplyBody::Tasks { tasks }) => tasks,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

async fn stats(c: &mut RawClient, queue: &str) -> switchboard_protocol::queues::QueueStats {
    let id = c.id();
    match c.request(ClientFrame::QueueStats(QueueRef { id, queue: queue.into() })).await {
        ServerFrame::Ok(ok) => match ok.result {
            Some(ReplyBody::QueueStats(s)) => s,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// A push consumer that acks everything it gets until `stop` tasks in total were acked by all.
async fn push_worker(url: String, total: usize, acked: std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
    let (mut c, _) = RawClient::hello(&url, Format::MsgPack).await;
    let id = c.id();
    c.send(&ClientFrame::Consume(Consume { id, queue: "jobs".into(), prefetch: 32 })).await;
    let mut pending: HashMap<u64, u64> = HashMap::new();
    loop {
        if acked.lock().unwrap().len() >= total && pending.is_empty() {
            return;
        }
        match c.recv_within(Duration::from_millis(200)).await {
            Some(Received::Frame(ServerFrame::Task(d))) => {
                let rid = c.id();
                pending.insert(rid, d.task.id);
                c.send(&ack(rid, &d.task)).await;
            }
            Some(Received::Frame(ServerFrame::Ok(ok))) => {
                if let Some(task) = pending.remove(&ok.id) {
                    acked.lock().unwrap().push(task);
                }
            }
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
}

/// A pull worker: pulls batches and acks them until everything was acked.
async fn pull_worker(url: String, total: usize, acked: std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
    let (mut c, _) = RawClient::hello(&url, Format::MsgPack).await;
    while acked.lock().unwrap().len() < total {
        let tasks = pull(&mut c, "jobs", 16, 100).await;
        for t in tasks {
            let id = c.id();
            let reply = c.request(ack(id, &t)).await;
            assert!(matches!(reply, ServerFrame::Ok(_)), "{reply:?}");
            acked.lock().unwrap().push(t.id);
        }
    }
}

#[tokio::test]
async fn competing_consumers_should_ack_each_of_10000_tasks_exactly_once() {
    let server = TestServer::start().await;
    let (mut producer, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let mut ids = BTreeSet::new();
    for chunk in 0..100u32 {
        let mut sent = Vec::new();
        for i in 0..100u32 {
            let id = producer.id();
            producer.send(&enqueue(id, "jobs", (chunk * 100 + i).to_be_bytes().to_vec())).await;
            sent.push(id);
        }
        for _ in sent {
            match producer.frame().await {
                ServerFrame::Ok(ok) => {
                    let Some(ReplyBody::Enqueued { task }) = ok.result else { panic!() };
                    assert!(ids.insert(task));
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(ids.len(), 10_000);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (url, acked) = (server.ws_url(), acked.clone());
        workers.push(if w % 2 == 0 {
            tokio::spawn(push_worker(url, 10_000, acked))
        } else {
            tokio::spawn(pull_worker(url, 10_000, acked))
        });
    }
    for w in workers {
        tokio::time::timeout(Duration::from_secs(120), w).await.expect("workers finish").unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let unique: BTreeSet<u64> = acked.iter().copied().collect();
    assert_eq!(acked.len(), 10_000, "no task acked twice");
    assert_eq!(unique, ids, "every task acked");
    let s = stats(&mut producer, "jobs").await;
    assert_eq!((s.available, s.leased, s.scheduled, s.redeliveries), (0, 0, 0, 0));
}

#[tokio::test]
async fn a_consumer_that_disconnects_should_have_its_task_redelivered_after_the_deadline_not_before()
 {
    let server = TestServer::start().await;
    let (mut admin, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let options =
        QueueOptions { lease_ms: Some(1_500), backoff_ms: Some(vec![0]), ..Default::default() };
    create(&mut admin, "slow", options).await;
    let id = admin.id();
    admin.request(enqueue(id, "slow", b"job".to_vec())).await;

    let (mut first, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let task = pull(&mut first, "slow", 1, 0).await.remove(0);
    drop(first);
    let (mut other, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    assert!(
        pull(&mut other, "slow", 1, 500).await.is_empty(),
        "not redelivered before the deadline"
    );
    let again = pull(&mut other, "slow", 1, 3_000).await;
    assert_eq!(again.len(), 1, "redelivered after the deadline");
    assert_eq!((again[0].id, again[0].attempt), (task.id, 2));

    // A quick reconnect can still ack with its lease id.
    let id = admin.id();
    admin.request(enqueue(id, "slow", b"job2".to_vec())).await;
    let (mut worker, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let held = pull(&mut worker, "slow", 1, 0).await.remove(0);
    drop(worker);
    let (mut back, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
    let id = back.id();
    assert!(matches!(back.request(ack(id, &held)).await, ServerFrame::Ok(_)));
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let later = pull(&mut back, "slow", 10, 0).await;
    assert!(later.iter().all(|t| t.id != held.id), "an acked task never comes back");
    let id = back.id();
    match back.request(ack(id, &again[0])).await {
        ServerFrame::Error(e) => assert_eq!(e.error_code(), Some(ErrorCode::LeaseExpired)),
        other => panic!("the first redelivery's lease expired long ago: {other:?}"),
    }
}

#[tokio::test]
async fn acknowledged_enqueues_and_acks_should_survive_sigkill_and_leases_keep_running() {
    let mut server = TestServer::start().await;
    {
        let (mut admin, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
        let options =
            QueueOptions { lease_ms: Some(1_500), backoff_ms: Some(vec![0]), ..Default::default() };
        create(&mut admin, "crash", options).await;
    }
    let mut enqueued = BTreeSet::new();
    let mut acked = BTreeSet::new();
    let mut ack_unknown = BTreeSet::new();
    let mut seed = 0x9e37_79b9u64;
    for round in 0..3 {
        // Producers and a worker run until the hub is killed under them.
        let url = server.ws_url();
        let producer = tokio::spawn(async move {
            let (mut c, _) = RawClient::hello(&url, Format::MsgPack).await;
            let mut done = BTreeSet::new();
            'outer: loop {
                let mut sent = 0;
                for _ in 0..32 {
                    let id = c.id();
                    if !c.try_send(&enqueue(id, "crash", vec![round as u8; 16])).await {
                        break 'outer;
                    }
                    sent += 1;
                }
                for _ in 0..sent {
                    match c.recv_within(Duration::from_secs(10)).await {
                        Some(Received::Frame(ServerFrame::Ok(ok))) => {
                            if let Some(ReplyBody::Enqueued { task }) = ok.result {
                                done.insert(task);
                            }
                        }
                        _ => break 'outer,
                    }
                }
            }
            done
        });
        let url = server.ws_url();
        let worker = tokio::spawn(async move {
            let (mut c, _) = RawClient::hello(&url, Format::MsgPack).await;
            let (mut acked, mut unknown, mut held) =
                (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
            'outer: loop {
                let id = c.id();
                if !c
                    .try_send(&ClientFrame::Pull(Pull {
                        id,
                        queue: "crash".into(),
                        max: Some(8),
                        wait_ms: Some(50),
                    }))
                    .await
                {
                    break;
                }
                let tasks = match c.recv_within(Duration::from_secs(10)).await {
                    Some(Received::Frame(ServerFrame::Ok(ok))) => match ok.result {
                        Some(ReplyBody::Tasks { tasks }) => tasks,
                        _ => break,
                    },
                    _ => break,
                };
                for (i, t) in tasks.iter().enumerate() {
                    held.insert(t.id);
                    // Keep every third task leased: it must stay leased across the crash.
                    if i % 3 == 2 {
                        continue;
                    }
                    let id = c.id();
                    unknown.insert(t.id);
                    if !c.try_send(&ack(id, t)).await {
                        break 'outer;
                    }
                    match c.recv_within(Duration::from_secs(10)).await {
                        Some(Received::Frame(ServerFrame::Ok(_))) => {
                            unknown.remove(&t.id);
                            held.remove(&t.id);
                            acked.insert(t.id);
                        }
                        _ => break 'outer,
                    }
                }
            }
            (acked, unknown, held)
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(300 + seed % 400)).await;
        server.kill().await;
        enqueued.extend(producer.await.unwrap());
        let (a, unknown, held) = worker.await.unwrap();
        acked.extend(a);
        ack_unknown.extend(unknown);
        server.restart().await;

        let (mut c, _) = RawClient::hello(&server.ws_url(), Format::MsgPack).await;
        let right_after = stats(&mut c, "crash").await;
        let still_held = held.difference(&ack_unknown).count() as u64;
        assert!(
            right_after.leased >= still_held,
            "round {round}: leases survive the crash ({} leased, {still_held} held)",
            right_after.leased
        );
        // Once every lease has expired, everything left is available: collect it.
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let mut present = BTreeSet::new();
        let mut taken = Vec::new();
        loop {
            let tasks = pull(&mut c, "crash", 1000, 0).await;
            if tasks.is_empty() {
                break;
            }
            present.extend(tasks.iter().map(|t| t.id));
            taken.extend(tasks);
        }
        // Hand them back so the next round sees them again.
        for chunk in taken.chunks(256) {
            for t in chunk {
                let id = c.id();
                let release = Settle { id, queue: t.queue.clone(), task: t.id, lease: t.lease };
                c.send(&ClientFrame::Release(release)).await;
            }
            for _ in chunk {
                let reply = c.frame().await;
                assert!(matches!(reply, ServerFrame::Ok(_)), "round {round}: release: {reply:?}");
            }
        }
        for t in &acked {
            assert!(!present.contains(t), "round {round}: acknowledged ack of task {t} came back");
        }
        for t in enqueued.difference(&acked) {
            assert!(
                present.contains(t) || ack_unknown.contains(t),
                "round {round}: acknowledged enqueue of task {t} is missing"
            );
        }
        assert!(
            !enqueued.is_empty() && !acked.is_empty(),
            "round {round}: load ran before the kill"
        );
    }
}
