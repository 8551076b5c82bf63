// The built package in a real page of headless Chromium, driven by Playwright: the page
// imports it as an ES module from a static server, calls `init()` (which fetches the .wasm),
// connects to a real hub, publishes and subscribes, appends and reads, enqueues and works,
// and hands what it saw back to the test.
//
// Chromium comes from CHROMIUM, else /usr/bin/chromium (Debian's `chromium` package).

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { startHub } from "./hub.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const PKG = fileURLToPath(new URL("../../pkg/", import.meta.url));

// The page a user would write: import the package, init(), then use it.
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>switchboard-client in a page</title>
<script type="module">
  import init, { Client } from "/pkg/index.js";
  try {
    await init();
    window.switchboard = { Client };
    window.loaded = "ok";
  } catch (e) {
    window.loaded = String(e && e.stack || e);
  }
</script>`;

const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".ts": "text/plain" };

let hub;
let web;
let profile;
let context;

/** Serves the page at / and client-wasm/pkg at /pkg/; resolves with its origin. */
async function serve() {
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      return;
    }
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    const file = normalize(path.replace(/^\/pkg\//, ""));
    if (!path.startsWith("/pkg/") || file.startsWith("..")) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = readFileSync(join(PKG, file));
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

before(async () => {
  hub = await startHub();
  web = await serve();
  profile = mkdtempSync(join(tmpdir(), "switchboard-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await context?.close();
  web?.server.close();
  await hub?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A fresh page with the package loaded; page errors and console errors are collected. */
async function openPage() {
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()} ${m.location().url}`));
  await page.goto(`${web.origin}/`);
  await page.waitForFunction(() => window.loaded !== undefined, null, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.loaded), "ok");
  return { page, problems };
}

test("a page should load the package, connect and use topics, streams and queues", { timeout: 60_000 }, async () => {
  const { page, problems } = await openPage();
  const result = await page.evaluate(async (url) => {
    const { Client } = window.switchboard;
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const until = async (check, what) => {
      for (let i = 0; !check(); i += 1) {
        if (i > 500) throw new Error(`timed out waiting for ${what}`);
        await sleep(10);
      }
    };
    const run = Date.now().toString(36);
    const out = { states: [] };
    const client = new Client(url, { minDelayMs: 50 });
    client.onState((s) => out.states.push(s));
    await client.connect();

    const messages = [];
    const sub = await client.subscribe(`page-${run}.*`, (m) => messages.push({ topic: m.topic, json: m.json(), headers: { ...m.headers } }));
    out.published = await client.publish(`page-${run}.btc`, JSON.stringify({ price: 7 }), { headers: { unit: "usd" } });
    await until(() => messages.length === 1, "a message");
    out.messages = messages;
    await sub.unsubscribe();

    const stream = `page-orders-${run}`;
    out.appended = [];
    for (const text of ["a", "b"]) out.appended.push(await client.append(stream, text, { key: "k" }));
    const records = [];
    const reader = await client.read(stream, { from: "earliest" }, async (rec) => {
      await sleep(5);
      records.push({ offset: rec.offset, text: rec.text() });
    });
    await client.append(stream, "c", { key: "k" });
    await until(() => records.length === 3, "three records");
    out.records = records;
    await sleep(20);
    out.position = reader.position()[out.appended[0].partition];
    await reader.close();

    const queue = `page-jobs-${run}`;
    out.enqueued = await client.enqueue(queue, "job", { priority: 3 });
    const [task] = await client.pull(queue, { max: 1, waitMs: 2000 });
    out.task = { id: task.id, attempt: task.attempt, text: task.text(), priority: task.priority };
    await task.nack({ delayMs: 0 });
    const seen = [];
    const worker = client.work(queue, { concurrency: 1 }, async (t) => seen.push(`${t.text()}#${t.attempt}`));
    await until(() => seen.length === 1, "the worker");
    await worker.stop();
    out.worked = seen;

    try {
      await client.publish("bad topic!", "x");
      out.error = "none";
    } catch (e) {
      out.error = { isError: e instanceof Error, name: e.name, code: e.code };
    }
    await client.close();
    return out;
  }, hub.url);

  assert.deepEqual(result.states, ["connecting", "connected", "closed"]);
  assert.equal(result.published.receivers, 1);
  assert.equal(result.messages.length, 1);
  assert.deepEqual(result.messages[0].json, { price: 7 });
  assert.deepEqual(result.messages[0].headers, { unit: "usd" });
  assert.deepEqual(result.appended.map((a) => a.offset), [0, 1]);
  assert.deepEqual(result.records, [
    { offset: 0, text: "a" },
    { offset: 1, text: "b" },
    { offset: 2, text: "c" },
  ]);
  assert.equal(result.position, 3);
  assert.equal(result.task.id, result.enqueued.id);
  assert.deepEqual(result.task, { id: result.enqueued.id, attempt: 1, text: "job", priority: 3 });
  assert.deepEqual(result.worked, ["job#2"]);
  assert.deepEqual(result.error, { isError: true, name: "invalid_name", code: result.error.code });
  assert.equal(typeof result.error.code, "number");
  assert.deepEqual(problems, []);
});

test("two pages should talk to each other through the hub", { timeout: 60_000 }, async () => {
  const [a, b] = [await openPage(), await openPage()];
  const topic = `room-${Date.now().toString(36)}`;
  await b.page.evaluate(async ({ url, topic }) => {
    const client = new window.switchboard.Client(url);
    await client.connect();
    window.got = new Promise((resolve) => client.subscribe(topic, (m) => resolve(m.text())));
    await new Promise((r) => setTimeout(r, 50));
  }, { url: hub.url, topic });
  const receivers = await a.page.evaluate(async ({ url, topic }) => {
    const client = new window.switchboard.Client(url);
    await client.connect();
    const { receivers } = await client.publish(topic, "hello from page a");
    await client.close();
    return receivers;
  }, { url: hub.url, topic });
  assert.equal(receivers, 1);
  assert.equal(await b.page.evaluate(() => window.got), "hello from page a");
  assert.deepEqual([...a.problems, ...b.problems], []);
});

test("the hub should serve the package at /client/ to its own pages", { timeout: 60_000 }, async () => {
  const page = await context.newPage();
  await page.goto(`${hub.http}/`);
  const result = await page.evaluate(async (url) => {
    const { default: init, Client } = await import("/client/index.js");
    await init();
    const client = new Client(url);
    await client.connect();
    const stream = `served-${Date.now().toString(36)}`;
    const { offset } = await client.append(stream, "from a page the hub served");
    await client.close();
    return { offset, wasm: (await fetch("/client/switchboard_client_bg.wasm")).headers.get("content-type") };
  }, hub.url);
  assert.deepEqual(result, { offset: 0, wasm: "application/wasm" });
  await page.close();
});
