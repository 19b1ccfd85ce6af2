/**
 * Opens the embedded SQLite database (better-sqlite3, WAL) under the data dir as a Kysely
 * instance. Another dialect (pg) would be opened here too; callers only see Kysely<Database>.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import type { Database } from "./schema.js";
import { withStatementCache } from "./statement-cache.js";

export const DB_FILE = "nbfleet.sqlite";

export function openSqlite(dataDir: string): Kysely<Database> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const sqlite = new SqliteDatabase(join(dataDir, DB_FILE));
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("busy_timeout = 5000");
  // WAL + NORMAL stays consistent after a crash and loses at most the last transactions on power loss.
  sqlite.pragma("synchronous = NORMAL");
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
}

/** True for a primary-key / unique violation on SQLite or PostgreSQL. */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "23505";
}
