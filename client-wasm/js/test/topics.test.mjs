// The built package against a real hub: topics, errors and connection states.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fresh, loadPackage, signal, sleep, startHub, until, within } from "./hub.mjs";
import { startProxy } from "./proxy.mjs";

const { Client } = await loadPackage();
let hub;
let client;

before(async () => {
  hub = await startHub();
  client = new Client(hub.url, { minDelayMs: 20, maxDelayMs: 200 });
  await within(client.connect(), 5000, "connect");
});

after(async () => {
  await client?.close();
  await hub?.stop();
});

describe("topics", () => {
  test("a subscriber should receive what is published on topics its pattern matches, with headers", async () => {
    const base = fresh("prices");
    const got = [];
    const two = signal();
    const sub = await client.subscribe(`${base}.*`, (msg) => {
      got.push({ topic: msg.topic, text: msg.text(), headers: msg.headers, data: msg.data });
      if (got.length === 2) two.resolve();
    });
    assert.equal(sub.pattern, `${base}.*`);
    const first = await client.publish(`${base}.btc`, JSON.stringify({ price: 1 }), { headers: { unit: "usd" } });
    await client.publish(`other.${base}`, "not matched");
    await client.publish(`${base}.eth`, new Uint8Array([0x32, 0xff]));
    assert.equal(first.receivers, 1);
    await within(two.promise, 5000, "two deliveries");
    await sleep(100);
    assert.deepEqual(got.map((m) => m.topic), [`${base}.btc`, `${base}.eth`]);
    assert.deepEqual(JSON.parse(got[0].text), { price: 1 });
    assert.deepEqual({ ...got[0].headers }, { unit: "usd" });
    assert.ok(got[1].data instanceof Uint8Array);
    assert.deepEqual([...got[1].data], [0x32, 0xff]);
    await sub.unsubscribe();
  });

  test("message.json() should parse the payload and throw on a payload that is not JSON", async () => {
    const topic = fresh("json");
    const got = [];
    const two = signal();
    const sub = await client.subscribe(topic, (msg) => {
      got.push(msg);
      if (got.length === 2) two.resolve();
    });
    await client.publish(topic, '{"a":[1,2]}');
    await client.publish(topic, "not json");
    await within(two.promise, 5000, "deliveries");
    assert.deepEqual(got[0].json(), { a: [1, 2] });
    assert.throws(() => got[1].json(), SyntaxError);
    await sub.unsubscribe();
  });

  test("after unsubscribe() no message should reach the handler", async () => {
    const topic = fresh("quiet");
    let count = 0;
    const sub = await client.subscribe(topic, () => (count += 1));
    await client.publish(topic, "one");
    await until(() => count === 1, 5000, "first delivery");
    await sub.unsubscribe();
    const { receivers } = await client.publish(topic, "two");
    await sleep(200);
    assert.equal(receivers, 0);
    assert.equal(count, 1);
  });

  test("two clients should see each other's messages", async () => {
    const other = new Client(hub.url);
    await other.connect();
    const topic = fresh("chat");
    const got = signal();
    const sub = await other.subscribe(topic, (msg) => got.resolve(msg.text()));
    await client.publish(topic, "hello from the first client");
    assert.equal(await within(got.promise, 5000, "delivery"), "hello from the first client");
    await sub.unsubscribe();
    await other.close();
  });
});

describe("errors", () => {
  test("an invalid topic should reject with an Error carrying code and name", async () => {
    const err = await client.publish("bad topic!", "x").then(
      () => assert.fail("an invalid topic was accepted"),
      (e) => e,
    );
    assert.ok(err instanceof Error);
    assert.equal(err.name, "invalid_name");
    assert.equal(typeof err.code, "number");
    assert.ok(err.code > 0);
    assert.ok(err.message.length > 0);
  });

  test("bad options should reject with invalid_argument", async () => {
    const err = await client.enqueue(fresh("q"), "x", { priority: 42 }).then(
      () => assert.fail("priority 42 was accepted"),
      (e) => e,
    );
    assert.equal(err.name, "invalid_argument");
    assert.equal(typeof err.code, "number");
  });

  test("connecting to a port nobody listens on should reject with a coded error", async () => {
    const proxy = await startProxy(hub.port);
    const deadPort = proxy.port;
    await proxy.stop();
    const lonely = new Client(`ws://127.0.0.1:${deadPort}/ws`, { reconnect: false });
    const err = await within(lonely.connect(), 10_000, "connect").then(
      () => assert.fail("connected to a closed port"),
      (e) => e,
    );
    assert.equal(typeof err.code, "number");
    assert.equal(typeof err.name, "string");
    assert.notEqual(err.name, "Error");
    await lonely.close();
  });

  test("calls after close() should reject with closed", async () => {
    const short = new Client(hub.url);
    await short.connect();
    await short.close();
    const err = await short.publish("prices.btc", "x").then(
      () => assert.fail("publish after close succeeded"),
      (e) => e,
    );
    assert.equal(err.name, "closed");
    assert.equal(typeof err.code, "number");
  });

  test("connect() after close() should reject with closed: close is final", async () => {
    const once = new Client(hub.url);
    await once.connect();
    await once.close();
    const err = await once.connect().then(
      () => assert.fail("connect after close succeeded"),
      (e) => e,
    );
    assert.equal(err.name, "closed");
    assert.equal(err.code, 9002);
  });
});

describe("connection states", () => {
  test("onState should report connecting, connected, then closed", async () => {
    const states = [];
    const c = new Client(hub.url);
    c.onState((s) => states.push(s));
    await c.connect();
    await c.close();
    assert.deepEqual(states, ["connecting", "connected", "closed"]);
  });

  test("a dropped connection should go reconnecting then connected, and subscriptions should come back", async () => {
    const proxy = await startProxy(hub.port);
    const states = [];
    const c = new Client(proxy.url, { minDelayMs: 20, maxDelayMs: 100 });
    c.onState((s) => states.push(s));
    await c.connect();
    const topic = fresh("resub");
    const got = [];
    const sub = await c.subscribe(topic, (msg) => got.push(msg.text()));
    assert.equal(proxy.cutAll(), 1);
    await until(() => states.at(-1) === "connected" && states.includes("reconnecting"), 5000, "reconnect");
    assert.deepEqual(states.slice(0, 3), ["connecting", "connected", "reconnecting"]);
    // The subscription is restored after the reconnect.
    await until(
      () => {
        client.publish(topic, "after the cut").catch(() => {});
        return got.length > 0;
      },
      5000,
      "delivery after the reconnect",
    );
    assert.equal(got[0], "after the cut");
    await sub.unsubscribe();
    await c.close();
    assert.equal(states.at(-1), "closed");
    await proxy.stop();
  });

  test("with reconnect: false a dropped connection should end in closed and report it to onError", async () => {
    const proxy = await startProxy(hub.port);
    const states = [];
    const errors = [];
    const c = new Client(proxy.url, { reconnect: false });
    c.onState((s) => states.push(s));
    c.onError((e) => errors.push(e));
    await c.connect();
    proxy.cutAll();
    await until(() => states.at(-1) === "closed", 5000, "closed");
    assert.ok(!states.includes("reconnecting"), states.join(" -> "));
    await until(() => errors.length > 0, 2000, "onError");
    assert.equal(typeof errors[0].code, "number");
    assert.equal(typeof errors[0].name, "string");
    const err = await c.publish("prices.btc", "x").then(
      () => assert.fail("publish on a closed client succeeded"),
      (e) => e,
    );
    assert.equal(typeof err.code, "number");
    await proxy.stop();
  });
});
