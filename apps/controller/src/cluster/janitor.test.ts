import { setTimeout as sleep } from "node:timers/promises";
import { freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import { EventBus } from "../events/bus.js";
import { type Store, openStore } from "../store/store.js";
import { localClock } from "./cluster-clock.js";
import { FULL_PASS_EVERY, janitorJob } from "./janitor.js";

const quiet = { warn() {} } as never;
const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

async function store(): Promise<Store> {
  const opened = await openStore({
    ...(await freshStoreLocation("sqlite")),
    flushMs: 10_000,
    flushMaxItems: 100,
  });
  stores.push(opened);
  return opened;
}

describe("janitor", () => {
  it("releases no agent until its database access has worked for three heartbeat intervals", async () => {
    const opened = await store();
    const passes: number[] = [];
    const started = Date.now();
    const job = janitorJob(
      {
        store: opened,
        bus: new EventBus(opened.writer, localClock),
        heartbeatMs: 40,
        log: quiet,
        clock: localClock,
      },
      async () => {
        passes.push(Date.now() - started);
        return { agents: 0, removed: 0 };
      },
    );
    job.start();
    await sleep(400);
    await job.stop();
    expect(passes.length).toBeGreaterThan(0);
    expect(Math.min(...passes)).toBeGreaterThanOrEqual(120);
  });

  it("starts counting again after a failed pass (a database outage)", async () => {
    const opened = await store();
    let failing = true;
    const passes: number[] = [];
    let failedAt = 0;
    const job = janitorJob(
      {
        store: opened,
        bus: new EventBus(opened.writer, localClock),
        heartbeatMs: 40,
        log: quiet,
        clock: localClock,
      },
      async () => {
        if (failing) {
          failing = false;
          failedAt = Date.now();
          throw new Error("database unreachable");
        }
        passes.push(Date.now() - failedAt);
        return { agents: 0, removed: 0 };
      },
    );
    job.start();
    await sleep(600);
    await job.stop();
    expect(failedAt).toBeGreaterThan(0);
    expect(passes.length).toBeGreaterThan(0);
    expect(Math.min(...passes)).toBeGreaterThanOrEqual(120);
  });

  it("checks every connected agent in its first pass and every FULL_PASS_EVERY-th, only dead replicas' in between", async () => {
    const opened = await store();
    const full: boolean[] = [];
    const job = janitorJob(
      {
        store: opened,
        bus: new EventBus(opened.writer, localClock),
        heartbeatMs: 10,
        log: quiet,
        clock: localClock,
      },
      async (_options, _now, isFull) => {
        full.push(isFull ?? true);
        return { agents: 0, removed: 0 };
      },
    );
    job.start();
    await eventually(
      async () => full.length,
      (n) => n > FULL_PASS_EVERY + 1,
      10_000,
    );
    await job.stop();
    const fullPasses = full.flatMap((isFull, i) => (isFull ? [i] : []));
    expect(fullPasses.slice(0, 2)).toEqual([0, FULL_PASS_EVERY]);
  });
});
