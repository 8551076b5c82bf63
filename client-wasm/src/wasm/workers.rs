//! Queue workers from `client.work`: a push consumer whose tasks go to a handler, acked when
//! it returns (or its promise resolves) and nacked with the error's message when it throws (or
//! its promise rejects). The hub leases at most `concurrency` unsettled tasks to the worker, so
//! every task goes to the handler as soon as it arrives.

use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use super::client::run;
use super::convert;
use super::driver::{Answer, Call, Driver, Shared, Waiter, pump};
use super::platform::call_handler;
use super::tasks::LeasedTask;
use crate::Task;
use crate::core::{ConsumerEvent, ConsumerId};

impl Driver {
    /// `work`: starts a consumer of `queue` whose tasks go to `handler`.
    pub(crate) fn work(&mut self, queue: &str, concurrency: u32, handler: Function) -> ConsumerId {
        let now = self.now();
        let Some(core) = self.core.as_mut() else {
            return 0;
        };
        let worker = core.consume(now, queue, concurrency);
        self.workers.insert(worker, handler);
        let waiter = Waiter { answer: Answer::Working, deferred: None, name: None };
        self.waiters.insert(worker, waiter);
        worker
    }

    /// What a consumer event asks of JS.
    pub(super) fn on_worker(&mut self, worker: ConsumerId, event: ConsumerEvent) -> Vec<Call> {
        match event {
            ConsumerEvent::Task(task) if self.workers.contains_key(&worker) => {
                vec![Call::Task(worker, task)]
            }
            // The worker was stopped: nobody takes the task, so it goes back at once.
            ConsumerEvent::Task(task) => {
                let now = self.now();
                if let Some(core) = self.core.as_mut() {
                    core.release(now, &task.queue, task.id, task.lease);
                }
                Vec::new()
            }
            ConsumerEvent::Ended { error } => {
                self.workers.remove(&worker);
                error.and_then(|e| self.error_call(&e)).into_iter().collect()
            }
        }
    }

    /// Settles a task the handler finished: ack on success, nack with the failure's text.
    fn finish_task(&mut self, task: &Task, failure: Option<String>) {
        let (queue, id, lease) = (task.queue.clone(), task.id, task.lease);
        self.request_quietly(Answer::Unit, |core, now| match failure {
            None => core.ack(now, &queue, id, lease),
            Some(reason) => core.nack(now, &queue, id, lease, None, Some(reason)),
        });
    }
}

/// Hands `task` to the worker's handler and settles it by how the handler ends.
pub(super) fn run_task(shared: &Shared, worker: ConsumerId, task: Task) {
    let handler = shared.try_borrow().ok().and_then(|d| d.workers.get(&worker).cloned());
    let Some(handler) = handler else {
        return;
    };
    let leased = LeasedTask::new(Rc::clone(shared), task.clone());
    let weak = Rc::downgrade(shared);
    call_handler(&handler, &leased.into(), move |ended| {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let failure = ended.err().map(|error| convert::describe(&error));
        if let Ok(mut driver) = shared.try_borrow_mut() {
            driver.finish_task(&task, failure);
        }
        pump(&shared);
    });
}

/// A queue worker, from `client.work`.
#[wasm_bindgen]
pub struct QueueWorker {
    driver: Shared,
    id: ConsumerId,
    queue: String,
}

impl QueueWorker {
    pub(crate) fn new(driver: Shared, id: ConsumerId, queue: String) -> Self {
        QueueWorker { driver, id, queue }
    }
}

#[wasm_bindgen]
impl QueueWorker {
    /// The queue worked on.
    #[wasm_bindgen(getter)]
    pub fn queue(&self) -> String {
        self.queue.clone()
    }

    /// Stops taking tasks. Tasks already with the handler are still settled when it ends.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn stop(&self) -> Promise {
        let worker = self.id;
        run(&self.driver, Ok(()), |driver, deferred, ()| {
            driver.workers.remove(&worker);
            driver.request(deferred, Answer::Unit, |core, now| core.stop_consumer(now, worker))
        })
    }
}
