/**
 * A replica that runs as its own `nbfleet server` process on a machine whose clock is 30 s off,
 * beside a replica whose clock is right, on one PostgreSQL. Debian's libfaketime (LD_PRELOAD,
 * FAKETIME) moves every wall-clock time the process reads, as on a machine without time sync:
 * so this also catches a time the replicas compare that does not go through the cluster's clock
 * (cluster/cluster-clock.ts), which the in-process test (cluster/clock-skew.test.ts) cannot.
 * The replica that is off must be listed alive by both with its offset, take none of the
 * leases, and its events must reach a live stream on the other replica in time.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import type { ReplicaList } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { afterEach, describe, expect, it } from "vitest";
import { releaseKeyPath } from "../../src/artifacts/release-key.js";

const HEARTBEAT_SEC = 0.5;
const SKEW_SEC = 30;
const TOLERANCE_MS = 1000;

/** Debian's libfaketime (the `faketime` package), wherever the architecture puts it. */
function libfaketime(): string {
  for (const dir of readdirSync("/usr/lib")) {
    const candidate = path.join("/usr/lib", dir, "faketime", "libfaketime.so.1");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error("libfaketime.so.1 not found under /usr/lib/*/faketime (Debian package faketime)");
}

let right: TestController | undefined;
let off: ControllerProcess | undefined;
const readers: SseReader[] = [];
afterEach(async () => {
  for (const reader of readers.splice(0)) reader.close();
  if (off) await stopControllerProcess(off);
  await right?.close();
  off = undefined;
  right = undefined;
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each([
  ["ahead of", SKEW_SEC],
  ["behind", -SKEW_SEC],
])("a replica process whose machine's clock is 30 s %s the database server's", (_, skewSec) => {
  it("is listed alive with its offset, takes no lease, and its events stream live on the other replica", async () => {
    const databaseUrl = await freshDatabaseUrl();
    right = await startTestController({
      settings: { databaseUrl, replicaHeartbeatSec: HEARTBEAT_SEC, reportIntervalSec: 1 },
    });
    const rightId = right.app.nbfleet.cluster.replica.id;
    off = await startControllerProcess(makeDataDir("nbf-skewed-"), await freePort(), right.adminToken, {
      NBFLEET_DATABASE_URL: databaseUrl,
      NBFLEET_REPLICA_HEARTBEAT_SEC: String(HEARTBEAT_SEC),
      // Replicas of one database sign with one release key (the testkit gives each database its own).
      NBFLEET_RELEASE_KEY_FILE: releaseKeyPath(right.app.nbfleet.settings),
      LD_PRELOAD: libfaketime(),
      FAKETIME: `${skewSec > 0 ? "+" : ""}${skewSec}s`,
      DONT_FAKE_MONOTONIC: "1",
    });
    const offApi = api(off);

    // Listed alive by both, the process with the offset it measured from its own (faked) clock.
    for (const list of [
      async () => (await offApi<ReplicaList>("GET", "/v1/replicas")).body.items,
      async () =>
        (await api({ url: right!.url, token: right!.adminToken })<ReplicaList>("GET", "/v1/replicas")).body
          .items,
    ]) {
      await expect
        .poll(async () => (await list()).map((r) => r.alive), { timeout: 10_000 })
        .toEqual([true, true]);
    }
    const items = (await offApi<ReplicaList>("GET", "/v1/replicas")).body.items;
    const offView = items.find((r) => r.self)!;
    expect(Math.abs(offView.clockOffsetMs! - skewSec * 1000)).toBeLessThan(TOLERANCE_MS);
    expect(Math.abs(items.find((r) => r.id === rightId)!.clockOffsetMs!)).toBeLessThan(TOLERANCE_MS);

    // Several renewals later every lease is still held by the replica that took it first.
    await sleep(10 * HEARTBEAT_SEC * 1000);
    const holders = await right.app.nbfleet.store.db
      .selectFrom("leases")
      .select(["name", "holder"])
      .execute();
    expect(holders.length).toBeGreaterThanOrEqual(5);
    expect(holders.filter((l) => l.holder !== rightId)).toEqual([]);

    // An event made on the process (a token created through it) reaches a stream on the other.
    const stream = new SseReader(`${right.url}/v1/events?kind=token.created`, { token: right.adminToken });
    readers.push(stream);
    expect(await stream.ready).toBe(200);
    const created = await offApi("POST", "/v1/tokens", {
      name: "made-on-the-skewed-replica",
      role: "viewer",
    });
    expect(created.status).toBe(201);
    await expect
      .poll(() => stream.events.map((e) => JSON.parse(e.data).message as string), { timeout: 5000 })
      .toEqual([expect.stringContaining("made-on-the-skewed-replica")]);
  }, 180_000);
});
