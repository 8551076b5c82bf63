//! Stream types shared by frames: records, read positions, retention, descriptions, and the fixed
//! key → partition hash.

use serde::{Deserialize, Serialize};

use crate::payload::{Headers, Payload};

fn headers_empty(h: &Headers) -> bool {
    h.is_empty()
}

/// A stored record as delivered to readers. The hub stores exactly this encoding (MessagePack,
/// named fields), so replay can copy stored bytes into `records` frames without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in its partition, dense from 0.
    pub offset: u64,
    /// Milliseconds since the Unix epoch, assigned by the hub; never decreases within a partition.
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "headers_empty")]
    pub headers: Headers,
    pub data: Payload,
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// The oldest record still stored (the low watermark).
    Earliest,
    /// Only records appended after the read starts (the high watermark).
    #[default]
    Latest,
    /// This offset (in the read's partition, or in every partition if none is named).
    Offset(u64),
    /// The first record with a timestamp at or after this time (ms since the Unix epoch).
    Time(u64),
}

/// A partition and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    pub partition: u32,
    pub offset: u64,
}

/// When a stream removes its oldest records. Any limit left out does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
}

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// After its record is committed and fsynced (the default).
    #[default]
    Immediate,
    /// After its record is committed without fsync; an fsynced commit follows within this many
    /// milliseconds. A crash (of the process or the machine) can lose records acknowledged since
    /// the last fsynced commit.
    Interval(u64),
}

/// A stream's settings, as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub stream: String,
    pub partitions: u32,
    /// Random id fixed at creation; a deleted and recreated stream has a new one.
    pub epoch: u64,
    pub retention: Retention,
    pub durability: Durability,
    /// Creation time, ms since the Unix epoch.
    pub created: u64,
}

/// One partition's watermarks and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub partition: u32,
    /// First offset still stored.
    pub low: u64,
    /// Next offset to be written; the partition holds `high - low` records.
    pub high: u64,
    pub bytes: u64,
    pub records: u64,
}

/// A consumer group's committed offsets and lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: String,
    /// Members currently in the group (connected, or within their session timeout).
    pub members: u32,
    pub partitions: Vec<GroupPartitionInfo>,
}

/// A group's position in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPartitionInfo {
    pub partition: u32,
    /// Next offset the group will read; absent if it never committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    /// Records between the committed offset (or the low watermark) and the high watermark.
    pub lag: u64,
}

/// Everything `describe_stream` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDescription {
    pub info: StreamInfo,
    pub partitions: Vec<PartitionInfo>,
    pub groups: Vec<GroupInfo>,
}

/// A reader's position in one partition when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderPartition {
    pub partition: u32,
    /// First offset this reader will receive.
    pub next: u64,
    pub low: u64,
    pub high: u64,
}

/// The partition a keyed record goes to: FNV-1a (64-bit) of the key's UTF-8 bytes, modulo the
/// partition count. This function is part of the protocol and never changes.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_hash_should_be_fnv1a_and_never_change() {
        // Reference values of FNV-1a 64.
        assert_eq!(
            partition_for_key("", u32::MAX),
            (0xcbf2_9ce4_8422_2325u64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            partition_for_key("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            partition_for_key("foobar", 1_000_000),
            (0x8594_4171_f739_67e8u64 % 1_000_000) as u32
        );
        assert_eq!(partition_for_key("anything", 1), 0);
    }

    #[cfg(feature = "json")]
    #[test]
    fn read_from_should_encode_readably_in_json() {
        assert_eq!(serde_json::to_string(&ReadFrom::Earliest).unwrap(), "\"earliest\"");
        assert_eq!(serde_json::to_string(&ReadFrom::Offset(5)).unwrap(), "{\"offset\":5}");
        assert_eq!(serde_json::from_str::<ReadFrom>("{\"time\":9}").unwrap(), ReadFrom::Time(9));
        assert_eq!(serde_json::to_string(&Durability::Interval(50)).unwrap(), "{\"interval\":50}");
    }
}
