/**
 * A controller alone in its own process (so its RSS is its own) for event-stream memory tests:
 * settings from the environment like `nbfleet server`, the simulated provider, a fresh admin
 * token printed on stdout with the URL. Commands, one JSON line each on stdin, answered with
 * one JSON line on stdout:
 *   {"cmd":"emit","count":N,"bytes":B}  emit N events with B bytes of payload (in batches, so
 *                                       sockets get written between them), then flush the store
 *   {"cmd":"mem"}                       collect garbage (needs --expose-gc), report RSS and heap
 * Ends when stdin closes.
 */
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { loadSettings } from "@nbfleet/controller";
import { buildServer, listen } from "@nbfleet/controller";
import { SimProvider } from "./sim-provider.js";

const app = await buildServer(loadSettings(), { provider: new SimProvider() });
const url = await listen(app);
const say = (data: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(data)}\n`);
say({ ready: true, url, token: app.nbfleet.adminToken.token, pid: process.pid });

const gc = (globalThis as { gc?: () => void }).gc;
const input = createInterface({ input: process.stdin });
let queue = Promise.resolve();
input.on("line", (line) => {
  queue = queue.then(() => handle(JSON.parse(line) as { cmd: string; count?: number; bytes?: number }));
});
input.on("close", () => {
  void queue.finally(() => app.close().then(() => process.exit(0)));
});

async function handle(command: { cmd: string; count?: number; bytes?: number }): Promise<void> {
  const { bus, store } = app.nbfleet;
  if (command.cmd === "emit") {
    const padding = "x".repeat(command.bytes ?? 0);
    let lastId = "";
    for (let seq = 0; seq < (command.count ?? 0); seq++) {
      lastId = bus.emit({
        vmName: null,
        kind: "test.flood",
        message: `event ${seq}`,
        data: { seq, padding },
      }).id;
      if (seq % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    await store.writer.flush();
    say({ emitted: command.count, lastId });
  } else if (command.cmd === "mem") {
    if (!gc) throw new Error("run with --expose-gc");
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(50);
    }
    const usage = process.memoryUsage();
    say({ rss: usage.rss, heapUsed: usage.heapUsed, subscribers: bus.subscriberCount });
  }
}
