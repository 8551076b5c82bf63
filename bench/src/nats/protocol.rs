//! The NATS text protocol as the benchmark speaks it: the operations it sends, and a parser for
//! what the server sends back, independent of any socket so that it can be tested on bytes.

use super::NatsError;

/// The longest control line accepted (nats-server's own `max_control_line` default).
const MAX_CONTROL_LINE: usize = 4096;

/// A message the server delivered (`MSG`, or `HMSG` with headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub subject: String,
    pub sid: u64,
    pub reply: Option<String>,
    /// The status of an `HMSG` whose header block starts with one (`NATS/1.0 408 Request
    /// Timeout`): the server's way of ending a pull request or saying that nobody listens.
    pub status: Option<Status>,
    pub payload: Vec<u8>,
}

/// A status carried in a message's header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: u16,
    pub description: String,
}

/// One protocol operation from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Msg(Msg),
    Ping,
    Pong,
    Ok,
    /// `-ERR 'text'`, with the quotes removed.
    Err(String),
    Info,
}

/// What the benchmark sends first: no echo of its own `+OK`s, headers on (JetStream answers
/// with status headers), and an immediate 503 instead of silence for a request nobody serves.
pub const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":true,\"no_responders\":true}\r\nPING\r\n";

/// `PUB subject [reply] n` or, with headers, `HPUB subject [reply] h n`, with its payload.
pub fn publish(
    subject: &str,
    reply: Option<&str>,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> Vec<u8> {
    let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
    let mut frame = Vec::with_capacity(subject.len() + payload.len() + 64);
    if headers.is_empty() {
        frame.extend_from_slice(format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes());
    } else {
        let mut block = String::from("NATS/1.0\r\n");
        for (name, value) in headers {
            block.push_str(&format!("{name}: {value}\r\n"));
        }
        block.push_str("\r\n");
        let total = block.len() + payload.len();
        frame.extend_from_slice(
            format!("HPUB {subject}{reply} {} {total}\r\n", block.len()).as_bytes(),
        );
        frame.extend_from_slice(block.as_bytes());
    }
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\n");
    frame
}

/// `SUB subject sid`.
pub fn subscribe(subject: &str, sid: u64) -> Vec<u8> {
    format!("SUB {subject} {sid}\r\n").into_bytes()
}

/// `UNSUB sid`.
pub fn unsubscribe(sid: u64) -> Vec<u8> {
    format!("UNSUB {sid}\r\n").into_bytes()
}

/// Splits the server's byte stream into operations. Bytes are pushed as they arrive (a
/// WebSocket message may hold several operations, or part of one); parsing resumes where it
/// stopped, so `next` may be called until it returns `None` after every push.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: Vec<u8>,
    /// Where the unparsed bytes start; consumed bytes are dropped on the next push, not per
    /// operation, so a message of many operations is not shifted once per operation.
    start: usize,
}

impl Parser {
    /// Appends bytes received from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete operation, or `None` until more bytes arrive.
    ///
    /// # Errors
    /// [`NatsError::Protocol`] for a line the benchmark cannot make sense of; the connection
    /// is unusable after that.
    pub fn next(&mut self) -> Result<Option<Incoming>, NatsError> {
        let rest = &self.buffer[self.start..];
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            if rest.len() > MAX_CONTROL_LINE {
                return Err(NatsError::Protocol("control line too long".into()));
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..end])
            .map_err(|_| NatsError::Protocol("control line is not UTF-8".into()))?;
        let (op, args) = line.split_once(' ').unwrap_or((line, ""));
        let body = end + 2;
        let incoming = match op.to_ascii_uppercase().as_str() {
            "MSG" | "HMSG" => {
                let headers = op.eq_ignore_ascii_case("HMSG");
                let Some((msg, size)) = message(line, args, headers)? else {
                    return Err(NatsError::Protocol(format!("malformed `{line}`")));
                };
                if rest.len() < body + size.total + 2 {
                    return Ok(None);
                }
                let block = &rest[body..body + size.header];
                let payload = rest[body + size.header..body + size.total].to_vec();
                let status = if headers { status(block) } else { None };
                let msg = Msg { payload, status, ..msg };
                self.start += body + size.total + 2;
                return Ok(Some(Incoming::Msg(msg)));
            }
            "PING" => Incoming::Ping,
            "PONG" => Incoming::Pong,
            "+OK" => Incoming::Ok,
            "-ERR" => Incoming::Err(args.trim().trim_matches('\'').to_owned()),
            "INFO" => Incoming::Info,
            _ => return Err(NatsError::Protocol(format!("unknown operation `{line}`"))),
        };
        self.start += body;
        Ok(Some(incoming))
    }
}

/// Sizes of a message's header block and of header block plus payload.
struct Sizes {
    header: usize,
    total: usize,
}

/// The arguments of `MSG subject sid [reply] n` or `HMSG subject sid [reply] h n`.
fn message(line: &str, args: &str, headers: bool) -> Result<Option<(Msg, Sizes)>, NatsError> {
    let parts: Vec<&str> = args.split_whitespace().collect();
    let sizes = if headers { 2 } else { 1 };
    if parts.len() < 2 + sizes || parts.len() > 3 + sizes {
        return Ok(None);
    }
    let number = |s: &str| {
        s.parse::<usize>().map_err(|_| NatsError::Protocol(format!("bad number in `{line}`")))
    };
    let total = number(parts[parts.len() - 1])?;
    let header = if headers { number(parts[parts.len() - 2])? } else { 0 };
    if header > total {
        return Ok(None);
    }
    let sid = number(parts[1])? as u64;
    let reply = (parts.len() == 3 + sizes).then(|| parts[2].to_owned());
    let msg = Msg { subject: parts[0].to_owned(), sid, reply, status: None, payload: Vec::new() };
    Ok(Some((msg, Sizes { header, total })))
}

/// The status in a header block's first line (`NATS/1.0 503` or `NATS/1.0 404 No Messages`).
fn status(block: &[u8]) -> Option<Status> {
    let first = block.split(|&b| b == b'\r').next()?;
    let first = std::str::from_utf8(first).ok()?;
    let rest = first.strip_prefix("NATS/1.0")?.trim();
    let (code, description) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Status { code: code.parse().ok()?, description: description.trim().to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Vec<Incoming> {
        let mut parser = Parser::default();
        parser.push(bytes);
        let mut out = Vec::new();
        while let Some(op) = parser.next().unwrap() {
            out.push(op);
        }
        out
    }

    fn msg(op: &Incoming) -> &Msg {
        match op {
            Incoming::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn control_operations_should_parse_and_err_should_keep_its_text() {
        let ops = all(b"INFO {\"server_id\":\"x\"}\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\n");
        assert_eq!(
            ops,
            vec![
                Incoming::Info,
                Incoming::Ping,
                Incoming::Pong,
                Incoming::Ok,
                Incoming::Err("Authorization Violation".into())
            ]
        );
    }

    #[test]
    fn msg_should_carry_subject_sid_reply_and_a_payload_containing_crlf() {
        let ops =
            all(b"MSG q 7 $JS.ACK.Q.W.1.2.2.99.0 4\r\na\r\nb\r\nMSG _INBOX.x.4 1  3\r\nabc\r\n");
        let first = msg(&ops[0]);
        assert_eq!(first.subject, "q");
        assert_eq!(first.sid, 7);
        assert_eq!(first.reply.as_deref(), Some("$JS.ACK.Q.W.1.2.2.99.0"));
        assert_eq!(first.payload, b"a\r\nb");
        // nats-server writes two spaces where a message has no reply subject.
        let second = msg(&ops[1]);
        assert_eq!((second.subject.as_str(), second.reply.as_deref()), ("_INBOX.x.4", None));
        assert_eq!(second.payload, b"abc");
    }

    #[test]
    fn a_message_split_across_pushes_should_wait_for_its_payload() {
        let mut parser = Parser::default();
        parser.push(b"MSG s 1 5\r\nhel");
        assert_eq!(parser.next().unwrap(), None);
        parser.push(b"lo\r");
        assert_eq!(parser.next().unwrap(), None);
        parser.push(b"\nPING\r\n");
        assert_eq!(msg(&parser.next().unwrap().unwrap()).payload, b"hello");
        assert_eq!(parser.next().unwrap(), Some(Incoming::Ping));
        assert_eq!(parser.next().unwrap(), None);
    }

    #[test]
    fn hmsg_should_expose_the_status_of_its_header_line() {
        let ops = all(b"HMSG _INBOX.x.5 1  81 81\r\nNATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 7\r\nNats-Pending-Bytes: 0\r\n\r\n\r\nHMSG _INBOX.x.3 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
        let timeout = msg(&ops[0]);
        assert_eq!(
            timeout.status,
            Some(Status { code: 408, description: "Request Timeout".into() })
        );
        assert!(timeout.payload.is_empty());
        assert_eq!(msg(&ops[1]).status.as_ref().map(|s| s.code), Some(503));
    }

    #[test]
    fn hmsg_without_a_status_should_keep_its_payload() {
        let ops = all(b"HMSG s 2 r 20 23\r\nNATS/1.0\r\nA-B: c\r\n\r\nxyz\r\n");
        let m = msg(&ops[0]);
        assert_eq!((m.status.clone(), m.payload.as_slice()), (None, &b"xyz"[..]));
    }

    #[test]
    fn garbage_should_be_a_protocol_error_not_a_panic() {
        for bad in [&b"WHAT\r\n"[..], b"MSG s\r\n", b"MSG s 1 x\r\n", b"HMSG s 1 9 3\r\n"] {
            let mut parser = Parser::default();
            parser.push(bad);
            assert!(matches!(parser.next(), Err(NatsError::Protocol(_))), "{bad:?}");
        }
        let mut parser = Parser::default();
        parser.push(&[b'x'; MAX_CONTROL_LINE + 1]);
        assert!(matches!(parser.next(), Err(NatsError::Protocol(_))));
    }

    #[test]
    fn publish_with_headers_should_count_header_and_total_bytes() {
        let frame = publish("s", Some("r"), &[("Nats-Msg-Id", "p1-2")], b"xyz");
        let block = "NATS/1.0\r\nNats-Msg-Id: p1-2\r\n\r\n";
        let expected = format!("HPUB s r {} {}\r\n{block}xyz\r\n", block.len(), block.len() + 3);
        assert_eq!(String::from_utf8(frame).unwrap(), expected);
        assert_eq!(publish("s", None, &[], b"ab"), b"PUB s 2\r\nab\r\n");
    }
}
