export * from "./switchboard_client.js";
import type { InitInput, InitOutput } from "./switchboard_client.js";

/**
 * Loads the WebAssembly module; call it once before `new Client(...)`. With no argument it
 * fetches the `.wasm` next to this file (browsers, bundlers) or reads it from disk (Node).
 */
export default function init(
  input?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput>;
