import SqliteDatabase from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { withStatementCache } from "./statement-cache.js";

// SQLite only: the cache wraps better-sqlite3's prepared statements; the pg driver has none to keep.
const open: SqliteDatabase.Database[] = [];
function memoryDb(): SqliteDatabase.Database {
  const db = new SqliteDatabase(":memory:");
  open.push(db);
  db.exec("create table t (id integer primary key, v text)");
  return db;
}
afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
});

describe("statement cache", () => {
  it("hands out one statement per SQL text and forgets the least recently used beyond capacity", () => {
    const cache = withStatementCache(memoryDb(), 2);
    const a = cache.prepare("select 1");
    expect(cache.prepare("select 1")).toBe(a);
    const b = cache.prepare("select 2");
    cache.prepare("select 1"); // a is now the most recently used
    cache.prepare("select 3"); // evicts b
    expect(cache.size).toBe(2);
    expect(cache.prepare("select 1")).toBe(a);
    expect(cache.prepare("select 2")).not.toBe(b);
  });

  it("prepares a fresh statement while the cached one is still iterating", () => {
    const db = memoryDb();
    db.prepare("insert into t (v) values ('x'), ('y')").run();
    const cache = withStatementCache(db);
    const first = cache.prepare("select v from t order by id");
    const iterator = first.iterate([]);
    iterator.next();
    const second = cache.prepare("select v from t order by id");
    expect(second).not.toBe(first);
    expect(second.all([])).toEqual([{ v: "x" }, { v: "y" }]);
    iterator.return?.();
    expect(cache.prepare("select v from t order by id")).toBe(first);
  });

  it("serves Kysely: repeated queries return fresh results through the cached statements", async () => {
    const cache = withStatementCache(memoryDb());
    const db = new Kysely<{ t: { id: number; v: string } }>({
      dialect: new SqliteDialect({ database: cache }),
    });
    for (let i = 0; i < 3; i++)
      await db
        .insertInto("t")
        .values({ id: i, v: `v${i}` })
        .execute();
    const read = () => db.selectFrom("t").select("v").where("id", ">=", 1).orderBy("id").execute();
    expect(await read()).toEqual([{ v: "v1" }, { v: "v2" }]);
    await db.updateTable("t").set({ v: "changed" }).where("id", "=", 2).execute();
    expect(await read()).toEqual([{ v: "v1" }, { v: "changed" }]);
    expect(cache.size).toBe(3);
    await db.destroy();
  });
});
