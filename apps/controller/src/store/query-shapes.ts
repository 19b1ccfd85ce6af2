/**
 * Queries compiled once per shape. Kysely builds and compiles every query anew; for the few
 * statements that run thousands of times a second (agent status rows, events, command
 * transitions, operation targets) that costs more than SQLite's own work. A shape is compiled by
 * Kysely the first time, so the SQL stays the dialect's; later runs reuse its text with new
 * parameters. The first run also checks that the caller lists the parameters in the order the
 * compiler placed them, so a shape whose parameters drift fails loudly instead of writing
 * values into the wrong columns.
 */
import { CompiledQuery, type Kysely, type QueryResult } from "kysely";
import { preparedName } from "./postgres-prepared.js";

const MAX_SHAPES = 256;

export class QueryShapes {
  private readonly texts = new Map<string, string>();
  /** Each text's prepared-statement name: on PostgreSQL shapes run as named statements (postgres-prepared). */
  private readonly names = new Map<string, string>();

  /** The name a shape's text is prepared under; undefined for a text that is no shape. */
  preparedNameOf(text: string): string | undefined {
    return this.names.get(text);
  }

  async run<DB, R>(
    db: Kysely<DB>,
    key: string,
    compile: () => CompiledQuery<R>,
    parameters: () => readonly unknown[],
  ): Promise<QueryResult<R>> {
    // Keyed by dialect too: the same shape is another text on another database.
    const shape = `${db.getExecutor().adapter.constructor.name}:${key}`;
    const text = this.texts.get(shape);
    if (text !== undefined) return db.executeQuery<R>(CompiledQuery.raw(text, [...parameters()]));
    const compiled = compile();
    const listed = parameters();
    if (!sameValues(compiled.parameters, listed)) {
      throw new Error(`query shape ${key}: the parameters listed do not match the compiled query's`);
    }
    if (this.texts.size >= MAX_SHAPES) {
      this.texts.clear();
      this.names.clear();
    }
    this.texts.set(shape, compiled.sql);
    // Named once here, not at each run: a multi-row shape's text is tens of kilobytes.
    this.names.set(compiled.sql, preparedName(compiled.sql));
    return db.executeQuery<R>(compiled);
  }
}

function sameValues(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((value, i) => Object.is(value, b[i]));
}

/** One cache for the process: a shape's text depends on the dialect, never on the data. */
export const queryShapes = new QueryShapes();

type AnyTables = Record<string, Record<string, unknown>>;

/** A multi-row insert of `rows` into `table`, columns in the given order, compiled once per row count. */
export async function insertRows<DB, Row extends object>(
  db: Kysely<DB>,
  table: string,
  columns: ReadonlyArray<keyof Row & string>,
  rows: readonly Row[],
): Promise<void> {
  if (rows.length === 0) return;
  const loose = db as unknown as Kysely<AnyTables>;
  await queryShapes.run(
    loose,
    `insert into ${table} ×${rows.length}`,
    () =>
      loose
        .insertInto(table)
        .values(rows.map((row) => Object.fromEntries(columns.map((c) => [c, row[c]]))))
        .compile(),
    () => rows.flatMap((row) => columns.map((c) => row[c])),
  );
}
