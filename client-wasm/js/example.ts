// Type-checks the package's declarations against issue 5's API (`npm run typecheck`; build
// the package with `cargo xtask wasm` first). Never run.
import init, { Client, type SwitchboardError, type StreamRecord, type Task } from "../pkg/index.js";

export async function example(url: string): Promise<void> {
  await init();
  const client = new Client(url, { token: "t", reconnect: true, minDelayMs: 100, maxDelayMs: 5000 });
  client.onState((state) => {
    const known: "connecting" | "connected" | "reconnecting" | "closed" = state;
    console.log(known);
  });
  client.onError((err: SwitchboardError) => console.log(err.code, err.name, err.message));
  await client.connect();

  const sub = await client.subscribe("prices.*", (msg) => {
    const topic: string = msg.topic;
    const data: Uint8Array = msg.data;
    const unit: string | undefined = msg.headers["unit"];
    console.log(topic, data, unit, msg.text(), msg.json());
  });
  await client.publish("prices.btc", new Uint8Array([1]), { headers: { unit: "usd" } });
  await client.publish("prices.btc", "text");
  await sub.unsubscribe();

  const { partition, offset, timestamp } = await client.append("orders", "x", {
    key: "k",
    idempotencyKey: "i",
  });
  const reader = await client.read("orders", { from: { offset, partition }, group: "g" }, async (rec: StreamRecord) => {
    const n: number = rec.offset + rec.partition + rec.timestamp;
    const key: string | undefined = rec.key;
    console.log(rec.stream, n, key, rec.data, rec.text(), rec.json());
    await reader.commit(rec);
  });
  const next: number | undefined = reader.position()[partition];
  console.log(next, timestamp);
  await client.read("orders", { from: "earliest" }, () => {});
  await client.read("orders", { from: { time: Date.now() } }, () => {});
  await reader.close();

  const { id } = await client.enqueue("emails", "x", { delayMs: 10, key: "k", priority: 3 });
  const tasks: Task[] = await client.pull("emails", { max: 1, waitMs: 30000 });
  for (const task of tasks) {
    console.log(id, task.id, task.data, task.attempt, task.headers, task.text(), task.json());
    const { deadline } = await task.extend(1000);
    console.log(deadline);
    await task.nack({ delayMs: 5, reason: "later" });
    await task.ack();
    await task.release();
    await task.reject("bad");
  }
  const worker = client.work("emails", { concurrency: 2 }, async (task) => {
    console.log(task.id);
  });
  await worker.stop();
  await client.close();
}
