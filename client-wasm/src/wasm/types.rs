//! The TypeScript types of the options and results that cross the boundary as plain objects;
//! the exported classes get theirs from wasm-bindgen.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** The connection state `onState` reports. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** What promises reject with and `onError` receives: `code` is the protocol's stable number,
 * `name` its stable snake_case name. */
export interface SwitchboardError extends Error {
  code: number;
  name: string;
  message: string;
}

export interface ClientOptions {
  /** Sent in `hello` when the hub requires a token. */
  token?: string;
  /** Reconnect when the connection drops (default true). */
  reconnect?: boolean;
  /** Smallest backoff before a reconnect attempt, ms (default 250). */
  minDelayMs?: number;
  /** Largest backoff before a reconnect attempt, ms (default 10000). */
  maxDelayMs?: number;
}

/** A payload: bytes, or a string sent as UTF-8. */
export type Data = Uint8Array | string;
export type Headers = { [name: string]: string };

export interface PublishOptions { headers?: Headers; }
export interface Published { receivers: number; }

export interface AppendOptions {
  /** Records with the same key go to the same partition. */
  key?: string;
  headers?: Headers;
  /** Deduplicates retries; the client makes one when absent. */
  idempotencyKey?: string;
}
export interface Appended { partition: number; offset: number; timestamp: number; }

export type ReadFrom =
  | "earliest"
  | "latest"
  | { offset: number; partition?: number }
  | { time: number };
export interface ReadOptions {
  /** Where to start (default "latest"). */
  from?: ReadFrom;
  /** Read as a member of this consumer group. */
  group?: string;
  /** Group readers: commit records as they are consumed. */
  autoCommit?: boolean;
}
/** The next offset not yet consumed, per partition. */
export type Positions = { [partition: number]: number };

export interface EnqueueOptions {
  delayMs?: number;
  /** Tasks with the same key are leased one at a time, in order. */
  key?: string;
  /** 0 (default) to 9; higher first. */
  priority?: number;
  headers?: Headers;
  idempotencyKey?: string;
}
export interface Enqueued { id: number; }
export interface PullOptions { max?: number; waitMs?: number; }
export interface NackOptions { delayMs?: number; reason?: string; }
export interface Extended { deadline: number; }
export interface WorkOptions { concurrency?: number; }
"#;
