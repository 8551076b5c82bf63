//! A hand-written MessagePack decoder for [`ServerFrame`], for clients that care about code size,
//! and for the client frames a hub takes most of ([`decode_client_hot`]), for its speed.
//!
//! [`super::decode_server`] goes through serde, whose generic decoding is monomorphised for every
//! type and visitor; in the browser build that was most of the binary. This decoder reads the
//! same documents (`rmp_serde::to_vec_named`: structs as maps with named fields, enums as
//! one-entry maps or, for unit variants, a string) with one plain function per type, and
//! classifies bad input into the same [`ErrorCode`]s. It follows serde's leniency where that is
//! cheap (structs as arrays, field indices as keys, strings or arrays as payloads) and is never
//! more lenient: anything it accepts, [`super::decode_server`] decodes to the same frame (the
//! tests check this on random and corrupted input). It refuses a few odd encodings serde also
//! takes, such as enums written as arrays, which no hub sends.

#[cfg(feature = "admin")]
mod admin;
mod reader;
mod write;

pub use self::write::{encode_client, encode_record_into};

use self::reader::{Fault, Read, Reader, fault};
use super::{DecodeError, SERVER_OPS, quoted_op};
use crate::codes::ErrorCode;
use crate::frame::{
    Append, Assigned, ClientFrame, ConsumerClosed, Deliver, Enqueue, ErrorFrame, Notice, Publish,
    ReaderClosed, Records, Reply, ReplyBody, Revoked, ServerFrame, SettleFailure, TaskDelivery,
    Welcome,
};
use crate::limits::Limits;
use crate::queues::{DeadLetter, Task};
use crate::streams::{PartitionOffset, ReaderPartition, Record};

/// How many bytes follow the first MessagePack value in `bytes`, or `None` if `bytes` do not
/// start with a whole value. Reads the structure only, without allocating.
pub(crate) fn trailing_bytes(bytes: &[u8]) -> Option<usize> {
    let mut r = Reader::new(bytes);
    r.skip().ok()?;
    Some(r.remaining())
}

/// Decodes a MessagePack frame sent by the hub.
///
/// # Errors
/// A [`DecodeError`] classified as [`super::decode_server`] classifies it:
/// [`ErrorCode::MalformedFrame`] for input that is not one MessagePack value,
/// [`ErrorCode::UnknownOp`] for an operation this version does not know, and
/// [`ErrorCode::InvalidFrame`] for anything else that is not a valid frame.
pub fn decode_server(bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
    let mut r = Reader::new(bytes);
    let fault = match server_frame(&mut r) {
        Ok(frame) if r.at_end() => return Ok(frame),
        Ok(_) => Fault { what: "trailing bytes after the frame", field: "" },
        Err(fault) => fault,
    };
    Err(classify(bytes, fault))
}

/// Decodes the client frames a hub takes most of (appends, enqueues and publishes) without
/// serde; `None` for any other operation and for anything it does not read to the end, which
/// [`super::decode_client`] then decodes (or classifies) through serde. What it decodes, the
/// serde path decodes to the same frame (the tests check this on random and corrupted input).
pub(crate) fn decode_client_hot(bytes: &[u8]) -> Option<ClientFrame> {
    let mut r = Reader::new(bytes);
    if r.map().ok()? != 1 {
        return None;
    }
    let frame = match r.key(ClientFrame::OPS).ok()? {
        "append" => ClientFrame::Append(append(&mut r).ok()?),
        "enqueue" => ClientFrame::Enqueue(enqueue(&mut r).ok()?),
        "publish" => ClientFrame::Publish(publish(&mut r).ok()?),
        _ => return None,
    };
    r.at_end().then_some(frame)
}

fn classify(bytes: &[u8], fault: Fault) -> DecodeError {
    let detail = if fault.field.is_empty() {
        fault.what.to_owned()
    } else {
        format!("{} in `{}`", fault.what, fault.field)
    };
    let mut r = Reader::new(bytes);
    if r.skip().is_err() || !r.at_end() {
        return DecodeError {
            code: ErrorCode::MalformedFrame,
            request_id: None,
            message: format!("not a MessagePack document: {detail}"),
        };
    }
    match loose_frame(&mut Reader::new(bytes)) {
        Ok(Some((op, id))) if SERVER_OPS.contains(&op) => DecodeError {
            code: ErrorCode::InvalidFrame,
            request_id: id,
            message: format!("invalid {op} frame: {detail}"),
        },
        Ok(Some((op, id))) => DecodeError {
            code: ErrorCode::UnknownOp,
            request_id: id,
            message: format!("unknown operation {}", quoted_op(op)),
        },
        Ok(None) | Err(_) => DecodeError {
            code: ErrorCode::InvalidFrame,
            request_id: None,
            message: "a frame is a map with exactly one key, the operation name".to_owned(),
        },
    }
}

/// The operation name of a well-formed document that has the shape of a frame, and the request
/// id if one can be read; the same leniency as the serde path's `LooseFrame`.
fn loose_frame<'a>(r: &mut Reader<'a>) -> Read<Option<(&'a str, Option<u64>)>> {
    if r.map()? != 1 {
        return Ok(None);
    }
    let Some(op) = r.loose_string()? else {
        return Ok(None);
    };
    if r.is_ext()? {
        return fault("an extension value");
    }
    let Ok(entries) = r.map() else {
        return Ok(Some((op, None)));
    };
    let mut id = None;
    for _ in 0..entries {
        if r.loose_id_key()? && id.is_none() {
            id = r.loose_u64()?;
        } else {
            r.skip()?;
        }
    }
    Ok(Some((op, id)))
}

/// Reads the fields of a struct, `names` in declaration order, handing each value to `field`
/// with its name; `field` answers whether it consumed the value, and unknown fields are
/// skipped.
fn fields(
    r: &mut Reader<'_>,
    names: &[&'static str],
    field: &mut dyn FnMut(&mut Reader<'_>, &str) -> Read<bool>,
) -> Read<()> {
    if let Ok(n) = r.array() {
        // serde also reads a struct written as an array of its fields in order.
        if n > names.len() {
            return fault("more elements than the struct has fields");
        }
        for name in &names[..n] {
            field(r, name)?;
        }
        return Ok(());
    }
    for _ in 0..r.map()? {
        let key = r.key(names)?;
        if !field(r, key)? {
            r.skip()?;
        }
    }
    Ok(())
}

/// Stores a field's value; a field given twice is an error, as it is to serde.
fn put<T>(slot: &mut Option<T>, value: Read<T>, name: &'static str) -> Read<bool> {
    let value =
        value.map_err(|f| Fault { field: if f.field.is_empty() { name } else { f.field }, ..f })?;
    if slot.is_some() {
        return Err(Fault { what: "duplicate field", field: name });
    }
    *slot = Some(value);
    Ok(true)
}

fn need<T>(slot: Option<T>, name: &'static str) -> Read<T> {
    slot.ok_or(Fault { what: "missing field", field: name })
}

fn or_default<T: Default>(slot: Option<T>, _: &'static str) -> Read<T> {
    Ok(slot.unwrap_or_default())
}

/// A value that may be nil.
fn opt<'a, T>(
    r: &mut Reader<'a>,
    read: impl FnOnce(&mut Reader<'a>) -> Read<T>,
) -> Read<Option<T>> {
    if r.nil()? { Ok(None) } else { read(r).map(Some) }
}

/// Decodes a struct written as a map of named fields. Each field is `name: read, finish;` where
/// `read` reads its value from `r` and `finish` is `need` (required) or `or_default` (absent
/// means default, as `#[serde(default)]`).
macro_rules! named {
    ($r:ident, $($ty:ident)::+ { $($name:ident: $read:expr, $finish:ident;)* }) => {{
        $(let mut $name = None;)*
        fields($r, &[$(stringify!($name)),*], &mut |$r: &mut Reader<'_>, key: &str| match key {
            $(stringify!($name) => put(&mut $name, $read, stringify!($name)),)*
            _ => Ok(false),
        })?;
        Ok($($ty)::+ { $($name: $finish($name, stringify!($name))?,)* })
    }};
}
#[cfg(feature = "admin")]
pub(super) use named;

/// The variant name of an externally tagged enum whose variants all carry data; `variants` in
/// declaration order, for serde's variant indices.
fn tag<'a>(r: &mut Reader<'a>, variants: &[&'static str]) -> Read<&'a str> {
    if r.map()? != 1 {
        return fault("an enum is a map with exactly one key, the variant name");
    }
    r.key(variants)
}

const REPLY_BODIES: &[&str] = &[
    "published",
    "stream",
    "appended",
    "read_started",
    "streams",
    "described",
    "queue",
    "enqueued",
    "tasks",
    "consuming",
    "extended",
    "redriven",
    "queue_stats",
    "queues",
    "acked_many",
];

fn server_frame(r: &mut Reader<'_>) -> Read<ServerFrame> {
    if r.map()? != 1 {
        return fault("a frame is a map with exactly one key, the operation name");
    }
    Ok(match r.key(SERVER_OPS)? {
        "welcome" => ServerFrame::Welcome(welcome(r)?),
        "ok" => ServerFrame::Ok(reply(r)?),
        "error" => ServerFrame::Error(error_frame(r)?),
        "deliver" => ServerFrame::Deliver(deliver(r)?),
        "notice" => ServerFrame::Notice(notice(r)?),
        "records" => ServerFrame::Records(records(r)?),
        "assigned" => ServerFrame::Assigned(assigned(r)?),
        "revoked" => ServerFrame::Revoked(revoked(r)?),
        "reader_closed" => ServerFrame::ReaderClosed(reader_closed(r)?),
        "task" => ServerFrame::Task(task_delivery(r)?),
        "consumer_closed" => ServerFrame::ConsumerClosed(consumer_closed(r)?),
        _ => return fault("unknown operation"),
    })
}

fn append(r: &mut Reader<'_>) -> Read<Append> {
    named!(r, Append {
        id: r.u64(), need;
        stream: r.string(), need;
        data: r.payload(), need;
        key: opt(r, Reader::string), or_default;
        headers: r.headers(), or_default;
        idempotency_key: opt(r, Reader::string), or_default;
    })
}

fn enqueue(r: &mut Reader<'_>) -> Read<Enqueue> {
    named!(r, Enqueue {
        id: r.u64(), need;
        queue: r.string(), need;
        data: r.payload(), need;
        headers: r.headers(), or_default;
        delay_ms: opt(r, Reader::u64), or_default;
        not_before: opt(r, Reader::u64), or_default;
        key: opt(r, Reader::string), or_default;
        priority: opt(r, Reader::u8), or_default;
        idempotency_key: opt(r, Reader::string), or_default;
    })
}

fn publish(r: &mut Reader<'_>) -> Read<Publish> {
    named!(r, Publish {
        id: r.u64(), need;
        topic: r.string(), need;
        data: r.payload(), need;
        headers: r.headers(), or_default;
    })
}

fn welcome(r: &mut Reader<'_>) -> Read<Welcome> {
    named!(r, Welcome {
        session: r.u64(), need;
        server: r.string(), need;
        protocol: r.u32(), need;
        limits: self::limits(r), need;
    })
}

fn limits(r: &mut Reader<'_>) -> Read<Limits> {
    named!(r, Limits {
        max_frame_bytes: r.u32(), need;
        max_subscriptions: r.u32(), need;
        max_in_flight: r.u32(), need;
        ping_interval_ms: r.u32(), need;
        idle_timeout_ms: r.u32(), need;
        outbox_bytes: r.u64(), need;
    })
}

fn reply(r: &mut Reader<'_>) -> Read<Reply> {
    named!(r, Reply {
        id: r.u64(), need;
        result: opt(r, reply_body), or_default;
    })
}

fn reply_body(r: &mut Reader<'_>) -> Read<ReplyBody> {
    match tag(r, REPLY_BODIES)? {
        "published" => named!(r, ReplyBody::Published { receivers: r.u64(), need; }),
        "appended" => named!(r, ReplyBody::Appended {
            partition: r.u32(), need;
            offset: r.u64(), need;
            timestamp: r.u64(), need;
        }),
        "read_started" => named!(r, ReplyBody::ReadStarted {
            reader: r.u64(), need;
            epoch: r.u64(), need;
            member: opt(r, Reader::string), or_default;
            partitions: r.vec(reader_partition), need;
        }),
        "enqueued" => named!(r, ReplyBody::Enqueued { task: r.u64(), need; }),
        "tasks" => named!(r, ReplyBody::Tasks { tasks: r.vec(task), need; }),
        "consuming" => named!(r, ReplyBody::Consuming { consumer: r.u64(), need; }),
        "extended" => named!(r, ReplyBody::Extended { deadline: r.u64(), need; }),
        "acked_many" => named!(r, ReplyBody::AckedMany { failed: r.vec(settle_failure), need; }),
        #[cfg(feature = "admin")]
        other => admin::reply_body(r, other),
        #[cfg(not(feature = "admin"))]
        _ => fault("an admin reply (switchboard-protocol without `admin`)"),
    }
}

fn error_frame(r: &mut Reader<'_>) -> Read<ErrorFrame> {
    named!(r, ErrorFrame {
        id: opt(r, Reader::u64), or_default;
        code: r.u16(), need;
        name: r.string(), need;
        message: r.string(), need;
        low_watermark: opt(r, Reader::u64), or_default;
        epoch: opt(r, Reader::u64), or_default;
    })
}

fn settle_failure(r: &mut Reader<'_>) -> Read<SettleFailure> {
    named!(r, SettleFailure {
        task: r.u64(), need;
        lease: r.u64(), need;
        code: r.u16(), need;
        name: r.string(), need;
        message: r.string(), need;
    })
}

fn deliver(r: &mut Reader<'_>) -> Read<Deliver> {
    named!(r, Deliver {
        topic: r.string(), need;
        data: r.payload(), need;
        headers: r.headers(), or_default;
    })
}

fn notice(r: &mut Reader<'_>) -> Read<Notice> {
    match tag(r, &["lagged"])? {
        "lagged" => named!(r, Notice::Lagged { topic: r.string(), need; missed: r.u64(), need; }),
        _ => fault("unknown notice"),
    }
}

fn records(r: &mut Reader<'_>) -> Read<Records> {
    named!(r, Records {
        reader: r.u64(), need;
        partition: r.u32(), need;
        records: r.vec(record), need;
    })
}

fn record(r: &mut Reader<'_>) -> Read<Record> {
    named!(r, Record {
        offset: r.u64(), need;
        timestamp: r.u64(), need;
        key: opt(r, Reader::string), or_default;
        headers: r.headers(), or_default;
        data: r.payload(), need;
    })
}

fn assigned(r: &mut Reader<'_>) -> Read<Assigned> {
    named!(r, Assigned {
        reader: r.u64(), need;
        generation: r.u64(), need;
        partitions: r.vec(partition_offset), need;
    })
}

fn partition_offset(r: &mut Reader<'_>) -> Read<PartitionOffset> {
    named!(r, PartitionOffset { partition: r.u32(), need; offset: r.u64(), need; })
}

fn revoked(r: &mut Reader<'_>) -> Read<Revoked> {
    named!(r, Revoked { reader: r.u64(), need; partitions: r.vec(Reader::u32), need; })
}

fn reader_closed(r: &mut Reader<'_>) -> Read<ReaderClosed> {
    named!(r, ReaderClosed { reader: r.u64(), need; error: error_frame(r), need; })
}

fn task_delivery(r: &mut Reader<'_>) -> Read<TaskDelivery> {
    named!(r, TaskDelivery { consumer: r.u64(), need; task: self::task(r), need; })
}

fn consumer_closed(r: &mut Reader<'_>) -> Read<ConsumerClosed> {
    named!(r, ConsumerClosed { consumer: r.u64(), need; error: error_frame(r), need; })
}

fn reader_partition(r: &mut Reader<'_>) -> Read<ReaderPartition> {
    named!(r, ReaderPartition {
        partition: r.u32(), need;
        next: r.u64(), need;
        low: r.u64(), need;
        high: r.u64(), need;
    })
}

fn task(r: &mut Reader<'_>) -> Read<Task> {
    named!(r, Task {
        queue: r.string(), need;
        id: r.u64(), need;
        lease: r.u64(), need;
        deadline: r.u64(), need;
        attempt: r.u32(), need;
        priority: r.u8(), need;
        key: opt(r, Reader::string), or_default;
        headers: r.headers(), or_default;
        data: r.payload(), need;
        enqueued: r.u64(), need;
        dead_letter: opt(r, self::dead_letter), or_default;
    })
}

fn dead_letter(r: &mut Reader<'_>) -> Read<DeadLetter> {
    named!(r, DeadLetter {
        queue: r.string(), need;
        task: r.u64(), need;
        attempts: r.u32(), need;
        failures: r.u32(), need;
        reason: opt(r, Reader::string), or_default;
        enqueued: r.u64(), need;
        died: r.u64(), need;
    })
}

// Compared with the serde path on the frames of its tests, which need `json`.
#[cfg(test)]
#[cfg(feature = "json")]
mod tests;
