//! Model-based test of the queue engine on a manual clock: random enqueues (with priorities,
//! delays and idempotency keys), pulls, acks, nacks, extensions, releases, rejects, stale
//! settles, clock moves with lease expiry, and restarts — every answer compared with a plain
//! in-memory model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{Harness, Rng};
use switchboard_protocol::queues::QueueOptions;
use switchboard_protocol::{ErrorCode, Payload};
use switchboard_server::clock::Clock;
use switchboard_server::storage::queues::{NewTask, Settlement};

const LEASE: u64 = 5_000;
const MAX_LEASE: u64 = 20_000;
const MAX_ATTEMPTS: u32 = 3;
const BACKOFF: [u64; 2] = [1_000, 3_000];
const DEDUP_WINDOW: u64 = 120_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Scheduled(u64),
    Available,
    Leased { lease: u64, deadline: u64, since: u64 },
}

#[derive(Clone, Debug)]
struct MTask {
    data: String,
    priority: u8,
    state: State,
    attempts: u32,
    failures: u32,
}

#[derive(Default)]
struct Model {
    tasks: BTreeMap<u64, MTask>,
    /// Priority and data of dead-lettered tasks, in order of death.
    dead: Vec<(u8, String)>,
    /// Idempotency key → (task id, expires at).
    dedup: HashMap<String, (u64, u64)>,
}

impl Model {
    fn fail(&mut self, id: u64, now: u64) {
        let t = self.tasks.get_mut(&id).unwrap();
        t.failures += 1;
        if t.failures >= MAX_ATTEMPTS {
            let t = self.tasks.remove(&id).unwrap();
            self.dead.push((t.priority, t.data));
            return;
        }
        let delay = BACKOFF[(t.failures as usize - 1).min(BACKOFF.len() - 1)];
        t.state = State::Scheduled(now + delay);
    }

    fn apply_due(&mut self, now: u64) {
        loop {
            let due = self
                .tasks
                .iter()
                .filter_map(|(id, t)| match t.state {
                    State::Scheduled(at) if at <= now => Some((at, *id)),
                    State::Leased { deadline, .. } if deadline <= now => Some((deadline, *id)),
                    _ => None,
                })
                .min();
            let Some((_, id)) = due else { break };
            match self.tasks[&id].state {
                State::Scheduled(_) => self.tasks.get_mut(&id).unwrap().state = State::Available,
                _ => self.fail(id, now),
            }
        }
    }

    fn available_order(&self) -> Vec<u64> {
        let mut ids: Vec<(u8, u64)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.state == State::Available)
            .map(|(id, t)| (9 - t.priority, *id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    fn counts(&self) -> (u64, u64, u64) {
        let mut c = (0, 0, 0);
        for t in self.tasks.values() {
            match t.state {
                State::Scheduled(_) => c.0 += 1,
                State::Available => c.1 += 1,
                State::Leased { .. } => c.2 += 1,
            }
        }
        c
    }
}

async fn run(seed: u64, steps: usize) {
    let mut h = Harness::new().await;
    let options = QueueOptions {
        lease_ms: Some(LEASE),
        max_lease_ms: Some(MAX_LEASE),
        max_attempts: Some(MAX_ATTEMPTS),
        backoff_ms: Some(BACKOFF.to_vec()),
        ..Default::default()
    };
    h.queues().create("q", &options).await.unwrap();
    let mut model = Model::default();
    let mut rng = Rng(seed);
    let mut counter = 0;
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        let now = h.clock.now_ms();
        let leased: Vec<u64> = model
            .tasks
            .iter()
            .filter(|(_, t)| matches!(t.state, State::Leased { .. }))
            .map(|(id, _)| *id)
            .collect();
        match rng.below(100) {
            0..=29 => {
                counter += 1;
                let data = format!("t{counter}");
                let priority = rng.below(3) as u8;
                let delay = (rng.below(4) == 0).then(|| rng.below(6_000));
                let idem = (rng.below(4) == 0).then(|| format!("k{}", rng.below(6)));
                let task = NewTask {
                    data: Payload::from(data.as_str()),
                    priority,
                    delay_ms: delay,
                    ..NewTask::default()
                };
                let id = h.queues().enqueue("q", task, idem.clone()).await.unwrap();
                if let Some(k) = &idem
                    && let Some(&(original, expires)) = model.dedup.get(k)
                    && expires > now
                {
                    assert_eq!(id, original, "{ctx}: idempotent enqueue");
                    continue;
                }
                assert!(model.tasks.keys().all(|k| *k < id), "{ctx}: ids grow");
                let state = match delay {
                    Some(d) if d > 0 => State::Scheduled(now + d),
                    _ => State::Available,
                };
                model.tasks.insert(id, MTask { data, priority, state, attempts: 0, failures: 0 });
                if let Some(k) = idem {
                    model.dedup.insert(k, (id, now + DEDUP_WINDOW));
                }
            }
            30..=49 => {
                let max = 1 + rng.below(3) as u32;
                let got = h.queues().pull("q", max, 0).await.unwrap();
                let expected: Vec<u64> =
                    model.available_order().into_iter().take(max as usize).collect();
                assert_eq!(
                    got.iter().map(|t| t.id).collect::<Vec<_>>(),
                    expected,
                    "{ctx}: pull order"
                );
                for t in got {
                    let m = model.tasks.get_mut(&t.id).unwrap();
                    m.attempts += 1;
                    assert_eq!(t.attempt, m.attempts, "{ctx}: attempt");
                    assert_eq!(t.data.as_bytes(), m.data.as_bytes(), "{ctx}: data");
                    assert_eq!(t.deadline, now + LEASE, "{ctx}: deadline");
                    m.state = State::Leased { lease: t.lease, deadline: t.deadline, since: now };
                }
            }
            50..=79 if !leased.is_empty() => {
                let id = leased[rng.below(leased.len() as u64) as usize];
                let State::Leased { lease, deadline, since } = model.tasks[&id].state else {
                    unreachable!()
                };
                let stale = rng.below(6) == 0;
                let quoted = if stale { lease + 1_000_003 } else { lease };
                let (how, kind) = match rng.below(5) {
                    0 => (Settlement::Ack, 0),
                    1 => (
                        Settlement::Nack {
                            delay_ms: (rng.below(2) == 0).then(|| rng.below(4_000)),
                            reason: None,
                        },
                        1,
                    ),
                    2 => (Settlement::Extend { ms: rng.below(30_000) + 1 }, 2),
                    3 => (Settlement::Release, 3),
                    _ => (Settlement::Reject { reason: "no".into() }, 4),
                };
                let nack_delay = match &how {
                    Settlement::Nack { delay_ms, .. } => *delay_ms,
                    _ => None,
                };
                let extend_ms = match &how {
                    Settlement::Extend { ms } => *ms,
                    _ => 0,
                };
                let result = h.queues().settle("q", id, quoted, how).await;
                if stale || deadline <= now {
                    let err = result.expect_err(&ctx);
                    assert_eq!(err.error_code(), Some(ErrorCode::LeaseExpired), "{ctx}");
                    continue;
                }
                let got = result.unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                match kind {
                    0 => {
                        model.tasks.remove(&id);
                    }
                    1 => match nack_delay {
                        Some(d) => {
                            let t = model.tasks.get_mut(&id).unwrap();
                            t.failures += 1;
                            if t.failures >= MAX_ATTEMPTS {
                                let t = model.tasks.remove(&id).unwrap();
                                model.dead.push((t.priority, t.data));
                            } else {
                                t.state = if d == 0 {
                                    State::Available
                                } else {
                                    State::Scheduled(now + d)
                                };
                            }
                        }
                        None => model.fail(id, now),
                    },
                    2 => {
                        let new = (now + extend_ms).min(since + MAX_LEASE).max(deadline);
                        assert_eq!(got, Some(new), "{ctx}: extended deadline");
                        model.tasks.get_mut(&id).unwrap().state =
                            State::Leased { lease, deadline: new, since };
                    }
                    3 => model.tasks.get_mut(&id).unwrap().state = State::Available,
                    _ => {
                        let t = model.tasks.remove(&id).unwrap();
                        model.dead.push((t.priority, t.data));
                    }
                }
            }
            50..=89 => {
                let ms = rng.below(8_000);
                h.clock.advance(ms);
                h.queues().tick().await.unwrap();
                model.apply_due(h.clock.now_ms());
            }
            _ => {
                h.restart().await;
            }
        }
        let stats = h.queues().stats("q").await.unwrap();
        assert_eq!(
            (stats.scheduled, stats.available, stats.leased),
            model.counts(),
            "{ctx}: counts"
        );
        assert_eq!(stats.dead, model.dead.len() as u64, "{ctx}: dead count");
    }
    // The dead-letter queue holds exactly the dead tasks, by priority, then in order of death.
    let mut dead = Vec::new();
    loop {
        let got = h.queues().pull("q.dlq", 100, 0).await.unwrap();
        if got.is_empty() {
            break;
        }
        dead.extend(
            got.into_iter().map(|t| String::from_utf8(t.data.as_bytes().to_vec()).unwrap()),
        );
    }
    let mut expected: Vec<(u8, usize, String)> =
        model.dead.into_iter().enumerate().map(|(i, (p, d))| (9 - p, i, d)).collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, _, d)| d).collect();
    assert_eq!(dead, expected, "seed {seed}: dead-letter queue");
}

#[tokio::test]
async fn the_queue_engine_should_agree_with_the_model_across_random_histories() {
    for seed in [1, 0x5eed, 0xfeed_beef, 99_991, 0x1234_5678_9abc] {
        run(seed, 400).await;
    }
}
