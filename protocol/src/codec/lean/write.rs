//! A hand-written MessagePack encoder for [`ClientFrame`], the counterpart of the lean decoder.
//!
//! It writes exactly the bytes `rmp_serde::to_vec_named` writes for the same frame (structs as
//! maps with named fields in declaration order, absent optional fields left out, integers in
//! their smallest form, payloads as `bin`, enums as one-entry maps or, for unit variants, a
//! string); the tests compare the two byte for byte. Every struct a client sends has fewer than
//! 16 fields, so each map header is one byte, written first and patched with the field count.

use crate::frame::ClientFrame;
use crate::payload::Headers;
use crate::queues::QueueOptions;
use crate::streams::{Durability, ReadFrom, Record, Retention};

/// Room for `frame` in one allocation when it carries a payload: the fixed fields of an append
/// or an enqueue with a generated idempotency key take under 128 bytes, and growing by doubling
/// from a small buffer copied a 128-byte payload two or three times.
fn capacity(frame: &ClientFrame) -> usize {
    let payload = match frame {
        ClientFrame::Append(f) => f.data.as_bytes().len() + f.stream.len(),
        ClientFrame::Enqueue(f) => f.data.as_bytes().len() + f.queue.len(),
        ClientFrame::Publish(f) => f.data.as_bytes().len() + f.topic.len(),
        _ => 0,
    };
    payload + 128
}

/// Encodes a client frame as MessagePack, byte for byte as [`super::super::encode`] does.
pub fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    let mut w = Writer { out: Vec::with_capacity(capacity(frame)), fields: 0 };
    w.out.push(0x81);
    w.str(frame.op());
    match frame {
        ClientFrame::Hello(f) => w.object(|w| {
            w.uint_field("version", u64::from(f.version));
            w.opt_str_field("token", f.token.as_deref());
            w.opt_str_field("client", f.client.as_deref());
        }),
        ClientFrame::Ping(f) => w.object(|w| w.uint_field("id", f.id)),
        ClientFrame::ListStreams(f) => w.object(|w| w.uint_field("id", f.id)),
        ClientFrame::ListQueues(f) => w.object(|w| w.uint_field("id", f.id)),
        ClientFrame::Publish(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("topic", &f.topic);
            w.bin_field("data", f.data.as_bytes());
            w.headers_field(&f.headers);
        }),
        ClientFrame::Subscribe(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("pattern", &f.pattern);
        }),
        ClientFrame::Unsubscribe(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("pattern", &f.pattern);
        }),
        ClientFrame::CreateStream(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("stream", &f.stream);
            w.opt_uint_field("partitions", f.partitions.map(u64::from));
            if let Some(retention) = &f.retention {
                w.key("retention");
                w.object(|w| write_retention(w, retention));
            }
            if let Some(durability) = &f.durability {
                w.key("durability");
                match durability {
                    Durability::Immediate => w.str("immediate"),
                    Durability::Interval(ms) => {
                        w.out.push(0x81);
                        w.str("interval");
                        w.uint(*ms);
                    }
                }
            }
        }),
        ClientFrame::Append(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("stream", &f.stream);
            w.bin_field("data", f.data.as_bytes());
            w.opt_str_field("key", f.key.as_deref());
            w.headers_field(&f.headers);
            w.opt_str_field("idempotency_key", f.idempotency_key.as_deref());
        }),
        ClientFrame::Read(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("stream", &f.stream);
            w.opt_uint_field("partition", f.partition.map(u64::from));
            w.key("from");
            match f.from {
                ReadFrom::Earliest => w.str("earliest"),
                ReadFrom::Latest => w.str("latest"),
                ReadFrom::Offset(n) | ReadFrom::Time(n) => {
                    w.out.push(0x81);
                    w.str(if matches!(f.from, ReadFrom::Offset(_)) { "offset" } else { "time" });
                    w.uint(n);
                }
            }
            if !f.positions.is_empty() {
                w.key("positions");
                w.array_len(f.positions.len());
                for p in &f.positions {
                    w.object(|w| {
                        w.uint_field("partition", u64::from(p.partition));
                        w.uint_field("offset", p.offset);
                    });
                }
            }
            w.opt_uint_field("epoch", f.epoch);
            w.uint_field("credit", u64::from(f.credit));
            w.opt_str_field("group", f.group.as_deref());
            w.opt_str_field("member", f.member.as_deref());
            w.bool_field("auto_commit", f.auto_commit);
        }),
        ClientFrame::Credit(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.uint_field("reader", f.reader);
            w.uint_field("n", u64::from(f.n));
        }),
        ClientFrame::CloseReader(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.uint_field("reader", f.reader);
        }),
        ClientFrame::Commit(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("stream", &f.stream);
            w.str_field("group", &f.group);
            w.uint_field("partition", u64::from(f.partition));
            w.uint_field("offset", f.offset);
            w.uint_field("generation", f.generation);
        }),
        ClientFrame::DescribeStream(f) | ClientFrame::DeleteStream(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("stream", &f.stream);
        }),
        ClientFrame::CreateQueue(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("queue", &f.queue);
            w.key("options");
            w.object(|w| write_queue_options(w, &f.options));
        }),
        ClientFrame::Enqueue(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("queue", &f.queue);
            w.bin_field("data", f.data.as_bytes());
            w.headers_field(&f.headers);
            w.opt_uint_field("delay_ms", f.delay_ms);
            w.opt_uint_field("not_before", f.not_before);
            w.opt_str_field("key", f.key.as_deref());
            w.opt_uint_field("priority", f.priority.map(u64::from));
            w.opt_str_field("idempotency_key", f.idempotency_key.as_deref());
        }),
        ClientFrame::Pull(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("queue", &f.queue);
            w.opt_uint_field("max", f.max.map(u64::from));
            w.opt_uint_field("wait_ms", f.wait_ms);
        }),
        ClientFrame::Consume(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("queue", &f.queue);
            w.uint_field("prefetch", u64::from(f.prefetch));
        }),
        ClientFrame::StopConsume(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.uint_field("consumer", f.consumer);
        }),
        ClientFrame::Ack(f) | ClientFrame::Release(f) => w.object(|w| {
            w.lease_fields(f.id, &f.queue, f.task, f.lease);
        }),
        ClientFrame::Nack(f) => w.object(|w| {
            w.lease_fields(f.id, &f.queue, f.task, f.lease);
            w.opt_uint_field("delay_ms", f.delay_ms);
            w.opt_str_field("reason", f.reason.as_deref());
        }),
        ClientFrame::Extend(f) => w.object(|w| {
            w.lease_fields(f.id, &f.queue, f.task, f.lease);
            w.uint_field("ms", f.ms);
        }),
        ClientFrame::Reject(f) => w.object(|w| {
            w.lease_fields(f.id, &f.queue, f.task, f.lease);
            w.str_field("reason", &f.reason);
        }),
        ClientFrame::Redrive(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("queue", &f.queue);
            if !f.ids.is_empty() {
                w.key("ids");
                w.array_len(f.ids.len());
                for id in &f.ids {
                    w.uint(*id);
                }
            }
            w.bool_field("all", f.all);
        }),
        ClientFrame::QueueStats(f) | ClientFrame::DeleteQueue(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("queue", &f.queue);
        }),
        ClientFrame::AckMany(f) => w.object(|w| {
            w.uint_field("id", f.id);
            w.str_field("queue", &f.queue);
            w.key("tasks");
            w.array_len(f.tasks.len());
            for t in &f.tasks {
                w.object(|w| {
                    w.uint_field("task", t.task);
                    w.uint_field("lease", t.lease);
                });
            }
        }),
    }
    w.out
}

fn write_retention(w: &mut Writer, r: &Retention) {
    w.opt_uint_field("max_age_ms", r.max_age_ms);
    w.opt_uint_field("max_bytes", r.max_bytes);
    w.opt_uint_field("max_records", r.max_records);
}

fn write_queue_options(w: &mut Writer, o: &QueueOptions) {
    w.opt_uint_field("lease_ms", o.lease_ms);
    w.opt_uint_field("max_lease_ms", o.max_lease_ms);
    w.opt_uint_field("max_attempts", o.max_attempts.map(u64::from));
    if let Some(steps) = &o.backoff_ms {
        w.key("backoff_ms");
        w.array_len(steps.len());
        for ms in steps {
            w.uint(*ms);
        }
    }
    w.opt_str_field("dead_letter", o.dead_letter.as_deref());
    w.opt_uint_field("dedup_window_ms", o.dedup_window_ms);
    w.opt_uint_field("max_length", o.max_length);
    if let Some(ordered) = o.ordered_by_key {
        w.bool_field("ordered_by_key", ordered);
    }
}

/// Appends `record` to `out` as MessagePack, byte for byte as `rmp_serde::encode::write_named`
/// writes it (the form the hub stores records in): a map of `offset`, `timestamp`, `key` if
/// any, `headers` if any and `data`. The hub's storage writer encodes every appended record, and
/// this is a fraction of serde's cost.
pub fn encode_record_into(out: &mut Vec<u8>, record: &Record) {
    let mut w = Writer { out: std::mem::take(out), fields: 0 };
    w.object(|w| {
        w.uint_field("offset", record.offset);
        w.uint_field("timestamp", record.timestamp);
        w.opt_str_field("key", record.key.as_deref());
        w.headers_field(&record.headers);
        w.bin_field("data", &record.data.0);
    });
    *out = w.out;
}

/// The output and the number of fields written into the innermost open map.
struct Writer {
    out: Vec<u8>,
    fields: u8,
}

impl Writer {
    /// Writes a map of the fields `body` writes.
    fn object(&mut self, body: impl FnOnce(&mut Writer)) {
        let at = self.out.len();
        self.out.push(0x80);
        let outer = std::mem::replace(&mut self.fields, 0);
        body(self);
        self.out[at] = 0x80 | self.fields;
        self.fields = outer;
    }

    /// Writes a field name; its value follows.
    fn key(&mut self, name: &str) {
        self.fields += 1;
        self.str(name);
    }

    fn uint_field(&mut self, name: &str, value: u64) {
        self.key(name);
        self.uint(value);
    }

    fn opt_uint_field(&mut self, name: &str, value: Option<u64>) {
        if let Some(value) = value {
            self.uint_field(name, value);
        }
    }

    fn str_field(&mut self, name: &str, value: &str) {
        self.key(name);
        self.str(value);
    }

    fn opt_str_field(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str_field(name, value);
        }
    }

    fn bool_field(&mut self, name: &str, value: bool) {
        self.key(name);
        self.out.push(if value { 0xc3 } else { 0xc2 });
    }

    fn bin_field(&mut self, name: &str, value: &[u8]) {
        self.key(name);
        self.len(value.len(), None, [0xc4, 0xc5, 0xc6]);
        self.out.extend_from_slice(value);
    }

    /// `headers`, left out when empty.
    fn headers_field(&mut self, headers: &Headers) {
        if headers.is_empty() {
            return;
        }
        self.key("headers");
        self.len(headers.len(), Some(0x80), [0xde, 0xde, 0xdf]);
        for (name, value) in headers {
            self.str(name);
            self.str(value);
        }
    }

    /// The fields every lease operation starts with.
    fn lease_fields(&mut self, id: u64, queue: &str, task: u64, lease: u64) {
        self.uint_field("id", id);
        self.str_field("queue", queue);
        self.uint_field("task", task);
        self.uint_field("lease", lease);
    }

    fn array_len(&mut self, n: usize) {
        self.len(n, Some(0x90), [0xdc, 0xdc, 0xdd]);
    }

    fn str(&mut self, s: &str) {
        if s.len() < 32 {
            self.out.push(0xa0 | s.len() as u8);
        } else {
            self.len(s.len(), None, [0xd9, 0xda, 0xdb]);
        }
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A length prefix: the fix form (below 16) when there is one, else 8-, 16- or 32-bit.
    /// Map and array headers have no 8-bit form: their `markers[0]` is the 16-bit one.
    fn len(&mut self, n: usize, fix: Option<u8>, markers: [u8; 3]) {
        match fix {
            Some(fix) if n < 16 => self.out.push(fix | n as u8),
            Some(_) if n <= 0xffff => {
                self.out.push(markers[0]);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            None if n <= 0xff => self.out.extend_from_slice(&[markers[0], n as u8]),
            None if n <= 0xffff => {
                self.out.push(markers[1]);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                self.out.push(markers[2]);
                self.out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        }
    }

    fn uint(&mut self, n: u64) {
        if n < 0x80 {
            self.out.push(n as u8);
        } else if n <= 0xff {
            self.out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            self.out.push(0xcd);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            self.out.push(0xce);
            self.out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.out.push(0xcf);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
    }
}
