/**
 * A replica on a machine whose clock is off (30 s ahead, 30 s behind, at the epoch) beside one whose clock is
 * right, on one PostgreSQL. The replicas compare times on the database server's clock
 * (cluster-clock.ts), so the one that is off is listed alive with its offset, takes none of the
 * other's leases, and its events reach the live streams of both in time. On their own clocks,
 * a replica 30 s ahead took every lease of the other at its first renewal, and one 30 s behind
 * was listed dead and its events were left out of the live streams.
 */
import type { ReplicaList } from "@nbfleet/shared";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { afterEach, describe, expect, it } from "vitest";
import { clockOffset } from "../cli/commands/replicas.js";
import { DatabaseClock } from "./cluster-clock.js";

const HEARTBEAT_SEC = 0.3;
const SKEW_MS = 30_000;
/**
 * What a measurement may be off by: half its round trip, which a loaded 2-core machine running
 * other test files beside this one can stretch to hundreds of ms (30 times less than the skew).
 */
const TOLERANCE_MS = 1000;
const JOBS = ["command-sweeps", "operations", "reconcile", "retention", "janitor"];

const started: TestController[] = [];
const readers: SseReader[] = [];
afterEach(async () => {
  for (const reader of readers.splice(0)) reader.close();
  await Promise.all(started.splice(0).map((c) => c.close().catch(() => {})));
});

async function replica(databaseUrl: string, localClock?: () => number, adminToken?: string) {
  const controller = await startTestController({
    settings: {
      databaseUrl,
      replicaHeartbeatSec: HEARTBEAT_SEC,
      reportIntervalSec: 1,
      ...(adminToken ? { adminToken } : {}),
    },
    ...(localClock ? { localClock } : {}),
  });
  started.push(controller);
  return controller;
}

async function listReplicas(c: TestController): Promise<ReplicaList["items"]> {
  const response = await call(c.app, "GET", "/v1/replicas", { token: c.adminToken });
  expect(response.statusCode).toBe(200);
  return (response.json() as ReplicaList).items;
}

const idOf = (c: TestController) => c.app.nbfleet.cluster.replica.id;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A machine that booted without a real-time clock: 1970-01-02. */
const AT_THE_EPOCH_MS = 86_400_000 - Date.now();

describe.each([
  ["30 s ahead of", SKEW_MS],
  ["30 s behind", -SKEW_MS],
  ["at the epoch, decades behind", AT_THE_EPOCH_MS],
])("a replica whose machine's clock is %s the database server's", (_, skewMs) => {
  it("is listed alive with its offset, takes no lease of the other, and its events stream live on both", async () => {
    const databaseUrl = await freshDatabaseUrl();
    const right = await replica(databaseUrl);
    const off = await replica(databaseUrl, () => Date.now() + skewMs, right.adminToken);
    for (const job of JOBS) expect(right.app.nbfleet.cluster.leases.held(job), job).toBe(true);

    // Both alive in each other's list, each with the offset it measured.
    for (const asked of [right, off]) {
      await expect
        .poll(async () => (await listReplicas(asked)).map((r) => [r.id, r.alive]), { timeout: 5000 })
        .toEqual([
          [idOf(right), true],
          [idOf(off), true],
        ]);
    }
    const [rightView, offView] = await listReplicas(right);
    expect(Math.abs(rightView!.clockOffsetMs!)).toBeLessThan(TOLERANCE_MS);
    expect(Math.abs(offView!.clockOffsetMs! - skewMs)).toBeLessThan(TOLERANCE_MS);
    expect(Math.abs(off.app.nbfleet.cluster.clock.now() - Date.now())).toBeLessThan(TOLERANCE_MS);
    // The CLI's CLOCK column: the offset it read (a heartbeat may have measured anew meanwhile).
    const table = await runCli(right, "replicas");
    const row = table.stdout.split("\n").find((line) => line.includes(idOf(off)));
    const shown = /([+-]\d+\.\d)s/.exec(row ?? "")?.[1];
    expect(shown, table.stdout).toBeDefined();
    expect(Math.abs(Number(shown) * 1000 - skewMs)).toBeLessThan(TOLERANCE_MS);
    const scraped = await call(off.app, "GET", "/metrics", { token: off.adminToken });
    const gauge = /^nbfleet_clock_offset_seconds (\S+)$/m.exec(scraped.body)?.[1];
    expect(Math.abs(Number(gauge) * 1000 - skewMs)).toBeLessThan(TOLERANCE_MS);

    // Several lease renewals later every job still runs on the replica that took it first.
    await sleep(10 * HEARTBEAT_SEC * 1000);
    for (const job of JOBS) {
      expect(right.app.nbfleet.cluster.leases.held(job), job).toBe(true);
      expect(off.app.nbfleet.cluster.leases.held(job), job).toBe(false);
    }
    expect((await listReplicas(right)).map((r) => r.alive)).toEqual([true, true]);

    // An event made on either replica reaches a live stream on both, within a few seconds.
    const token = right.adminToken;
    const streams = [right, off].map((c) => new SseReader(`${c.url}/v1/events?kind=test.skew`, { token }));
    readers.push(...streams);
    for (const stream of streams) expect(await stream.ready).toBe(200);
    for (const [from, c] of [
      ["right", right],
      ["off", off],
    ] as const)
      c.app.nbfleet.bus.emit({ vmName: null, kind: "test.skew", message: `from the replica ${from}` });
    const messages = (reader: SseReader) => reader.events.map((e) => JSON.parse(e.data).message).sort();
    for (const stream of streams)
      await expect
        .poll(() => messages(stream), { timeout: 5000 })
        .toEqual(["from the replica off", "from the replica right"]);
  }, 60_000);
});

describe("DatabaseClock", () => {
  it("follows a stepped clock at the next measurement, and warns once while the offset is beyond a second", async () => {
    const c = await replica(await freshDatabaseUrl());
    const warnings: string[] = [];
    const infos: string[] = [];
    const log = {
      warn: (_: unknown, message: string) => warnings.push(message),
      info: (_: unknown, message: string) => infos.push(message),
    } as never;
    let skew = 5000;
    const clock = new DatabaseClock({
      db: c.app.nbfleet.store.db,
      dialect: "postgres",
      log,
      local: () => Date.now() + skew,
    });
    await clock.measure();
    expect(Math.abs(clock.offsetMs - 5000)).toBeLessThan(TOLERANCE_MS);
    await clock.measure();
    expect(warnings).toEqual([expect.stringMatching(/clock is [4-6]\.\d s ahead of the database server's/)]);
    // The machine's clock is set right (a step): the next measurement is believed at once.
    skew = 0;
    await clock.measure();
    expect(Math.abs(clock.offsetMs)).toBeLessThan(TOLERANCE_MS);
    expect(infos).toEqual(["this machine's clock agrees with the database server's again"]);
    for (let i = 0; i < 8; i++) await clock.measure();
    expect(Math.abs(clock.offsetMs)).toBeLessThan(TOLERANCE_MS);
    expect(warnings).toHaveLength(1);
    expect(infos).toHaveLength(1);
  });
});

describe("nbfleet replicas' CLOCK column", () => {
  it("shows the offset signed, in seconds", () => {
    expect([30_012, -30_049, 4, -4, 0, null].map(clockOffset)).toEqual([
      "+30.0s",
      "-30.0s",
      "+0.004s",
      "-0.004s",
      "+0.000s",
      "-",
    ]);
  });
});
