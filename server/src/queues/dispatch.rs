//! One queue's dispatcher: serves waiting pulls and push consumers, in turn, from the tasks
//! the writer reports as available.
//!
//! Waiters stand in one line. While the writer reports dispatchable tasks, the dispatcher takes
//! the waiter at the front, asks the writer to lease what it wants (a lease is committed before
//! the task is handed out), and sends the waiter to the back if it wants more: round-robin, and
//! each task goes to exactly one waiter because only the writer hands tasks out. A push consumer
//! wants `prefetch` minus the leases it holds; it wants again when one of its leases ends.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use switchboard_protocol::queues::{QueueInfo, Task};
use switchboard_protocol::{ConsumerClosed, ErrorCode, ErrorFrame, ServerFrame, TaskDelivery};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::QueueError;
use crate::session::outbox::{Outbox, encode_message};
use crate::storage::OpError;
use crate::storage::writer::{WriteOp, WriteResult, Writer};

/// Most leases one dispatcher has waiting for the writer at once.
const MAX_LEASING: usize = 16;

/// A request to a dispatcher.
pub enum Cmd {
    Pull { max: u32, deadline: Instant, reply: oneshot::Sender<Result<Vec<Task>, QueueError>> },
    Consume { consumer: u64, prefetch: u32, outbox: Arc<Outbox> },
    Stop { consumer: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Pull(u64),
    Consumer(u64),
}

struct PullWaiter {
    max: u32,
    deadline: Instant,
    reply: oneshot::Sender<Result<Vec<Task>, QueueError>>,
    leasing: bool,
}

struct Consumer {
    prefetch: u32,
    outstanding: u32,
    outbox: Arc<Outbox>,
    in_line: bool,
    leasing: bool,
}

type Leasing = FuturesUnordered<BoxFuture<'static, (Who, u32, Result<WriteResult, OpError>)>>;

/// The dispatcher of one queue.
pub struct Dispatcher {
    queue: String,
    create: QueueInfo,
    writer: Writer,
    rx: mpsc::Receiver<Cmd>,
    available: watch::Receiver<u64>,
    ended: mpsc::UnboundedReceiver<u64>,
    active: Arc<AtomicU64>,
    estimate: u64,
    line: VecDeque<Who>,
    pulls: HashMap<u64, PullWaiter>,
    consumers: HashMap<u64, Consumer>,
    leasing: Leasing,
    next_pull: u64,
}

impl Dispatcher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        queue: String,
        create: QueueInfo,
        writer: Writer,
        rx: mpsc::Receiver<Cmd>,
        available: watch::Receiver<u64>,
        ended: mpsc::UnboundedReceiver<u64>,
        active: Arc<AtomicU64>,
    ) -> Dispatcher {
        Dispatcher {
            queue,
            create,
            writer,
            rx,
            available,
            ended,
            active,
            // Unknown until the first lease: try.
            estimate: u64::MAX,
            line: VecDeque::new(),
            pulls: HashMap::new(),
            consumers: HashMap::new(),
            leasing: FuturesUnordered::new(),
            next_pull: 1,
        }
    }

    /// Runs until the queue is deleted or the engine is gone.
    pub async fn run(mut self) {
        loop {
            self.dispatch();
            self.active.store((self.pulls.len() + self.consumers.len()) as u64, Ordering::Relaxed);
            let next_deadline =
                self.pulls.values().filter(|p| !p.leasing).map(|p| p.deadline).min();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                changed = self.available.changed() => match changed {
                    Ok(()) => self.estimate = *self.available.borrow_and_update(),
                    Err(_) => {
                        self.queue_deleted();
                        break;
                    }
                },
                Some(consumer) = self.ended.recv() => {
                    if let Some(c) = self.consumers.get_mut(&consumer) {
                        c.outstanding = c.outstanding.saturating_sub(1);
                        if !c.in_line && !c.leasing {
                            c.in_line = true;
                            self.line.push_back(Who::Consumer(consumer));
                        }
                    }
                }
                Some((who, asked, result)) = self.leasing.next(), if !self.leasing.is_empty() => {
                    self.leased(who, asked, result);
                }
                () = sleep_until(next_deadline), if next_deadline.is_some() => self.expire_pulls(),
            }
        }
        self.active.store(0, Ordering::Relaxed);
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Pull { max, deadline, reply } => {
                let id = self.next_pull;
                self.next_pull += 1;
                self.pulls.insert(id, PullWaiter { max, deadline, reply, leasing: false });
                self.line.push_back(Who::Pull(id));
            }
            Cmd::Consume { consumer, prefetch, outbox } => {
                self.consumers.insert(
                    consumer,
                    Consumer { prefetch, outstanding: 0, outbox, in_line: true, leasing: false },
                );
                self.line.push_back(Who::Consumer(consumer));
            }
            Cmd::Stop { consumer } => {
                self.consumers.remove(&consumer);
                self.line.retain(|w| *w != Who::Consumer(consumer));
            }
        }
    }

    /// Hands leases out while the writer reports dispatchable tasks.
    fn dispatch(&mut self) {
        while self.estimate > 0 && self.leasing.len() < MAX_LEASING {
            let Some(who) = self.line.pop_front() else { break };
            let want = match who {
                Who::Pull(id) => match self.pulls.get_mut(&id) {
                    // The puller is gone (its session ended): lease nothing for it.
                    Some(p) if p.reply.is_closed() => {
                        self.pulls.remove(&id);
                        continue;
                    }
                    Some(p) => {
                        p.leasing = true;
                        p.max
                    }
                    None => continue,
                },
                Who::Consumer(id) => match self.consumers.get_mut(&id) {
                    Some(c) if c.outbox.is_closed() => {
                        self.consumers.remove(&id);
                        continue;
                    }
                    Some(c) => {
                        c.in_line = false;
                        let want = c.prefetch.saturating_sub(c.outstanding);
                        if want == 0 {
                            continue;
                        }
                        c.leasing = true;
                        want
                    }
                    None => continue,
                },
            };
            let asked = want.min(u32::try_from(self.estimate).unwrap_or(u32::MAX));
            self.estimate = self.estimate.saturating_sub(u64::from(asked));
            let consumer = match who {
                Who::Consumer(id) => id,
                Who::Pull(_) => 0,
            };
            let op = WriteOp::Lease {
                queue: self.queue.clone(),
                max: asked,
                consumer,
                create: self.create.clone(),
            };
            let writer = self.writer.clone();
            self.leasing.push(Box::pin(async move { (who, asked, writer.submit(op).await) }));
        }
    }

    fn leased(&mut self, who: Who, asked: u32, result: Result<WriteResult, OpError>) {
        let tasks = match result {
            Ok(WriteResult::Tasks(tasks)) => Ok(tasks),
            Ok(other) => {
                Err(ErrorFrame::new(None, ErrorCode::Internal, format!("unexpected {other:?}")))
            }
            Err(e) => Err(ErrorFrame::from(e)),
        };
        if tasks.as_ref().is_ok_and(|t| (t.len() as u32) < asked) || tasks.is_err() {
            // The writer's latest count is fresher than ours: it is updated before any lease
            // of the same commit is answered.
            self.estimate = *self.available.borrow();
        }
        match who {
            Who::Pull(id) => {
                let Some(mut pull) = self.pulls.remove(&id) else { return };
                pull.leasing = false;
                match tasks {
                    Ok(tasks) if tasks.is_empty() && pull.deadline > Instant::now() => {
                        // Nothing after all: keep its place at the front of the line.
                        self.pulls.insert(id, pull);
                        self.line.push_front(Who::Pull(id));
                    }
                    outcome => {
                        if let Err(Ok(tasks)) = pull.reply.send(outcome) {
                            // The puller went away while its lease was committed.
                            self.release(tasks);
                        }
                    }
                }
            }
            Who::Consumer(id) => {
                let Some(c) = self.consumers.get_mut(&id) else {
                    // The consumer stopped while its lease was committed.
                    if let Ok(tasks) = tasks {
                        self.release(tasks);
                    }
                    return;
                };
                c.leasing = false;
                let Ok(tasks) = tasks else {
                    tracing::warn!(queue = %self.queue, consumer = id, "lease for a consumer failed");
                    if !c.in_line {
                        c.in_line = true;
                        self.line.push_back(Who::Consumer(id));
                    }
                    return;
                };
                c.outstanding += tasks.len() as u32;
                let format = c.outbox.format();
                for task in tasks {
                    let frame = ServerFrame::Task(TaskDelivery { consumer: id, task });
                    if let Some(message) = encode_message(&frame, format) {
                        c.outbox.stream(message);
                    }
                }
                if c.prefetch > c.outstanding && !c.in_line {
                    c.in_line = true;
                    self.line.push_back(Who::Consumer(id));
                }
            }
        }
    }

    /// Hands back tasks leased for a waiter that is gone, without counting a failure.
    fn release(&mut self, tasks: Vec<Task>) {
        for task in tasks {
            let op = WriteOp::Settle {
                queue: self.queue.clone(),
                task: task.id,
                lease: task.lease,
                how: crate::storage::queues::Settlement::Release,
            };
            let writer = self.writer.clone();
            tokio::spawn(async move {
                let _ = writer.submit(op).await;
            });
        }
    }

    fn expire_pulls(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pulls
            .iter()
            .filter(|(_, p)| !p.leasing && p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(pull) = self.pulls.remove(&id) {
                let _ = pull.reply.send(Ok(Vec::new()));
            }
            self.line.retain(|w| *w != Who::Pull(id));
        }
    }

    fn queue_deleted(&mut self) {
        let error =
            ErrorFrame::new(None, ErrorCode::NotFound, format!("queue {} was deleted", self.queue));
        for (_, pull) in self.pulls.drain() {
            let _ = pull.reply.send(Err(error.clone()));
        }
        for (id, c) in self.consumers.drain() {
            let frame =
                ServerFrame::ConsumerClosed(ConsumerClosed { consumer: id, error: error.clone() });
            if let Some(message) = encode_message(&frame, c.outbox.format()) {
                c.outbox.stream(message);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
