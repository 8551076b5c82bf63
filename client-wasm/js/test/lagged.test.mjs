// A page that reads topic messages too slowly hears of it: the hub drops what its outbox cannot
// hold and sends a `lagged` notice, which the client reports through onError as `lagged`.
//
// The subscriber reaches the hub through a proxy that holds back what the hub sends while the
// publisher floods the topic, so the hub's outbox for that session fills for real.

import { test } from "node:test";
import assert from "node:assert/strict";

import { loadPackage, startHub } from "./hub.mjs";
import { startProxy } from "./proxy.mjs";

const { Client } = await loadPackage();

test("a subscriber that falls behind should get onError lagged with the topic and count", async () => {
  const hub = await startHub({ config: 'outbox_bytes = 65536\nslow_consumer = "notify"\n' });
  const relay = await startProxy(hub.port);
  const slow = new Client(relay.url, { reconnect: false });
  const fast = new Client(hub.url);
  try {
    const errors = [];
    let lagged;
    const heard = new Promise((resolve) => (lagged = resolve));
    slow.onError((err) => {
      errors.push(err);
      if (err.name === "lagged") lagged(err);
    });
    let received = 0;
    await slow.connect();
    await slow.subscribe("flood", () => received++);
    await fast.connect();

    relay.hold();
    // Far more than the outbox and the socket buffers between hub and relay can hold.
    const payload = new Uint8Array(16 * 1024);
    const sent = 2000;
    for (let i = 0; i < sent; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => fast.publish("flood", payload)));
    }
    relay.release();

    const err = await Promise.race([
      heard,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no lagged error; saw ${JSON.stringify(errors)}`)), 15_000)),
    ]);
    assert.equal(err.code, 9004);
    assert.match(err.message, /flood/);
    const missed = Number(/dropped (\d+) messages/.exec(err.message)?.[1]);
    assert.ok(missed > 0 && missed <= sent, `missed ${missed} of ${sent}`);
    assert.ok(received < sent, `received ${received} of ${sent}`);
  } finally {
    await slow.close();
    await fast.close();
    await relay.stop();
    await hub.stop();
  }
});
