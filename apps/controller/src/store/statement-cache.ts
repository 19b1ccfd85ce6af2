/**
 * Kysely's SQLite driver prepares every query anew; preparing costs as much as running a small
 * query, and the controller runs the same few dozen shapes thousands of times a minute (agent
 * status upserts, command transitions). This wraps a better-sqlite3 database so that `prepare`
 * returns a cached statement per SQL text, least recently used dropped beyond `capacity`.
 */
import type BetterSqlite3 from "better-sqlite3";
import type { SqliteDatabase } from "kysely";

export const DEFAULT_STATEMENT_CACHE = 256;

export interface CachingDatabase extends SqliteDatabase {
  /** Statements currently cached. */
  readonly size: number;
}

export function withStatementCache(
  database: BetterSqlite3.Database,
  capacity = DEFAULT_STATEMENT_CACHE,
): CachingDatabase {
  const statements = new Map<string, BetterSqlite3.Statement>();
  return {
    get size() {
      return statements.size;
    },
    close() {
      statements.clear();
      database.close();
    },
    prepare(sql: string) {
      const cached = statements.get(sql);
      // A statement still iterating (a streamed query) cannot run twice at once: prepare another.
      if (cached && !cached.busy) {
        statements.delete(sql);
        statements.set(sql, cached);
        return cached;
      }
      const statement = database.prepare(sql);
      if (cached) return statement;
      statements.set(sql, statement);
      if (statements.size > capacity) statements.delete(statements.keys().next().value!);
      return statement;
    },
  };
}
