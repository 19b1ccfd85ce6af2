import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { openSqlite } from "./db.js";
import { QueryShapes, insertRows } from "./query-shapes.js";

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

function database() {
  const opened = openSqlite(mkdtempSync(join(tmpdir(), "nbf-shapes-")));
  closers.push(opened.close);
  return opened.db;
}

describe("query shapes", () => {
  it("runs a shape again with new parameters, each value in its own column", async () => {
    const db = database();
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
    const db = database();
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
