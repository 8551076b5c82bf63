//! Model-based test of the stream engine: random sequences of appends (keyed, unkeyed,
//! idempotent), reads from every kind of position, clock moves, retention passes and restarts,
//! each answer compared with a plain in-memory model of the log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{Harness, Rng};
use switchboard_protocol::streams::{ReadFrom, Retention, partition_for_key};
use switchboard_protocol::{ErrorCode, Headers, Payload};
use switchboard_server::clock::Clock;
use switchboard_server::storage::streams::NewRecord;

#[derive(Clone, Debug, PartialEq)]
struct Rec {
    offset: u64,
    timestamp: u64,
    key: Option<String>,
    data: Vec<u8>,
}

struct ModelStream {
    partitions: Vec<Vec<Rec>>,
    low: Vec<u64>,
    retention: Retention,
}

impl ModelStream {
    fn new(partitions: u32, retention: Retention) -> Self {
        ModelStream {
            partitions: vec![Vec::new(); partitions as usize],
            low: vec![0; partitions as usize],
            retention,
        }
    }
    fn high(&self, p: usize) -> u64 {
        self.partitions[p].last().map_or(self.low[p], |r| r.offset + 1)
    }
    fn stored(&self, p: usize) -> Vec<Rec> {
        self.partitions[p].iter().filter(|r| r.offset >= self.low[p]).cloned().collect()
    }
}

struct Model {
    streams: HashMap<String, ModelStream>,
    /// (stream, idempotency key) → (partition, offset, timestamp, expires).
    dedup: HashMap<(String, String), (u32, u64, u64, u64)>,
}

const WINDOW: u64 = 120_000;

async fn run(seed: u64, steps: usize) {
    let mut h = Harness::new().await;
    let mut rng = Rng(seed);
    let mut model = Model { streams: HashMap::new(), dedup: HashMap::new() };
    let setups = [
        ("plain", 3, Retention::default()),
        ("capped", 1, Retention { max_records: Some(20), ..Retention::default() }),
        ("aging", 2, Retention { max_age_ms: Some(100_000), ..Retention::default() }),
    ];
    for (name, partitions, retention) in setups {
        h.engine().create(name, Some(partitions), Some(retention), None).await.unwrap();
        model.streams.insert(name.into(), ModelStream::new(partitions, retention));
    }
    let names = ["plain", "capped", "aging"];
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.below(100) {
            0..=54 => {
                let name = names[rng.below(3) as usize];
                let key = (rng.below(2) == 0).then(|| format!("k{}", rng.below(5)));
                let idem = (rng.below(3) == 0).then(|| format!("i{}", rng.below(10)));
                let data: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
                let record = NewRecord {
                    key: key.clone(),
                    headers: Headers::new(),
                    data: Payload::from(data.clone()),
                };
                let got = h.engine().append(name, record, idem.clone()).await.unwrap();
                let now = h.clock.now_ms();
                let m = model.streams.get_mut(name).unwrap();
                if let Some(k) = &idem
                    && let Some(&(p, o, t, expires)) =
                        model.dedup.get(&(name.to_string(), k.clone()))
                    && expires > now
                {
                    assert_eq!(
                        (got.partition, got.offset, got.timestamp),
                        (p, o, t),
                        "{ctx}: idempotent repeat"
                    );
                    continue;
                }
                let p = match &key {
                    Some(k) => partition_for_key(k, m.partitions.len() as u32),
                    None => got.partition,
                };
                assert_eq!(got.partition, p, "{ctx}: keyed partition");
                assert!((p as usize) < m.partitions.len());
                let expected_offset = m.high(p as usize);
                let last_ts = m.partitions[p as usize].last().map_or(0, |r| r.timestamp);
                assert_eq!(got.offset, expected_offset, "{ctx}: dense offsets");
                assert_eq!(got.timestamp, now.max(last_ts), "{ctx}: timestamp");
                m.partitions[p as usize].push(Rec {
                    offset: got.offset,
                    timestamp: got.timestamp,
                    key,
                    data,
                });
                if let Some(k) = idem {
                    model.dedup.insert(
                        (name.to_string(), k),
                        (p, got.offset, got.timestamp, now + WINDOW),
                    );
                }
            }
            55..=74 => {
                let name = names[rng.below(3) as usize];
                let m = &model.streams[name];
                let p = rng.below(m.partitions.len() as u64) as usize;
                let (low, high) = (m.low[p], m.high(p));
                let from = match rng.below(4) {
                    0 => ReadFrom::Earliest,
                    1 => ReadFrom::Latest,
                    2 => ReadFrom::Offset((low + rng.below(high - low + 3)).saturating_sub(1)),
                    _ => {
                        let stored = m.stored(p);
                        if !stored.is_empty() && rng.below(2) == 0 {
                            // Exactly a record's timestamp: the boundary must be inclusive.
                            ReadFrom::Time(
                                stored[rng.below(stored.len() as u64) as usize].timestamp,
                            )
                        } else {
                            ReadFrom::Time(
                                common::T0 + rng.below(h.clock.now_ms() - common::T0 + 1000),
                            )
                        }
                    }
                };
                let result = h.read_all(name, p as u32, from).await;
                let stored = m.stored(p);
                let expected: Result<Vec<Rec>, ()> = match from {
                    ReadFrom::Earliest => Ok(stored),
                    ReadFrom::Latest => Ok(Vec::new()),
                    ReadFrom::Offset(o) if o < low || o > high => Err(()),
                    ReadFrom::Offset(o) => {
                        Ok(stored.into_iter().filter(|r| r.offset >= o).collect())
                    }
                    ReadFrom::Time(t) => {
                        Ok(stored.into_iter().skip_while(|r| r.timestamp < t).collect())
                    }
                };
                match (result, expected) {
                    (Ok(records), Ok(expected)) => {
                        let got: Vec<Rec> = records
                            .into_iter()
                            .map(|r| Rec {
                                offset: r.offset,
                                timestamp: r.timestamp,
                                key: r.key,
                                data: r.data.as_bytes().to_vec(),
                            })
                            .collect();
                        assert_eq!(got, expected, "{ctx}: read {name}/{p} from {from:?}");
                    }
                    (Err(e), Err(())) => {
                        assert_eq!(e.error_code(), Some(ErrorCode::OffsetOutOfRange), "{ctx}");
                        assert_eq!(e.low_watermark, Some(low), "{ctx}");
                    }
                    (got, expected) => panic!(
                        "{ctx}: read {name}/{p} from {from:?}: got {got:?}, expected {expected:?}"
                    ),
                }
            }
            75..=84 => h.clock.advance(rng.below(60_000)),
            85..=92 => {
                h.engine().enforce_retention().await.unwrap();
                let now = h.clock.now_ms();
                for m in model.streams.values_mut() {
                    for p in 0..m.partitions.len() {
                        let high = m.high(p);
                        let mut low = m.low[p];
                        if let Some(max) = m.retention.max_records {
                            low = low.max(high.saturating_sub(max));
                        }
                        if let Some(age) = m.retention.max_age_ms {
                            let cutoff = now.saturating_sub(age);
                            let first_young = m
                                .stored(p)
                                .iter()
                                .find(|r| r.timestamp >= cutoff)
                                .map_or(high, |r| r.offset);
                            low = low.max(first_young);
                        }
                        m.low[p] = low;
                    }
                }
                for name in names {
                    let d = h.engine().describe(name).await.unwrap();
                    let m = &model.streams[name];
                    for part in d.partitions {
                        let p = part.partition as usize;
                        assert_eq!(
                            (part.low, part.high),
                            (m.low[p], m.high(p)),
                            "{ctx}: watermarks of {name}/{p}"
                        );
                        assert_eq!(part.records, part.high - part.low);
                    }
                }
            }
            _ => h.restart().await,
        }
    }
}

#[tokio::test]
async fn the_engine_should_agree_with_the_model_across_random_histories() {
    for seed in [0x9e37_79b9_7f4a_7c15, 42, 7_777_777, 0xdead_beef, 123_456_789] {
        run(seed, 250).await;
    }
}
