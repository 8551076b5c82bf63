//! The replies only administrative requests get: stream and queue descriptions, lists and
//! stats. Behind the `admin` feature, so a client that never asks for them (the browser
//! package) does not carry their decoders.

use super::reader::{Read, Reader, fault};
use super::{fields, named, need, opt, or_default, put};
use crate::frame::ReplyBody;
use crate::queues::{QueueInfo, QueueStats};
use crate::streams::{
    Durability, GroupInfo, GroupPartitionInfo, PartitionInfo, Retention, StreamDescription,
    StreamInfo,
};

/// The reply bodies of administrative requests, by variant name.
pub(super) fn reply_body(r: &mut Reader<'_>, variant: &str) -> Read<ReplyBody> {
    match variant {
        "stream" => stream_info(r).map(ReplyBody::Stream),
        "streams" => named!(r, ReplyBody::Streams { streams: r.vec(stream_info), need; }),
        "described" => stream_description(r).map(ReplyBody::Described),
        "queue" => queue_info(r).map(ReplyBody::Queue),
        "redriven" => named!(r, ReplyBody::Redriven { count: r.u64(), need; }),
        "queue_stats" => queue_stats(r).map(ReplyBody::QueueStats),
        "queues" => named!(r, ReplyBody::Queues { queues: r.vec(queue_info), need; }),
        _ => fault("unknown reply"),
    }
}

fn stream_info(r: &mut Reader<'_>) -> Read<StreamInfo> {
    named!(r, StreamInfo {
        stream: r.string(), need;
        partitions: r.u32(), need;
        epoch: r.u64(), need;
        retention: self::retention(r), need;
        durability: self::durability(r), need;
        created: r.u64(), need;
    })
}

fn retention(r: &mut Reader<'_>) -> Read<Retention> {
    named!(r, Retention {
        max_age_ms: opt(r, Reader::u64), or_default;
        max_bytes: opt(r, Reader::u64), or_default;
        max_records: opt(r, Reader::u64), or_default;
    })
}

/// A unit variant is written as its name alone, a variant with data as a one-entry map.
fn durability(r: &mut Reader<'_>) -> Read<Durability> {
    let Ok(entries) = r.map() else {
        return match r.str()? {
            "immediate" => Ok(Durability::Immediate),
            _ => fault("unknown durability"),
        };
    };
    match (entries, r.key(&["immediate", "interval"])?) {
        (1, "interval") => r.u64().map(Durability::Interval),
        _ => fault("unknown durability"),
    }
}

fn stream_description(r: &mut Reader<'_>) -> Read<StreamDescription> {
    named!(r, StreamDescription {
        info: stream_info(r), need;
        partitions: r.vec(partition_info), need;
        groups: r.vec(group_info), need;
    })
}

fn partition_info(r: &mut Reader<'_>) -> Read<PartitionInfo> {
    named!(r, PartitionInfo {
        partition: r.u32(), need;
        low: r.u64(), need;
        high: r.u64(), need;
        bytes: r.u64(), need;
        records: r.u64(), need;
    })
}

fn group_info(r: &mut Reader<'_>) -> Read<GroupInfo> {
    named!(r, GroupInfo {
        group: r.string(), need;
        members: r.u32(), need;
        partitions: r.vec(group_partition_info), need;
    })
}

fn group_partition_info(r: &mut Reader<'_>) -> Read<GroupPartitionInfo> {
    named!(r, GroupPartitionInfo {
        partition: r.u32(), need;
        committed: opt(r, Reader::u64), or_default;
        lag: r.u64(), need;
    })
}

fn queue_info(r: &mut Reader<'_>) -> Read<QueueInfo> {
    named!(r, QueueInfo {
        queue: r.string(), need;
        lease_ms: r.u64(), need;
        max_lease_ms: r.u64(), need;
        max_attempts: r.u32(), need;
        backoff_ms: r.vec(Reader::u64), need;
        dead_letter: opt(r, Reader::string), or_default;
        dedup_window_ms: r.u64(), need;
        max_length: r.u64(), need;
        ordered_by_key: r.bool(), need;
        created: r.u64(), need;
    })
}

fn queue_stats(r: &mut Reader<'_>) -> Read<QueueStats> {
    named!(r, QueueStats {
        queue: r.string(), need;
        scheduled: r.u64(), need;
        available: r.u64(), need;
        leased: r.u64(), need;
        dead: r.u64(), need;
        redeliveries: r.u64(), need;
        oldest_available_ms: r.u64(), need;
        acks_per_sec: r.f64(), need;
        consumers: r.u64(), need;
    })
}
