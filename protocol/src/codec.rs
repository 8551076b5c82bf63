//! Encoding and decoding frames.
//!
//! Binary WebSocket messages carry MessagePack with named fields (`rmp_serde::to_vec_named`);
//! text messages carry JSON when the `json` feature (on by default) is enabled; without it JSON is
//! refused, which keeps serde_json out of the browser client. Decoding never panics: input that
//! cannot be read is classified into a [`DecodeError`] whose [`ErrorCode`] a hub sends back,
//! together with the request id when one could still be read from the frame. [`lean`] decodes
//! hub frames without serde, for the client.

use std::fmt;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::codes::ErrorCode;
use crate::frame::{ClientFrame, ServerFrame};

pub mod lean;

/// The encoding of a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// MessagePack with named fields, in binary messages.
    MsgPack,
    /// JSON, in text messages.
    Json,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    /// `malformed_frame`, `unknown_op` or `invalid_frame`.
    pub code: ErrorCode,
    /// The request id, when the frame had a readable one.
    pub request_id: Option<u64>,
    /// What was wrong, for humans.
    pub message: String,
}

/// A value could not be encoded. Frames defined in this crate always encode; this only happens
/// for payload types a caller defines.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode frame: {0}")]
pub struct EncodeError(String);

/// Room reserved up front for an encoding: most frames fit, so they take one allocation instead
/// of growing from a few bytes by doubling.
const ENCODE_CAPACITY: usize = 128;

/// Encodes any frame in `format`.
///
/// # Errors
/// Only if a `Serialize` implementation fails, which the frames of this crate never do.
pub fn encode<T: Serialize>(value: &T, format: Format) -> Result<Vec<u8>, EncodeError> {
    match format {
        Format::MsgPack => {
            let mut out = Vec::with_capacity(ENCODE_CAPACITY);
            rmp_serde::encode::write_named(&mut out, value)
                .map_err(|e| EncodeError(e.to_string()))?;
            Ok(out)
        }
        #[cfg(feature = "json")]
        Format::Json => serde_json::to_vec(value).map_err(|e| EncodeError(e.to_string())),
        #[cfg(not(feature = "json"))]
        Format::Json => Err(EncodeError(NO_JSON.to_owned())),
    }
}

/// Encodes a `records` frame in MessagePack around records that are each already encoded
/// with [`encode`] in MessagePack (as the hub stores them), without decoding them. The result is
/// byte-for-byte what [`encode`] makes of the equivalent [`crate::Records`] frame.
pub fn encode_records_msgpack<R: AsRef<[u8]>>(
    reader: u64,
    partition: u32,
    records: &[R],
) -> Vec<u8> {
    let body: usize = records.iter().map(|r| r.as_ref().len()).sum();
    let mut out = Vec::with_capacity(body + 48);
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(&mut out, 1);
    let _ = rmp::encode::write_str(&mut out, "records");
    let _ = rmp::encode::write_map_len(&mut out, 3);
    let _ = rmp::encode::write_str(&mut out, "reader");
    let _ = rmp::encode::write_uint(&mut out, reader);
    let _ = rmp::encode::write_str(&mut out, "partition");
    let _ = rmp::encode::write_uint(&mut out, u64::from(partition));
    let _ = rmp::encode::write_str(&mut out, "records");
    let _ = rmp::encode::write_array_len(&mut out, records.len() as u32);
    for record in records {
        out.extend_from_slice(record.as_ref());
    }
    out
}

/// Decodes a frame sent by a client.
///
/// # Errors
/// A [`DecodeError`] classifying the problem; see [`ErrorCode::MalformedFrame`],
/// [`ErrorCode::UnknownOp`] and [`ErrorCode::InvalidFrame`].
pub fn decode_client(bytes: &[u8], format: Format) -> Result<ClientFrame, DecodeError> {
    if format == Format::MsgPack
        && let Some(frame) = lean::decode_client_hot(bytes)
    {
        return Ok(frame);
    }
    decode_frame(bytes, format, ClientFrame::OPS)
}

/// Decodes a frame sent by the hub.
///
/// # Errors
/// As [`decode_client`].
pub fn decode_server(bytes: &[u8], format: Format) -> Result<ServerFrame, DecodeError> {
    decode_frame(bytes, format, SERVER_OPS)
}

/// Decodes a frame sent by the hub as a client that cares about code size should: MessagePack
/// with [`lean::decode_server`], JSON with [`decode_server`] when the `json` feature is enabled
/// (and refused as malformed without it). Never reaches serde's MessagePack decoding.
///
/// # Errors
/// As [`decode_server`].
pub fn decode_server_lean(bytes: &[u8], format: Format) -> Result<ServerFrame, DecodeError> {
    match format {
        Format::MsgPack => lean::decode_server(bytes),
        #[cfg(feature = "json")]
        Format::Json => decode_server(bytes, format),
        #[cfg(not(feature = "json"))]
        Format::Json => Err(DecodeError {
            code: ErrorCode::MalformedFrame,
            request_id: None,
            message: NO_JSON.to_owned(),
        }),
    }
}

#[cfg(not(feature = "json"))]
const NO_JSON: &str = "JSON frames are not supported (switchboard-protocol without `json`)";

const SERVER_OPS: &[&str] = &[
    "welcome",
    "ok",
    "error",
    "deliver",
    "notice",
    "records",
    "assigned",
    "revoked",
    "reader_closed",
    "task",
    "consumer_closed",
];

fn decode_frame<T: DeserializeOwned>(
    bytes: &[u8],
    format: Format,
    ops: &[&str],
) -> Result<T, DecodeError> {
    match decode_exact::<T>(bytes, format) {
        Ok(frame) => Ok(frame),
        Err(detail) => Err(classify(bytes, format, ops, detail)),
    }
}

/// Decodes exactly one value: trailing bytes are an error.
fn decode_exact<T: DeserializeOwned>(bytes: &[u8], format: Format) -> Result<T, String> {
    match format {
        #[cfg(feature = "json")]
        Format::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        #[cfg(not(feature = "json"))]
        Format::Json => Err(NO_JSON.to_owned()),
        Format::MsgPack => {
            // Decoding from the slice lets strings and payloads be copied once, straight from
            // the frame (a reader would copy each into a buffer first).
            let value: T = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
            match lean::trailing_bytes(bytes) {
                Some(0) => Ok(value),
                Some(n) => Err(format!("{n} trailing bytes after the frame")),
                None => Err("not one MessagePack value".to_owned()),
            }
        }
    }
}

fn classify(bytes: &[u8], format: Format, ops: &[&str], detail: String) -> DecodeError {
    if decode_exact::<IgnoredAny>(bytes, format).is_err() {
        let what = match format {
            Format::Json => "JSON",
            Format::MsgPack => "MessagePack",
        };
        return DecodeError {
            code: ErrorCode::MalformedFrame,
            request_id: None,
            message: format!("not a {what} document: {detail}"),
        };
    }
    match decode_exact::<LooseFrame>(bytes, format) {
        Err(_) => DecodeError {
            code: ErrorCode::InvalidFrame,
            request_id: None,
            message: "a frame is a map with exactly one key, the operation name".to_owned(),
        },
        Ok(loose) if !ops.contains(&loose.op.as_str()) => DecodeError {
            code: ErrorCode::UnknownOp,
            request_id: loose.id,
            message: format!("unknown operation {}", quoted_op(&loose.op)),
        },
        Ok(loose) => DecodeError {
            code: ErrorCode::InvalidFrame,
            request_id: loose.id,
            message: format!("invalid {} frame: {detail}", loose.op),
        },
    }
}

/// An operation name for an error message: its first 64 characters in double quotes, with
/// quotes, backslashes and control characters escaped. Written out rather than with `{:?}`, so
/// the browser build needs no Unicode printability tables.
fn quoted_op(op: &str) -> String {
    let mut out = String::from("\"");
    for c in truncate(op, 64).chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The shape of any frame, read leniently: the operation name and, if readable, the request id.
struct LooseFrame {
    op: String,
    id: Option<u64>,
}

impl<'de> Deserialize<'de> for LooseFrame {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseFrame;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map with one operation key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseFrame, A::Error> {
                let Some(op) = map.next_key::<String>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                let body: LooseBody = map.next_value()?;
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(LooseFrame { op, id: body.0 })
            }
        }
        d.deserialize_map(V)
    }
}

/// Implements the scalar `visit_*` methods of a visitor that accepts any value, answering `$none`.
macro_rules! accept_scalars {
    ($ty:ty, $none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$ty, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$ty, E> {
            Ok($none)
        }
        fn visit_str<E>(self, _: &str) -> Result<$ty, E> {
            Ok($none)
        }
        fn visit_bytes<E>(self, _: &[u8]) -> Result<$ty, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<$ty, E> {
            Ok($none)
        }
        fn visit_none<E>(self) -> Result<$ty, E> {
            Ok($none)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<$ty, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

/// Any value; if it is a map with an unsigned integer `id`, that id.
struct LooseBody(Option<u64>);

impl<'de> Deserialize<'de> for LooseBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseBody, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<LooseKey>()? {
                    if key.0 && id.is_none() {
                        id = map.next_value::<LooseU64>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(LooseBody(id))
            }
            fn visit_i64<E>(self, _: i64) -> Result<LooseBody, E> {
                Ok(LooseBody(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<LooseBody, E> {
                Ok(LooseBody(None))
            }
            accept_scalars!(LooseBody, LooseBody(None));
        }
        d.deserialize_any(V)
    }
}

/// A map key; `true` when it is the string `"id"`.
struct LooseKey(bool);

impl<'de> Deserialize<'de> for LooseKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_str<E>(self, v: &str) -> Result<LooseKey, E> {
                Ok(LooseKey(v == "id"))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<LooseKey, E> {
                Ok(LooseKey(v == b"id"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<LooseKey, E> {
                Ok(LooseKey(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<LooseKey, E> {
                Ok(LooseKey(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// An unsigned integer if the value is one; any other value is skipped.
struct LooseU64(Option<u64>);

impl<'de> Deserialize<'de> for LooseU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseU64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<LooseU64, E> {
                Ok(LooseU64(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<LooseU64, E> {
                Ok(LooseU64(u64::try_from(v).ok()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LooseU64, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LooseU64(None))
            }
            accept_scalars!(LooseU64, LooseU64(None));
        }
        d.deserialize_any(V)
    }
}

// The round trips cover both formats, so they need `json`.
#[cfg(test)]
#[cfg(feature = "json")]
mod tests;
