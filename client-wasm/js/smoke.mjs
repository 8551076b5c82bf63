// Smoke check of the built package in Node 20: connect to a running hub, subscribe, publish,
// append and read, enqueue, pull and settle, work, then close. Prints what it saw; exits non-zero on the first failure.
//
//   cargo xtask wasm
//   (cd client-wasm/js && npm install)
//   node client-wasm/js/smoke.mjs ws://127.0.0.1:PORT/ws

import assert from "node:assert/strict";
import WebSocket from "ws";

// Node 20 has no global WebSocket; the package uses whatever is there.
globalThis.WebSocket = WebSocket;

// The package's entry, as `import ... from "switchboard-client"` would load it.
const { default: init, Client } = await import(new URL("../pkg/index.js", import.meta.url));
await init();

const url = process.argv[2];
if (!url) {
  console.error("usage: node smoke.mjs ws://HOST:PORT/ws");
  process.exit(2);
}

const withTimeout = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)),
  ]);

// Fresh names, so the script can run again against the same hub.
const run = Date.now().toString(36);
const stream = `orders-${run}`;
const queue = `emails-${run}`;

const client = new Client(url, { reconnect: true, minDelayMs: 100, maxDelayMs: 1000 });
const states = [];
client.onState((state) => states.push(state));
client.onError((err) => console.log("onError:", err.code, err.name, err.message));

await withTimeout(client.connect(), 5000, "connect");
console.log("connected; states so far:", states.join(" -> "));

const received = [];
let gotAll;
const all = new Promise((resolve) => (gotAll = resolve));
const sub = await client.subscribe("prices.*", (msg) => {
  received.push({ topic: msg.topic, text: msg.text(), json: msg.json(), headers: msg.headers });
  if (received.length === 2) gotAll();
});
console.log("subscribed to", sub.pattern);

const first = await client.publish("prices.btc", JSON.stringify({ price: 1 }), { headers: { unit: "usd" } });
const second = await client.publish("prices.eth", new TextEncoder().encode("2"));
console.log("published; receivers:", first.receivers, second.receivers);
await withTimeout(all, 5000, "delivery");
console.log("received:", JSON.stringify(received));
assert.deepEqual(received.map((m) => m.topic), ["prices.btc", "prices.eth"]);
assert.deepEqual(received[0].json, { price: 1 });
assert.equal(received[0].headers.unit, "usd");
assert.equal(received[1].text, "2");

await sub.unsubscribe();
await client.publish("prices.btc", "after unsubscribe");
await new Promise((resolve) => setTimeout(resolve, 200));
assert.equal(received.length, 2, "a message arrived after unsubscribe");
console.log("unsubscribed; nothing more delivered");

const appended = await client.append(stream, "order 1", { key: "customer-7" });
const appended2 = await client.append(stream, "order 2", { key: "customer-7" });
console.log("appended:", JSON.stringify(appended), JSON.stringify(appended2));
assert.equal(appended2.partition, appended.partition);
assert.equal(appended2.offset, appended.offset + 1);

const records = [];
let gotThree;
const three = new Promise((resolve) => (gotThree = resolve));
let inHandler = 0;
const reader = await client.read(stream, { from: "earliest" }, async (rec) => {
  inHandler += 1;
  assert.equal(inHandler, 1, "a record reached the handler before the previous one's promise settled");
  await new Promise((resolve) => setTimeout(resolve, 20));
  records.push({ partition: rec.partition, offset: rec.offset, key: rec.key, text: rec.text() });
  inHandler -= 1;
  if (records.length === 3) gotThree();
});
await client.append(stream, "order 3", { key: "customer-7" });
await withTimeout(three, 5000, "records");
console.log("read:", JSON.stringify(records));
assert.deepEqual(records.map((r) => r.text), ["order 1", "order 2", "order 3"]);
assert.deepEqual(records.map((r) => r.offset), [appended.offset, appended.offset + 1, appended.offset + 2]);
await new Promise((resolve) => setTimeout(resolve, 50));
console.log("reader position:", JSON.stringify(reader.position()));
assert.equal(reader.position()[appended.partition], appended.offset + 3);
await reader.close();

const enqueued = await client.enqueue(queue, JSON.stringify({ to: "a@example.com" }), { priority: 5 });
console.log("enqueued:", JSON.stringify(enqueued));
assert.equal(typeof enqueued.id, "number");

const [task] = await client.pull(queue, { max: 1, waitMs: 1000 });
console.log("pulled:", JSON.stringify({ id: task.id, queue: task.queue, attempt: task.attempt,
  priority: task.priority, json: task.json(), headers: task.headers }));
assert.equal(task.id, enqueued.id);
assert.equal(task.json().to, "a@example.com");
const extended = await task.extend(60000);
console.log("extended; deadline in", extended.deadline - Date.now(), "ms");
await task.nack({ delayMs: 0, reason: "smoke" });
const [again] = await client.pull(queue, { max: 1, waitMs: 1000 });
assert.equal(again.id, task.id);
assert.equal(again.attempt, task.attempt + 1);
await again.ack();
const none = await client.pull(queue, { max: 5, waitMs: 100 });
console.log("nacked, pulled again (attempt", again.attempt + "), acked; queue now gives", none.length, "tasks");
assert.equal(none.length, 0);

const jobs = `jobs-${run}`;
await client.enqueue(jobs, "ok");
await client.enqueue(jobs, "fail once");
const seen = [];
let workDone;
const worked = new Promise((resolve) => (workDone = resolve));
const worker = client.work(jobs, { concurrency: 2 }, async (t) => {
  seen.push(`${t.text()}#${t.attempt}`);
  if (seen.length === 3) workDone();
  if (t.text() === "fail once" && t.attempt === 1) throw new Error("try again");
});
await withTimeout(worked, 10000, "worker");
await worker.stop();
console.log("worker saw:", seen.join(", "));
assert.deepEqual([...seen].sort(), ["fail once#1", "fail once#2", "ok#1"]);
await new Promise((resolve) => setTimeout(resolve, 100));
const left = await client.pull(jobs, { max: 5, waitMs: 100 });
console.log("left in the queue after the worker:", left.length);
assert.equal(left.length, 0);

try {
  await client.publish("bad topic!", "x");
  assert.fail("an invalid topic was accepted");
} catch (err) {
  console.log("invalid topic rejected:", err instanceof Error, err.code, err.name, err.message);
  assert.equal(err.name, "invalid_name");
}

await client.close();
console.log("closed; states:", states.join(" -> "));
assert.equal(states.at(-1), "closed");
try {
  await client.publish("prices.btc", "x");
  assert.fail("publish after close succeeded");
} catch (err) {
  console.log("publish after close rejected:", err.code, err.name);
}
console.log("smoke: ok");
