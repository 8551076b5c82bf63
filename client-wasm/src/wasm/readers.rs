//! Stream readers from `client.read`: the `Reader` and `StreamRecord` classes (`StreamReader` and
//! `ReaderRecord` in Rust), and handing records to the application one at a time.
//!
//! A handler may return a promise: the next record waits for it. A record counts as consumed
//! — its credit goes back to the hub, `position()` moves past it — once its handler returned
//! or its promise settled. A handler that throws or rejects still consumes its record: the
//! reader never stalls on one bad record, and `position()` says where it is.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::client::run;
use super::convert;
use super::driver::{Answer, Call, Deferred, Driver, Shared, Waiter, pump};
use super::platform::call_handler;
use crate::core::{ClientError, ReaderEvent, ReaderId, StreamRecord};
use crate::{ReadFrom, ReadOptions};

/// Where a reader's records wait for its handler.
pub(crate) struct RecordSink {
    handler: Function,
    records: VecDeque<StreamRecord>,
    /// A record is with the handler (its promise has not settled).
    busy: bool,
}

impl Driver {
    /// `read`: starts a reader whose records go to `handler` from the first one on.
    pub(crate) fn read(
        &mut self,
        deferred: Deferred,
        stream: String,
        options: ReadOptions,
        handler: Function,
    ) -> Vec<Call> {
        let now = self.now();
        let Some(core) = self.core.as_mut() else {
            return vec![deferred.reject(&not_connected())];
        };
        let reader = core.read(now, &stream, options);
        let sink = RecordSink { handler, records: VecDeque::new(), busy: false };
        self.readers.insert(reader, sink);
        let waiter =
            Waiter { answer: Answer::Reading, deferred: Some(deferred), name: Some(stream) };
        self.waiters.insert(reader, waiter);
        Vec::new()
    }

    /// What a reader event asks of JS.
    pub(super) fn on_reader(&mut self, reader: ReaderId, event: ReaderEvent) -> Vec<Call> {
        match event {
            ReaderEvent::Records(records) => match self.readers.get_mut(&reader) {
                Some(sink) => {
                    sink.records.extend(records);
                    vec![Call::Records(reader)]
                }
                None => Vec::new(),
            },
            ReaderEvent::Ended { error } => {
                self.readers.remove(&reader);
                error.and_then(|e| self.error_call(&e)).into_iter().collect()
            }
            // The core keeps positions and assignments; the handler sees only records.
            ReaderEvent::Assigned { .. }
            | ReaderEvent::Revoked { .. }
            | ReaderEvent::Resumed { .. } => Vec::new(),
        }
    }

    /// The next record for the handler, unless one is with it already.
    fn next_record(&mut self, reader: ReaderId) -> Option<(Function, StreamRecord)> {
        let sink = self.readers.get_mut(&reader).filter(|s| !s.busy)?;
        let record = sink.records.pop_front()?;
        sink.busy = true;
        Some((sink.handler.clone(), record))
    }

    /// The handler is done with its record.
    fn record_consumed(&mut self, reader: ReaderId) {
        if let Some(sink) = self.readers.get_mut(&reader) {
            sink.busy = false;
        }
        let now = self.now();
        if let Some(core) = self.core.as_mut() {
            core.reader_consumed(now, reader, 1);
        }
    }
}

/// Hands `reader`'s buffered records to its handler until one returns a promise (delivery
/// goes on when it settles) or none are left.
pub(super) fn deliver(shared: &Shared, reader: ReaderId) {
    loop {
        let next = match shared.try_borrow_mut() {
            Ok(mut driver) => driver.next_record(reader),
            Err(_) => return,
        };
        let Some((handler, record)) = next else {
            return;
        };
        // `calling` is true while the handler runs: an end that comes then lets this loop go
        // on; a later one (a promise settling) starts delivering again itself.
        let calling = Rc::new(Cell::new(true));
        let ended = Rc::new(Cell::new(false));
        let weak = Rc::downgrade(shared);
        let (calling_now, ended_now) = (Rc::clone(&calling), Rc::clone(&ended));
        call_handler(&handler, &ReaderRecord(record).into(), move |_| {
            ended_now.set(true);
            let Some(shared) = weak.upgrade() else {
                return;
            };
            if let Ok(mut driver) = shared.try_borrow_mut() {
                driver.record_consumed(reader);
            }
            if !calling_now.get() {
                deliver(&shared, reader);
                pump(&shared);
            }
        });
        calling.set(false);
        if !ended.get() {
            return;
        }
    }
}

/// One stream reader, from `client.read`.
#[wasm_bindgen(js_name = Reader)]
pub struct StreamReader {
    driver: Shared,
    id: ReaderId,
    stream: String,
}

impl StreamReader {
    pub(crate) fn new(driver: Shared, id: ReaderId, stream: String) -> Self {
        StreamReader { driver, id, stream }
    }
}

#[wasm_bindgen(js_class = Reader)]
impl StreamReader {
    /// The stream read.
    #[wasm_bindgen(getter)]
    pub fn stream(&self) -> String {
        self.stream.clone()
    }

    /// Commits a record of a group reader: the group resumes after it.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn commit(&self, record: &ReaderRecord) -> Promise {
        let (reader, partition, offset) = (self.id, record.0.partition, record.0.offset);
        run(&self.driver, Ok(()), |driver, deferred, ()| {
            driver.request(deferred, Answer::Unit, |core, now| {
                core.commit_record(now, reader, partition, offset)
            })
        })
    }

    /// The next offset not yet consumed, per partition: `{ [partition]: offset }`. Empty once
    /// the reader has ended.
    #[wasm_bindgen(unchecked_return_type = "Positions")]
    pub fn position(&self) -> Object {
        let positions = self
            .driver
            .try_borrow()
            .ok()
            .and_then(|d| d.core.as_ref().and_then(|c| c.reader_position(self.id)))
            .unwrap_or_default();
        let object = Object::new();
        for (partition, offset) in positions {
            let _ = Reflect::set(&object, &JsValue::from(partition), &JsValue::from(offset as f64));
        }
        object
    }

    /// Stops the reader: its handler gets no record after this call.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        let reader = self.id;
        run(&self.driver, Ok(()), |driver, deferred, ()| {
            driver.readers.remove(&reader);
            driver.request(deferred, Answer::Unit, |core, now| core.close_reader(now, reader))
        })
    }
}

/// A stream record handed to a reader's handler.
#[wasm_bindgen(js_name = StreamRecord)]
pub struct ReaderRecord(StreamRecord);

#[wasm_bindgen(js_class = StreamRecord)]
impl ReaderRecord {
    /// The stream it belongs to.
    #[wasm_bindgen(getter)]
    pub fn stream(&self) -> String {
        self.0.stream.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn partition(&self) -> u32 {
        self.0.partition
    }

    #[wasm_bindgen(getter)]
    pub fn offset(&self) -> f64 {
        self.0.offset as f64
    }

    /// When the hub stored it, ms since the Unix epoch.
    #[wasm_bindgen(getter)]
    pub fn timestamp(&self) -> f64 {
        self.0.timestamp as f64
    }

    /// The partitioning key it was appended with, if any.
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> Option<String> {
        self.0.key.clone()
    }

    /// The headers, as an object of strings.
    #[wasm_bindgen(getter, unchecked_return_type = "Headers")]
    pub fn headers(&self) -> Object {
        convert::headers_object(&self.0.headers)
    }

    /// The payload (a copy).
    #[wasm_bindgen(getter)]
    pub fn data(&self) -> Uint8Array {
        Uint8Array::from(&self.0.data[..])
    }

    /// The payload as UTF-8 text (invalid sequences become U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.data).into_owned()
    }

    /// The payload parsed as JSON.
    ///
    /// # Errors
    /// Throws `JSON.parse`'s `SyntaxError`.
    pub fn json(&self) -> Result<JsValue, JsValue> {
        js_sys::JSON::parse(&self.text())
    }
}

/// The options of `client.read`: `{ from?, group?, autoCommit? }`, where `from` is
/// "earliest", "latest", `{ offset, partition? }` or `{ time }`.
pub(crate) fn read_options(options: &JsValue) -> Result<ReadOptions, ClientError> {
    let mut read = ReadOptions {
        group: convert::string(options, "group")?,
        auto_commit: convert::boolean(options, "autoCommit")?.unwrap_or(false),
        ..ReadOptions::default()
    };
    let Some(from) = convert::field(options, "from") else {
        return Ok(read);
    };
    read.from = match from.as_string().as_deref() {
        Some("earliest") => ReadFrom::Earliest,
        Some("latest") => ReadFrom::Latest,
        Some(_) => return Err(bad_from()),
        None => {
            let offset = convert::whole(&from, "offset", convert::MAX_SAFE)?;
            let time = convert::whole(&from, "time", convert::MAX_SAFE)?;
            match (offset, time) {
                (Some(offset), None) => {
                    let partition = convert::whole(&from, "partition", u64::from(u32::MAX))?;
                    read.partition = partition.map(|p| p as u32);
                    ReadFrom::Offset(offset)
                }
                (None, Some(time)) => ReadFrom::Time(time),
                _ => return Err(bad_from()),
            }
        }
    };
    Ok(read)
}

fn bad_from() -> ClientError {
    ClientError::new(
        switchboard_protocol::ErrorCode::InvalidArgument,
        "`from` must be \"earliest\", \"latest\", { offset, partition? } or { time }",
    )
}

fn not_connected() -> ClientError {
    ClientError::new(switchboard_protocol::ErrorCode::Disconnected, "call connect() first")
}
