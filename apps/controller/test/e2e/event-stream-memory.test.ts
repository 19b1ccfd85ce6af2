/**
 * Issue 10 item 4: viewers of `GET /v1/events` that stop reading must not grow the controller.
 * The controller runs alone in a child process (its RSS is its own, measured after garbage
 * collection); the same 30,000 events are emitted once with no viewer and once with 20 stalled
 * ones (real sockets whose reader stopped). The stalled run may grow the controller by less
 * than 50 MB more than the run without them, and a stalled viewer that resumes with
 * `Last-Event-ID` misses no event.
 */
import type { ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { hasExited, spawnTs, stopChild } from "@nbfleet/testkit/processes";
import { repoRoot } from "@nbfleet/testkit/repo";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

const script = path.join(repoRoot, "packages/testkit/src/event-flood-controller.ts");

const EVENTS = 30_000;
const PAYLOAD_BYTES = 400;
const VIEWERS = 20;
const MB = 1024 * 1024;

interface Mem {
  rss: number;
  heapUsed: number;
  subscribers: number;
}

class FloodController {
  url = "";
  token = "";
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      this.lines.push(line);
      this.wake?.();
    });
  }

  static async start(): Promise<FloodController> {
    const child = spawnTs(script, [], {
      nodeFlags: ["--expose-gc"],
      stdio: ["pipe", "pipe", "inherit"],
      // A minimal environment: nothing of this process's secrets.
      env: {
        PATH: process.env.PATH,
        HOME: tmpdir(),
        NBFLEET_DATA_DIR: makeDataDir("nbf-flood-"),
        NBFLEET_LISTEN: "127.0.0.1:0",
        NBFLEET_LOG_LEVEL: "warn",
      },
    });
    const controller = new FloodController(child);
    const ready = JSON.parse(await controller.nextLine(60_000)) as { url: string; token: string };
    controller.url = ready.url;
    controller.token = ready.token;
    return controller;
  }

  async ask<T>(command: Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
    return JSON.parse(await this.nextLine(timeoutMs)) as T;
  }

  stop(): Promise<void> {
    return stopChild(this.child, (child) => child.stdin!.end(), 10_000);
  }

  /** The next stdout line, failing when the child dies or the deadline passes. */
  private async nextLine(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (hasExited(this.child)) throw new Error("the controller process died");
      if (Date.now() > deadline)
        throw new Error(`no answer from the controller process within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
    return this.lines.shift()!;
  }
}

/** Emits the flood and returns how much the controller's RSS grew (after garbage collection). */
async function growthUnderFlood(controller: FloodController): Promise<{ growth: number; after: Mem }> {
  const before = await controller.ask<Mem>({ cmd: "mem" });
  await controller.ask({ cmd: "emit", count: EVENTS, bytes: PAYLOAD_BYTES });
  const after = await controller.ask<Mem>({ cmd: "mem" });
  return { growth: after.rss - before.rss, after };
}

let controllers: FloodController[] = [];
let readers: SseReader[] = [];
afterEach(async () => {
  for (const reader of readers) reader.close();
  readers = [];
  await Promise.all(controllers.map((c) => c.stop()));
  controllers = [];
});

describe("event stream memory", () => {
  it("20 stalled viewers and 30,000 events: under 50 MB more growth, and a resumed viewer misses nothing", async () => {
    const quiet = await FloodController.start();
    controllers.push(quiet);
    await quiet.ask({ cmd: "emit", count: 10, bytes: 10 });
    const baseline = await growthUnderFlood(quiet);
    await quiet.stop();

    const busy = await FloodController.start();
    controllers.push(busy);
    readers = Array.from(
      { length: VIEWERS },
      () => new SseReader(`${busy.url}/v1/events`, { token: busy.token, keepData: true }),
    );
    for (const reader of readers) expect(await reader.ready).toBe(200);
    await eventually(
      () => busy.ask<Mem>({ cmd: "mem" }),
      (mem) => mem.subscribers === VIEWERS,
    );
    // Every viewer takes the first events, then stops reading.
    await busy.ask({ cmd: "emit", count: 10, bytes: 10 });
    await eventually(
      async () => readers.every((r) => r.events.length === 10),
      (all) => all,
    );
    for (const reader of readers) reader.pause();
    const flooded = await growthUnderFlood(busy);
    const { lastId } = await busy.ask<{ lastId: string }>({ cmd: "emit", count: 1, bytes: 0 });

    console.log(
      `RSS growth over ${EVENTS} events: ${(baseline.growth / MB).toFixed(1)} MB without viewers, ` +
        `${(flooded.growth / MB).toFixed(1)} MB with ${VIEWERS} stalled ones ` +
        `(${flooded.after.subscribers} still subscribed)`,
    );
    expect(flooded.growth - baseline.growth).toBeLessThan(50 * MB);
    // They fell too far behind and were let go.
    expect(flooded.after.subscribers).toBe(0);

    // One of them comes back where it left off, as an EventSource does.
    const stalled = readers[0]!;
    stalled.resume();
    await stalled.ended;
    const resumed = new SseReader(`${busy.url}/v1/events`, {
      token: busy.token,
      lastEventId: stalled.lastId,
      keepData: true,
    });
    readers.push(resumed);
    await eventually(
      async () => resumed.lastId,
      (id) => id === lastId,
      60_000,
      100,
    );
    const seqs = [...stalled.events, ...resumed.events]
      .map((e) => JSON.parse(e.data) as { kind: string; data: { seq: number } })
      .filter((e) => e.kind === "test.flood")
      .map((e) => e.data.seq);
    // The warm-up 10, the flood, and the last one, each exactly once and in order.
    const expected = [
      ...Array.from({ length: 10 }, (_, i) => i),
      ...Array.from({ length: EVENTS }, (_, i) => i),
      0,
    ];
    expect(seqs).toEqual(expected);
  });
});
