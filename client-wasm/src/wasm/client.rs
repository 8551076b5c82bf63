//! The classes JS sees: `Client`, `Subscription` and `Message` (`TopicMessage` in Rust), with the names of issue 5's API.

use std::rc::Rc;

use js_sys::{Function, Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;

use super::convert;
use super::driver::{Answer, Call, Deferred, Driver, Shared, pump_with};
use super::platform::{entropy, js_error, monotonic_ms, wall_clock_ms};
use super::readers::read_options;
use super::workers::QueueWorker;
use crate::core::{self, ClientError, CoreConfig, SubId};
use crate::{AppendOptions, EnqueueOptions, PullOptions};

/// A connection to a hub: `new Client(url, { token?, reconnect?, minDelayMs?, maxDelayMs? })`.
#[wasm_bindgen]
pub struct Client {
    driver: Shared,
}

#[wasm_bindgen]
impl Client {
    /// Creates a client; nothing happens until `connect()`.
    ///
    /// # Errors
    /// Throws an `invalid_argument` error for malformed options.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: String,
        #[wasm_bindgen(unchecked_optional_param_type = "ClientOptions")] options: Option<JsValue>,
    ) -> Result<Client, JsValue> {
        let config = config(&options.unwrap_or_default()).map_err(|e| js_error(&e))?;
        Ok(Client { driver: Driver::new(url, config) })
    }

    /// Calls `handler` with "connecting", "connected", "reconnecting" or "closed" whenever the
    /// state changes.
    #[wasm_bindgen(js_name = onState)]
    pub fn on_state(
        &self,
        #[wasm_bindgen(unchecked_param_type = "((state: ConnectionState) => void) | null")]
        handler: Option<Function>,
    ) {
        if let Ok(mut driver) = self.driver.try_borrow_mut() {
            driver.set_on_state(handler);
        }
    }

    /// Calls `handler` with errors that belong to no call: a refused session, a lost
    /// connection that will not be retried, a subscription the hub would not restore.
    #[wasm_bindgen(js_name = onError)]
    pub fn on_error(
        &self,
        #[wasm_bindgen(unchecked_param_type = "((error: SwitchboardError) => void) | null")]
        handler: Option<Function>,
    ) {
        if let Ok(mut driver) = self.driver.try_borrow_mut() {
            driver.set_on_error(handler);
        }
    }

    /// Connects; resolves once the hub has welcomed the client, rejects if the first attempt
    /// fails or the client is closed.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn connect(&self) -> Promise {
        self.run(Ok(()), |driver, deferred, ()| driver.connect(deferred))
    }

    /// Closes the client: pending calls reject with `closed`, subscriptions end.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        self.run(Ok(()), |driver, deferred, ()| driver.close(deferred))
    }

    /// Subscribes to a topic pattern; `handler` receives each `Message`. Resolves with a
    /// `Subscription`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Subscription>")]
    pub fn subscribe(
        &self,
        pattern: String,
        #[wasm_bindgen(unchecked_param_type = "(message: Message) => void")] handler: Function,
    ) -> Promise {
        self.run(Ok(()), |driver, deferred, ()| driver.subscribe(deferred, pattern, handler))
    }

    /// Publishes `data` (a `Uint8Array` or a string) on `topic`, with `{ headers? }`. Resolves
    /// with `{ receivers }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Published>")]
    pub fn publish(
        &self,
        topic: String,
        #[wasm_bindgen(unchecked_param_type = "Data")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "PublishOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or_default();
        let input = convert::payload(&data).and_then(|d| Ok((d, convert::headers(&options)?)));
        self.run(input, |driver, deferred, (data, headers)| {
            driver.request(deferred, Answer::Published, |core, now| {
                core.publish(now, &topic, data, headers)
            })
        })
    }

    /// Appends `data` to `stream`, with `{ key?, headers?, idempotencyKey? }`. Resolves with
    /// `{ partition, offset, timestamp }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Appended>")]
    pub fn append(
        &self,
        stream: String,
        #[wasm_bindgen(unchecked_param_type = "Data")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "AppendOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or_default();
        let input = convert::payload(&data).and_then(|d| Ok((d, append_options(&options)?)));
        self.run(input, |driver, deferred, (data, options)| {
            driver.request(deferred, Answer::Appended, |core, now| {
                core.append(now, &stream, data, options)
            })
        })
    }

    /// Enqueues `data` on `queue`, with `{ delayMs?, key?, priority?, headers?,
    /// idempotencyKey? }`. Resolves with `{ id }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Enqueued>")]
    pub fn enqueue(
        &self,
        queue: String,
        #[wasm_bindgen(unchecked_param_type = "Data")] data: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "EnqueueOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or_default();
        let input = convert::payload(&data).and_then(|d| Ok((d, enqueue_options(&options)?)));
        self.run(input, |driver, deferred, (data, options)| {
            driver.request(deferred, Answer::Enqueued, |core, now| {
                core.enqueue(now, &queue, data, options)
            })
        })
    }

    /// Reads `stream` from `{ from?, group?, autoCommit? }`; `handler` receives each `Record`
    /// in order and may return a promise, which the next record waits for. Resolves with a
    /// `Reader`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reader>")]
    pub fn read(
        &self,
        stream: String,
        #[wasm_bindgen(unchecked_param_type = "ReadOptions")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(record: StreamRecord) => void | Promise<void>")]
        handler: Function,
    ) -> Promise {
        self.run(read_options(&options), |driver, deferred, options| {
            driver.read(deferred, stream, options, handler)
        })
    }

    /// Works on `queue` with `{ concurrency?: 1 }`: `handler` receives each `Task`; the task
    /// is acked when the handler returns or its promise resolves, and nacked with the error's
    /// message when it throws or its promise rejects. Failures of the worker itself (the queue
    /// was deleted, the hub refused it) go to `onError`.
    ///
    /// # Errors
    /// Throws `invalid_argument` for a bad `concurrency` and `disconnected` before
    /// `connect()`.
    pub fn work(
        &self,
        queue: String,
        #[wasm_bindgen(unchecked_param_type = "WorkOptions")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(task: Task) => void | Promise<void>")]
        handler: Function,
    ) -> Result<QueueWorker, JsValue> {
        let concurrency = convert::whole(&options, "concurrency", u64::from(u32::MAX))
            .map_err(|e| js_error(&e))?
            .map_or(1, |c| c as u32);
        let worker = {
            let mut driver = self.driver.try_borrow_mut().map_err(|_| busy())?;
            if !driver.is_started() {
                let error = ClientError::new(
                    switchboard_protocol::ErrorCode::Disconnected,
                    "call connect() first",
                );
                return Err(js_error(&error));
            }
            driver.work(&queue, concurrency, handler)
        };
        pump_with(&self.driver, Vec::new());
        Ok(QueueWorker::new(Rc::clone(&self.driver), worker, queue))
    }

    /// Leases up to `max` tasks of `queue`, waiting up to `waitMs` for the first, with
    /// `{ max?: 1, waitMs?: 30000 }`. Resolves with an array of `Task`s, possibly empty.
    #[wasm_bindgen(unchecked_return_type = "Promise<Task[]>")]
    pub fn pull(
        &self,
        queue: String,
        #[wasm_bindgen(unchecked_optional_param_type = "PullOptions")] options: Option<JsValue>,
    ) -> Promise {
        self.run(pull_options(&options.unwrap_or_default()), |driver, deferred, options| {
            driver.request(deferred, Answer::Tasks, |core, now| core.pull(now, &queue, options))
        })
    }
}

impl Client {
    /// The one way a call becomes a promise: reject at once on bad input, otherwise hand the
    /// input to the driver, then carry out whatever that caused.
    fn run<T>(
        &self,
        input: Result<T, ClientError>,
        call: impl FnOnce(&mut Driver, Deferred, T) -> Vec<Call>,
    ) -> Promise {
        run(&self.driver, input, call)
    }
}

/// See [`Client::run`].
pub(crate) fn run<T>(
    shared: &Shared,
    input: Result<T, ClientError>,
    call: impl FnOnce(&mut Driver, Deferred, T) -> Vec<Call>,
) -> Promise {
    let (promise, deferred) = Deferred::new();
    let calls = match input {
        Err(error) => vec![deferred.reject(&error)],
        Ok(input) => match shared.try_borrow_mut() {
            Ok(mut driver) => call(&mut driver, deferred, input),
            // Unreachable from JS: the driver is only borrowed while no JS runs.
            Err(_) => vec![deferred.reject(&busy_error())],
        },
    };
    pump_with(shared, calls);
    promise
}

fn busy_error() -> ClientError {
    ClientError::new(switchboard_protocol::ErrorCode::Internal, "the client is busy")
}

fn busy() -> JsValue {
    js_error(&busy_error())
}

/// One topic subscription, from `client.subscribe`.
#[wasm_bindgen]
pub struct Subscription {
    driver: Shared,
    id: SubId,
    pattern: String,
}

impl Subscription {
    pub(crate) fn new(driver: Shared, id: SubId, pattern: String) -> Self {
        Subscription { driver, id, pattern }
    }
}

#[wasm_bindgen]
impl Subscription {
    /// The pattern subscribed to.
    #[wasm_bindgen(getter)]
    pub fn pattern(&self) -> String {
        self.pattern.clone()
    }

    /// Ends the subscription: no message reaches its handler after this call.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unsubscribe(&self) -> Promise {
        let sub = self.id;
        run(&self.driver, Ok(()), |driver, deferred, ()| driver.unsubscribe(deferred, sub))
    }
}

/// A topic message delivered to a subscription's handler.
#[wasm_bindgen(js_name = Message)]
pub struct TopicMessage {
    inner: core::Message,
}

impl From<core::Message> for TopicMessage {
    fn from(inner: core::Message) -> Self {
        TopicMessage { inner }
    }
}

#[wasm_bindgen(js_class = Message)]
impl TopicMessage {
    /// The topic it was published on.
    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.inner.topic.clone()
    }

    /// The payload (a copy).
    #[wasm_bindgen(getter)]
    pub fn data(&self) -> Uint8Array {
        Uint8Array::from(&self.inner.data[..])
    }

    /// The headers, as an object of strings.
    #[wasm_bindgen(getter, unchecked_return_type = "Headers")]
    pub fn headers(&self) -> Object {
        convert::headers_object(&self.inner.headers)
    }

    /// The payload as UTF-8 text (invalid sequences become U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.inner.data).into_owned()
    }

    /// The payload parsed as JSON.
    ///
    /// # Errors
    /// Throws `JSON.parse`'s `SyntaxError`.
    pub fn json(&self) -> Result<JsValue, JsValue> {
        js_sys::JSON::parse(&self.text())
    }
}

/// The core settings from the constructor's options.
fn config(options: &JsValue) -> Result<CoreConfig, ClientError> {
    let mut config = CoreConfig {
        token: convert::string(options, "token")?,
        entropy: entropy(),
        seed: seed(),
        ..CoreConfig::default()
    };
    if let Some(reconnect) = convert::boolean(options, "reconnect")? {
        config.reconnect = reconnect;
    }
    if let Some(ms) = convert::whole(options, "minDelayMs", u64::from(u32::MAX))? {
        config.min_delay_ms = ms;
    }
    if let Some(ms) = convert::whole(options, "maxDelayMs", u64::from(u32::MAX))? {
        config.max_delay_ms = ms;
    }
    Ok(config)
}

/// A jitter seed that differs between clients, so that clients dropped together do not
/// reconnect in lockstep.
fn seed() -> u64 {
    entropy().map_or_else(
        || wall_clock_ms() ^ (monotonic_ms() * 1000.0) as u64,
        |bytes| bytes[..8].iter().fold(0, |seed, b| seed << 8 | u64::from(*b)),
    )
}

fn append_options(options: &JsValue) -> Result<AppendOptions, ClientError> {
    Ok(AppendOptions {
        key: convert::string(options, "key")?,
        headers: convert::headers(options)?,
        idempotency_key: convert::string(options, "idempotencyKey")?,
    })
}

fn enqueue_options(options: &JsValue) -> Result<EnqueueOptions, ClientError> {
    Ok(EnqueueOptions {
        delay_ms: convert::whole(options, "delayMs", convert::MAX_SAFE)?,
        not_before: None,
        key: convert::string(options, "key")?,
        priority: convert::whole(options, "priority", 9)?.map(|p| p as u8),
        headers: convert::headers(options)?,
        idempotency_key: convert::string(options, "idempotencyKey")?,
    })
}

fn pull_options(options: &JsValue) -> Result<PullOptions, ClientError> {
    let defaults = PullOptions::default();
    Ok(PullOptions {
        max: convert::whole(options, "max", u64::from(u32::MAX))?
            .map_or(defaults.max, |max| max as u32),
        wait_ms: convert::whole(options, "waitMs", convert::MAX_SAFE)?.unwrap_or(defaults.wait_ms),
    })
}
