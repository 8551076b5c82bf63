// A reader that cannot resume exactly where it was says so and stops: the stream was deleted and
// created again (a new epoch) while the client was disconnected, so its saved offsets mean
// nothing. The reader must report `epoch_mismatch` through onError and deliver nothing of the
// new stream, never skip silently.

import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";

import { fresh, loadPackage, sleep, startHub, until, within } from "./hub.mjs";
import { startProxy } from "./proxy.mjs";

const { Client } = await loadPackage();

/** Sends one JSON request over a raw WebSocket and resolves with the hub's answer to it. */
async function raw(url, request) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const answers = [];
  ws.on("message", (data) => answers.push(JSON.parse(data.toString())));
  ws.send(JSON.stringify({ hello: { version: 1 } }));
  ws.send(JSON.stringify(request));
  await until(() => answers.some((a) => a.ok?.id === 1 || a.error?.id === 1), 5000, "raw answer");
  ws.close();
  return answers.find((a) => a.ok?.id === 1 || a.error?.id === 1);
}

test("a reader resuming into a recreated stream should report epoch_mismatch and stop", async () => {
  const hub = await startHub();
  const gate = await startProxy(hub.port);
  const reader = new Client(gate.url, { minDelayMs: 20, maxDelayMs: 100 });
  const writer = new Client(hub.url);
  try {
    const errors = [];
    reader.onError((err) => errors.push(err));
    await reader.connect();
    await writer.connect();
    const stream = fresh("recreated");
    for (let i = 0; i < 3; i++) await writer.append(stream, `old ${i}`);
    const seen = [];
    await reader.read(stream, { from: "earliest" }, (rec) => seen.push(rec.text()));
    await until(() => seen.length === 3, 5000, "the old records");

    // While the reader is away, the stream is deleted and created again by new appends.
    gate.refuse(true);
    gate.cutAll();
    const deleted = await raw(hub.url, { delete_stream: { id: 1, stream } });
    assert.ok(deleted.ok, JSON.stringify(deleted));
    for (let i = 0; i < 5; i++) await writer.append(stream, `new ${i}`);
    gate.refuse(false);

    await within(
      until(() => errors.some((e) => e.name === "epoch_mismatch"), 10_000, "epoch_mismatch"),
      12_000,
      "the reader's error",
    );
    const err = errors.find((e) => e.name === "epoch_mismatch");
    assert.equal(err.code, 4003);
    await sleep(300);
    assert.deepEqual(seen, ["old 0", "old 1", "old 2"], "nothing of the new stream is delivered");
    // The client itself reconnected and still works.
    const answer = await reader.append(stream, "after");
    assert.equal(answer.offset, 5);
  } finally {
    await reader.close();
    await writer.close();
    await gate.stop();
    await hub.stop();
  }
});
