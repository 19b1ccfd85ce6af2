/**
 * The controller under benchmark, alone in its own process so that /proc of this pid is its
 * own RSS and CPU. Settings come from the environment (NBFLEET_*) like a real `nbfleet server`;
 * the provider is the simulated one because the VMs are seeded, never provisioned. Prints one
 * `{"bench":"ready",…}` line once listening and closes cleanly on SIGTERM. On the stdin line
 * "loop" it prints how late its event loop ran since the last time (a stalled loop delays
 * every request and agent message alike).
 */
import { constants, PerformanceObserver, monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { buildServer, listen, loadSettings } from "@nbfleet/controller";
import { SimProvider } from "@nbfleet/testkit/sim-provider";

const app = await buildServer(loadSettings(), { provider: new SimProvider() });
const url = await listen(app);
const print = (event: string, data: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ bench: event, ...data })}\n`);
print("ready", { url, pid: process.pid });

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const ms = (ns: number) => Math.round(ns / 1e4) / 100;
// Garbage collections that stop the loop: minor (scavenge) and major (mark-compact) pauses.
const gc = { minorMs: 0, majorMs: 0, maxMs: 0, count: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.majorMs += entry.duration;
    else gc.minorMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
    gc.count++;
  }
}).observe({ entryTypes: ["gc"] });
const round = (n: number) => Math.round(n * 10) / 10;

let closing = false;
const stop = () => {
  if (closing) return;
  closing = true;
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (line.trim() !== "loop") return;
  print("loop", {
    p50: ms(loopDelay.percentile(50)),
    p99: ms(loopDelay.percentile(99)),
    max: ms(loopDelay.max),
    gcMinorMs: round(gc.minorMs),
    gcMajorMs: round(gc.majorMs),
    gcMaxMs: round(gc.maxMs),
    gcCount: gc.count,
  });
  loopDelay.reset();
  Object.assign(gc, { minorMs: 0, majorMs: 0, maxMs: 0, count: 0 });
});
// The bench holds our stdin: when it goes away (even killed), so do we.
input.on("close", stop);
