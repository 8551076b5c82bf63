//! The driver: one per client, owning the core and carrying out what it decides.
//!
//! Everything runs on the JS event loop, so the driver lives in an `Rc<RefCell<_>>`. JS code
//! (promise callbacks, message handlers, `onState`) may call back into the client, so the driver
//! never calls JS while it holds its borrow: [`pump`] collects the calls and makes them after.

use crate::core::sorted::SortedMap;
use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Promise};
use switchboard_protocol::Format;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::client::TopicMessage;
use super::convert;
use super::platform::{Timer, js_error, monotonic_ms, wall_clock_ms};
use super::readers::{self, RecordSink};
use super::socket::{Socket, SocketEvent};
use super::workers;
use crate::Task;
use crate::core::{
    ClientCore, ClientError, ClientNotice, ConnectionState, ConsumerId, CoreConfig, OpId, Output,
    ReaderId, SubId,
};
use switchboard_protocol::ErrorCode;

pub(crate) type Shared = Rc<RefCell<Driver>>;

/// The two ends of a promise.
pub(crate) struct Deferred {
    resolve: Function,
    reject: Function,
}

impl Deferred {
    /// A new promise and the functions that settle it.
    pub(crate) fn new() -> (Promise, Deferred) {
        let mut ends = None;
        let promise = Promise::new(&mut |resolve, reject| ends = Some((resolve, reject)));
        // The executor runs synchronously inside `new Promise`, so `ends` is always set; the
        // fallback only keeps this free of a panic path.
        let (resolve, reject) =
            ends.unwrap_or_else(|| (Function::new_no_args(""), Function::new_no_args("")));
        (promise, Deferred { resolve, reject })
    }

    pub(crate) fn resolve(self, value: JsValue) -> Call {
        Call::Js { function: self.resolve, argument: value }
    }

    pub(crate) fn reject(self, error: &ClientError) -> Call {
        Call::Js { function: self.reject, argument: js_error(error) }
    }
}

/// How to turn an operation's reply into the value its promise resolves with.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    /// `undefined`.
    Unit,
    /// `{ receivers }`.
    Published,
    /// The `Subscription` object for this operation.
    Subscribed,
    /// The `Reader` object for this operation.
    Reading,
    /// `{ partition, offset, timestamp }`.
    Appended,
    /// `{ id }`.
    Enqueued,
    /// An array of `Task` objects.
    Tasks,
    /// Nothing: the `consume` behind a worker; a failure ends the worker.
    Working,
    /// `{ deadline }`.
    Extended,
}

pub(super) struct Waiter {
    pub(super) answer: Answer,
    /// `None` for operations no promise waits for (a worker's settles): their failures go to
    /// `onError`.
    pub(super) deferred: Option<Deferred>,
    /// For `subscribe` the pattern, for `read` the stream: for the object the promise gets.
    pub(super) name: Option<String>,
}

/// JS to run once the driver is no longer borrowed.
pub(crate) enum Call {
    /// Call a function with one argument.
    Js { function: Function, argument: JsValue },
    /// Hand a reader's buffered records to its handler.
    Records(ReaderId),
    /// Hand a leased task to a worker's handler.
    Task(ConsumerId, Task),
}

impl Call {
    fn run(self, shared: &Shared) {
        match self {
            // A throwing handler is the application's bug; it must not stop other deliveries.
            Call::Js { function, argument } => {
                let _ = function.call1(&JsValue::UNDEFINED, &argument);
            }
            Call::Records(reader) => readers::deliver(shared, reader),
            Call::Task(worker, task) => workers::run_task(shared, worker, task),
        }
    }
}

pub(crate) struct Driver {
    url: String,
    config: CoreConfig,
    /// `None` until `connect()`.
    pub(super) core: Option<ClientCore>,
    /// The monotonic clock's reading when the core was created: the core's time zero.
    start: f64,
    socket: Option<Socket>,
    /// The armed timer and the deadline it is for.
    timer: Option<(u64, Timer)>,
    tick: Option<Closure<dyn FnMut()>>,
    pub(super) waiters: SortedMap<OpId, Waiter>,
    pub(super) handlers: SortedMap<SubId, Function>,
    pub(super) readers: SortedMap<ReaderId, RecordSink>,
    /// The task handlers of `work`.
    pub(super) workers: SortedMap<ConsumerId, Function>,
    on_state: Option<Function>,
    on_error: Option<Function>,
    connecting: Vec<Deferred>,
    closing: Vec<Deferred>,
    pub(super) myself: Weak<RefCell<Driver>>,
}

impl Driver {
    pub(crate) fn new(url: String, config: CoreConfig) -> Shared {
        let shared = Rc::new(RefCell::new(Driver {
            url,
            config,
            core: None,
            start: monotonic_ms(),
            socket: None,
            timer: None,
            tick: None,
            waiters: SortedMap::new(),
            handlers: SortedMap::new(),
            readers: SortedMap::new(),
            workers: SortedMap::new(),
            on_state: None,
            on_error: None,
            connecting: Vec::new(),
            closing: Vec::new(),
            myself: Weak::new(),
        }));
        let weak = Rc::downgrade(&shared);
        let tick = Closure::<dyn FnMut()>::new({
            let weak = weak.clone();
            move || {
                if let Some(shared) = weak.upgrade() {
                    shared.borrow_mut().on_tick();
                    pump(&shared);
                }
            }
        });
        {
            let mut driver = shared.borrow_mut();
            driver.tick = Some(tick);
            driver.myself = weak;
        }
        shared
    }

    pub(super) fn now(&self) -> u64 {
        (monotonic_ms() - self.start).max(0.0) as u64
    }

    /// Whether `connect()` was called.
    pub(crate) fn is_started(&self) -> bool {
        self.core.is_some()
    }

    pub(crate) fn set_on_state(&mut self, handler: Option<Function>) {
        self.on_state = handler;
    }

    pub(crate) fn set_on_error(&mut self, handler: Option<Function>) {
        self.on_error = handler;
    }

    /// Starts the first connection, or joins the one under way; `deferred` settles when it is
    /// established or has failed.
    pub(crate) fn connect(&mut self, deferred: Deferred) -> Vec<Call> {
        match self.core.as_ref().map(ClientCore::state) {
            Some(ConnectionState::Connected) => return vec![deferred.resolve(JsValue::UNDEFINED)],
            Some(ConnectionState::Closed) => {
                let error = self.close_reason();
                return vec![deferred.reject(&error)];
            }
            Some(_) => {
                self.connecting.push(deferred);
                return Vec::new();
            }
            None => {}
        }
        self.start = monotonic_ms();
        let mut core = ClientCore::new(self.config.clone(), 0);
        core.set_wall_clock(0, wall_clock_ms());
        self.core = Some(core);
        self.connecting.push(deferred);
        // The core starts in `connecting` without announcing it; the application hears it here.
        self.on_state
            .clone()
            .map(|function| Call::Js {
                function,
                argument: JsValue::from_str(ConnectionState::Connecting.as_str()),
            })
            .into_iter()
            .collect()
    }

    /// Closes the client; `deferred` settles once it is closed.
    pub(crate) fn close(&mut self, deferred: Deferred) -> Vec<Call> {
        let now = self.now();
        match self.core.as_mut() {
            Some(core) if core.state() != ConnectionState::Closed => {
                self.closing.push(deferred);
                core.close(now);
                Vec::new()
            }
            _ => vec![deferred.resolve(JsValue::UNDEFINED)],
        }
    }

    /// Runs one core command and remembers who waits for it.
    pub(crate) fn request(
        &mut self,
        deferred: Deferred,
        answer: Answer,
        command: impl FnOnce(&mut ClientCore, u64) -> OpId,
    ) -> Vec<Call> {
        let now = self.now();
        let Some(core) = self.core.as_mut() else {
            let error = ClientError::new(ErrorCode::Disconnected, "call connect() first");
            return vec![deferred.reject(&error)];
        };
        let op = command(core, now);
        self.waiters.insert(op, Waiter { answer, deferred: Some(deferred), name: None });
        Vec::new()
    }

    /// Runs one core command whose failure goes to `onError` rather than to a promise.
    pub(super) fn request_quietly(
        &mut self,
        answer: Answer,
        command: impl FnOnce(&mut ClientCore, u64) -> OpId,
    ) {
        let now = self.now();
        if let Some(core) = self.core.as_mut() {
            let op = command(core, now);
            self.waiters.insert(op, Waiter { answer, deferred: None, name: None });
        }
    }

    /// `subscribe`: like [`Driver::request`], with the handler registered at once so that no
    /// message that arrives right after the hub's answer is missed.
    pub(crate) fn subscribe(
        &mut self,
        deferred: Deferred,
        pattern: String,
        handler: Function,
    ) -> Vec<Call> {
        let now = self.now();
        let Some(core) = self.core.as_mut() else {
            let error = ClientError::new(ErrorCode::Disconnected, "call connect() first");
            return vec![deferred.reject(&error)];
        };
        let sub = core.subscribe(now, &pattern);
        self.handlers.insert(sub, handler);
        let waiter =
            Waiter { answer: Answer::Subscribed, deferred: Some(deferred), name: Some(pattern) };
        self.waiters.insert(sub, waiter);
        Vec::new()
    }

    pub(crate) fn unsubscribe(&mut self, deferred: Deferred, sub: SubId) -> Vec<Call> {
        self.handlers.remove(&sub);
        self.request(deferred, Answer::Unit, |core, now| core.unsubscribe(now, sub))
    }

    fn on_tick(&mut self) {
        // The timer has fired: `schedule` must arm a new one even for the same deadline.
        self.timer = None;
        let now = self.now();
        if let Some(core) = self.core.as_mut() {
            core.on_tick(now);
        }
    }

    fn on_socket(&mut self, socket: u64, event: SocketEvent) {
        let now = self.now();
        let Some(core) = self.core.as_mut() else {
            return;
        };
        match event {
            SocketEvent::Open => {
                // Lease deadlines are wall-clock times: pick up any correction of the clock.
                core.set_wall_clock(now, wall_clock_ms());
                core.on_socket_open(socket, now);
            }
            SocketEvent::Binary(bytes) => core.on_frame(socket, now, &bytes, Format::MsgPack),
            SocketEvent::Text(text) => core.on_frame(socket, now, text.as_bytes(), Format::Json),
            SocketEvent::Closed(code, reason) => {
                if self.socket.as_ref().is_some_and(|s| s.id == socket) {
                    self.socket = None;
                }
                core.on_socket_closed(socket, now, code, &reason);
            }
        }
    }

    fn close_reason(&self) -> ClientError {
        self.core
            .as_ref()
            .and_then(ClientCore::close_reason)
            .cloned()
            .unwrap_or_else(|| ClientError::new(ErrorCode::Closed, "the client was closed"))
    }

    /// Carries out the core's outputs; returns the JS calls they need, in order.
    fn drain(&mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        while let Some(output) = self.core.as_mut().and_then(ClientCore::poll_output) {
            match output {
                Output::OpenSocket { socket } => self.open_socket(socket),
                Output::CloseSocket { socket, code, reason } => {
                    if let Some(open) = self.socket.take_if(|s| s.id == socket) {
                        open.close(code, &reason);
                    }
                }
                Output::Send(frame) => {
                    let failed = match self.socket.as_ref() {
                        Some(open) => open.send(&frame).err().map(|e| (open.id, e)),
                        None => None,
                    };
                    if let Some((socket, error)) = failed {
                        self.socket = None;
                        let reason = format!("send failed: {}", convert::describe(&error));
                        let now = self.now();
                        if let Some(core) = self.core.as_mut() {
                            core.on_socket_closed(socket, now, None, &reason);
                        }
                    }
                }
                Output::Completed(completion) => calls.extend(self.complete(completion)),
                Output::Deliver { sub, message } => {
                    if let Some(handler) = self.handlers.get(&sub) {
                        let argument = JsValue::from(TopicMessage::from(message));
                        calls.push(Call::Js { function: handler.clone(), argument });
                    }
                }
                // Per subscription; the application hears of it once, from the notice below.
                Output::Lagged { .. } => {}
                Output::SubscriptionClosed { sub, error } => {
                    self.handlers.remove(&sub);
                    calls.extend(error.and_then(|e| self.error_call(&e)));
                }
                Output::Reader { reader, event } => calls.extend(self.on_reader(reader, event)),
                Output::Consumer { consumer, event } => {
                    calls.extend(self.on_worker(consumer, event));
                }
                Output::State(state) => calls.extend(self.on_state(state)),
                Output::Notice(ClientNotice::Error(error)) => {
                    calls.extend(self.error_call(&error));
                }
                Output::Notice(ClientNotice::Lagged { topic, missed }) => {
                    let error = ClientError::new(
                        ErrorCode::Lagged,
                        format!("the hub dropped {missed} messages on {topic}: read too slowly"),
                    );
                    calls.extend(self.error_call(&error));
                }
            }
        }
        calls
    }

    fn open_socket(&mut self, socket: u64) {
        let weak = self.myself.clone();
        let report = move |socket, event| {
            if let Some(shared) = weak.upgrade() {
                // Socket events come from the event loop, never while the driver is borrowed.
                if let Ok(mut driver) = shared.try_borrow_mut() {
                    driver.on_socket(socket, event);
                }
                pump(&shared);
            }
        };
        match Socket::open(&self.url, socket, report) {
            Ok(open) => self.socket = Some(open),
            Err(e) => {
                let reason = convert::describe(&e);
                let now = self.now();
                if let Some(core) = self.core.as_mut() {
                    core.on_socket_closed(socket, now, None, &reason);
                }
            }
        }
    }

    fn on_state(&mut self, state: ConnectionState) -> Vec<Call> {
        let mut calls = Vec::new();
        if let Some(handler) = &self.on_state {
            let argument = JsValue::from_str(state.as_str());
            calls.push(Call::Js { function: handler.clone(), argument });
        }
        match state {
            ConnectionState::Connected => {
                calls.extend(self.connecting.drain(..).map(|d| d.resolve(JsValue::UNDEFINED)));
            }
            ConnectionState::Closed => {
                let error = self.close_reason();
                calls.extend(self.connecting.drain(..).map(|d| d.reject(&error)));
                calls.extend(self.closing.drain(..).map(|d| d.resolve(JsValue::UNDEFINED)));
                self.timer = None;
                self.handlers.clear();
                self.readers.clear();
                self.workers.clear();
            }
            ConnectionState::Connecting | ConnectionState::Reconnecting => {}
        }
        calls
    }

    pub(super) fn error_call(&self, error: &ClientError) -> Option<Call> {
        let function = self.on_error.clone()?;
        Some(Call::Js { function, argument: js_error(error) })
    }

    /// Arms the timer for the core's next deadline, unless it is armed for it already: most
    /// pumps (a message in, a frame out) leave the deadline as it was.
    fn schedule(&mut self) {
        let (Some(core), Some(tick)) = (self.core.as_ref(), self.tick.as_ref()) else {
            self.timer = None;
            return;
        };
        let next = core.next_deadline();
        if self.timer.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        let now = self.now();
        self.timer = next
            .map(|at| (at, Timer::start(tick.as_ref().unchecked_ref(), at.saturating_sub(now))));
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The socket and timer unhook themselves; close the session politely first.
        if let Some(core) = self.core.as_mut() {
            core.close(0);
        }
        let _ = self.drain();
    }
}

/// Runs `calls`, then carries out the core's outputs and runs the JS calls they need until
/// nothing is left, then arms the timer.
pub(crate) fn pump_with(shared: &Shared, calls: Vec<Call>) {
    calls.into_iter().for_each(|call| call.run(shared));
    pump(shared);
}

/// Carries out the core's outputs until none are left, then arms the timer.
pub(crate) fn pump(shared: &Shared) {
    loop {
        // The borrow ends before any JS runs: handlers may call back into the client.
        let calls = match shared.try_borrow_mut() {
            Ok(mut driver) => driver.drain(),
            // A pump further up the stack holds the driver; it will drain what is left.
            Err(_) => return,
        };
        if calls.is_empty() {
            break;
        }
        calls.into_iter().for_each(|call| call.run(shared));
    }
    if let Ok(mut driver) = shared.try_borrow_mut() {
        driver.schedule();
    }
}
