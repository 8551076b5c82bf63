//! Finished operations: turning the core's completions into what their promises resolve with
//! or reject with.

use std::rc::Rc;

use switchboard_protocol::frame::ReplyBody;
use wasm_bindgen::prelude::*;

use super::client::Subscription;
use super::convert;
use super::driver::{Answer, Call, Driver};
use super::readers::StreamReader;
use super::tasks::LeasedTask;
use crate::core::Completion;

impl Driver {
    /// Settles the promise of a finished operation.
    pub(super) fn complete(&mut self, Completion { op, result }: Completion) -> Option<Call> {
        let waiter = self.waiters.remove(&op)?;
        let body = match result {
            Ok(body) => body,
            Err(error) => {
                match waiter.answer {
                    Answer::Subscribed => drop(self.handlers.remove(&op)),
                    Answer::Reading => drop(self.readers.remove(&op)),
                    Answer::Working => drop(self.workers.remove(&op)),
                    _ => {}
                }
                return match waiter.deferred {
                    Some(deferred) => Some(deferred.reject(&error)),
                    None => self.error_call(&error),
                };
            }
        };
        let deferred = waiter.deferred?;
        let value = match (waiter.answer, body) {
            (Answer::Published, Some(ReplyBody::Published { receivers })) => {
                convert::object(&[("receivers", JsValue::from(receivers as f64))])
            }
            (Answer::Appended, Some(ReplyBody::Appended { partition, offset, timestamp })) => {
                convert::object(&[
                    ("partition", JsValue::from(partition)),
                    ("offset", JsValue::from(offset as f64)),
                    ("timestamp", JsValue::from(timestamp as f64)),
                ])
            }
            (Answer::Enqueued, Some(ReplyBody::Enqueued { task })) => {
                convert::object(&[("id", JsValue::from(task as f64))])
            }
            (Answer::Tasks, Some(ReplyBody::Tasks { tasks })) => {
                let shared = self.myself.upgrade()?;
                let leased = tasks
                    .into_iter()
                    .map(|task| JsValue::from(LeasedTask::new(Rc::clone(&shared), task)));
                js_sys::Array::from_iter(leased).into()
            }
            (Answer::Extended, Some(ReplyBody::Extended { deadline })) => {
                convert::object(&[("deadline", JsValue::from(deadline as f64))])
            }
            (Answer::Reading, _) => {
                let shared = self.myself.upgrade()?;
                let stream = waiter.name.unwrap_or_default();
                JsValue::from(StreamReader::new(shared, op, stream))
            }
            (Answer::Subscribed, _) => {
                let shared = self.myself.upgrade()?;
                let pattern = waiter.name.unwrap_or_default();
                JsValue::from(Subscription::new(shared, op, pattern))
            }
            _ => JsValue::UNDEFINED,
        };
        Some(deferred.resolve(value))
    }
}
