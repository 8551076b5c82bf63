//! Opaque message bodies and string headers.
//!
//! In MessagePack a payload is a `bin` value. JSON has no bytes, so in JSON a payload that is
//! valid UTF-8 is written as a plain string and any other payload as `{"base64": "..."}`; when
//! reading JSON, a string, an array of byte numbers and the base64 object are all accepted.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// String headers attached to a message: names to values, each name once, kept sorted by name
/// so encodings are deterministic. Encoded as a map, like a `BTreeMap<String, String>`.
///
/// A message has a handful of headers, so they are a sorted vector: lookups are a binary
/// search, and the type costs the browser client far less code than a B-tree.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// Sets `name` to `value`; answers the value it replaced.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// Names and values, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &String)> {
        self.0.iter().map(|(n, v)| (n, v))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.insert(name.into(), value.into());
        }
        headers
    }
}

impl<N: Into<String>, V: Into<String>, const K: usize> From<[(N, V); K]> for Headers {
    fn from(pairs: [(N, V); K]) -> Self {
        pairs.into_iter().collect()
    }
}

impl IntoIterator for Headers {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> Self::Item,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, v)| (n, v))
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeadersVisitor)
    }
}

struct HeadersVisitor;

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = Headers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings to strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
        let mut headers = Headers::new();
        // A repeated name keeps its last value, as a map type would.
        while let Some((name, value)) = map.next_entry::<String, String>()? {
            headers.insert(name, value);
        }
        Ok(headers)
    }
}

/// An opaque message body. Cloning shares the bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Payload(pub Bytes);

impl Payload {
    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if s.len() <= 64 => write!(f, "Payload({s:?})"),
            _ => write!(f, "Payload({} bytes)", self.0.len()),
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload(Bytes::from(v))
    }
}

impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Self {
        Payload(Bytes::copy_from_slice(v))
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Payload {
    fn from(s: String) -> Self {
        Payload(Bytes::from(s.into_bytes()))
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return serializer.serialize_bytes(&self.0);
        }
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("base64", &BASE64.encode(&self.0))?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(PayloadVisitor)
        } else {
            deserializer.deserialize_byte_buf(PayloadVisitor)
        }
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes, a string, an array of bytes or {\"base64\": string}")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
        Ok(Payload(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
        Ok(Payload(Bytes::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Payload, E> {
        Ok(Payload(Bytes::copy_from_slice(v.as_bytes())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Payload, E> {
        Ok(Payload(Bytes::from(v.into_bytes())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(Payload(Bytes::from(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut out = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "base64" && out.is_none() {
                let text: String = map.next_value()?;
                let bytes = BASE64
                    .decode(text.as_bytes())
                    .map_err(|e| de::Error::custom(format_args!("invalid base64 payload: {e}")))?;
                out = Some(bytes);
            } else {
                return Err(de::Error::unknown_field(&key, &["base64"]));
            }
        }
        out.map(|b| Payload(Bytes::from(b))).ok_or_else(|| de::Error::missing_field("base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "json")]
    #[test]
    fn utf8_payload_should_be_a_json_string() {
        let p = Payload::from("héllo");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"héllo\"");
        assert_eq!(serde_json::from_str::<Payload>("\"héllo\"").unwrap(), p);
    }

    #[cfg(feature = "json")]
    #[test]
    fn binary_payload_should_be_base64_in_json() {
        let p = Payload::from(vec![0xff, 0x00, 0x01]);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"base64":"/wAB"}"#);
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), p);
        assert_eq!(serde_json::from_str::<Payload>("[255,0,1]").unwrap(), p);
    }

    #[test]
    fn payload_should_be_bin_in_msgpack() {
        let p = Payload::from(vec![0xff, 0x00, 0x01]);
        let bytes = rmp_serde::to_vec_named(&p).unwrap();
        assert_eq!(bytes, vec![0xc4, 3, 0xff, 0x00, 0x01]);
        assert_eq!(rmp_serde::from_slice::<Payload>(&bytes).unwrap(), p);
    }

    #[cfg(feature = "json")]
    #[test]
    fn bad_json_payloads_should_be_refused() {
        assert!(serde_json::from_str::<Payload>(r#"{"base64":"***"}"#).is_err());
        assert!(serde_json::from_str::<Payload>(r#"{"hex":"00"}"#).is_err());
        assert!(serde_json::from_str::<Payload>("[256]").is_err());
        assert!(serde_json::from_str::<Payload>("12").is_err());
    }

    #[test]
    fn headers_should_encode_like_a_sorted_map_and_keep_the_last_value_of_a_name() {
        use std::collections::BTreeMap;
        let pairs = [("b", "2"), ("a", "1"), ("c", "3"), ("a", "4")];
        let ours: Headers = pairs.into_iter().collect();
        let model: BTreeMap<String, String> =
            pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(ours.len(), 3);
        assert_eq!(ours.get("a").map(String::as_str), Some("4"));
        assert!(ours.iter().eq(model.iter()));
        let bytes = rmp_serde::to_vec_named(&ours).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec_named(&model).unwrap());
        assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&model).unwrap());
        // A repeated name on the wire keeps its last value, as a map type does.
        let repeated = br#"{"x":"1","x":"2"}"#;
        assert_eq!(
            serde_json::from_slice::<Headers>(repeated).unwrap(),
            Headers::from([("x", "2")])
        );
        assert_eq!(rmp_serde::from_slice::<Headers>(&bytes).unwrap(), ours);
    }
}
