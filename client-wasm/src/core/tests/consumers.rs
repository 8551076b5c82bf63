//! Push consumers: tasks routed by the hub's consumer id, re-issued after a reconnect with the
//! prefetch the held tasks leave free, topped up later, and the ways a consumer ends.

use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::{ClientFrame, Consume, ConsumerClosed, TaskDelivery};
use switchboard_protocol::streams::ReadFrom;

use super::queues::{connected, requests, task};
use super::*;
use crate::core::{ConsumerEvent, ConsumerId};

fn consumes(out: &[Output]) -> Vec<Consume> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Consume(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn stops(out: &[Output]) -> Vec<u64> {
    sent(out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::StopConsume(s) => Some(s.consumer),
            _ => None,
        })
        .collect()
}

/// The ids of the tasks delivered to `consumer` among `out`.
fn tasks_of(out: &[Output], consumer: ConsumerId) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Consumer { consumer: c, event: ConsumerEvent::Task(t) } if *c == consumer => {
                Some(t.id)
            }
            _ => None,
        })
        .collect()
}

/// The error `consumer` ended with among `out`; panics unless it ended exactly once.
fn consumer_ended(out: &[Output], consumer: ConsumerId) -> Option<ClientError> {
    let ends: Vec<Option<ClientError>> = out
        .iter()
        .filter_map(|o| match o {
            Output::Consumer { consumer: c, event: ConsumerEvent::Ended { error } }
                if *c == consumer =>
            {
                Some(error.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 1, "consumer {consumer} should end once in {out:?}");
    ends[0].clone()
}

impl Harness {
    /// Starts a consumer on `queue`, answered as hub consumer `hub`; outputs are consumed.
    fn consumer(&mut self, queue: &str, prefetch: u32, hub: u64) -> ConsumerId {
        let consumer = self.core.consume(self.now, queue, prefetch);
        let sent = consumes(&self.take());
        assert_eq!((sent[0].queue.as_str(), sent[0].prefetch), (queue, prefetch));
        self.consuming(sent[0].id, hub);
        let out = self.take();
        assert_eq!(result_of(&out, consumer), Ok(Some(ReplyBody::Consuming { consumer: hub })));
        consumer
    }

    fn consuming(&mut self, id: u64, hub: u64) {
        self.reply(id, ReplyBody::Consuming { consumer: hub });
    }

    /// The hub pushes task `id` (lease `id * 10`, ending at `deadline`) to hub consumer `hub`.
    fn push(&mut self, hub: u64, queue: &str, id: u64, deadline: u64) {
        let task = task(queue, id, id * 10, deadline);
        self.hub(ServerFrame::Task(TaskDelivery { consumer: hub, task }));
    }

    /// Reconnects and returns the `consume` requests of the new session.
    fn reconnect_consumers(&mut self) -> Vec<Consume> {
        self.reconnect(None, limits());
        consumes(&self.take())
    }
}

#[test]
fn tasks_should_reach_the_consumer_with_the_whole_task() {
    let mut h = connected();
    let consumer = h.consumer("q", 4, 50);
    h.push(50, "q", 1, h.now + 30_000);
    let out = h.take();
    let delivered: Vec<&Output> =
        out.iter().filter(|o| matches!(o, Output::Consumer { .. })).collect();
    assert_eq!(
        delivered,
        vec![&Output::Consumer {
            consumer,
            event: ConsumerEvent::Task(task("q", 1, 10, h.now + 30_000))
        }]
    );
    assert_eq!(h.core.consumer_held(consumer), Some(1));
}

#[test]
fn consumers_should_be_reissued_after_subscriptions_and_readers_and_before_queued_requests() {
    let mut h = connected();
    h.core.subscribe(h.now, "a.b");
    let id = sent_ids(&h.take())[0];
    h.ok(id);
    let options = ReadOptions { from: ReadFrom::Earliest, ..ReadOptions::default() };
    h.reader("s", options, 40, &[(0, 0)]);
    h.consumer("q", 4, 50);
    h.take();

    h.drop_socket(None);
    h.publish("x.y");
    h.tick_until_open();
    h.open_and_welcome(limits());
    let order: Vec<&'static str> = requests(&h.take()).iter().map(ClientFrame::op).collect();
    assert_eq!(order, vec!["subscribe", "read", "consume", "publish"]);
}

#[test]
fn tasks_should_route_to_the_right_consumer_also_after_the_hub_ids_change() {
    let mut h = connected();
    let a = h.consumer("q1", 4, 50);
    let b = h.consumer("q2", 4, 51);
    h.push(50, "q1", 1, h.now + 30_000);
    h.push(51, "q2", 2, h.now + 30_000);
    let out = h.take();
    assert_eq!((tasks_of(&out, a), tasks_of(&out, b)), (vec![1], vec![2]));

    let restores = h.reconnect_consumers();
    assert_eq!(restores.len(), 2);
    assert_eq!((restores[0].queue.as_str(), restores[1].queue.as_str()), ("q1", "q2"));
    // The new session hands out the ids the other way round.
    h.consuming(restores[0].id, 51);
    h.consuming(restores[1].id, 50);
    let out = h.take();
    assert!(completions(&out).is_empty(), "a restore completes nothing");
    h.push(51, "q1", 3, h.now + 30_000);
    h.push(50, "q2", 4, h.now + 30_000);
    let out = h.take();
    assert_eq!((tasks_of(&out, a), tasks_of(&out, b)), (vec![3], vec![4]));
}

#[test]
fn a_restored_consumer_should_ask_for_its_prefetch_minus_the_tasks_it_holds_then_top_up() {
    let mut h = connected();
    let consumer = h.consumer("q", 4, 50);
    for id in 1..=3 {
        h.push(50, "q", id, h.now + 30_000);
    }
    h.take();

    let restores = h.reconnect_consumers();
    assert_eq!(restores.len(), 1);
    assert_eq!(restores[0].prefetch, 1, "three of four are still held");
    h.consuming(restores[0].id, 60);
    h.push(60, "q", 4, h.now + 30_000);
    assert_eq!(tasks_of(&h.take(), consumer), vec![4]);

    // Settling the old tasks on the new session frees their share.
    for id in 1..=2 {
        h.core.ack(h.now, "q", id, id * 10);
        let sent = sent_ids(&h.take());
        h.ok(sent[0]);
        assert!(consumes(&h.take()).is_empty(), "no top-up while old tasks are held");
    }
    h.core.ack(h.now, "q", 3, 30);
    let sent = sent_ids(&h.take());
    h.ok(sent[0]);
    let top_up = consumes(&h.take());
    assert_eq!(top_up.len(), 1);
    assert_eq!(top_up[0].prefetch, 3);
    h.consuming(top_up[0].id, 61);
    h.push(61, "q", 5, h.now + 30_000);
    assert_eq!(tasks_of(&h.take(), consumer), vec![5]);
}

#[test]
fn a_consumer_holding_its_whole_prefetch_should_be_restored_once_a_lease_runs_out() {
    let mut h = connected();
    let consumer = h.consumer("q", 2, 50);
    h.push(50, "q", 1, h.now + 3_000);
    h.push(50, "q", 2, h.now + 8_000);
    h.take();
    assert!(h.reconnect_consumers().is_empty(), "nothing free to ask for");

    let expires = 3_000 - (h.now - 1_000);
    h.run_for(expires);
    let restore = consumes(&h.take());
    assert_eq!(restore.len(), 1);
    assert_eq!(restore[0].prefetch, 1);
    assert_eq!(h.core.consumer_held(consumer), Some(1));
    h.consuming(restore[0].id, 60);
    h.take();

    h.run_for(5_000);
    let top_up = consumes(&h.take());
    assert_eq!(top_up.len(), 1);
    assert_eq!(top_up[0].prefetch, 1, "back to the full prefetch of two");
}

#[test]
fn consumer_closed_should_end_the_consumer_with_the_hubs_error() {
    let mut h = connected();
    let consumer = h.consumer("q", 4, 50);
    h.hub(ServerFrame::ConsumerClosed(ConsumerClosed {
        consumer: 50,
        error: ErrorFrame::new(None, ErrorCode::NotFound, "queue q was deleted"),
    }));
    let out = h.take();
    let error = consumer_ended(&out, consumer).expect("an error");
    assert_eq!(error.error_code(), Some(ErrorCode::NotFound));
    assert_eq!(error_notices(&out), vec![error]);
    assert!(stops(&out).is_empty(), "the hub already stopped it");

    assert!(h.reconnect_consumers().is_empty(), "an ended consumer is not restored");
}

#[test]
fn stopping_a_consumer_should_end_it_and_send_stop_consume() {
    let mut h = connected();
    let consumer = h.consumer("q", 4, 50);
    let op = h.core.stop_consumer(h.now, consumer);
    let out = h.take();
    assert_eq!(consumer_ended(&out, consumer), None);
    assert_eq!(stops(&out), vec![50]);
    h.ok(sent_ids(&out)[0]);
    assert_eq!(result_of(&h.take(), op), Ok(None));
}

#[test]
fn tasks_for_a_consumer_the_client_does_not_know_should_be_released_at_once() {
    let mut h = connected();
    let consumer = h.consumer("q", 4, 50);
    h.core.stop_consumer(h.now, consumer);
    h.take();
    // Already on its way when the stop went out.
    h.push(50, "q", 7, h.now + 30_000);
    let out = h.take();
    assert!(tasks_of(&out, consumer).is_empty());
    let released: Vec<(String, u64, u64)> = sent(&out)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Release(s) => Some((s.queue, s.task, s.lease)),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![("q".to_owned(), 7, 70)]);
}

#[test]
fn a_consume_answered_after_its_timeout_should_be_stopped() {
    let mut h = connected();
    let consumer = h.core.consume(h.now, "q", 4);
    let id = consumes(&h.take())[0].id;
    h.advance(1_000);
    assert_eq!(error_of(&h.take(), consumer), ErrorCode::Timeout);
    h.consuming(id, 77);
    assert_eq!(stops(&h.take()), vec![77]);
}

#[test]
fn a_restore_refused_for_a_passing_reason_should_be_retried_and_for_good_end_the_consumer() {
    let mut h = connected();
    let consumer = h.consumer("q", 4, 50);
    let restores = h.reconnect_consumers();
    h.error(Some(restores[0].id), ErrorCode::TooManyInFlight);
    assert!(h.take().iter().all(|o| !matches!(o, Output::Consumer { .. })));
    h.run_for(100);
    let retry = consumes(&h.take());
    assert_eq!(retry.len(), 1);
    h.error(Some(retry[0].id), ErrorCode::InvalidArgument);
    let error = consumer_ended(&h.take(), consumer).expect("an error");
    assert_eq!(error.error_code(), Some(ErrorCode::InvalidArgument));
}

#[test]
fn consume_while_disconnected_should_be_sent_after_welcome() {
    let mut h = connected();
    h.drop_socket(None);
    h.take();
    let consumer = h.core.consume(h.now, "q", 2);
    assert!(consumes(&h.take()).is_empty());
    h.tick_until_open();
    h.open_and_welcome(limits());
    let sent = consumes(&h.take());
    assert_eq!(sent.len(), 1);
    h.consuming(sent[0].id, 50);
    assert!(result_of(&h.take(), consumer).is_ok());
}

#[test]
fn close_should_end_consumers_without_an_error_and_fail_waiting_ones() {
    let mut h = connected();
    let started = h.consumer("q", 4, 50);
    let waiting = h.core.consume(h.now, "q", 4);
    h.core.close(h.now);
    let out = h.take();
    assert_eq!(consumer_ended(&out, started), None);
    assert_eq!(error_of(&out, waiting), ErrorCode::Closed);
}
