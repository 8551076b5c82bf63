// The built package against a real hub: stream appends and readers.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fresh, loadPackage, sleep, startHub, until } from "./hub.mjs";

const { Client } = await loadPackage();
let hub;
let client;

before(async () => {
  hub = await startHub();
  client = new Client(hub.url);
  await client.connect();
});

after(async () => {
  await client?.close();
  await hub?.stop();
});

/** Appends each text in turn; the answers. */
async function appendAll(stream, texts, options = {}) {
  const answers = [];
  for (const text of texts) answers.push(await client.append(stream, text, options));
  return answers;
}

/** Starts a reader that collects `{ offset, partition, text, key }`; `{ reader, records }`. */
async function collect(stream, options) {
  const records = [];
  const reader = await client.read(stream, options, (rec) => {
    records.push({ offset: rec.offset, partition: rec.partition, text: rec.text(), key: rec.key, rec });
  });
  return { reader, records };
}

test("append should answer with consecutive offsets in one partition for one key", async () => {
  const stream = fresh("orders");
  const before = Date.now();
  const answers = await appendAll(stream, ["a", "b", "c"], { key: "customer-7" });
  assert.deepEqual(answers.map((a) => a.offset), [0, 1, 2]);
  assert.equal(new Set(answers.map((a) => a.partition)).size, 1);
  for (const a of answers) {
    assert.equal(typeof a.timestamp, "number");
    assert.ok(a.timestamp >= before - 1000 && a.timestamp <= Date.now() + 1000, `timestamp ${a.timestamp}`);
  }
});

test("reading from earliest should give every record in order, then new ones", async () => {
  const stream = fresh("orders");
  await appendAll(stream, ["one", "two", "three"], { key: "k", headers: { kind: "order" } });
  const { reader, records } = await collect(stream, { from: "earliest" });
  await until(() => records.length === 3, 5000, "three records");
  await client.append(stream, "four", { key: "k" });
  await until(() => records.length === 4, 5000, "the live record");
  assert.deepEqual(records.map((r) => r.text), ["one", "two", "three", "four"]);
  assert.deepEqual(records.map((r) => r.offset), [0, 1, 2, 3]);
  assert.equal(records[0].key, "k");
  assert.deepEqual({ ...records[0].rec.headers }, { kind: "order" });
  assert.equal(records[0].rec.stream, stream);
  await reader.close();
});

test("reading from latest should skip what was there and give what comes after", async () => {
  const stream = fresh("orders");
  await appendAll(stream, ["old 1", "old 2"]);
  const { reader, records } = await collect(stream, { from: "latest" });
  await client.append(stream, "new");
  await until(() => records.length === 1, 5000, "the new record");
  await sleep(100);
  assert.deepEqual(records.map((r) => r.text), ["new"]);
  assert.equal(records[0].offset, 2);
  await reader.close();
});

test("reading from an offset should start at that offset", async () => {
  const stream = fresh("orders");
  const answers = await appendAll(stream, ["r0", "r1", "r2", "r3"], { key: "same" });
  const { reader, records } = await collect(stream, { from: { offset: 2, partition: answers[0].partition } });
  await until(() => records.length === 2, 5000, "two records");
  await sleep(100);
  assert.deepEqual(records.map((r) => r.text), ["r2", "r3"]);
  await reader.close();
});

test("reading from a time should start at the first record at or after it", async () => {
  const stream = fresh("orders");
  await client.append(stream, "before");
  await sleep(30);
  const later = await client.append(stream, "at");
  await client.append(stream, "after");
  const { reader, records } = await collect(stream, { from: { time: later.timestamp } });
  await until(() => records.length === 2, 5000, "two records");
  await sleep(100);
  assert.deepEqual(records.map((r) => r.text), ["at", "after"]);
  await reader.close();
});

test("position() should give the next offset to consume per partition", async () => {
  const stream = fresh("orders");
  const [first] = await appendAll(stream, ["a", "b", "c"], { key: "k" });
  const { reader, records } = await collect(stream, { from: "earliest" });
  await until(() => records.length === 3, 5000, "three records");
  await until(() => reader.position()[first.partition] === 3, 2000, "position 3");
  assert.equal(reader.position()[first.partition], 3);
  await reader.close();
});

test("a group should resume after the record it committed", async () => {
  const stream = fresh("orders");
  const group = fresh("billing");
  await appendAll(stream, ["g0", "g1", "g2", "g3"], { key: "k" });
  const first = await collect(stream, { from: "earliest", group });
  await until(() => first.records.length === 4, 5000, "four records");
  await first.reader.commit(first.records[1].rec);
  await first.reader.close();

  const second = await collect(stream, { from: "earliest", group });
  await until(() => second.records.length === 2, 5000, "the uncommitted records");
  await sleep(100);
  assert.deepEqual(second.records.map((r) => r.text), ["g2", "g3"]);
  await second.reader.close();
});

test("with autoCommit a group should not see consumed records again", async () => {
  const stream = fresh("orders");
  const group = fresh("audit");
  await appendAll(stream, ["x0", "x1"], { key: "k" });
  const first = await collect(stream, { from: "earliest", group, autoCommit: true });
  await until(() => first.records.length === 2, 5000, "two records");
  await sleep(200);
  await first.reader.close();
  await client.append(stream, "x2", { key: "k" });
  const second = await collect(stream, { from: "earliest", group, autoCommit: true });
  await until(() => second.records.length === 1, 5000, "the new record");
  await sleep(100);
  assert.deepEqual(second.records.map((r) => r.text), ["x2"]);
  await second.reader.close();
});

test("a handler's promise should hold back the next record until it settles", async () => {
  const stream = fresh("orders");
  await appendAll(stream, ["p0", "p1", "p2", "p3"], { key: "k" });
  let inside = 0;
  let most = 0;
  const spans = [];
  const reader = await client.read(stream, { from: "earliest" }, async (rec) => {
    inside += 1;
    most = Math.max(most, inside);
    const start = Date.now();
    await sleep(60);
    spans.push({ offset: rec.offset, start, end: Date.now() });
    inside -= 1;
  });
  await until(() => spans.length === 4, 5000, "four records");
  assert.equal(most, 1, "two records were in handlers at once");
  assert.deepEqual(spans.map((s) => s.offset), [0, 1, 2, 3]);
  for (let i = 1; i < spans.length; i += 1) {
    assert.ok(spans[i].start >= spans[i - 1].end, `record ${i} started before record ${i - 1}'s promise settled`);
  }
  await reader.close();
});

test("a handler that throws should not stall the reader", async () => {
  const stream = fresh("orders");
  await appendAll(stream, ["bad", "good"], { key: "k" });
  const seen = [];
  const reader = await client.read(stream, { from: "earliest" }, (rec) => {
    seen.push(rec.text());
    if (rec.text() === "bad") throw new Error("handler failure");
  });
  await until(() => seen.length === 2, 5000, "both records");
  assert.deepEqual(seen, ["bad", "good"]);
  await reader.close();
});

test("after close() no record should reach the handler", async () => {
  const stream = fresh("orders");
  await client.append(stream, "seen");
  const { reader, records } = await collect(stream, { from: "earliest" });
  await until(() => records.length === 1, 5000, "one record");
  await reader.close();
  await client.append(stream, "unseen");
  await sleep(200);
  assert.deepEqual(records.map((r) => r.text), ["seen"]);
});

test("reading a stream that does not exist should reject with not_found", async () => {
  const err = await client.read(fresh("missing"), { from: "earliest" }, () => {}).then(
    () => assert.fail("read of a missing stream resolved"),
    (e) => e,
  );
  assert.equal(err.name, "not_found");
  assert.equal(typeof err.code, "number");
});
