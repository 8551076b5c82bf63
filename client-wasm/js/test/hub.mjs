// Test support: a real hub on a free port with a fresh data folder, and the built package
// loaded as a user loads it.
//
// The hub binary comes from SWITCHBOARD_BIN (set by `cargo xtask test`), else the workspace's
// target/debug/switchboard (`cargo build -p switchboard-server`).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

export const BIN =
  process.env.SWITCHBOARD_BIN ?? fileURLToPath(new URL("../../../target/debug/switchboard", import.meta.url));

/** Starts a hub, with `config` as its TOML configuration file when given; resolves with
 * `{ url, http, port, stop() }` once it listens. */
export async function startHub({ config } = {}) {
  const data = mkdtempSync(join(tmpdir(), "switchboard-js-test-"));
  const args = ["serve", "--listen", "127.0.0.1:0", "--data", join(data, "data"), "--log", "warn"];
  if (config !== undefined) {
    writeFileSync(join(data, "switchboard.toml"), config);
    args.push("--config", join(data, "switchboard.toml"));
  }
  const child = spawn(BIN, args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stderr.on("data", (chunk) => (log += chunk));
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the hub did not start in 10 s:\n${out}${log}`)), 10_000);
    child.on("error", (e) => reject(new Error(`cannot start ${BIN}: ${e.message}`)));
    child.on("exit", (code) => reject(new Error(`the hub exited (${code}) before listening:\n${out}${log}`)));
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return {
    port,
    http: `http://127.0.0.1:${port}`,
    url: `ws://127.0.0.1:${port}/ws`,
    /** The hub's log so far, for a failing test's message. */
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** The package's entry, as `import init, { Client } from "switchboard-client"` would load it,
 * with `ws` as the global WebSocket Node 20 lacks. */
export async function loadPackage() {
  globalThis.WebSocket ??= WebSocket;
  const pkg = await import(new URL("../../pkg/index.js", import.meta.url));
  await pkg.default();
  return pkg;
}

/** A name no other test uses. */
let counter = 0;
export const fresh = (prefix) => `${prefix}-${Date.now().toString(36)}-${(counter += 1)}`;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a rejection naming `what` after `ms`. */
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves once `check()` is true, polling; rejects after `ms`. */
export async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${ms} ms`);
    await sleep(10);
  }
}

/** A promise with its resolve function outside. */
export function signal() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}
