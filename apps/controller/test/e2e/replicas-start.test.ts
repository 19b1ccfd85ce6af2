import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
/**
 * Two `nbfleet server` replicas started at the same moment against one empty PostgreSQL
 * database, sharing one data dir and one admin token: the migrations run once (one history,
 * each migration recorded once), neither replica logs an error or dies, and both serve the API.
 */
import { Cluster } from "@nbfleet/testkit/replicas";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/store.js";

const TOKEN = "nbf_e2e-replicas-start-0123456789";
let cluster: Cluster;
let expectedMigrations: string[];

beforeAll(async () => {
  // The history one controller alone writes on an empty database: what two together must write.
  const reference = await openStore({
    dataDir: "/nonexistent",
    databaseUrl: await freshDatabaseUrl(),
    flushMs: 250,
    flushMaxItems: 500,
  });
  const history = await sql<{ name: string }>`select name from kysely_migration`.execute(reference.db);
  expectedMigrations = history.rows.map((row) => row.name);
  await reference.close();
  cluster = await Cluster.start({ replicas: 2, databaseUrl: await freshDatabaseUrl(), token: TOKEN });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
});

describe("two replicas started at once on an empty database", () => {
  it("migrate it once: one history, each migration recorded once", async () => {
    expect(expectedMigrations.length).toBeGreaterThanOrEqual(6);
    const rows = await cluster.query<{ name: string }>("select name from kysely_migration order by name");
    expect(rows.map((r) => r.name)).toEqual([...expectedMigrations].sort());
    const locks = await cluster.query<{ n: number }>("select count(*)::int as n from kysely_migration_lock");
    expect(locks[0]!.n).toBe(1);
  });

  it("both stay up, log no error, and serve the API with the shared admin token", async () => {
    for (const index of [0, 1]) {
      const replica = cluster.replica(index);
      expect(replica.process!.process.exitCode, cluster.outputs()).toBeNull();
      const errors = replica
        .process!.output()
        .split("\n")
        .filter((line) => /"level":(50|60)/.test(line));
      expect(errors, `replica ${replica.name} logged errors`).toEqual([]);
      const vms = await cluster.api(index)("GET", "/v1/vms");
      expect(vms.status).toBe(200);
      const health = await fetch(`${replica.url}/healthz`);
      expect(health.status).toBe(200);
    }
    // One admin token row, though both replicas were given it at the same moment.
    const admins = await cluster.query<{ n: number }>(
      "select count(*)::int as n from tokens where role = 'admin'",
    );
    expect(admins[0]!.n).toBe(1);
  });

  it("list each other in GET /v1/replicas, whichever one is asked", async () => {
    for (const index of [0, 1]) {
      const listed = await cluster.api(index)<{ items: Array<{ url: string }> }>("GET", "/v1/replicas");
      expect(listed.status).toBe(200);
      expect(listed.body.items.map((r) => r.url).sort()).toEqual(cluster.replicas.map((r) => r.url).sort());
    }
  });
});
