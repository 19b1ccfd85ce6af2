import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { type Kysely, Migrator, sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { openSqlite } from "./db.js";
import { type Store, openStore } from "./store.js";

const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

// PostgreSQL only: replicas share one database there, while an SQLite file has one controller.
describe("migrations on PostgreSQL", () => {
  it("run once when several stores open on one empty database at the same moment", async () => {
    const databaseUrl = await freshDatabaseUrl({ icuLocale: "en-US" });
    const opened = await Promise.allSettled(
      Array.from({ length: 4 }, () =>
        openStore({ dataDir: "/nonexistent", databaseUrl, flushMs: 1000, flushMaxItems: 100 }),
      ),
    );
    for (const result of opened) if (result.status === "fulfilled") stores.push(result.value);
    expect(opened.map((r) => (r.status === "rejected" ? String(r.reason) : "ok"))).toEqual([
      "ok",
      "ok",
      "ok",
      "ok",
    ]);
    const store = stores[0]!;
    const history = await sql<{ name: string; count: number }>`
      select name, count(*) as count from kysely_migration group by name order by name`.execute(store.db);
    expect(history.rows.length).toBeGreaterThanOrEqual(6);
    expect(history.rows.every((row) => row.count === 1)).toBe(true);
    expect(history.rows[0]?.name).toBe("0001_initial");
    // Every store works on the one schema.
    await Promise.all(
      stores.map((s, i) =>
        s.vms.insert({ name: `vm-${i}`, provider: "test", state: "running", labels: {}, passwordHash: null }),
      ),
    );
    expect(await stores[3]!.vms.names()).toEqual(["vm-0", "vm-1", "vm-2", "vm-3"]);
  });

  it("leave every text column of the schema in byte order and every integer 64 bits wide", async () => {
    const store = await openStore({
      dataDir: "/nonexistent",
      databaseUrl: await freshDatabaseUrl({ icuLocale: "en-US" }),
      flushMs: 1000,
      flushMaxItems: 100,
    });
    stores.push(store);
    const columns = await sql<{ column: string; collation: string | null }>`
      select table_name || '.' || column_name as column, collation_name as collation
      from information_schema.columns
      where table_schema = current_schema() and data_type = 'text'`.execute(store.db);
    expect(columns.rows.length).toBeGreaterThan(50);
    expect(columns.rows.filter((c) => c.collation !== "C")).toEqual([]);
    const integers = await sql<{ column: string; type: string }>`
      select table_name || '.' || column_name as column, data_type as type
      from information_schema.columns
      where table_schema = current_schema() and data_type in ('integer', 'bigint', 'smallint')
        and table_name not like 'kysely%'`.execute(store.db);
    expect(integers.rows.map((c) => c.column)).toContain("terminal_sessions.bytes_in");
    expect(integers.rows.filter((c) => c.type !== "bigint")).toEqual([]);
  });
});

describe("migrations on SQLite", () => {
  it("apply whole or not at all: a migration that stops halfway leaves nothing of itself", async () => {
    const opened = openSqlite(makeDataDir("nbf-sqlite-ddl-", 0o700));
    try {
      const halfway = (name: string) =>
        new Migrator({
          db: opened.db,
          provider: {
            getMigrations: async () => ({
              [name]: {
                up: async (db: Kysely<unknown>) => {
                  await db.schema.createTable("half").addColumn("x", "text").execute();
                  await db.schema.alterTable("half").addColumn("y", "text").execute();
                  // As a kill -9 here would: nothing after this point ran.
                  throw new Error("stopped halfway");
                },
              },
            }),
          },
        });
      const first = await halfway("0001_half").migrateToLatest();
      expect(String(first.error)).toContain("stopped halfway");
      const tables = await sql<{ name: string }>`select name from sqlite_master where name = 'half'`.execute(
        opened.db,
      );
      expect(tables.rows).toEqual([]);
      // So the next start runs it from the beginning instead of failing on what it left.
      const again = await halfway("0001_half").migrateToLatest();
      expect(String(again.error)).toContain("stopped halfway");
    } finally {
      await opened.close();
    }
  });
});
