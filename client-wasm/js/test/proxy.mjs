// Test support: a TCP proxy between clients and a hub that can cut every connection through
// it, to stand in for a flaky network.

import net from "node:net";

/** Listens on a free port and forwards each connection to `target` (a port on 127.0.0.1). */
export async function startProxy(target) {
  const pairs = new Set();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target, "127.0.0.1");
    const pair = { inbound, outbound };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", drop).on("close", drop);
    outbound.on("error", drop).on("close", drop);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    /** Connections open now. */
    get open() {
      return pairs.size;
    },
    /** Cuts every open connection (both sides see a reset); returns how many it cut. */
    cutAll() {
      const n = pairs.size;
      for (const { inbound, outbound } of [...pairs]) {
        inbound.resetAndDestroy();
        outbound.resetAndDestroy();
      }
      pairs.clear();
      return n;
    },
    async stop() {
      this.cutAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
