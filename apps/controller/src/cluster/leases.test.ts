/** The lease statement on both dialects, and the Leases manager's start/stop of its jobs. */
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type Store, openStore } from "../store/store.js";
import { localClock } from "./cluster-clock.js";
import { Leases, acquireLease, leaseHolder, releaseLease } from "./leases.js";

const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

async function freshStore(dialect: (typeof STORE_DIALECTS)[number]): Promise<Store> {
  const store = await openStore({ ...(await freshStoreLocation(dialect)), flushMs: 10, flushMaxItems: 100 });
  stores.push(store);
  return store;
}

describe.each(STORE_DIALECTS)("lease statement on %s", (dialect) => {
  it("takes a free lease, refuses it to others until it expires, renews for its holder, hands it over after expiry", async () => {
    const { db } = await freshStore(dialect);
    const t0 = Date.parse("2026-12-04T10:00:00.000Z");
    expect(await acquireLease(db, "job", "rep_a", 15_000, t0)).toBe(true);
    expect(await acquireLease(db, "job", "rep_b", 15_000, t0 + 1000)).toBe(false);
    expect(await leaseHolder(db, "job")).toEqual({ holder: "rep_a", expiresAt: "2026-12-04T10:00:15.000Z" });
    // Renewal by the holder pushes the expiry.
    expect(await acquireLease(db, "job", "rep_a", 15_000, t0 + 5000)).toBe(true);
    expect(await acquireLease(db, "job", "rep_b", 15_000, t0 + 16_000)).toBe(false);
    expect((await leaseHolder(db, "job"))?.expiresAt).toBe("2026-12-04T10:00:20.000Z");
    // Past the expiry another replica takes it, and the old holder cannot renew.
    expect(await acquireLease(db, "job", "rep_b", 15_000, t0 + 20_001)).toBe(true);
    expect(await acquireLease(db, "job", "rep_a", 15_000, t0 + 20_002)).toBe(false);
    expect((await leaseHolder(db, "job"))?.holder).toBe("rep_b");
    // Other leases are independent.
    expect(await acquireLease(db, "other", "rep_a", 15_000, t0 + 20_003)).toBe(true);
  });

  it("is released only by its holder", async () => {
    const { db } = await freshStore(dialect);
    expect(await acquireLease(db, "job", "rep_a", 60_000)).toBe(true);
    await releaseLease(db, "job", "rep_b");
    expect((await leaseHolder(db, "job"))?.holder).toBe("rep_a");
    expect(await acquireLease(db, "job", "rep_b", 60_000)).toBe(false);
    await releaseLease(db, "job", "rep_a");
    expect(await leaseHolder(db, "job")).toBeUndefined();
    expect(await acquireLease(db, "job", "rep_b", 60_000)).toBe(true);
  });

  it("gives one lease to exactly one of many replicas asking at once", async () => {
    const { db } = await freshStore(dialect);
    const replicas = Array.from({ length: 8 }, (_, i) => `rep_${i}`);
    const results = await Promise.all(replicas.map((r) => acquireLease(db, "race", r, 60_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await leaseHolder(db, "race"))?.holder).toBe(replicas[results.indexOf(true)]);
  });
});

describe("Leases", () => {
  const log = pino({ level: "silent" });

  function recordingJob(name: string, log: string[]) {
    return {
      name,
      start: () => {
        log.push(`start ${name}`);
      },
      stop: () => {
        log.push(`stop ${name}`);
      },
    };
  }

  it("with SQLite holds every lease from start to close and writes nothing", async () => {
    const store = await freshStore("sqlite");
    const events: string[] = [];
    const leases = new Leases({
      db: store.db,
      dialect: "sqlite",
      holder: "rep_x",
      ttlMs: 300,
      renewMs: 100,
      log,
      clock: localClock,
    });
    leases.add(recordingJob("a", events));
    leases.add(recordingJob("b", events));
    await leases.start();
    expect(events).toEqual(["start a", "start b"]);
    expect(leases.held("a") && leases.held("b")).toBe(true);
    expect(await store.db.selectFrom("leases").selectAll().execute()).toEqual([]);
    await leases.close();
    expect(events).toEqual(["start a", "start b", "stop b", "stop a"]);
    expect(leases.held("a")).toBe(false);
  });

  it("runs a job on one replica at a time; a stalled holder stops before the other takes over", async () => {
    const store = await freshStore("postgres");
    const runs = new Map<string, number>();
    let overlap = false;
    const make = (holder: string) => {
      const leases = new Leases({
        db: store.db,
        dialect: "postgres",
        holder,
        ttlMs: 900,
        renewMs: 300,
        log,
        clock: localClock,
      });
      leases.add({
        name: "job",
        start: () => {
          if ([...runs.values()].some((n) => n > 0)) overlap = true;
          runs.set(holder, 1);
        },
        stop: () => {
          runs.set(holder, 0);
        },
      });
      return leases;
    };
    const a = make("rep_a");
    const b = make("rep_b");
    await a.start();
    await b.start();
    expect(a.held("job")).toBe(true);
    expect(b.held("job")).toBe(false);
    const stalledAt = Date.now();
    a.stopRenewing();
    await expect.poll(() => b.held("job"), { timeout: 5000, interval: 20 }).toBe(true);
    // Within ttl + one renewal of the last renewal (which was at most one renewal before the stall).
    expect(Date.now() - stalledAt).toBeLessThan(900 + 2 * 300 + 500);
    expect(a.held("job")).toBe(false);
    expect(overlap).toBe(false);
    await a.close();
    await b.close();
    expect(await leaseHolder(store.db, "job")).toBeUndefined();
  });

  it("stops the job when another replica holds the lease, and tries a job whose start failed again", async () => {
    const store = await freshStore("postgres");
    let starts = 0;
    let running = false;
    const leases = new Leases({
      db: store.db,
      dialect: "postgres",
      holder: "rep_a",
      ttlMs: 900,
      renewMs: 100,
      log,
      clock: localClock,
    });
    leases.add({
      name: "job",
      start: () => {
        starts++;
        if (starts === 1) throw new Error("the database blinked");
        running = true;
      },
      stop: () => {
        running = false;
      },
    });
    await leases.start();
    expect(running).toBe(false);
    await expect.poll(() => running, { timeout: 3000, interval: 20 }).toBe(true);
    expect(starts).toBe(2);
    // Someone else's now (as if our lease had expired and another replica took it).
    await store.db.updateTable("leases").set({ holder: "rep_thief" }).where("name", "=", "job").execute();
    await expect.poll(() => running, { timeout: 3000, interval: 20 }).toBe(false);
    expect(leases.held("job")).toBe(false);
    await leases.close();
    // Not ours: closing leaves the other holder's row alone.
    expect((await leaseHolder(store.db, "job"))?.holder).toBe("rep_thief");
  });
});
