//! The stream engine's promises, one by one: the replay-to-live seam, credit flow control,
//! retention by each limit (on a manual clock), idempotency across restarts, consumer groups,
//! restart survival, and typed errors for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Harness, outcomes, read};
use std::sync::Arc;
use switchboard_protocol::streams::{
    Durability, PartitionOffset, ReadFrom, Retention, partition_for_key,
};
use switchboard_protocol::{ErrorCode, Headers, Payload, Read, ReplyBody, ServerFrame};
use switchboard_server::Config;

use switchboard_server::storage::streams::NewRecord;
use switchboard_server::storage::writer::{Completions, Ticket};
use switchboard_server::streams;

fn record(data: impl Into<Payload>) -> NewRecord {
    NewRecord { key: None, headers: Headers::new(), data: data.into() }
}

fn keyed(key: &str, data: impl Into<Payload>) -> NewRecord {
    NewRecord { key: Some(key.into()), headers: Headers::new(), data: data.into() }
}

fn code(e: &switchboard_protocol::ErrorFrame) -> ErrorCode {
    e.error_code().unwrap()
}

#[tokio::test]
async fn a_reader_should_move_from_stored_to_live_records_without_gap_or_duplicate() {
    let h = Harness::new().await;
    let engine = h.engine().clone();
    for i in 0..3000u32 {
        engine.append("seam", record(i.to_be_bytes().to_vec()), None).await.unwrap();
    }
    let appender = tokio::spawn({
        let engine = engine.clone();
        async move {
            let mut tasks = Vec::new();
            for w in 0..4u32 {
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..500u32 {
                        engine
                            .append(
                                "seam",
                                record((3000 + w * 500 + i).to_be_bytes().to_vec()),
                                None,
                            )
                            .await
                            .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    });
    let (mut reader, _) = h.reader(read("seam", Some(0), ReadFrom::Earliest, 500)).await.unwrap();
    let mut offsets = Vec::new();
    while offsets.len() < 5000 {
        match reader.next_frame().await {
            ServerFrame::Records(r) => {
                let n = r.records.len() as u32;
                offsets.extend(r.records.iter().map(|r| r.offset));
                reader.credit(n).await;
            }
            other => panic!("{other:?}"),
        }
    }
    appender.await.unwrap();
    assert_eq!(offsets, (0..5000).collect::<Vec<u64>>());
    assert!(reader.frame_within(Duration::from_millis(100)).await.is_none());
}

#[tokio::test]
async fn a_reader_without_credit_should_get_nothing_more_and_lose_nothing() {
    let h = Harness::new().await;
    for i in 0..20u8 {
        h.engine().append("credit", record(vec![i]), None).await.unwrap();
    }
    let (mut reader, _) = h.reader(read("credit", Some(0), ReadFrom::Earliest, 5)).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        if let ServerFrame::Records(r) = reader.next_frame().await {
            got.extend(r.records.into_iter().map(|r| r.offset));
        }
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert!(
        reader.frame_within(Duration::from_millis(200)).await.is_none(),
        "no credit, no records"
    );
    reader.credit(3).await;
    while got.len() < 8 {
        if let ServerFrame::Records(r) = reader.next_frame().await {
            got.extend(r.records.into_iter().map(|r| r.offset));
        }
    }
    assert_eq!(got, (0..8).collect::<Vec<u64>>());
    assert!(reader.frame_within(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn keyed_records_should_land_in_the_documented_partition_and_unkeyed_spread() {
    let h = Harness::new().await;
    h.engine().create("keys", Some(4), None, None).await.unwrap();
    for key in ["alice", "bob", "carol"] {
        let a = h.engine().append("keys", keyed(key, "x"), None).await.unwrap();
        assert_eq!(a.partition, switchboard_protocol::streams::partition_for_key(key, 4));
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        seen.insert(h.engine().append("keys", record("y"), None).await.unwrap().partition);
    }
    assert_eq!(seen.len(), 4, "round robin reaches every partition");
}

#[tokio::test]
async fn retention_by_records_bytes_and_age_should_move_the_low_watermark() {
    let h = Harness::new().await;
    let e = h.engine();
    e.create(
        "by-records",
        None,
        Some(Retention { max_records: Some(10), ..Default::default() }),
        None,
    )
    .await
    .unwrap();
    e.create(
        "by-bytes",
        None,
        Some(Retention { max_bytes: Some(1000), ..Default::default() }),
        None,
    )
    .await
    .unwrap();
    e.create(
        "by-age",
        None,
        Some(Retention { max_age_ms: Some(60_000), ..Default::default() }),
        None,
    )
    .await
    .unwrap();
    for i in 0..25u8 {
        e.append("by-records", record(vec![i]), None).await.unwrap();
        e.append("by-bytes", record(vec![i; 100]), None).await.unwrap();
        e.append("by-age", record(vec![i]), None).await.unwrap();
        h.clock.advance(10_000);
    }
    e.enforce_retention().await.unwrap();
    let low = |d: switchboard_protocol::streams::StreamDescription| {
        (d.partitions[0].low, d.partitions[0].high)
    };
    assert_eq!(low(e.describe("by-records").await.unwrap()), (15, 25));
    let bytes = e.describe("by-bytes").await.unwrap();
    assert!(bytes.partitions[0].bytes <= 1000, "{bytes:?}");
    assert!(bytes.partitions[0].low > 0);
    // Records were appended every 10 s; the clock is now 250 s after the first. Those at or
    // after 190 s (offset 19) are younger than 60 s.
    assert_eq!(low(e.describe("by-age").await.unwrap()), (19, 25));
    let err = h.read_all("by-records", 0, ReadFrom::Offset(3)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::OffsetOutOfRange);
    assert_eq!(err.low_watermark, Some(15));
    let kept = h.read_all("by-age", 0, ReadFrom::Earliest).await.unwrap();
    assert_eq!(kept.iter().map(|r| r.offset).collect::<Vec<_>>(), (19..25).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_live_reader_overtaken_by_retention_should_be_told_not_skipped() {
    let h = Harness::new().await;
    let e = h.engine();
    e.create("fast", None, Some(Retention { max_records: Some(5), ..Default::default() }), None)
        .await
        .unwrap();
    let (mut reader, _) = h.reader(read("fast", Some(0), ReadFrom::Earliest, 0)).await.unwrap();
    for i in 0..20u8 {
        e.append("fast", record(vec![i]), None).await.unwrap();
    }
    e.enforce_retention().await.unwrap();
    reader.credit(100).await;
    match reader.next_frame().await {
        ServerFrame::ReaderClosed(c) => {
            assert_eq!(code(&c.error), ErrorCode::OffsetOutOfRange);
            assert_eq!(c.error.low_watermark, Some(15));
        }
        other => panic!("expected reader_closed, got {other:?}"),
    }
}

#[tokio::test]
async fn an_idempotent_append_should_be_written_once_even_across_a_restart() {
    let mut h = Harness::new().await;
    let first = h.engine().append("orders", record("a"), Some("order-1".into())).await.unwrap();
    let again = h.engine().append("orders", record("a"), Some("order-1".into())).await.unwrap();
    assert_eq!(first, again);
    h.restart().await;
    h.clock.advance(60_000);
    let after = h.engine().append("orders", record("a"), Some("order-1".into())).await.unwrap();
    assert_eq!(first, after, "remembered across a restart within the window");
    assert_eq!(h.read_all("orders", 0, ReadFrom::Earliest).await.unwrap().len(), 1);
    h.clock.advance(61_000);
    h.engine().enforce_retention().await.unwrap();
    let later = h.engine().append("orders", record("a"), Some("order-1".into())).await.unwrap();
    assert_eq!(later.offset, 1, "a key past its window is new again");
}

#[tokio::test]
async fn records_and_group_offsets_should_survive_a_restart_byte_for_byte() {
    let mut h = Harness::new().await;
    h.engine().create("durable", Some(2), None, None).await.unwrap();
    let mut written = Vec::new();
    for i in 0..200u32 {
        let mut headers = Headers::new();
        headers.insert("n".into(), i.to_string());
        let data: Vec<u8> = (0..(i % 50)).map(|b| (b * 7 + i) as u8).collect();
        let rec = NewRecord {
            key: Some(format!("k{}", i % 7)),
            headers,
            data: Payload::from(data.clone()),
        };
        let a = h.engine().append("durable", rec, None).await.unwrap();
        written.push((a, data));
    }
    let mut group =
        Read { group: Some("billing".into()), ..read("durable", None, ReadFrom::Earliest, 10) };
    group.id = 9;
    let (mut member, _) = h.reader(group).await.unwrap();
    let ServerFrame::Assigned(assigned) = member.next_frame().await else { panic!() };
    h.engine().commit("durable", "billing", 0, 17, assigned.generation).await.unwrap();
    h.engine().commit("durable", "billing", 1, 3, assigned.generation).await.unwrap();
    member.close().await;
    h.restart().await;
    for p in 0..2 {
        let back = h.read_all("durable", p, ReadFrom::Earliest).await.unwrap();
        let expected: Vec<_> = written.iter().filter(|(a, _)| a.partition == p).collect();
        assert_eq!(back.len(), expected.len());
        for (r, (a, data)) in back.iter().zip(expected) {
            assert_eq!((r.offset, r.timestamp), (a.offset, a.timestamp));
            assert_eq!(r.data.as_bytes(), data.as_slice());
        }
    }
    let d = h.engine().describe("durable").await.unwrap();
    let committed: Vec<_> = d.groups[0].partitions.iter().map(|p| p.committed).collect();
    assert_eq!(committed, vec![Some(17), Some(3)]);
}

async fn assigned_partitions(reader: &mut common::TestReader) -> (u64, Vec<PartitionOffset>) {
    loop {
        match reader.next_frame().await {
            ServerFrame::Assigned(a) => return (a.generation, a.partitions),
            ServerFrame::Records(_) | ServerFrame::Revoked(_) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn groups_should_rebalance_on_join_leave_and_timeout_and_fence_stale_members() {
    let config = Config { group_session_timeout_ms: 10_000, ..Config::default() };
    let h = Harness::with_config(config).await;
    let e = h.engine();
    e.create("jobs", Some(4), None, None).await.unwrap();
    for i in 0..40u8 {
        e.append("jobs", keyed(&format!("k{i}"), vec![i]), None).await.unwrap();
    }
    let member = |id: u64, m: Option<&str>| Read {
        id,
        group: Some("workers".into()),
        member: m.map(str::to_owned),
        ..read("jobs", None, ReadFrom::Earliest, 0)
    };
    let (mut a, body) = h.reader(member(1, None)).await.unwrap();
    assert!(matches!(body, ReplyBody::ReadStarted { member: Some(_), .. }));
    let (gen_a, parts) = assigned_partitions(&mut a).await;
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|p| p.offset == 0), "no committed offset: start at earliest");

    let (mut b, _) = h.reader(member(2, None)).await.unwrap();
    let (gen_b, b_parts) = assigned_partitions(&mut b).await;
    assert_eq!(b_parts.len(), 2);
    let ServerFrame::Revoked(revoked) = a.next_frame().await else { panic!() };
    assert_eq!(revoked.partitions.len(), 2);
    let moved = b_parts[0].partition;
    // a no longer owns `moved`: its commit there is fenced.
    let err = e.commit("jobs", "workers", moved, 5, gen_a).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::StaleGeneration);
    e.commit("jobs", "workers", moved, 5, gen_b).await.unwrap();

    // b's session drops: it keeps its partitions within the session timeout...
    b.disconnect().await;
    h.clock.advance(5_000);
    e.enforce_retention().await.unwrap();
    let expired = e.groups.expire(switchboard_server::clock::Clock::now_ms(&*h.clock), 10_000);
    assert!(expired.is_empty());
    // ...and a reconnect with its member id resumes them without a rebalance.
    let b_id = h.engine().groups.disconnected_members().pop().expect("b is still a member");
    let (mut b2, _) = h.reader(member(3, Some(&b_id))).await.unwrap();
    let (_, resumed) = assigned_partitions(&mut b2).await;
    assert_eq!(resumed.len(), 2);
    assert_eq!(
        resumed.iter().find(|p| p.partition == moved).unwrap().offset,
        5,
        "from the committed offset"
    );
    assert!(a.frame_within(Duration::from_millis(100)).await.is_none(), "a saw no rebalance");

    // b2's session drops and stays away past the timeout: a gets everything back.
    b2.disconnect().await;
    h.clock.advance(11_000);
    let now = switchboard_server::clock::Clock::now_ms(&*h.clock);
    switchboard_server::streams::deliver(e.groups.expire(now, 10_000)).await;
    let (_, back) = assigned_partitions(&mut a).await;
    assert_eq!(back.len(), 2);

    // Leaving on purpose rebalances at once.
    let (mut c, _) = h.reader(member(4, None)).await.unwrap();
    let (_, c_parts) = assigned_partitions(&mut c).await;
    assert_eq!(c_parts.len(), 2);
    c.close().await;
    let (_, again) = assigned_partitions(&mut a).await;
    assert_eq!(again.len(), 2);
}

#[tokio::test]
async fn bad_stream_requests_should_get_typed_errors_and_write_nothing() {
    let h = Harness::with_config(Config { max_record_bytes: 2048, ..Config::default() }).await;
    let e = h.engine();
    assert_eq!(
        code(&e.append("bad name", record("x"), None).await.unwrap_err()),
        ErrorCode::InvalidName
    );
    assert_eq!(
        code(&e.append("a.*", record("x"), None).await.unwrap_err()),
        ErrorCode::InvalidName
    );
    assert_eq!(
        code(&e.append("big", record(vec![0u8; 4096]), None).await.unwrap_err()),
        ErrorCode::PayloadTooLarge
    );
    assert!(e.list().is_empty(), "nothing was created");
    assert_eq!(
        code(&e.create("s", Some(0), None, None).await.unwrap_err()),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(&e.create("s", Some(5000), None, None).await.unwrap_err()),
        ErrorCode::InvalidArgument
    );
    let zero = Retention { max_records: Some(0), ..Default::default() };
    assert_eq!(
        code(&e.create("s", None, Some(zero), None).await.unwrap_err()),
        ErrorCode::InvalidArgument
    );
    let lazy = Some(Durability::Interval(0));
    assert_eq!(
        code(&e.create("s", None, None, lazy).await.unwrap_err()),
        ErrorCode::InvalidArgument
    );
    assert!(e.list().is_empty());

    assert_eq!(
        code(&h.reader(read("missing", None, ReadFrom::Earliest, 1)).await.err().unwrap()),
        ErrorCode::NotFound
    );
    assert_eq!(code(&e.describe("missing").await.unwrap_err()), ErrorCode::NotFound);
    assert_eq!(code(&e.delete("missing").await.unwrap_err()), ErrorCode::NotFound);

    e.create("s", Some(2), None, None).await.unwrap();
    assert_eq!(
        code(&e.create("s", Some(3), None, None).await.unwrap_err()),
        ErrorCode::AlreadyExists
    );
    e.append("s", record("x"), None).await.unwrap();
    let err = h.read_all("s", 0, ReadFrom::Offset(99)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::OffsetOutOfRange);
    let wrong_partition = read("s", Some(7), ReadFrom::Earliest, 1);
    assert_eq!(code(&h.reader(wrong_partition).await.err().unwrap()), ErrorCode::InvalidArgument);
    let stale = Read { epoch: Some(1), ..read("s", None, ReadFrom::Earliest, 1) };
    let err = h.reader(stale).await.err().unwrap();
    assert_eq!(code(&err), ErrorCode::EpochMismatch);
    assert_eq!(err.epoch, Some(e.list()[0].epoch));
    let total: u64 = e.describe("s").await.unwrap().partitions.iter().map(|p| p.records).sum();
    assert_eq!(total, 1, "only the one good append was written");
}

#[tokio::test]
async fn deleting_a_stream_should_end_its_readers_and_a_recreated_stream_should_get_a_new_epoch() {
    let h = Harness::new().await;
    let e = h.engine();
    let first = e.create("temp", None, None, None).await.unwrap();
    let (mut reader, _) = h.reader(read("temp", None, ReadFrom::Latest, 10)).await.unwrap();
    e.delete("temp").await.unwrap();
    match reader.next_frame().await {
        ServerFrame::ReaderClosed(c) => assert_eq!(code(&c.error), ErrorCode::NotFound),
        other => panic!("{other:?}"),
    }
    let second = e.create("temp", None, None, None).await.unwrap();
    assert_ne!(first.epoch, second.epoch);
    let resume = Read { epoch: Some(first.epoch), ..read("temp", None, ReadFrom::Earliest, 1) };
    assert_eq!(code(&h.reader(resume).await.err().unwrap()), ErrorCode::EpochMismatch);
}

#[tokio::test]
async fn an_interval_durability_stream_should_acknowledge_and_keep_its_records() {
    let mut h = Harness::new().await;
    h.engine().create("metrics", None, None, Some(Durability::Interval(20))).await.unwrap();
    for i in 0..50u8 {
        h.engine().append("metrics", record(vec![i]), None).await.unwrap();
    }
    h.restart().await;
    assert_eq!(h.read_all("metrics", 0, ReadFrom::Earliest).await.unwrap().len(), 50);
}

fn group_read(id: u64, member: Option<&str>, auto_commit: bool, credit: u32) -> Read {
    Read {
        id,
        group: Some("g".into()),
        member: member.map(str::to_owned),
        auto_commit,
        ..read("two", None, ReadFrom::Earliest, credit)
    }
}

async fn two_partitions_with_records(h: &Harness) {
    h.engine().create("two", Some(2), None, None).await.unwrap();
    for i in 0..6u8 {
        let key = if i % 2 == 0 { "a" } else { "b" };
        h.engine().append("two", keyed(key, vec![i]), None).await.unwrap();
    }
}

#[tokio::test]
async fn a_revoke_should_not_shift_which_records_a_credit_grant_acknowledges() {
    let h = Harness::new().await;
    two_partitions_with_records(&h).await;
    let (mut a, _) = h.reader(group_read(1, Some("a"), true, 100)).await.unwrap();
    let mut batches = Vec::new();
    while batches.iter().map(|(_, n)| n).sum::<usize>() < 6 {
        match a.next_frame().await {
            ServerFrame::Records(r) => batches.push((r.partition, r.records.len())),
            ServerFrame::Assigned(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let (_b, _) = h.reader(group_read(2, Some("b"), true, 0)).await.unwrap();
    let ServerFrame::Revoked(revoked) = a.next_frame().await else { panic!() };
    let kept = 1 - revoked.partitions[0];
    let committed = || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let d = h.engine().describe("two").await.unwrap();
        d.groups[0].partitions.iter().map(|p| p.committed).collect::<Vec<Option<u64>>>()
    };
    // More records for the kept partition arrive after the revoked partition's.
    let key = ["a", "b"].into_iter().find(|k| partition_for_key(k, 2) == kept).unwrap();
    for i in 0..3u8 {
        h.engine().append("two", keyed(key, vec![100 + i]), None).await.unwrap();
    }
    let mut late = 0;
    while late < 3 {
        let ServerFrame::Records(r) = a.next_frame().await else { panic!() };
        assert_eq!(r.partition, kept);
        late += r.records.len();
    }
    // Granting 6 acknowledges the 6 oldest deliveries: the kept partition's first 3 and the
    // revoked partition's 3 (which a may no longer commit), not the 3 that came late.
    a.credit(6).await;
    let mut expected = vec![None, None];
    expected[kept as usize] = Some(3);
    assert_eq!(committed().await, expected);
    a.credit(3).await;
    expected[kept as usize] = Some(6);
    assert_eq!(committed().await, expected);
}

#[tokio::test]
async fn a_rejoining_member_should_be_told_each_partitions_own_generation() {
    let h = Harness::new().await;
    two_partitions_with_records(&h).await;
    let (mut a, _) = h.reader(group_read(1, Some("a"), false, 0)).await.unwrap();
    let ServerFrame::Assigned(first) = a.next_frame().await else { panic!() };
    let (b, _) = h.reader(group_read(2, Some("b"), false, 0)).await.unwrap();
    let _revoked = a.next_frame().await;
    b.close().await;
    let ServerFrame::Assigned(second) = a.next_frame().await else { panic!() };
    assert_ne!(first.generation, second.generation);
    a.disconnect().await;
    let (mut again, _) = h.reader(group_read(3, Some("a"), false, 0)).await.unwrap();
    let mut by_generation = Vec::new();
    for _ in 0..2 {
        let ServerFrame::Assigned(x) = again.next_frame().await else { panic!() };
        by_generation.push((x.generation, x.partitions[0].partition));
    }
    by_generation.sort();
    assert_eq!(
        by_generation.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![first.generation, second.generation]
    );
    for (generation, partition) in by_generation {
        h.engine().commit("two", "g", partition, 1, generation).await.unwrap();
    }
}

#[tokio::test]
async fn closing_a_replaced_reader_should_not_remove_the_member_from_its_new_reader() {
    let h = Harness::new().await;
    two_partitions_with_records(&h).await;
    let (old, _) = h.reader(group_read(1, Some("m"), false, 0)).await.unwrap();
    let (mut new, _) = h.reader(group_read(2, Some("m"), false, 0)).await.unwrap();
    let ServerFrame::Assigned(assigned) = new.next_frame().await else { panic!() };
    old.close().await;
    assert_eq!(h.engine().describe("two").await.unwrap().groups[0].members, 1);
    h.engine()
        .commit("two", "g", assigned.partitions[0].partition, 1, assigned.generation)
        .await
        .unwrap();
}

/// Appends `n` records at once, so that the writer stores many of them in one commit.
async fn append_together(h: &Harness, stream: &str, from: u32, n: u32) -> Vec<(u64, Vec<u8>)> {
    let appends = (from..from + n).map(|i| {
        let data: Vec<u8> = (0..(i % 40)).map(|b| (b as u8).wrapping_mul(3) ^ i as u8).collect();
        let engine = h.engine().clone();
        async move {
            let a = engine.append(stream, record(data.clone()), Some(format!("k-{i}"))).await;
            (a.unwrap().offset, data)
        }
    });
    let mut out = futures_util::future::join_all(appends).await;
    out.sort_by_key(|(offset, _)| *offset);
    out
}

#[tokio::test]
async fn retention_inside_a_commits_records_should_keep_exactly_those_at_and_above_the_low_watermark()
 {
    let mut h = Harness::new().await;
    let retention = Retention { max_records: Some(150), ..Default::default() };
    h.engine().create("batched", None, Some(retention), None).await.unwrap();
    let mut written = Vec::new();
    for wave in 0..4 {
        written.extend(append_together(&h, "batched", wave * 100, 100).await);
        h.clock.advance(1_000);
    }
    assert_eq!(written.iter().map(|(o, _)| *o).collect::<Vec<_>>(), (0..400).collect::<Vec<_>>());
    h.engine().enforce_retention().await.unwrap();
    for restarted in [false, true] {
        let d = h.engine().describe("batched").await.unwrap();
        assert_eq!((d.partitions[0].low, d.partitions[0].high), (250, 400), "{restarted}");
        let kept = h.read_all("batched", 0, ReadFrom::Earliest).await.unwrap();
        let got: Vec<_> = kept.iter().map(|r| (r.offset, r.data.as_bytes().to_vec())).collect();
        assert_eq!(got, written[250..].to_vec(), "restarted: {restarted}");
        let err = h.read_all("batched", 0, ReadFrom::Offset(249)).await.unwrap_err();
        assert_eq!((code(&err), err.low_watermark), (ErrorCode::OffsetOutOfRange, Some(250)));
        let from_time = h.read_all("batched", 0, ReadFrom::Time(common::T0 + 2_000)).await;
        assert_eq!(from_time.unwrap()[0].offset, 250, "the third wave starts below the watermark");
        let from_time = h.read_all("batched", 0, ReadFrom::Time(common::T0 + 3_000)).await;
        assert_eq!(from_time.unwrap()[0].offset, 300, "the fourth wave's first record");
        h.restart().await;
    }
    // An idempotent retry of a trimmed record still answers its original position and writes
    // nothing.
    let again = h.engine().append("batched", record("x"), Some("k-10".into())).await.unwrap();
    assert_eq!(again.offset, 10);
    assert_eq!(h.engine().describe("batched").await.unwrap().partitions[0].high, 400);
}

#[tokio::test]
async fn retention_by_bytes_should_count_only_the_records_still_above_the_low_watermark() {
    let mut h = Harness::new().await;
    let retention = Retention { max_bytes: Some(3_000), ..Default::default() };
    h.engine().create("sized", None, Some(retention), None).await.unwrap();
    append_together(&h, "sized", 0, 300).await;
    h.engine().enforce_retention().await.unwrap();
    let before = h.engine().describe("sized").await.unwrap().partitions[0].clone();
    assert!(before.bytes <= 3_000 && before.low > 0, "{before:?}");
    h.restart().await;
    let after = h.engine().describe("sized").await.unwrap().partitions[0].clone();
    assert_eq!((after.low, after.high, after.bytes), (before.low, before.high, before.bytes));
    // A second pass with nothing new removes nothing more.
    h.engine().enforce_retention().await.unwrap();
    let again = h.engine().describe("sized").await.unwrap().partitions[0].clone();
    assert_eq!((again.low, again.bytes), (before.low, before.bytes));
    let kept = h.read_all("sized", 0, ReadFrom::Earliest).await.unwrap();
    assert_eq!(kept.len() as u64, before.high - before.low);
}

#[tokio::test]
async fn a_key_used_again_after_its_window_should_answer_its_later_position_after_a_restart() {
    let mut h = Harness::new().await;
    let first = h.engine().append("reused", record("a"), Some("again".into())).await.unwrap();
    h.clock.advance(h.config.dedup_window_ms + 1);
    let second = h.engine().append("reused", record("b"), Some("again".into())).await.unwrap();
    assert_eq!((first.offset, second.offset), (0, 1));
    // No retention pass ran: both stored answers are still there when the hub starts again.
    h.restart().await;
    let retry = h.engine().append("reused", record("b"), Some("again".into())).await.unwrap();
    assert_eq!(retry, second);
    h.engine().enforce_retention().await.unwrap();
    let retry = h.engine().append("reused", record("b"), Some("again".into())).await.unwrap();
    assert_eq!(retry, second, "expiring the first answer keeps the second");
    assert_eq!(h.read_all("reused", 0, ReadFrom::Earliest).await.unwrap().len(), 2);
}

#[tokio::test]
async fn appends_submitted_to_completions_should_each_get_their_own_outcome_and_ticket() {
    let h = Harness::new().await;
    let engine = h.engine().clone();
    let to = Arc::new(Completions::default());
    // Every other append carries a key, each key twice: the second answers the first's position.
    for i in 0..500u64 {
        let key = i.is_multiple_of(2).then(|| format!("k{}", i / 4));
        let ticket = Ticket { id: 1000 + i, tag: (i % 3) as u8 };
        engine.append_to("sunk", record(i.to_be_bytes().to_vec()), key, &to, ticket).unwrap();
    }
    let bad = Ticket { id: 1, tag: 0 };
    let refused = engine.append_to("bad name!", record(vec![1]), None, &to, bad).unwrap_err();
    assert_eq!(code(&refused), ErrorCode::InvalidName);

    let got = outcomes(&to, 500).await;
    assert_eq!(got.len(), 500, "one outcome per submitted append, none for the refused one");
    let mut offsets = std::collections::BTreeMap::new();
    for (ticket, outcome) in got {
        let i = ticket.id - 1000;
        assert_eq!(ticket.tag, (i % 3) as u8);
        let position = streams::appended(Ok(outcome.unwrap())).unwrap();
        assert!(offsets.insert(i, position.offset).is_none(), "append {i} answered twice");
    }
    for i in (0..500u64).step_by(4) {
        assert_eq!(
            offsets[&i],
            offsets[&(i + 2)],
            "the repeat of key k{} answers the original",
            i / 4
        );
    }
    let distinct: std::collections::BTreeSet<u64> = offsets.values().copied().collect();
    assert_eq!(distinct.len(), 375, "250 unkeyed and 125 first keyed appends were written");
    let records = h.read_all("sunk", 0, ReadFrom::Earliest).await.unwrap();
    assert_eq!(records.len(), 375);

    // Once the writer has stopped, an append submitted to it is answered `shutting_down`.
    h.stop_writer().await;
    let late = Ticket { id: 7, tag: 1 };
    engine.append_to("sunk", record(vec![2]), None, &to, late).unwrap();
    let got = outcomes(&to, 1).await;
    assert_eq!(got[0].0, late);
    let e = streams::appended(got.into_iter().next().unwrap().1).unwrap_err();
    assert_eq!(code(&e), ErrorCode::ShuttingDown);
}
