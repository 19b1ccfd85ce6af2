import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { openPostgres, openSqlite } from "./db.js";
import { preparedName } from "./postgres-prepared.js";
import { QueryShapes, insertRows, queryShapes } from "./query-shapes.js";

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

async function database(dialect: StoreDialect) {
  const { dataDir, databaseUrl } = await freshStoreLocation(dialect, "nbf-shapes-");
  const opened = databaseUrl ? openPostgres(databaseUrl) : openSqlite(dataDir);
  closers.push(opened.close);
  return opened.db;
}

describe.each(STORE_DIALECTS)("query shapes on %s", (dialect) => {
  it("runs a shape again with new parameters, each value in its own column", async () => {
    const db = await database(dialect);
    await sql`create table pairs (a text, b integer, c text)`.execute(db);
    type Pair = { a: string; b: number; c: string | null };
    // Rows whose keys come in another order than the columns: the column list decides.
    await insertRows(
      db,
      "pairs",
      ["a", "b", "c"],
      [{ c: "x", b: 1, a: "one" } as Pair, { a: "two", b: 2, c: null }],
    );
    await insertRows(
      db,
      "pairs",
      ["a", "b", "c"],
      [{ a: "three", b: 3, c: "z" }, { b: 4, a: "four", c: "w" } as Pair],
    );
    const rows = await sql<Pair>`select a, b, c from pairs order by b`.execute(db);
    expect(rows.rows).toEqual([
      { a: "one", b: 1, c: "x" },
      { a: "two", b: 2, c: null },
      { a: "three", b: 3, c: "z" },
      { a: "four", b: 4, c: "w" },
    ]);
  });

  it("refuses a shape whose listed parameters are not the compiled query's", async () => {
    const db = await database(dialect);
    const shapes = new QueryShapes();
    const [x, y] = ["1", "2"];
    await expect(
      shapes.run(
        db,
        "swapped",
        () => sql`select ${x} as x, ${y} as y`.compile(db),
        () => [y, x],
      ),
    ).rejects.toThrow(/swapped: the parameters listed do not match/);
  });
});

describe("query shapes on both dialects in one process", () => {
  it("keeps each dialect's text of a shape (placeholders are ? on SQLite, $n on PostgreSQL)", async () => {
    const [sqlite, postgres] = [await database("sqlite"), await database("postgres")];
    const shapes = new QueryShapes();
    for (const db of [sqlite, postgres, sqlite, postgres]) {
      const [a, b] = ["left", "right"];
      const { rows } = await shapes.run(
        db,
        "pair",
        () => sql<{ joined: string }>`select ${a} || '-' || ${b} as joined`.compile(db),
        () => [a, b],
      );
      expect(rows).toEqual([{ joined: "left-right" }]);
    }
  });
});

describe("query shapes on PostgreSQL", () => {
  it("run as named prepared statements, parsed once per connection", async () => {
    const db = await database("postgres");
    await sql`create table pairs (a text, b integer)`.execute(db);
    await db.connection().execute(async (connection) => {
      for (const b of [1, 2, 3]) await insertRows(connection, "pairs", ["a", "b"], [{ a: "x", b }]);
      const prepared = await sql<{ name: string; statement: string }>`
        select name, statement from pg_prepared_statements`.execute(connection);
      expect(prepared.rows).toHaveLength(1);
      expect(prepared.rows[0]!.statement).toMatch(/^insert into "pairs"/);
      expect(prepared.rows[0]!.name).toBe(preparedName(prepared.rows[0]!.statement));
    });
    const rows = await sql<{ b: number }>`select b from pairs order by b`.execute(db);
    expect(rows.rows.map((row) => row.b)).toEqual([1, 2, 3]);
  });

  it("leave other statements unnamed", async () => {
    const db = await database("postgres");
    await db.connection().execute(async (connection) => {
      await sql`select 1 as one`.execute(connection);
      const prepared = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_prepared_statements`.execute(connection);
      expect(prepared.rows[0]!.n).toBe(0);
    });
  });

  it("drop the connection of a statement a migration changed the result of, not reuse it", async () => {
    const db = await database("postgres");
    await sql`create table wide (a text)`.execute(db);
    await sql`insert into wide values ('x')`.execute(db);
    const selectAll = (on: typeof db) =>
      queryShapes.run(
        on,
        "wide rows",
        () => sql<{ a: string }>`select * from wide where a = ${"x"}`.compile(on),
        () => ["x"],
      );
    await db.connection().execute(async (connection) => {
      await selectAll(connection);
      await sql`alter table wide add column b text`.execute(connection);
      await expect(selectAll(connection)).rejects.toMatchObject({ code: "0A000" });
    });
    // The pool's only idle connection was that one: reused, it would fail the same way.
    expect((await selectAll(db)).rows).toEqual([{ a: "x", b: null }]);
  });
});
