// Test support: a TCP proxy between clients and a hub that can cut every connection through
// it, refuse new ones, and hold back what the hub sends, to stand in for a flaky or slow
// network.

import net from "node:net";

/** Listens on a free port and forwards each connection to `target` (a port on 127.0.0.1). */
export async function startProxy(target) {
  const pairs = new Set();
  let refusing = false;
  const server = net.createServer((inbound) => {
    if (refusing) {
      inbound.destroy();
      return;
    }
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
    /** While `on`, connections are closed as soon as they open. */
    refuse(on) {
      refusing = on;
    },
    /** Stops passing on what the hub sends (the client stops receiving; the hub's writes back
     * up once the socket buffers fill), until `release()`. */
    hold() {
      for (const { inbound, outbound } of pairs) {
        outbound.unpipe(inbound);
        outbound.pause();
      }
    },
    release() {
      for (const { inbound, outbound } of pairs) outbound.pipe(inbound);
    },
    async stop() {
      this.cutAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
