//! The queue engine's promises, one by one, on a manual clock: delays, backoff, attempts and
//! dead letters, redrive, reject, dedup across restarts, ordered keys, priorities, the length
//! bound, stale leases, extension caps, and leases that survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::Harness;
use switchboard_protocol::queues::{QueueOptions, Task};
use switchboard_protocol::{ErrorCode, Headers, LeaseRef, MAX_ACK_MANY, Payload};
use switchboard_server::queues;
use switchboard_server::storage::queues::{NewTask, Settlement};
use switchboard_server::storage::writer::{Completions, Ticket};

fn task(data: &str) -> NewTask {
    NewTask { data: Payload::from(data), ..NewTask::default() }
}

fn code(e: &switchboard_protocol::ErrorFrame) -> ErrorCode {
    e.error_code().unwrap()
}

async fn pull(h: &Harness, queue: &str, max: u32) -> Vec<Task> {
    h.queues().pull(queue, max, 0).await.unwrap()
}

fn data(tasks: &[Task]) -> Vec<String> {
    tasks.iter().map(|t| String::from_utf8(t.data.as_bytes().to_vec()).unwrap()).collect()
}

async fn advance(h: &Harness, ms: u64) {
    h.clock.advance(ms);
    h.queues().tick().await.unwrap();
}

async fn settle(
    h: &Harness,
    t: &Task,
    how: Settlement,
) -> Result<Option<u64>, switchboard_protocol::ErrorFrame> {
    h.queues().settle(&t.queue, t.id, t.lease, how).await
}

#[tokio::test]
async fn nack_with_delay_should_hide_the_task_until_the_delay_passes() {
    let h = Harness::new().await;
    h.queues().enqueue("jobs", task("a"), None).await.unwrap();
    let t = pull(&h, "jobs", 1).await.remove(0);
    assert_eq!(t.attempt, 1);
    settle(&h, &t, Settlement::Nack { delay_ms: Some(10_000), reason: Some("busy".into()) })
        .await
        .unwrap();
    assert!(pull(&h, "jobs", 1).await.is_empty());
    advance(&h, 9_999).await;
    assert!(pull(&h, "jobs", 1).await.is_empty(), "still hidden 1 ms before the delay ends");
    advance(&h, 1).await;
    let again = pull(&h, "jobs", 1).await;
    assert_eq!(data(&again), vec!["a"]);
    assert_eq!(again[0].attempt, 2);
}

#[tokio::test]
async fn failures_should_follow_the_backoff_steps_then_dead_letter_with_history() {
    let h = Harness::new().await;
    let options = QueueOptions {
        max_attempts: Some(3),
        backoff_ms: Some(vec![1_000, 5_000]),
        ..Default::default()
    };
    h.queues().create("mail", &options).await.unwrap();
    let id = h.queues().enqueue("mail", task("m"), None).await.unwrap();
    // Failure 1 by nack: back after 1 s.
    let t = pull(&h, "mail", 1).await.remove(0);
    settle(&h, &t, Settlement::Nack { delay_ms: None, reason: Some("smtp down".into()) })
        .await
        .unwrap();
    advance(&h, 999).await;
    assert!(pull(&h, "mail", 1).await.is_empty());
    advance(&h, 1).await;
    // Failure 2 by lease expiry: back after 5 s.
    let t = pull(&h, "mail", 1).await.remove(0);
    assert_eq!(t.attempt, 2);
    advance(&h, 30_000).await;
    assert!(pull(&h, "mail", 1).await.is_empty(), "expired lease waits for its backoff");
    advance(&h, 4_999).await;
    assert!(pull(&h, "mail", 1).await.is_empty());
    advance(&h, 1).await;
    // Failure 3: dead-lettered.
    let t = pull(&h, "mail", 1).await.remove(0);
    assert_eq!(t.attempt, 3);
    settle(&h, &t, Settlement::Nack { delay_ms: None, reason: Some("bounced".into()) })
        .await
        .unwrap();
    advance(&h, 600_000).await;
    assert!(pull(&h, "mail", 1).await.is_empty());
    let stats = h.queues().stats("mail").await.unwrap();
    assert_eq!((stats.dead, stats.available, stats.scheduled, stats.leased), (1, 0, 0, 0));
    let dead = pull(&h, "mail.dlq", 1).await.remove(0);
    let history = dead.dead_letter.clone().unwrap();
    assert_eq!(
        (history.queue.as_str(), history.task, history.attempts, history.failures),
        ("mail", id, 3, 3)
    );
    assert_eq!(history.reason.as_deref(), Some("bounced"));
    assert_eq!(data(std::slice::from_ref(&dead)), vec!["m"]);
    settle(&h, &dead, Settlement::Release).await.unwrap();
    // Redrive sends it back to where it failed, fresh.
    assert_eq!(h.queues().redrive("mail.dlq", Vec::new(), true).await.unwrap(), 1);
    let back = pull(&h, "mail", 1).await;
    assert_eq!(data(&back), vec!["m"]);
    assert_eq!(back[0].attempt, 1);
    assert!(pull(&h, "mail.dlq", 1).await.is_empty());
}

#[tokio::test]
async fn reject_should_dead_letter_at_once_and_redrive_by_id_should_move_only_those() {
    let h = Harness::new().await;
    for d in ["x", "y"] {
        h.queues().enqueue("work", task(d), None).await.unwrap();
    }
    for t in pull(&h, "work", 2).await {
        settle(&h, &t, Settlement::Reject { reason: "poison".into() }).await.unwrap();
    }
    let dead = pull(&h, "work.dlq", 2).await;
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter().all(|t| t.dead_letter.as_ref().unwrap().reason.as_deref() == Some("poison"))
    );
    for t in &dead {
        settle(&h, t, Settlement::Release).await.unwrap();
    }
    let first = dead.iter().find(|t| t.data.as_bytes() == b"x").unwrap().id;
    assert_eq!(h.queues().redrive("work.dlq", vec![first], false).await.unwrap(), 1);
    assert_eq!(data(&pull(&h, "work", 5).await), vec!["x"]);
    assert_eq!(data(&pull(&h, "work.dlq", 5).await), vec!["y"]);
}

#[tokio::test]
async fn an_idempotent_enqueue_should_happen_once_even_across_a_restart() {
    let mut h = Harness::new().await;
    let first = h.queues().enqueue("orders", task("o"), Some("order-7".into())).await.unwrap();
    assert_eq!(
        h.queues().enqueue("orders", task("o"), Some("order-7".into())).await.unwrap(),
        first
    );
    h.restart().await;
    assert_eq!(
        h.queues().enqueue("orders", task("o"), Some("order-7".into())).await.unwrap(),
        first
    );
    assert_eq!(pull(&h, "orders", 10).await.len(), 1);
}

#[tokio::test]
async fn ordered_by_key_should_lease_one_task_per_key_in_order() {
    let h = Harness::new().await;
    let options = QueueOptions { ordered_by_key: Some(true), ..Default::default() };
    h.queues().create("per-user", &options).await.unwrap();
    for (key, d) in
        [(Some("ann"), "ann-1"), (Some("ann"), "ann-2"), (Some("bob"), "bob-1"), (None, "free")]
    {
        let t = NewTask { key: key.map(str::to_owned), ..task(d) };
        h.queues().enqueue("per-user", t, None).await.unwrap();
    }
    let first = pull(&h, "per-user", 10).await;
    assert_eq!(data(&first), vec!["ann-1", "bob-1", "free"]);
    assert!(pull(&h, "per-user", 10).await.is_empty(), "ann-2 waits for ann-1");
    let ann1 = first.iter().find(|t| t.data.as_bytes() == b"ann-1").unwrap();
    settle(&h, ann1, Settlement::Nack { delay_ms: Some(1_000), reason: None }).await.unwrap();
    advance(&h, 1_000).await;
    assert_eq!(data(&pull(&h, "per-user", 10).await), vec!["ann-1"], "a nacked head stays first");
    let again = h.queues().stats("per-user").await.unwrap();
    assert_eq!(again.leased, 3);
}

#[tokio::test]
async fn higher_priority_should_be_dispatched_first_then_enqueue_order() {
    let h = Harness::new().await;
    for (p, d) in [(0, "low-1"), (9, "urgent"), (5, "mid"), (0, "low-2")] {
        h.queues().enqueue("mixed", NewTask { priority: p, ..task(d) }, None).await.unwrap();
    }
    assert_eq!(data(&pull(&h, "mixed", 10).await), vec!["urgent", "mid", "low-1", "low-2"]);
}

#[tokio::test]
async fn a_full_queue_should_refuse_enqueue_and_change_nothing() {
    let h = Harness::new().await;
    h.queues()
        .create("small", &QueueOptions { max_length: Some(2), ..Default::default() })
        .await
        .unwrap();
    h.queues().enqueue("small", task("1"), None).await.unwrap();
    h.queues().enqueue("small", task("2"), None).await.unwrap();
    let err = h.queues().enqueue("small", task("3"), None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::QueueFull);
    assert_eq!(data(&pull(&h, "small", 10).await), vec!["1", "2"]);
}

#[tokio::test]
async fn delayed_tasks_should_become_available_on_time() {
    let h = Harness::new().await;
    h.queues()
        .enqueue("later", NewTask { delay_ms: Some(5_000), ..task("d") }, None)
        .await
        .unwrap();
    let at = common::T0 + 8_000;
    h.queues().enqueue("later", NewTask { not_before: Some(at), ..task("n") }, None).await.unwrap();
    assert_eq!(h.queues().stats("later").await.unwrap().scheduled, 2);
    advance(&h, 4_999).await;
    assert!(pull(&h, "later", 10).await.is_empty());
    advance(&h, 1).await;
    assert_eq!(data(&pull(&h, "later", 10).await), vec!["d"]);
    advance(&h, 3_000).await;
    assert_eq!(data(&pull(&h, "later", 10).await), vec!["n"]);
}

#[tokio::test]
async fn a_settle_with_an_expired_lease_should_answer_lease_expired_and_change_nothing() {
    let h = Harness::new().await;
    let options =
        QueueOptions { lease_ms: Some(1_000), backoff_ms: Some(vec![0]), ..Default::default() };
    h.queues().create("short", &options).await.unwrap();
    h.queues().enqueue("short", task("t"), None).await.unwrap();
    let old = pull(&h, "short", 1).await.remove(0);
    advance(&h, 1_000).await;
    let err = settle(&h, &old, Settlement::Ack).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::LeaseExpired, "expired, not yet re-leased");
    let new = pull(&h, "short", 1).await.remove(0);
    assert_ne!(new.lease, old.lease);
    for how in [Settlement::Ack, Settlement::Release, Settlement::Extend { ms: 10 }] {
        assert_eq!(code(&settle(&h, &old, how).await.unwrap_err()), ErrorCode::LeaseExpired);
    }
    assert_eq!(h.queues().stats("short").await.unwrap().leased, 1, "the new lease is untouched");
    settle(&h, &new, Settlement::Ack).await.unwrap();
    settle(&h, &new, Settlement::Ack).await.unwrap();
    assert_eq!(h.queues().stats("short").await.unwrap().leased, 0);
}

#[tokio::test]
async fn extend_should_be_capped_at_the_max_lease() {
    let h = Harness::new().await;
    let options =
        QueueOptions { lease_ms: Some(10_000), max_lease_ms: Some(60_000), ..Default::default() };
    h.queues().create("long", &options).await.unwrap();
    h.queues().enqueue("long", task("t"), None).await.unwrap();
    let t = pull(&h, "long", 1).await.remove(0);
    assert_eq!(t.deadline, common::T0 + 10_000);
    advance(&h, 5_000).await;
    let d = settle(&h, &t, Settlement::Extend { ms: 20_000 }).await.unwrap();
    assert_eq!(d, Some(common::T0 + 25_000));
    let d = settle(&h, &t, Settlement::Extend { ms: 3_600_000 }).await.unwrap();
    assert_eq!(d, Some(common::T0 + 60_000), "capped at 60 s from the lease's start");
    advance(&h, 54_999).await;
    settle(&h, &t, Settlement::Ack).await.unwrap();
}

#[tokio::test]
async fn release_should_hand_back_without_counting_a_failure() {
    let h = Harness::new().await;
    h.queues()
        .create("polite", &QueueOptions { max_attempts: Some(2), ..Default::default() })
        .await
        .unwrap();
    h.queues().enqueue("polite", task("t"), None).await.unwrap();
    for attempt in 1..=5 {
        let t = pull(&h, "polite", 1).await.remove(0);
        assert_eq!(t.attempt, attempt);
        settle(&h, &t, Settlement::Release).await.unwrap();
    }
    assert_eq!(h.queues().stats("polite").await.unwrap().dead, 0);
}

#[tokio::test]
async fn leases_should_keep_their_deadlines_across_a_restart() {
    let mut h = Harness::new().await;
    h.queues()
        .create("durable", &QueueOptions { backoff_ms: Some(vec![0]), ..Default::default() })
        .await
        .unwrap();
    h.queues().enqueue("durable", task("t"), None).await.unwrap();
    let t = pull(&h, "durable", 1).await.remove(0);
    h.restart().await;
    advance(&h, 29_999).await;
    assert!(pull(&h, "durable", 1).await.is_empty(), "the lease still holds after the restart");
    settle(&h, &t, Settlement::Extend { ms: 1_000 }).await.unwrap();
    advance(&h, 1_001).await;
    let again = pull(&h, "durable", 1).await;
    assert_eq!(again[0].attempt, 2, "redelivered once the deadline passed");
}

#[tokio::test]
async fn bad_queue_requests_should_get_typed_errors_and_change_nothing() {
    let h = Harness::with_config(switchboard_server::Config {
        max_record_bytes: 1024,
        ..Default::default()
    })
    .await;
    let q = h.queues();
    assert_eq!(
        code(&q.enqueue("no good", task("x"), None).await.unwrap_err()),
        ErrorCode::InvalidName
    );
    let err = q.enqueue("q", NewTask { priority: 10, ..task("x") }, None).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument);
    let both = NewTask { delay_ms: Some(1), not_before: Some(common::T0 + 5), ..task("x") };
    assert_eq!(code(&q.enqueue("q", both, None).await.unwrap_err()), ErrorCode::InvalidArgument);
    let big = NewTask { data: Payload::from(vec![0u8; 2048]), headers: Headers::new(), ..task("") };
    assert_eq!(code(&q.enqueue("q", big, None).await.unwrap_err()), ErrorCode::PayloadTooLarge);
    assert_eq!(code(&q.pull("q", 0, 0).await.unwrap_err()), ErrorCode::InvalidArgument);
    let bad = QueueOptions { lease_ms: Some(0), ..Default::default() };
    assert_eq!(code(&q.create("q", &bad).await.unwrap_err()), ErrorCode::InvalidArgument);
    let bad = QueueOptions { backoff_ms: Some(Vec::new()), ..Default::default() };
    assert_eq!(code(&q.create("q", &bad).await.unwrap_err()), ErrorCode::InvalidArgument);
    assert!(q.list().await.unwrap().is_empty(), "nothing was created");
    assert_eq!(code(&q.stats("missing").await.unwrap_err()), ErrorCode::NotFound);
    assert_eq!(code(&q.delete("missing").await.unwrap_err()), ErrorCode::NotFound);
    let err = q
        .settle("missing", 1, 1, Settlement::Nack { delay_ms: None, reason: None })
        .await
        .unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound);
    assert!(
        q.pull("fresh", 1, 0).await.unwrap().is_empty(),
        "pull creates an unknown queue lazily"
    );
    assert_eq!(q.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_task_redriven_in_place_should_rejoin_its_key_line_in_order() {
    let h = Harness::new().await;
    let options = QueueOptions {
        ordered_by_key: Some(true),
        dead_letter: Some(String::new()),
        max_attempts: Some(1),
        ..Default::default()
    };
    h.queues().create("lines", &options).await.unwrap();
    for d in ["first", "second"] {
        h.queues()
            .enqueue("lines", NewTask { key: Some("k".into()), ..task(d) }, None)
            .await
            .unwrap();
    }
    let head = pull(&h, "lines", 10).await.remove(0);
    settle(&h, &head, Settlement::Nack { delay_ms: None, reason: Some("bad".into()) })
        .await
        .unwrap();
    // Dead in place: the next task of the key goes ahead.
    let second = pull(&h, "lines", 10).await;
    assert_eq!(data(&second), vec!["second"]);
    assert_eq!(h.queues().redrive("lines", vec![head.id], false).await.unwrap(), 1);
    assert!(pull(&h, "lines", 10).await.is_empty(), "it waits for the key's leased task");
    settle(&h, &second[0], Settlement::Ack).await.unwrap();
    assert_eq!(data(&pull(&h, "lines", 10).await), vec!["first"]);
}

#[tokio::test]
async fn acking_a_task_that_was_dead_lettered_should_answer_lease_expired() {
    let h = Harness::new().await;
    h.queues().enqueue("acks", task("t"), None).await.unwrap();
    let t = pull(&h, "acks", 1).await.remove(0);
    settle(&h, &t, Settlement::Reject { reason: "no".into() }).await.unwrap();
    let err = settle(&h, &t, Settlement::Ack).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::LeaseExpired);
}

#[tokio::test]
async fn a_redrive_that_does_not_fit_should_move_nothing() {
    let h = Harness::new().await;
    h.queues()
        .create("tight", &QueueOptions { max_length: Some(2), ..Default::default() })
        .await
        .unwrap();
    for d in ["a", "b"] {
        h.queues().enqueue("tight", task(d), None).await.unwrap();
    }
    for t in pull(&h, "tight", 2).await {
        settle(&h, &t, Settlement::Reject { reason: "r".into() }).await.unwrap();
    }
    h.queues().enqueue("tight", task("c"), None).await.unwrap();
    let err = h.queues().redrive("tight.dlq", Vec::new(), true).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::QueueFull);
    assert_eq!(h.queues().stats("tight.dlq").await.unwrap().available, 2, "nothing moved");
    assert_eq!(h.queues().stats("tight").await.unwrap().available, 1);
}

#[tokio::test]
async fn waiting_pulls_should_be_served_in_turn_one_task_each() {
    let h = Harness::new().await;
    h.queues().create("fair", &QueueOptions::default()).await.unwrap();
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let queues = h.queues().clone();
        waiting.push(tokio::spawn(async move { queues.pull("fair", 5, 10_000).await.unwrap() }));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for d in ["1", "2", "3"] {
        h.queues().enqueue("fair", task(d), None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut got = Vec::new();
    for w in waiting {
        let tasks = w.await.unwrap();
        assert_eq!(tasks.len(), 1, "each waiting pull gets one task, in turn");
        got.extend(data(&tasks));
    }
    assert_eq!(got, vec!["1", "2", "3"], "the longest waiting pull is served first");
}

#[tokio::test]
async fn ack_many_should_ack_each_task_in_one_commit_and_report_the_ones_it_could_not() {
    let mut h = Harness::new().await;
    let options =
        QueueOptions { lease_ms: Some(1_000), backoff_ms: Some(vec![0]), ..Default::default() };
    h.queues().create("batch", &options).await.unwrap();
    for name in ["a", "b", "c", "d"] {
        h.queues().enqueue("batch", task(name), None).await.unwrap();
    }
    let first = pull(&h, "batch", 1).await.remove(0);
    advance(&h, 1_000).await;
    // `first` expired and is leased again below under a new lease; the old one is stale.
    let mut leased = pull(&h, "batch", 4).await;
    while leased.len() < 4 {
        let more = pull(&h, "batch", 4).await;
        assert!(!more.is_empty(), "all four are available");
        leased.extend(more);
    }
    assert_eq!(data(&leased), vec!["a", "b", "c", "d"]);
    let refs = |tasks: &[&Task]| -> Vec<LeaseRef> {
        tasks.iter().map(|t| LeaseRef { task: t.id, lease: t.lease }).collect()
    };
    let commits = h.writer_counts().0;
    let mut asked = refs(&[&leased[1], &first, &leased[2]]);
    asked.push(LeaseRef { task: 999_999, lease: 1 });
    let failed = h.queues().ack_many("batch", &asked).await.unwrap();
    assert_eq!(h.writer_counts().0 - commits, 1, "one commit for the whole batch");
    let failed: Vec<(u64, u64, Option<ErrorCode>)> =
        failed.iter().map(|f| (f.task, f.lease, f.error_code())).collect();
    assert_eq!(
        failed,
        vec![
            (first.id, first.lease, Some(ErrorCode::LeaseExpired)),
            (999_999, 1, Some(ErrorCode::LeaseExpired)),
        ],
        "the stale lease and the unknown task fail as their own acks would; the rest are acked"
    );
    let stats = h.queues().stats("batch").await.unwrap();
    assert_eq!((stats.leased, stats.available), (2, 0), "a and d are still leased");
    // Repeating a batch that was acked answers ok for each, as a repeated ack does.
    let again = h.queues().ack_many("batch", &refs(&[&leased[1], &leased[2]])).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    h.queues().ack_many("batch", &refs(&[&leased[0], &leased[3]])).await.unwrap();
    h.restart().await;
    let stats = h.queues().stats("batch").await.unwrap();
    assert_eq!((stats.leased, stats.available, stats.scheduled), (0, 0, 0), "acks were durable");
}

#[tokio::test]
async fn ack_many_should_refuse_an_empty_or_oversized_batch_and_an_unknown_queue() {
    let h = Harness::new().await;
    let one = [LeaseRef { task: 1, lease: 1 }];
    let code_of = |r: Result<_, switchboard_protocol::ErrorFrame>| code(&r.unwrap_err());
    assert_eq!(code_of(h.queues().ack_many("jobs", &[]).await), ErrorCode::InvalidArgument);
    let many = vec![LeaseRef { task: 1, lease: 1 }; MAX_ACK_MANY + 1];
    assert_eq!(code_of(h.queues().ack_many("jobs", &many).await), ErrorCode::InvalidArgument);
    assert_eq!(code_of(h.queues().ack_many("nope", &one).await), ErrorCode::NotFound);
    assert_eq!(code_of(h.queues().ack_many("bad name!", &one).await), ErrorCode::InvalidName);
}

#[tokio::test]
async fn task_and_lease_ids_should_keep_growing_across_restarts() {
    let mut h = Harness::new().await;
    let mut seen = Vec::new();
    for round in 0..3 {
        let id = h.queues().enqueue("ids", task(&format!("t{round}")), None).await.unwrap();
        let t = pull(&h, "ids", 1).await.remove(0);
        assert_eq!(t.id, id);
        seen.extend([id, t.lease]);
        settle(&h, &t, Settlement::Ack).await.unwrap();
        h.restart().await;
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "every id is new and larger: {seen:?}");
}

#[tokio::test]
async fn enqueues_submitted_to_completions_should_each_get_their_own_task_id_and_ticket() {
    let h = Harness::new().await;
    let q = h.queues().clone();
    let to = Arc::new(Completions::default());
    // Each key twice: the repeat answers the original task id and enqueues nothing.
    for i in 0..200u64 {
        let key = Some(format!("k{}", i / 2));
        let ticket = Ticket { id: 500 + i, tag: (i % 4) as u8 };
        q.enqueue_to("jobs", task(&i.to_string()), key, &to, ticket).unwrap();
    }
    let refused = q
        .enqueue_to(
            "jobs",
            NewTask { priority: 10, ..task("x") },
            None,
            &to,
            Ticket { id: 1, tag: 0 },
        )
        .unwrap_err();
    assert_eq!(refused.error_code(), Some(ErrorCode::InvalidArgument));

    let got = common::outcomes(&to, 200).await;
    assert_eq!(got.len(), 200);
    let mut ids = std::collections::BTreeMap::new();
    for (ticket, outcome) in got {
        let i = ticket.id - 500;
        assert_eq!(ticket.tag, (i % 4) as u8);
        assert!(ids.insert(i, queues::enqueued(outcome).unwrap()).is_none(), "{i} answered twice");
    }
    for i in (0..200u64).step_by(2) {
        assert_eq!(ids[&i], ids[&(i + 1)], "the repeat of k{} answers the original", i / 2);
    }
    let tasks = pull(&h, "jobs", 1000).await;
    assert_eq!(tasks.len(), 100, "each key enqueued once");
}
