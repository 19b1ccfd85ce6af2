import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { waitFor } from "@nbfleet/testkit/wait";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { DB_FILE, openSqlite } from "./db.js";

// SQLite only: the WAL file and its checkpoints are SQLite's; PostgreSQL manages its own WAL.
describe("WAL checkpoints in a worker thread", () => {
  it("copies committed pages into the database file without a commit doing it, and folds the WAL in on close", async () => {
    const dir = makeDataDir("nbf-ckpt-", 0o700);
    const file = join(dir, DB_FILE);
    const { db, close } = openSqlite(dir);
    await sql`create table blobs (id integer primary key, body text not null)`.execute(db);
    // The main connection leaves checkpoints to the worker (it would only step in past 64 MB).
    const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db);
    expect(rows[0]!.wal_autocheckpoint).toBe(16_384);
    const sizeBefore = statSync(file).size;
    // About 4 MB: far below the main connection's own checkpoint threshold (64 MB).
    await db.transaction().execute(async (trx) => {
      for (let i = 0; i < 1000; i++)
        await sql`insert into blobs (body) values (${"x".repeat(4000)})`.execute(trx);
    });
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(4_000_000);
    await waitFor(
      "the worker's checkpoint to grow the database file",
      async () => statSync(file).size > sizeBefore + 4_000_000,
      10_000,
    );
    await close();
    expect(existsSync(`${file}-wal`)).toBe(false);
  });

  it("lets a process that closes its database go on: closing never leaves an await hanging", () => {
    const dir = makeDataDir("nbf-ckpt-", 0o700);
    const db = fileURLToPath(new URL("./db.ts", import.meta.url));
    const tsx = fileURLToPath(import.meta.resolve("tsx"));
    const script = `const { openSqlite } = await import(${JSON.stringify(db)});
      await openSqlite(${JSON.stringify(dir)}).close();
      console.log("closed and went on");`;
    const out = execFileSync(process.execPath, ["--import", tsx, "--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    expect(out).toContain("closed and went on");
  });
});
