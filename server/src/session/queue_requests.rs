//! Handling of queue frames: enqueue, pull, consume, settles, redrive and administration.

use switchboard_protocol::codec::Format;
use switchboard_protocol::{ClientFrame, ErrorCode, Reply, ReplyBody};

use super::Session;
use super::requests::{Completed, Failure, Handled, done, ok};
use crate::storage::queues::{NewTask, Settlement};

impl Session {
    /// Handles a queue frame. Everything that touches the disk is answered after its commit:
    /// an enqueue from the session's completions, the rest from the in-flight set; `consume`
    /// starts its consumer after the reply is queued.
    pub(super) async fn queue_request(&mut self, frame: ClientFrame, format: Format) -> Handled {
        let queues = self.hub.queues.clone();
        let later =
            |id: u64, f: futures_util::future::BoxFuture<'static, Result<Reply, Failure>>| {
                Handled::Later(id, f)
            };
        match frame {
            ClientFrame::CreateQueue(c) => later(
                c.id,
                Box::pin(async move {
                    match queues.create(&c.queue, &c.options).await {
                        Ok(info) => ok(c.id, ReplyBody::Queue(info)),
                        Err(e) => Err(Failure::stream(c.id, e)),
                    }
                }),
            ),
            ClientFrame::Enqueue(e) => {
                let task = NewTask {
                    data: e.data,
                    headers: e.headers,
                    key: e.key,
                    priority: e.priority.unwrap_or(0),
                    not_before: e.not_before,
                    delay_ms: e.delay_ms,
                };
                self.submit(e.id, Completed::Enqueue, format, |to, ticket| {
                    queues.enqueue_to(&e.queue, task, e.idempotency_key, to, ticket)
                })
            }
            ClientFrame::Pull(p) => later(
                p.id,
                Box::pin(async move {
                    match queues.pull(&p.queue, p.max.unwrap_or(1), p.wait_ms.unwrap_or(0)).await {
                        Ok(tasks) => ok(p.id, ReplyBody::Tasks { tasks }),
                        Err(e) => Err(Failure::stream(p.id, e)),
                    }
                }),
            ),
            ClientFrame::Consume(c) => match queues.new_consumer(&c.queue, c.prefetch) {
                Ok(consumer) => Handled::Consumer(
                    Reply { id: c.id, result: Some(ReplyBody::Consuming { consumer }) },
                    c.queue,
                    consumer,
                    c.prefetch,
                ),
                Err(e) => Handled::Now(Err(Failure::stream(c.id, e))),
            },
            ClientFrame::StopConsume(s) => match self.consumers.remove(&s.consumer) {
                Some(queue) => {
                    queues.stop_consume(&queue, s.consumer).await;
                    Handled::Now(done(s.id))
                }
                None => Handled::Now(Err(Failure::bad(
                    Some(s.id),
                    ErrorCode::NotFound,
                    format!("no consumer {} on this session", s.consumer),
                ))),
            },
            ClientFrame::Ack(s) => settle(queues, s.id, s.queue, s.task, s.lease, Settlement::Ack),
            ClientFrame::Release(s) => {
                settle(queues, s.id, s.queue, s.task, s.lease, Settlement::Release)
            }
            ClientFrame::Nack(n) => {
                let how = Settlement::Nack { delay_ms: n.delay_ms, reason: n.reason };
                settle(queues, n.id, n.queue, n.task, n.lease, how)
            }
            ClientFrame::Extend(x) => {
                settle(queues, x.id, x.queue, x.task, x.lease, Settlement::Extend { ms: x.ms })
            }
            ClientFrame::Reject(r) => settle(
                queues,
                r.id,
                r.queue,
                r.task,
                r.lease,
                Settlement::Reject { reason: r.reason },
            ),
            ClientFrame::AckMany(a) => later(
                a.id,
                Box::pin(async move {
                    match queues.ack_many(&a.queue, &a.tasks).await {
                        Ok(failed) => ok(a.id, ReplyBody::AckedMany { failed }),
                        Err(e) => Err(Failure::stream(a.id, e)),
                    }
                }),
            ),
            ClientFrame::Redrive(r) => later(
                r.id,
                Box::pin(async move {
                    match queues.redrive(&r.queue, r.ids, r.all).await {
                        Ok(count) => ok(r.id, ReplyBody::Redriven { count }),
                        Err(e) => Err(Failure::stream(r.id, e)),
                    }
                }),
            ),
            ClientFrame::QueueStats(q) => later(
                q.id,
                Box::pin(async move {
                    match queues.stats(&q.queue).await {
                        Ok(stats) => ok(q.id, ReplyBody::QueueStats(stats)),
                        Err(e) => Err(Failure::stream(q.id, e)),
                    }
                }),
            ),
            ClientFrame::ListQueues(l) => later(
                l.id,
                Box::pin(async move {
                    match queues.list().await {
                        Ok(queues) => ok(l.id, ReplyBody::Queues { queues }),
                        Err(e) => Err(Failure::stream(l.id, e)),
                    }
                }),
            ),
            ClientFrame::DeleteQueue(d) => later(
                d.id,
                Box::pin(async move {
                    match queues.delete(&d.queue).await {
                        Ok(()) => done(d.id),
                        Err(e) => Err(Failure::stream(d.id, e)),
                    }
                }),
            ),
            other => Handled::Now(Err(Failure::bad(
                other.request_id(),
                ErrorCode::UnknownOp,
                format!("{} is not a queue operation", other.op()),
            ))),
        }
    }
}

fn settle(
    queues: crate::queues::Queues,
    id: u64,
    queue: String,
    task: u64,
    lease: u64,
    how: Settlement,
) -> Handled {
    let extend = matches!(how, Settlement::Extend { .. });
    Handled::Later(
        id,
        Box::pin(async move {
            match queues.settle(&queue, task, lease, how).await {
                Ok(Some(deadline)) if extend => ok(id, ReplyBody::Extended { deadline }),
                Ok(_) => done(id),
                Err(e) => Err(Failure::stream(id, e)),
            }
        }),
    )
}
