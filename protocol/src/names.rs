//! Names of topics (and later streams and queues) and subscription patterns.
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes of dot-separated segments. Each segment is non-empty
//! and made of ASCII letters, digits, `_`, `-` and `:`; at most [`MAX_SEGMENTS`] segments.
//! A pattern is a name in which a segment may be `*` (exactly one segment) and the last segment
//! may be `>` (one or more trailing segments), as in NATS subjects.

use std::fmt;

/// Longest name or pattern, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Most segments in a name or pattern.
pub const MAX_SEGMENTS: usize = 32;

/// Why a name or pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// The kind of name: "topic", "pattern", "stream", "queue".
    pub kind: &'static str,
    /// What rule it breaks.
    pub reason: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} name: {}", self.kind, self.reason)
    }
}

impl std::error::Error for NameError {}

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b':')
}

fn check(kind: &'static str, name: &str, wildcards: bool) -> Result<(), NameError> {
    let err = |reason: String| NameError { kind, reason };
    if name.is_empty() {
        return Err(err("must not be empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(err(format!("longer than {MAX_NAME_LEN} bytes")));
    }
    let segments = name.split('.').count();
    if segments > MAX_SEGMENTS {
        return Err(err(format!("more than {MAX_SEGMENTS} segments")));
    }
    for (i, segment) in name.split('.').enumerate() {
        if segment.is_empty() {
            return Err(err(format!("segment {} is empty", i + 1)));
        }
        if wildcards && segment == "*" {
            continue;
        }
        if wildcards && segment == ">" {
            if i + 1 != segments {
                return Err(err("'>' may only be the last segment".into()));
            }
            continue;
        }
        if let Some(bad) = segment.bytes().find(|&c| !valid_char(c)) {
            let shown = if bad.is_ascii_graphic() || bad == b' ' {
                match bad {
                    b'\'' | b'\\' => format!("'\\{}'", bad as char),
                    _ => format!("'{}'", bad as char),
                }
            } else {
                format!("byte 0x{bad:02x}")
            };
            let hint = if matches!(bad, b'*' | b'>') && !wildcards {
                " (wildcards are only allowed in subscription patterns)"
            } else {
                ""
            };
            return Err(err(format!(
                "segment {} contains {shown}; allowed are ASCII letters, digits, '_', '-', ':'{hint}",
                i + 1
            )));
        }
    }
    Ok(())
}

/// Checks a topic name (no wildcards).
///
/// # Errors
/// A [`NameError`] saying which rule is broken.
pub fn validate_topic(name: &str) -> Result<(), NameError> {
    check("topic", name, false)
}

/// Checks a subscription pattern (`*` and a trailing `>` allowed).
///
/// # Errors
/// A [`NameError`] saying which rule is broken.
pub fn validate_pattern(pattern: &str) -> Result<(), NameError> {
    check("pattern", pattern, true)
}

/// Checks the name of a durable resource (a stream or a queue): the topic rules.
///
/// # Errors
/// A [`NameError`] saying which rule is broken.
pub fn validate_resource(kind: &'static str, name: &str) -> Result<(), NameError> {
    check(kind, name, false)
}

/// Whether `topic` matches `pattern`. Both are assumed valid.
pub fn pattern_matches(pattern: &str, topic: &str) -> bool {
    let mut p = pattern.split('.');
    let mut t = topic.split('.');
    loop {
        match (p.next(), t.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(ps), Some(ts)) if ps == ts => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_topics_should_pass() {
        for t in ["a", "prices.btc", "a-b_c:d.e", &"x".repeat(255)] {
            assert_eq!(validate_topic(t), Ok(()), "{t}");
        }
    }

    #[test]
    fn invalid_topics_should_say_why() {
        let cases = [
            ("", "empty"),
            ("a..b", "segment 2 is empty"),
            (".a", "segment 1 is empty"),
            ("a.", "segment 2 is empty"),
            ("a b", "' '"),
            ("a.*", "wildcards"),
            ("a.>", "wildcards"),
            ("é", "0xc3"),
        ];
        for (t, why) in cases {
            let e = validate_topic(t).expect_err(t);
            assert!(e.to_string().contains(why), "{t}: {e}");
        }
        assert!(validate_topic(&"x".repeat(256)).is_err());
        assert!(validate_topic(&vec!["a"; 33].join(".")).is_err());
        assert!(validate_topic(&vec!["a"; 32].join(".")).is_ok());
    }

    #[test]
    fn patterns_should_allow_wildcards_only_as_whole_segments() {
        for p in ["*", ">", "a.*", "a.>", "*.b.>", "a.*.c"] {
            assert_eq!(validate_pattern(p), Ok(()), "{p}");
        }
        for p in ["a.>.b", "a*", "a.b>", ">.a", "a..*"] {
            assert!(validate_pattern(p).is_err(), "{p}");
        }
    }

    #[test]
    fn matching_should_follow_nats_rules() {
        let yes = [
            ("a.b", "a.b"),
            ("a.*", "a.b"),
            ("*.b", "a.b"),
            ("a.>", "a.b"),
            ("a.>", "a.b.c.d"),
            (">", "a"),
            ("*.*.c", "a.b.c"),
        ];
        let no = [
            ("a.b", "a.c"),
            ("a.*", "a"),
            ("a.*", "a.b.c"),
            ("a.>", "a"),
            ("a.b", "a.b.c"),
            ("a.b.c", "a.b"),
            ("*", "a.b"),
            ("ab.>", "a.b"),
        ];
        for (p, t) in yes {
            assert!(pattern_matches(p, t), "{p} should match {t}");
        }
        for (p, t) in no {
            assert!(!pattern_matches(p, t), "{p} should not match {t}");
        }
    }
}
