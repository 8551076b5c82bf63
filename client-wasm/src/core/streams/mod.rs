//! Streams: creating, describing and deleting them, appending with idempotency keys, and readers
//! that resume exactly where they were after a reconnect.
//!
//! # Layout
//! - this file: the options types and the plain requests (`create_stream`, `list_streams`,
//!   `describe_stream`, `delete_stream`, `commit`, `append`).
//! - `reader`: one reader's positions, buffer and credit window.
//! - `table`: every reader, by local id and by the hub's id on the current session.
//! - `reading`: the core's reader operations and what the hub sends readers.
//!
//! # What a lost connection does to each request
//! - `append` is resent with the same id and idempotency key: the hub answers a repeated key
//!   with the original position and writes nothing, so a retry can never add a second record.
//! - `create_stream`, `list_streams`, `describe_stream` are resent: creating a stream that exists
//!   with the same options is a no-op, and the others only read.
//! - `commit` is resent: committing the same offset under the same generation twice is the same
//!   as once, and a generation that went stale meanwhile is refused with `stale_generation`,
//!   which is the truth.
//! - `delete_stream` fails with `disconnected`: the first attempt may have deleted the stream,
//!   and a resend would then report `not_found` for a delete that worked, or — if the stream was
//!   recreated in between — delete the new one.
//! - `read`, `credit` and `close_reader` name readers of the lost session; readers are restored
//!   as a whole after the next `welcome` instead (see `reading`).

mod reader;
mod reading;
mod table;

use switchboard_protocol::frame::{
    Append, ClientFrame, Commit, CreateStream, ListStreams, StreamRef,
};
use switchboard_protocol::names::validate_resource;
use switchboard_protocol::payload::{Headers, Payload};
use switchboard_protocol::streams::{Durability, ReadFrom, Retention};

pub(crate) use table::Readers;

use super::requests::OnDisconnect;
use super::{ClientCore, ClientError, OpId};

/// Credit window of a reader when the application does not choose one.
pub const DEFAULT_CREDIT: u32 = 256;

/// Settings of a new stream; anything left out takes the hub's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Number of partitions (hub default: 1).
    pub partitions: Option<u32>,
    pub retention: Option<Retention>,
    pub durability: Option<Durability>,
}

/// How to append one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// Records with a key go to the partition `partition_for_key(key, partitions)`, so one key's
    /// records keep their order.
    pub key: Option<String>,
    pub headers: Headers,
    /// Identifies the append for deduplication. When absent the core makes a random one, so an
    /// append resent after a reconnect is never written twice. Give your own to make retries
    /// across a timeout, a restart or another client safe too.
    pub idempotency_key: Option<String>,
}

/// Where an appended record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    pub offset: u64,
    pub timestamp: u64,
}

/// How to read a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Read only this partition; every partition if absent. Ignored for group reads.
    pub partition: Option<u32>,
    /// Where to start (for a group: in partitions the group never committed).
    pub from: ReadFrom,
    /// Read as a member of this consumer group: the hub assigns partitions.
    pub group: Option<String>,
    /// For group reads: the hub commits records as the application consumes them.
    pub auto_commit: bool,
    /// Records the hub may send ahead of the application ([`DEFAULT_CREDIT`]). Also the most
    /// records the application buffer ever holds for this reader.
    pub credit: u32,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            partition: None,
            from: ReadFrom::default(),
            group: None,
            auto_commit: false,
            credit: DEFAULT_CREDIT,
        }
    }
}

impl ClientCore {
    /// Creates a stream. Completes with [`ReplyBody::Stream`]; creating an existing stream with
    /// the same options succeeds, with other options fails with `already_exists`.
    ///
    /// [`ReplyBody::Stream`]: switchboard_protocol::frame::ReplyBody::Stream
    pub fn create_stream(&mut self, now_ms: u64, stream: &str, options: StreamOptions) -> OpId {
        let op = self.new_op();
        let Some(stream) = self.stream_name(op, stream) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::CreateStream(CreateStream {
                id,
                stream,
                partitions: options.partitions,
                retention: options.retention,
                durability: options.durability,
            })
        });
        op
    }

    /// Lists every stream. Completes with [`ReplyBody::Streams`].
    ///
    /// [`ReplyBody::Streams`]: switchboard_protocol::frame::ReplyBody::Streams
    pub fn list_streams(&mut self, now_ms: u64) -> OpId {
        let op = self.new_op();
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::ListStreams(ListStreams { id })
        });
        op
    }

    /// Describes a stream. Completes with [`ReplyBody::Described`]; fails with `not_found`.
    ///
    /// [`ReplyBody::Described`]: switchboard_protocol::frame::ReplyBody::Described
    pub fn describe_stream(&mut self, now_ms: u64, stream: &str) -> OpId {
        let op = self.new_op();
        let Some(stream) = self.stream_name(op, stream) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::DescribeStream(StreamRef { id, stream })
        });
        op
    }

    /// Deletes a stream and everything in it. Completes with `Ok(None)`; fails with `not_found`,
    /// and with `disconnected` when the connection dropped before the answer (it is never
    /// resent; see the module documentation).
    pub fn delete_stream(&mut self, now_ms: u64, stream: &str) -> OpId {
        let op = self.new_op();
        let Some(stream) = self.stream_name(op, stream) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Fail, |id| {
            ClientFrame::DeleteStream(StreamRef { id, stream })
        });
        op
    }

    /// Commits `offset` (the next offset to read) for `group` in `partition`, under the
    /// assignment `generation`. Completes with `Ok(None)`; fails with `stale_generation` when the
    /// partition was assigned again since. [`ClientCore::commit_record`] fills in the details
    /// for a record a reader delivered.
    pub fn commit(
        &mut self,
        now_ms: u64,
        stream: &str,
        group: &str,
        partition: u32,
        offset: u64,
        generation: u64,
    ) -> OpId {
        let op = self.new_op();
        let Some(stream) = self.stream_name(op, stream) else {
            return op;
        };
        let group = group.to_owned();
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::Commit(Commit { id, stream, group, partition, offset, generation })
        });
        op
    }

    /// Appends a record, creating the stream with defaults if needed. Completes with
    /// [`ReplyBody::Appended`] once the record is durable.
    ///
    /// The append carries `options.idempotency_key` or, without one, a fresh random key; if the
    /// connection drops before the answer it is resent with the same id and key, so the hub
    /// writes it at most once. It fails with `invalid_name`, `frame_too_large`, `backlogged`,
    /// `timeout` (it may still have been written: retry with your own key to be sure),
    /// `closed`, `invalid_argument` (no key given and the transport supplied no entropy), or
    /// the hub's error.
    ///
    /// [`ReplyBody::Appended`]: switchboard_protocol::frame::ReplyBody::Appended
    pub fn append(
        &mut self,
        now_ms: u64,
        stream: &str,
        data: Payload,
        options: AppendOptions,
    ) -> OpId {
        let op = self.new_op();
        let Some(stream) = self.stream_name(op, stream) else {
            return op;
        };
        let Some(key) = self.idempotency_key(now_ms, op, options.idempotency_key) else {
            return op;
        };
        self.submit(now_ms, op, OnDisconnect::Resend, |id| {
            ClientFrame::Append(Append {
                id,
                stream,
                data,
                key: options.key,
                headers: options.headers,
                idempotency_key: Some(key),
            })
        });
        op
    }

    /// `stream` as an owned name, or `None` after failing `op` with `invalid_name`.
    fn stream_name(&mut self, op: OpId, stream: &str) -> Option<String> {
        match validate_resource("stream", stream) {
            Ok(()) => Some(stream.to_owned()),
            Err(e) => {
                self.complete(op, Err(ClientError::invalid_name(&e)));
                None
            }
        }
    }
}
