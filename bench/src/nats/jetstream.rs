//! JetStream over the NATS driver (the 2.9 API): creating streams and durable pull consumers,
//! publishing with an acknowledgement, fetching a batch and acknowledging it.
//!
//! Every API answer is JSON; a failure is `{"error":{"code":..,"err_code":..,"description":..}}`
//! and becomes [`NatsError::JetStream`]. A request nobody serves (no stream for the subject)
//! comes back as a 503 status, which becomes [`NatsError::Status`].

use std::time::Duration;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;

use super::client::Subscription;
use super::protocol::Msg;
use super::{NatsClient, NatsError};

/// A JetStream API error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    pub code: u16,
    #[serde(default)]
    pub err_code: u32,
    #[serde(default)]
    pub description: String,
}

/// The acknowledgement of a publish to a stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PubAck {
    pub stream: String,
    pub seq: u64,
    /// Set when the `Nats-Msg-Id` was seen within the stream's duplicate window.
    #[serde(default)]
    pub duplicate: bool,
}

/// Reads an answer: a status, an API error, or a `T`.
///
/// # Errors
/// [`NatsError::Status`], [`NatsError::JetStream`], or [`NatsError::BadReply`] if the JSON
/// is not a `T`.
pub fn parse<T: DeserializeOwned>(what: &str, msg: &Msg) -> Result<T, NatsError> {
    if let Some(status) = &msg.status {
        return Err(NatsError::Status { what: what.to_owned(), status: status.clone() });
    }
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<ApiError>,
    }
    let bad = |e: serde_json::Error| NatsError::BadReply {
        what: what.to_owned(),
        detail: format!("{e}: {}", String::from_utf8_lossy(&msg.payload)),
    };
    if let Some(error) = serde_json::from_slice::<Envelope>(&msg.payload).map_err(bad)?.error {
        return Err(NatsError::JetStream(error));
    }
    serde_json::from_slice(&msg.payload).map_err(bad)
}

/// Retention of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Messages stay until limits remove them (a log).
    Limits,
    /// A message is removed once a consumer acknowledges it (a work queue).
    WorkQueue,
}

/// The `$JS.API.STREAM.CREATE` body of a file-stored, unreplicated stream.
pub fn stream_config(name: &str, subjects: &[String], retention: Retention) -> serde_json::Value {
    let retention = match retention {
        Retention::Limits => "limits",
        Retention::WorkQueue => "workqueue",
    };
    json!({
        "name": name, "subjects": subjects, "retention": retention, "storage": "file",
        "num_replicas": 1, "discard": "old",
    })
}

/// The `$JS.API.CONSUMER.DURABLE.CREATE` body of a pull consumer with explicit acks.
pub fn pull_consumer_config(
    stream: &str,
    durable: &str,
    max_ack_pending: i64,
) -> serde_json::Value {
    json!({
        "stream_name": stream,
        "config": {
            "durable_name": durable, "ack_policy": "explicit", "deliver_policy": "all",
            "max_ack_pending": max_ack_pending,
        },
    })
}

/// The `$JS.API.CONSUMER.MSG.NEXT` body: up to `batch` messages; `no_wait` with `expires`
/// waits up to `expires` for the first message and then ends the request (408) as soon as no
/// more are pending, like the hub's pull with `wait_ms`. (Seen with 2.9.10 under load: it
/// sometimes also ends within a millisecond with none, when other workers have just taken
/// what was pending; the queue workload counts these as `empty_fetches` and fetches again.)
pub fn next_request(batch: u32, expires: Duration) -> Vec<u8> {
    json!({ "batch": batch, "expires": expires.as_nanos() as u64, "no_wait": true })
        .to_string()
        .into_bytes()
}

/// Creates a stream.
///
/// # Errors
/// [`NatsError::JetStream`] if the server refuses (e.g. JetStream disabled, or the name is
/// taken with another configuration); transport errors as [`NatsClient::request`].
pub async fn create_stream(
    client: &NatsClient,
    name: &str,
    subjects: &[String],
    retention: Retention,
) -> Result<(), NatsError> {
    let body = stream_config(name, subjects, retention).to_string();
    let what = format!("$JS.API.STREAM.CREATE.{name}");
    let reply = client.request(&what, &[], body.as_bytes()).await?;
    parse::<IgnoredAny>(&what, &reply).map(|_| ())
}

/// Creates a durable pull consumer with explicit acks.
///
/// # Errors
/// As [`create_stream`].
pub async fn create_pull_consumer(
    client: &NatsClient,
    stream: &str,
    durable: &str,
    max_ack_pending: i64,
) -> Result<(), NatsError> {
    let body = pull_consumer_config(stream, durable, max_ack_pending).to_string();
    let what = format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}");
    let reply = client.request(&what, &[], body.as_bytes()).await?;
    parse::<IgnoredAny>(&what, &reply).map(|_| ())
}

/// Publishes to a stream's subject and waits for its acknowledgement. `msg_id` goes in the
/// `Nats-Msg-Id` header, for the stream's duplicate detection.
///
/// # Errors
/// [`NatsError::Status`] 503 if no stream takes the subject; [`NatsError::JetStream`] if the
/// stream refuses the message; transport errors as [`NatsClient::request`].
pub async fn publish(
    client: &NatsClient,
    subject: &str,
    msg_id: &str,
    payload: &[u8],
) -> Result<PubAck, NatsError> {
    let reply = client.request(subject, &[("Nats-Msg-Id", msg_id)], payload).await?;
    parse(subject, &reply)
}

/// A worker's end of a durable pull consumer: its own inbox, on its own subscription.
pub struct Puller {
    client: NatsClient,
    next: String,
    inbox: String,
    messages: Subscription,
}

impl Puller {
    /// Subscribes an inbox for the consumer's deliveries.
    ///
    /// # Errors
    /// Transport errors as [`NatsClient::flush`].
    pub async fn new(
        client: &NatsClient,
        stream: &str,
        durable: &str,
    ) -> Result<Puller, NatsError> {
        let inbox = client.new_inbox();
        let messages = client.subscribe(&inbox).await?;
        client.flush().await?;
        let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}");
        Ok(Puller { client: client.clone(), next, inbox, messages })
    }

    /// Fetches up to `batch` messages, waiting up to `wait` for the first.
    ///
    /// # Errors
    /// [`NatsError::Status`] for a status other than "no messages" or "request timeout" (e.g.
    /// 409 when too many pull requests wait), [`NatsError::Timeout`] if the server neither
    /// delivers nor ends the request in time.
    pub async fn fetch(&mut self, batch: u32, wait: Duration) -> Result<Vec<Msg>, NatsError> {
        let request = next_request(batch, wait);
        self.client.publish(&self.next, Some(&self.inbox), &[], &request).await?;
        let within = wait + self.client.timeout();
        let mut got = Vec::with_capacity(batch as usize);
        while got.len() < batch as usize {
            let msg = self.messages.next(within).await?;
            match &msg.status {
                None => got.push(msg),
                Some(s) if s.code == 404 || s.code == 408 => break,
                Some(status) => {
                    let what = self.next.clone();
                    return Err(NatsError::Status { what, status: status.clone() });
                }
            }
        }
        Ok(got)
    }

    /// Acknowledges messages (`+ACK` to each reply subject) and waits until the server has
    /// handled the acks: nats-server 2.9 does not answer an ack, so a `PING` sent after them is
    /// answered only once they are processed.
    ///
    /// # Errors
    /// [`NatsError::BadReply`] for a message without a reply subject; transport errors as
    /// [`NatsClient::flush`].
    pub async fn ack(&self, messages: &[Msg]) -> Result<(), NatsError> {
        for msg in messages {
            let Some(reply) = &msg.reply else {
                return Err(NatsError::BadReply {
                    what: self.next.clone(),
                    detail: format!("message on {} has no ack subject", msg.subject),
                });
            };
            self.client.publish(reply, None, &[], b"+ACK").await?;
        }
        self.client.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::Status;
    use crate::nats::fake::{fake, say, until};

    fn reply(payload: &str) -> Msg {
        Msg {
            subject: "_INBOX.x.1".into(),
            sid: 1,
            reply: None,
            status: None,
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_pub_ack_should_parse_as_sent_by_nats_server() {
        let ack: PubAck = parse("q", &reply(r#"{"stream":"Q", "seq":4}"#)).unwrap();
        assert_eq!(ack, PubAck { stream: "Q".into(), seq: 4, duplicate: false });
        let dup: PubAck = parse("q", &reply(r#"{"stream":"Q","seq":4,"duplicate":true}"#)).unwrap();
        assert!(dup.duplicate);
    }

    #[test]
    fn an_api_error_should_become_a_typed_error_with_its_codes() {
        let answer = r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"#;
        let error = parse::<IgnoredAny>("$JS.API.STREAM.CREATE.Q", &reply(answer)).unwrap_err();
        let expected = ApiError {
            code: 400,
            err_code: 10058,
            description: "stream name already in use with a different configuration".into(),
        };
        assert_eq!(error, NatsError::JetStream(expected));
        assert!(error.to_string().contains("err_code 10058"), "{error}");
    }

    #[test]
    fn a_pub_ack_error_should_not_parse_as_an_ack() {
        let answer =
            r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#;
        assert!(
            matches!(parse::<PubAck>("q", &reply(answer)), Err(NatsError::JetStream(e)) if e.code == 503)
        );
    }

    #[test]
    fn a_no_responders_status_should_name_the_subject() {
        let mut msg = reply("");
        msg.status = Some(Status { code: 503, description: String::new() });
        let error = parse::<PubAck>("nowhere", &msg).unwrap_err();
        assert!(
            matches!(&error, NatsError::Status { what, status } if what == "nowhere" && status.code == 503)
        );
    }

    #[test]
    fn a_reply_that_is_not_json_should_be_a_bad_reply() {
        assert!(matches!(parse::<PubAck>("q", &reply("+OK")), Err(NatsError::BadReply { .. })));
        assert!(matches!(
            parse::<PubAck>("q", &reply(r#"{"stream":"Q"}"#)),
            Err(NatsError::BadReply { .. })
        ));
    }

    #[test]
    fn requests_should_use_the_2_9_api_field_names_and_units() {
        let next: serde_json::Value =
            serde_json::from_slice(&next_request(64, Duration::from_millis(200))).unwrap();
        assert_eq!(next, json!({ "batch": 64, "expires": 200_000_000u64, "no_wait": true }));
        let stream = stream_config("Q", &["q".into()], Retention::WorkQueue);
        assert_eq!(
            (stream["retention"].as_str(), stream["storage"].as_str()),
            (Some("workqueue"), Some("file"))
        );
        let consumer = pull_consumer_config("Q", "W", 1000);
        assert_eq!(consumer["config"]["ack_policy"], "explicit");
        assert_eq!(consumer["stream_name"], "Q");
    }

    /// The `SUB` of the puller's inbox: its subject and id.
    fn subscription(seen: &[u8]) -> (String, String) {
        let text = String::from_utf8_lossy(seen);
        let line = text.lines().find(|l| l.starts_with("SUB _INBOX") && !l.contains(".*")).unwrap();
        let mut parts = line.split(' ').skip(1);
        (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
    }

    fn status(inbox: &str, sid: &str, line: &str) -> String {
        let block = format!("NATS/1.0 {line}\r\n\r\n");
        format!("HMSG {inbox} {sid} {} {}\r\n{block}\r\n", block.len(), block.len())
    }

    #[tokio::test]
    async fn fetch_should_end_at_a_408_and_fail_on_a_409_and_ack_should_wait_for_the_server() {
        let url = fake(|mut ws| async move {
            let seen = until(&mut ws, &[b"PING\r\n"]).await;
            let (inbox, sid) = subscription(&seen);
            say(&mut ws, "PONG\r\n").await;
            until(&mut ws, &[b"MSG.NEXT.Q.W"]).await;
            let two = format!("MSG q {sid} $JS.ACK.a 1\r\na\r\nMSG q {sid} $JS.ACK.b 1\r\nb\r\n");
            say(&mut ws, &(two + &status(&inbox, &sid, "408 Request Timeout"))).await;
            until(&mut ws, &[b"MSG.NEXT.Q.W"]).await;
            say(&mut ws, &status(&inbox, &sid, "409 Exceeded MaxWaiting")).await;
            // Answers the PING after the acks only once both acks came.
            until(
                &mut ws,
                &[b"PUB $JS.ACK.a 4\r\n+ACK\r\n", b"PUB $JS.ACK.b 4\r\n+ACK\r\n", b"PING"],
            )
            .await;
            say(&mut ws, "PONG\r\n").await;
            std::future::pending::<()>().await;
        })
        .await;
        let client = NatsClient::connect(&url, Duration::from_secs(2)).await.unwrap();
        let mut puller = Puller::new(&client, "Q", "W").await.unwrap();
        let got = puller.fetch(10, Duration::from_millis(100)).await.unwrap();
        let payloads: Vec<&[u8]> = got.iter().map(|m| m.payload.as_slice()).collect();
        assert_eq!(payloads, [b"a", b"b"]);
        let refused = puller.fetch(10, Duration::from_millis(100)).await.unwrap_err();
        assert!(
            matches!(&refused, NatsError::Status { status, .. } if status.code == 409),
            "{refused:?}"
        );
        puller.ack(&got).await.unwrap();
    }

    #[tokio::test]
    async fn a_fetch_the_server_never_ends_should_time_out() {
        let url = fake(|mut ws| async move {
            until(&mut ws, &[b"PING\r\n"]).await;
            say(&mut ws, "PONG\r\n").await;
            std::future::pending::<()>().await;
        })
        .await;
        let client = NatsClient::connect(&url, Duration::from_millis(100)).await.unwrap();
        let mut puller = Puller::new(&client, "Q", "W").await.unwrap();
        let error = puller.fetch(10, Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(error, NatsError::Timeout { .. }), "{error:?}");
    }
}
