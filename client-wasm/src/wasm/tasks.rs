//! Queue tasks leased by `client.pull`: the `Task` class (`LeasedTask` in Rust), its settles,
//! and reading the tasks `client.ackMany` is given.

use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use switchboard_protocol::ErrorCode;
use switchboard_protocol::frame::LeaseRef;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::client::run;
use super::convert;
use super::driver::{Answer, Shared};
use crate::Task;
use crate::core::ClientError;

/// One leased task. Settle it once — `ack`, `nack`, `release` or `reject` — before its lease's
/// `deadline`; `extend` moves the deadline.
#[wasm_bindgen(js_name = Task)]
pub struct LeasedTask {
    driver: Shared,
    task: Task,
}

impl LeasedTask {
    pub(crate) fn new(driver: Shared, task: Task) -> Self {
        LeasedTask { driver, task }
    }

    fn settle(
        &self,
        answer: Answer,
        command: impl FnOnce(&mut crate::ClientCore, u64, &str, u64, u64) -> crate::OpId,
    ) -> Promise {
        let (queue, id, lease) = (self.task.queue.clone(), self.task.id, self.task.lease);
        run(&self.driver, Ok(()), |driver, deferred, ()| {
            driver.request(deferred, answer, |core, now| command(core, now, &queue, id, lease))
        })
    }
}

#[wasm_bindgen(js_class = Task)]
impl LeasedTask {
    /// The task's id in its queue.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> f64 {
        self.task.id as f64
    }

    /// The lease it is held under; a new lease of the same task gets a new number.
    #[wasm_bindgen(getter)]
    pub fn lease(&self) -> f64 {
        self.task.lease as f64
    }

    /// The queue it was pulled from.
    #[wasm_bindgen(getter)]
    pub fn queue(&self) -> String {
        self.task.queue.clone()
    }

    /// 1 for the first delivery, counting every lease.
    #[wasm_bindgen(getter)]
    pub fn attempt(&self) -> u32 {
        self.task.attempt
    }

    /// 0 to 9; higher is dispatched first.
    #[wasm_bindgen(getter)]
    pub fn priority(&self) -> u8 {
        self.task.priority
    }

    /// The ordering key it was enqueued with, if any.
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> Option<String> {
        self.task.key.clone()
    }

    /// When the lease ends, ms since the Unix epoch.
    #[wasm_bindgen(getter)]
    pub fn deadline(&self) -> f64 {
        self.task.deadline as f64
    }

    /// The payload (a copy).
    #[wasm_bindgen(getter)]
    pub fn data(&self) -> Uint8Array {
        Uint8Array::from(self.task.data.as_bytes())
    }

    /// The headers, as an object of strings.
    #[wasm_bindgen(getter, unchecked_return_type = "Headers")]
    pub fn headers(&self) -> Object {
        convert::headers_object(&self.task.headers)
    }

    /// The payload as UTF-8 text (invalid sequences become U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.task.data.as_bytes()).into_owned()
    }

    /// The payload parsed as JSON.
    ///
    /// # Errors
    /// Throws `JSON.parse`'s `SyntaxError`.
    pub fn json(&self) -> Result<JsValue, JsValue> {
        js_sys::JSON::parse(&self.text())
    }

    /// Marks the task done. Resent after a reconnect while the lease is valid; rejects with
    /// `lease_expired` once it is not.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn ack(&self) -> Promise {
        self.settle(Answer::Unit, |core, now, queue, id, lease| core.ack(now, queue, id, lease))
    }

    /// Hands the task back as a failure, with `{ delayMs?, reason? }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn nack(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "NackOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or_default();
        let input = convert::whole(&options, "delayMs", convert::MAX_SAFE)
            .and_then(|delay| Ok((delay, convert::string(&options, "reason")?)));
        let (queue, id, lease) = (self.task.queue.clone(), self.task.id, self.task.lease);
        run(&self.driver, input, |driver, deferred, (delay, reason)| {
            driver.request(deferred, Answer::Unit, |core, now| {
                core.nack(now, &queue, id, lease, delay, reason)
            })
        })
    }

    /// Extends the lease to `ms` from now. Resolves with `{ deadline }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Extended>")]
    pub fn extend(&self, ms: f64) -> Promise {
        let ms = if ms.is_finite() && ms >= 0.0 { ms as u64 } else { 0 };
        self.settle(Answer::Extended, |core, now, queue, id, lease| {
            core.extend(now, queue, id, lease, ms)
        })
    }

    /// Hands the task back at once without counting a failure.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn release(&self) -> Promise {
        self.settle(Answer::Unit, |core, now, queue, id, lease| core.release(now, queue, id, lease))
    }

    /// Sends the task straight to the dead-letter queue.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn reject(&self, reason: String) -> Promise {
        self.settle(Answer::Unit, |core, now, queue, id, lease| {
            core.reject(now, queue, id, lease, &reason)
        })
    }
}

/// The queue and the leases of the `Task`s in the array `tasks`, or `None` for an empty array.
/// Each task is read through its JS getters, so the objects stay usable afterwards (converting
/// them to `LeasedTask` would take them over from JS).
///
/// # Errors
/// `invalid_argument` when `tasks` is not an array of tasks, or holds tasks of more than one
/// queue.
pub(crate) fn lease_refs(tasks: &JsValue) -> Result<Option<(String, Vec<LeaseRef>)>, ClientError> {
    let not_tasks =
        || ClientError::new(ErrorCode::InvalidArgument, "ackMany takes an array of Tasks");
    let tasks = tasks.dyn_ref::<Array>().ok_or_else(not_tasks)?;
    // A getter that throws (on `null`, or on a task freed with `free()`) reads as missing.
    let field = |task: &JsValue, name: &str| Reflect::get(task, &JsValue::from_str(name)).ok();
    // Anything but a non-negative number reads as missing: NaN fails the comparison.
    let number = |task: &JsValue, name: &str| {
        field(task, name).and_then(|v| v.as_f64()).filter(|n| *n >= 0.0).map(|n| n as u64)
    };
    let mut queue = None;
    let mut refs = Vec::new();
    for task in tasks.iter() {
        let name = field(&task, "queue").and_then(|v| v.as_string());
        let (Some(name), Some(id), Some(lease)) =
            (name, number(&task, "id"), number(&task, "lease"))
        else {
            return Err(not_tasks());
        };
        if queue.get_or_insert_with(|| name.clone()) != &name {
            let message = "ackMany takes tasks of one queue; call it once per queue";
            return Err(ClientError::new(ErrorCode::InvalidArgument, message));
        }
        refs.push(LeaseRef { task: id, lease });
    }
    Ok(queue.map(|queue| (queue, refs)))
}
