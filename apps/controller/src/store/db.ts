/**
 * Opens the embedded SQLite database (better-sqlite3, WAL) under the data dir as a Kysely
 * instance. Another dialect (pg) would be opened here too; callers only see Kysely<Database>.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { startCheckpointer } from "./checkpointer.js";
import type { Database } from "./schema.js";
import { withStatementCache } from "./statement-cache.js";

export const DB_FILE = "nbfleet.sqlite";

export interface OpenDatabase {
  db: Kysely<Database>;
  close(): Promise<void>;
}

export function openSqlite(dataDir: string): OpenDatabase {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, DB_FILE);
  privateFiles(file);
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("busy_timeout = 5000");
  // WAL + NORMAL stays consistent after a crash and loses at most the last transactions on power loss.
  sqlite.pragma("synchronous = NORMAL");
  const checkpointer = startCheckpointer(sqlite, file);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  return {
    db,
    // The worker's connection goes first: the last connection to close folds the WAL in.
    close: () => checkpointer.close().then(() => db.destroy()),
  };
}

/**
 * The database (password and credential hashes, every VM's state) is 0600: local sandboxes'
 * users may pass through the data dir to their sandboxes. SQLite gives its -wal and -shm files
 * the database file's mode; ones left by an older version are narrowed here too.
 */
function privateFiles(file: string): void {
  closeSync(openSync(file, "a", 0o600));
  for (const each of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(each)) chmodSync(each, 0o600);
}

/** True for a primary-key / unique violation on SQLite or PostgreSQL. */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "23505";
}
