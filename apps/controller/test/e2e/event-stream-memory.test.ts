/**
 * Issue 10 item 4: viewers of `GET /v1/events` that stop reading must not grow the controller.
 * The controller runs alone in a child process (its RSS is its own, measured after garbage
 * collection); the same 30,000 events are emitted once with no viewer and once with 20 stalled
 * ones (real sockets whose reader stopped). The stalled run may grow the controller by less
 * than 50 MB more than the run without them, and a stalled viewer that resumes with
 * `Last-Event-ID` misses no event.
 */
import { tmpdir } from "node:os";
import type { MemoryStats } from "@nbfleet/testkit/controller-child";
import { ControllerChild } from "@nbfleet/testkit/controller-child-remote";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

const EVENTS = 30_000;
const PAYLOAD_BYTES = 400;
const VIEWERS = 20;
const MB = 1024 * 1024;

/** The controller alone in a process of its own, with a minimal environment (nothing of this process's secrets). */
function startController(): Promise<ControllerChild> {
  return ControllerChild.start({
    nodeFlags: ["--expose-gc"],
    env: {
      PATH: process.env.PATH,
      HOME: tmpdir(),
      NBFLEET_DATA_DIR: makeDataDir("nbf-flood-"),
      NBFLEET_LISTEN: "127.0.0.1:0",
      NBFLEET_LOG_LEVEL: "warn",
    },
  });
}

/** Emits the flood and returns how much the controller's RSS grew (after garbage collection). */
async function growthUnderFlood(
  controller: ControllerChild,
): Promise<{ growth: number; after: MemoryStats }> {
  const before = await controller.memory();
  await controller.emit(EVENTS, PAYLOAD_BYTES);
  const after = await controller.memory();
  return { growth: after.rss - before.rss, after };
}

let controllers: ControllerChild[] = [];
let readers: SseReader[] = [];
afterEach(async () => {
  for (const reader of readers) reader.close();
  readers = [];
  await Promise.all(controllers.map((c) => c.stop()));
  controllers = [];
});

describe("event stream memory", () => {
  it("20 stalled viewers and 30,000 events: under 50 MB more growth, and a resumed viewer misses nothing", async () => {
    const quiet = await startController();
    controllers.push(quiet);
    await quiet.emit(10, 10);
    const baseline = await growthUnderFlood(quiet);
    await quiet.stop();

    const busy = await startController();
    controllers.push(busy);
    readers = Array.from(
      { length: VIEWERS },
      () => new SseReader(`${busy.url}/v1/events`, { token: busy.token, keepData: true }),
    );
    for (const reader of readers) expect(await reader.ready).toBe(200);
    await eventually(
      () => busy.memory(),
      (mem) => mem.subscribers === VIEWERS,
    );
    // Every viewer takes the first events, then stops reading.
    await busy.emit(10, 10);
    await eventually(
      async () => readers.every((r) => r.events.length === 10),
      (all) => all,
    );
    for (const reader of readers) reader.pause();
    const flooded = await growthUnderFlood(busy);
    const { lastId } = await busy.emit(1, 0);

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
