// The package's entry: everything wasm-bindgen generated, with an `init()` that also works in
// Node, whose `fetch` cannot read the `file:` URL the generated loader would fetch.
import initWasm from "./switchboard_client.js";

export * from "./switchboard_client.js";

/**
 * Loads the WebAssembly module; call it once before `new Client(...)`. With no argument it
 * fetches the `.wasm` next to this file (browsers, bundlers) or reads it from disk (Node).
 */
export default async function init(input) {
  if (input === undefined && import.meta.url.startsWith("file:")) {
    const bytes = await readLocal(new URL("./switchboard_client_bg.wasm", import.meta.url));
    if (bytes !== undefined) {
      return initWasm({ module_or_path: bytes });
    }
  }
  return initWasm(input);
}

/** The file's bytes when running in Node, otherwise `undefined`. */
async function readLocal(url) {
  const node = globalThis.process;
  if (!node?.versions?.node) {
    return undefined;
  }
  // `getBuiltinModule` (Node ≥ 20.16) keeps bundlers from seeing a `node:` import; older Node
  // gets a dynamic import whose specifier they do not follow.
  const fs =
    node.getBuiltinModule?.("fs/promises") ?? (await import(/* @vite-ignore */ ["node:fs", "promises"].join("/")));
  return fs.readFile(url);
}
