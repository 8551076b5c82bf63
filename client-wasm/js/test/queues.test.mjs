// The built package against a real hub: work queues, pulled and worked.

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

/** The one task `pull` gives within a second. */
async function pullOne(queue) {
  const tasks = await client.pull(queue, { max: 1, waitMs: 1000 });
  assert.equal(tasks.length, 1, `no task on ${queue}`);
  return tasks[0];
}

/** Asserts the queue gives nothing for a while. */
async function assertEmpty(queue) {
  const tasks = await client.pull(queue, { max: 10, waitMs: 150 });
  assert.deepEqual(tasks.map((t) => `${t.id}: ${t.text()}`), []);
}

test("a pulled task should carry what was enqueued, and once acked be gone", async () => {
  const queue = fresh("emails");
  const { id } = await client.enqueue(queue, JSON.stringify({ to: "a@example.com" }), {
    priority: 5,
    key: "user-1",
    headers: { trace: "t1" },
  });
  assert.equal(typeof id, "number");
  const task = await pullOne(queue);
  assert.equal(task.id, id);
  assert.equal(task.queue, queue);
  assert.equal(task.attempt, 1);
  assert.equal(task.priority, 5);
  assert.equal(task.key, "user-1");
  assert.deepEqual({ ...task.headers }, { trace: "t1" });
  assert.deepEqual(task.json(), { to: "a@example.com" });
  assert.ok(task.data instanceof Uint8Array);
  assert.ok(task.deadline > Date.now());
  await task.ack();
  await assertEmpty(queue);
});

test("pull should give at most max tasks, higher priority first", async () => {
  const queue = fresh("batch");
  await client.enqueue(queue, "low", { priority: 1 });
  await client.enqueue(queue, "high", { priority: 9 });
  await client.enqueue(queue, "mid", { priority: 5 });
  const tasks = await client.pull(queue, { max: 2, waitMs: 1000 });
  assert.deepEqual(tasks.map((t) => t.text()), ["high", "mid"]);
  const [last] = await client.pull(queue, { max: 5, waitMs: 1000 });
  assert.equal(last.text(), "low");
  await Promise.all([...tasks, last].map((t) => t.ack()));
  await assertEmpty(queue);
});

test("pull on an empty queue should wait about waitMs and give nothing", async () => {
  const queue = fresh("idle");
  await client.enqueue(queue, "x");
  await (await pullOne(queue)).ack();
  const start = Date.now();
  const tasks = await client.pull(queue, { max: 1, waitMs: 300 });
  const took = Date.now() - start;
  assert.deepEqual(tasks, []);
  assert.ok(took >= 250 && took < 3000, `waited ${took} ms`);
});

test("a waiting pull should get a task enqueued while it waits", async () => {
  const queue = fresh("late");
  await client.enqueue(queue, "warm-up");
  await (await pullOne(queue)).ack();
  const pulling = client.pull(queue, { max: 1, waitMs: 5000 });
  await sleep(100);
  const { id } = await client.enqueue(queue, "late");
  const [task] = await pulling;
  assert.equal(task.id, id);
  await task.ack();
});

test("a nacked task should come back with attempt 2", async () => {
  const queue = fresh("retry");
  const { id } = await client.enqueue(queue, "flaky");
  const first = await pullOne(queue);
  assert.equal(first.attempt, 1);
  await first.nack({ delayMs: 0, reason: "try again" });
  const second = await pullOne(queue);
  assert.equal(second.id, id);
  assert.equal(second.attempt, 2);
  assert.equal(second.text(), "flaky");
  await second.ack();
  await assertEmpty(queue);
});

test("a nack with a delay should hide the task until the delay passes", async () => {
  const queue = fresh("later");
  await client.enqueue(queue, "x");
  const first = await pullOne(queue);
  await first.nack({ delayMs: 400 });
  assert.deepEqual(await client.pull(queue, { max: 1, waitMs: 100 }), []);
  const again = await pullOne(queue);
  assert.equal(again.id, first.id);
  await again.ack();
});

test("extend should move the lease's deadline", async () => {
  const queue = fresh("slow");
  await client.enqueue(queue, "x");
  const task = await pullOne(queue);
  const { deadline } = await task.extend(120_000);
  assert.ok(deadline > task.deadline, `${deadline} is not after ${task.deadline}`);
  assert.ok(Math.abs(deadline - (Date.now() + 120_000)) < 5_000, `deadline ${deadline - Date.now()} ms away`);
  await task.ack();
});

test("a released task should be delivered again", async () => {
  const queue = fresh("handback");
  const { id } = await client.enqueue(queue, "x");
  const first = await pullOne(queue);
  await first.release();
  const again = await pullOne(queue);
  assert.equal(again.id, id);
  await again.ack();
  await assertEmpty(queue);
});

test("a rejected task should not be delivered again", async () => {
  const queue = fresh("poison");
  await client.enqueue(queue, "poison");
  const task = await pullOne(queue);
  await task.reject("cannot parse");
  await assertEmpty(queue);
});

test("a repeated ack should be fine, and a nack after the ack should reject with lease_expired", async () => {
  const queue = fresh("twice");
  await client.enqueue(queue, "x");
  const task = await pullOne(queue);
  await task.ack();
  await task.ack(); // the protocol makes a repeated ack of one lease answer ok
  const err = await task.nack({ delayMs: 0 }).then(
    () => assert.fail("a nack after the ack succeeded"),
    (e) => e,
  );
  assert.ok(err instanceof Error);
  assert.equal(err.name, "lease_expired");
  assert.equal(err.code, 4005);
  await assertEmpty(queue);
});

test("an enqueue with a delay should not be pulled before the delay passes", async () => {
  const queue = fresh("delayed");
  await client.enqueue(queue, "warm-up");
  await (await pullOne(queue)).ack();
  const start = Date.now();
  await client.enqueue(queue, "x", { delayMs: 400 });
  const [task] = await client.pull(queue, { max: 1, waitMs: 3000 });
  assert.ok(Date.now() - start >= 350, `pulled after ${Date.now() - start} ms`);
  await task.ack();
});

test("enqueues with the same idempotency key should make one task", async () => {
  const queue = fresh("once");
  const a = await client.enqueue(queue, "x", { idempotencyKey: "order-17" });
  const b = await client.enqueue(queue, "x", { idempotencyKey: "order-17" });
  assert.equal(a.id, b.id);
  const tasks = await client.pull(queue, { max: 10, waitMs: 300 });
  assert.equal(tasks.length, 1);
  await tasks[0].ack();
});

test("work() should ack a task whose handler resolves and nack one whose handler throws", async () => {
  const queue = fresh("jobs");
  const ids = {};
  for (const text of ["ok", "fail once", "async ok"]) ids[text] = (await client.enqueue(queue, text)).id;
  const seen = [];
  const worker = client.work(queue, { concurrency: 2 }, async (task) => {
    seen.push(`${task.text()}#${task.attempt}`);
    if (task.text() === "async ok") await sleep(30);
    if (task.text() === "fail once" && task.attempt === 1) throw new Error("transient");
  });
  assert.equal(worker.queue, queue);
  await until(() => seen.length === 4, 10_000, "four handler calls");
  await sleep(200);
  await worker.stop();
  assert.deepEqual([...seen].sort(), ["async ok#1", "fail once#1", "fail once#2", "ok#1"]);
  await assertEmpty(queue);
});

test("work() should run at most concurrency handlers at once", async () => {
  const queue = fresh("pool");
  for (let i = 0; i < 6; i += 1) await client.enqueue(queue, `t${i}`);
  let inside = 0;
  let most = 0;
  let done = 0;
  const worker = client.work(queue, { concurrency: 2 }, async () => {
    inside += 1;
    most = Math.max(most, inside);
    await sleep(50);
    inside -= 1;
    done += 1;
  });
  await until(() => done === 6, 10_000, "six tasks");
  await worker.stop();
  assert.equal(most, 2);
  await assertEmpty(queue);
});

test("after stop() a worker should get no more tasks", async () => {
  const queue = fresh("stopped");
  let calls = 0;
  const worker = client.work(queue, {}, () => {
    calls += 1;
  });
  await client.enqueue(queue, "before");
  await until(() => calls === 1, 5000, "the first task");
  await worker.stop();
  await client.enqueue(queue, "after");
  await sleep(200);
  assert.equal(calls, 1);
  const [left] = await client.pull(queue, { max: 1, waitMs: 1000 });
  assert.equal(left.text(), "after");
  await left.ack();
});
