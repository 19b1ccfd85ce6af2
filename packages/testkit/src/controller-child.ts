/**
 * A controller alone in its own process, so that /proc of its pid is its own RSS and CPU (for
 * memory tests and the controller benchmark). Settings come from the environment (NBFLEET_*)
 * like a real `nbfleet server`; the provider is the simulated one (VMs are seeded, never
 * provisioned). Drive it with ControllerChild (controller-child-remote.ts).
 *
 * One JSON line per message: `{"event":"ready",url,token,pid}` once listening, then one answer
 * per command read from stdin:
 *   {"cmd":"loop"}                  → {"event":"loop",p50,p99,max,gcMinorMs,gcMajorMs,gcMaxMs,gcCount}
 *                                     how late the event loop ran and its GC pauses since the last
 *                                     "loop" (a stalled loop delays every request and agent message)
 *   {"cmd":"emit","count":N,"bytes":B} → {"event":"emitted",count,lastId}
 *                                     N events with B bytes of payload (in batches, so sockets get
 *                                     written between them), then the store flushed
 *   {"cmd":"mem"}                   → {"event":"mem",rss,heapUsed,subscribers}
 *                                     after collecting garbage (needs --expose-gc)
 * Closes cleanly when stdin closes (the parent going away, even killed) or on SIGTERM/SIGINT.
 */
import { constants, PerformanceObserver, monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { buildServer, listen, loadSettings } from "@nbfleet/controller";
import { SimProvider } from "./sim-provider.js";

export type ControllerCommand =
  | { cmd: "loop" }
  | { cmd: "emit"; count: number; bytes: number }
  | { cmd: "mem" };

export interface LoopStats {
  p50: number;
  p99: number;
  max: number;
  gcMinorMs: number;
  gcMajorMs: number;
  gcMaxMs: number;
  gcCount: number;
}

export interface MemoryStats {
  rss: number;
  heapUsed: number;
  subscribers: number;
}

export type ControllerEvent =
  | { event: "ready"; url: string; token: string; pid: number }
  | ({ event: "loop" } & LoopStats)
  | { event: "emitted"; count: number; lastId: string }
  | ({ event: "mem" } & MemoryStats);

const app = await buildServer(loadSettings(), { provider: new SimProvider() });
const url = await listen(app);
const say = (message: ControllerEvent) => process.stdout.write(`${JSON.stringify(message)}\n`);
say({ event: "ready", url, token: app.nbfleet.adminToken.token ?? "", pid: process.pid });

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
// Garbage collections that stop the loop: minor (scavenge) and major (mark-compact) pauses.
const gcPauses = { minorMs: 0, majorMs: 0, maxMs: 0, count: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcPauses.majorMs += entry.duration;
    else gcPauses.minorMs += entry.duration;
    gcPauses.maxMs = Math.max(gcPauses.maxMs, entry.duration);
    gcPauses.count++;
  }
}).observe({ entryTypes: ["gc"] });

function loopStats(): LoopStats {
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const round = (n: number) => Math.round(n * 10) / 10;
  const stats = {
    p50: ms(loopDelay.percentile(50)),
    p99: ms(loopDelay.percentile(99)),
    max: ms(loopDelay.max),
    gcMinorMs: round(gcPauses.minorMs),
    gcMajorMs: round(gcPauses.majorMs),
    gcMaxMs: round(gcPauses.maxMs),
    gcCount: gcPauses.count,
  };
  loopDelay.reset();
  Object.assign(gcPauses, { minorMs: 0, majorMs: 0, maxMs: 0, count: 0 });
  return stats;
}

async function emit(count: number, bytes: number): Promise<ControllerEvent> {
  const { bus, store } = app.nbfleet;
  const padding = "x".repeat(bytes);
  let lastId = "";
  for (let seq = 0; seq < count; seq++) {
    lastId = bus.emit({
      vmName: null,
      kind: "test.flood",
      message: `event ${seq}`,
      data: { seq, padding },
    }).id;
    if (seq % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
  await store.writer.flush();
  return { event: "emitted", count, lastId };
}

async function memory(): Promise<ControllerEvent> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(50);
  }
  const usage = process.memoryUsage();
  return {
    event: "mem",
    rss: usage.rss,
    heapUsed: usage.heapUsed,
    subscribers: app.nbfleet.bus.subscriberCount,
  };
}

async function handle(command: ControllerCommand): Promise<void> {
  if (command.cmd === "loop") say({ event: "loop", ...loopStats() });
  else if (command.cmd === "emit") say(await emit(command.count, command.bytes));
  else if (command.cmd === "mem") say(await memory());
}

/** A close that hangs (its parent gone, a database away) must not leave the process behind. */
const CLOSE_DEADLINE_MS = 20_000;
let closing = false;
const stop = () => {
  if (closing) return;
  closing = true;
  setTimeout(() => process.exit(1), CLOSE_DEADLINE_MS).unref();
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
const input = createInterface({ input: process.stdin });
let queue = Promise.resolve();
input.on("line", (line) => {
  queue = queue.then(() => handle(JSON.parse(line) as ControllerCommand));
});
input.on("close", () => void queue.finally(stop));
