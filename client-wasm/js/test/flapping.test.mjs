// The built package through a flapping network: a TCP proxy between the clients and the hub
// cuts every connection every 150–400 ms while a producer appends and enqueues, a reader reads
// the stream and a worker works the queue. Guards against lost or doubled appends, gaps or
// repeats in a reader's resume, lost tasks and a task handled twice under one lease.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fresh, loadPackage, sleep, startHub, until } from "./hub.mjs";
import { startProxy } from "./proxy.mjs";

const CUTS = 20;
const { Client } = await loadPackage();
let hub;
let proxy;
const clients = [];

before(async () => {
  // A session's leases outlive it until their deadline (docs/protocol.md, "Queues"): a task
  // pushed to the worker just as a cut drops its connection comes back when its lease ends.
  // Short leases keep that wait to seconds.
  hub = await startHub({ config: "queue_lease_ms = 2000\n" });
  proxy = await startProxy(hub.port);
});

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await proxy?.stop();
  await hub?.stop();
});

/** A connected client through the proxy (or straight to the hub), reconnecting quickly. */
async function connect(url) {
  const c = new Client(url, { reconnect: true, minDelayMs: 20, maxDelayMs: 50 });
  clients.push(c);
  await c.connect();
  return c;
}

test("appends, a reader and a worker through 20+ connection cuts should lose and double nothing", { timeout: 120_000 }, async () => {
  const stream = fresh("flap-orders");
  const queue = fresh("flap-jobs");
  const producer = await connect(proxy.url);
  const readerClient = await connect(proxy.url);
  const workerClient = await connect(proxy.url);
  const errors = [];
  const reconnects = [0, 0, 0];
  [producer, readerClient, workerClient].forEach((c, i) => {
    c.onError((e) => errors.push(`${e.name}: ${e.message}`));
    c.onState((state) => {
      if (state === "reconnecting") reconnects[i] += 1;
    });
  });

  // The stream must exist before the reader starts; record 0 is appended straight away.
  const appended = ["r-0"];
  await producer.append(stream, "r-0", { key: "k" });

  const offsets = [];
  const reader = await readerClient.read(stream, { from: "earliest" }, (rec) => {
    offsets.push(rec.offset);
  });

  const handled = new Map(); // `${id}#${attempt}` -> handler calls
  const handledIds = new Set();
  const worker = workerClient.work(queue, { concurrency: 4 }, async (task) => {
    const lease = `${task.id}#${task.attempt}`;
    handled.set(lease, (handled.get(lease) ?? 0) + 1);
    handledIds.add(task.id);
    await sleep(Math.random() * 20);
  });

  let cutting = true;
  let cuts = 0;
  const cutter = (async () => {
    while (cuts < CUTS) {
      await sleep(150 + Math.random() * 250);
      if (proxy.cutAll() > 0) cuts += 1;
    }
    cutting = false;
  })();

  const failures = [];
  const enqueued = [];
  const produce = (async () => {
    for (let i = 1; cutting; i += 1) {
      try {
        await producer.append(stream, `r-${i}`, { key: "k" });
        appended.push(`r-${i}`);
      } catch (e) {
        failures.push(`append r-${i}: ${e.name}: ${e.message}`);
      }
      if (i % 3 === 0) {
        try {
          enqueued.push((await producer.enqueue(queue, `t-${i}`)).id);
        } catch (e) {
          failures.push(`enqueue t-${i}: ${e.name}: ${e.message}`);
        }
      }
      await sleep(5);
    }
  })();

  await cutter;
  await produce;
  assert.ok(cuts >= CUTS, `only ${cuts} cuts`);
  assert.deepEqual(failures, [], "calls failed instead of being retried");
  assert.ok(appended.length > 2 * CUTS, `only ${appended.length} appends in ${cuts} cuts`);
  // Each client was cut off again and again, not just once.
  for (const n of reconnects) assert.ok(n >= CUTS / 2, `reconnects per client: ${reconnects}`);

  // The reader: every offset once, in order.
  await until(() => offsets.length >= appended.length, 30_000, `reader at ${offsets.length}/${appended.length}`);
  await sleep(300);
  const expected = Array.from({ length: appended.length }, (_, i) => i);
  if (offsets.length !== expected.length || offsets.some((o, i) => o !== i)) {
    const firstBad = offsets.findIndex((o, i) => o !== i);
    assert.fail(
      `reader got ${offsets.length} records for ${appended.length} appends; first wrong at index ${firstBad}: ` +
        `${JSON.stringify(offsets.slice(Math.max(0, firstBad - 3), firstBad + 5))}`,
    );
  }
  await reader.close();

  // The stream itself, read back by a fresh client straight to the hub: each append once.
  const direct = await connect(hub.url);
  const stored = [];
  const check = await direct.read(stream, { from: "earliest" }, (rec) => stored.push(rec.text()));
  await until(() => stored.length >= appended.length, 10_000, `read back ${stored.length}/${appended.length}`);
  await sleep(300);
  await check.close();
  const counts = new Map();
  for (const text of stored) counts.set(text, (counts.get(text) ?? 0) + 1);
  const doubled = [...counts].filter(([, n]) => n > 1).map(([t, n]) => `${t} x${n}`);
  assert.deepEqual(doubled, [], "appends stored more than once");
  assert.equal(stored.length, appended.length, "records stored vs successful appends");
  assert.deepEqual(stored, appended, "stored records in append order");

  // The queue: every task handled, none twice under one lease, none left.
  assert.equal(new Set(enqueued).size, enqueued.length, "enqueue answered the same id twice");
  const missing = () => enqueued.filter((id) => !handledIds.has(id));
  await until(() => missing().length === 0, 20_000, `tasks never handled: ${missing().slice(0, 10)}`);
  await sleep(500);
  await worker.stop();
  // Anything still leased (a redelivery whose handler ran but whose ack was cut) settles or
  // expires within a lease.
  await sleep(2500);
  const twice = [...handled].filter(([, n]) => n > 1).map(([lease, n]) => `${lease} x${n}`);
  assert.deepEqual(twice, [], "a task was handled more than once under one lease");
  const strangers = [...handledIds].filter((id) => !enqueued.includes(id));
  assert.deepEqual(strangers, [], "handled tasks nobody enqueued (a doubled enqueue)");
  const left = await direct.pull(queue, { max: 100, waitMs: 300 });
  assert.deepEqual(left.map((t) => `${t.id}#${t.attempt}`), [], "tasks left in the queue after every one was handled");

  console.log(
    `flapping: ${cuts} cuts, ${appended.length} appends, ${enqueued.length} tasks, ` +
      `${handled.size} leases handled, reconnects ${reconnects.join("/")}, ` +
      `onError: ${errors.length ? errors.join("; ") : "none"}`,
  );
});
