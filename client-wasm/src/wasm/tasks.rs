//! Queue tasks leased by `client.pull`: the `Task` class (`LeasedTask` in Rust) and its settles.

use js_sys::{Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::client::run;
use super::convert;
use super::driver::{Answer, Shared};
use crate::Task;

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
