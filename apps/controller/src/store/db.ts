/**
 * Opens the database as a Kysely instance: the embedded SQLite file (better-sqlite3, WAL) under
 * the data dir by default, or PostgreSQL (a `pg` pool) when a database URL is given. Callers
 * only see Kysely<Database>; the few places that differ by dialect ask `dialect`.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { type DialectAdapter, Kysely, PostgresDialect, SqliteAdapter, SqliteDialect } from "kysely";
import pg from "pg";
import { startCheckpointer } from "./checkpointer.js";
import { DatabaseMonitor, type DatabaseState } from "./database-monitor.js";
import { guardedPool } from "./postgres-pool.js";
import { preparingPool } from "./postgres-prepared.js";
import { postgresTarget } from "./postgres-target.js";
import { nulFreePool } from "./postgres-text.js";
import { queryShapes } from "./query-shapes.js";
import type { Database } from "./schema.js";
import { withStatementCache } from "./statement-cache.js";

export const DB_FILE = "nbfleet.sqlite";

export type Dialect = "sqlite" | "postgres";

export interface OpenDatabase {
  db: Kysely<Database>;
  dialect: Dialect;
  /** PostgreSQL only: whether the server answers (for /healthz and the start-up wait). */
  database?: DatabaseMonitor;
  close(): Promise<void>;
}

/**
 * SQLite rolls schema changes back like any other (Kysely assumes it cannot, and so ran each
 * migration statement by statement with no transaction): a controller killed in the middle of
 * a migration left half of it applied and unrecorded, and every start after failed on it
 * ("duplicate column name"). Each migration is now one commit with its history row.
 */
class TransactionalDdlSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
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
  const db = new Kysely<Database>({
    dialect: new TransactionalDdlSqliteDialect({ database: withStatementCache(sqlite) }),
  });
  return {
    db,
    dialect: "sqlite",
    // The worker's connection goes first: the last connection to close folds the WAL in.
    close: () => checkpointer.close().then(() => db.destroy()),
  };
}

export interface PostgresOptions {
  /** Connections in the pool. */
  poolSize?: number;
  /** How long a new connection, or a wait for a free one, may take (default 10 s). */
  connectTimeoutMs?: number;
  /** How long a query may go unanswered before its connection is given up (default 60 s). */
  queryTimeoutMs?: number;
  /** Probe period of the database monitor (default 2 s). */
  probeIntervalMs?: number;
  /** The database became unreachable or answers again (once per change). */
  onStateChange?: (state: DatabaseState) => void;
}

/**
 * PostgreSQL through a `pg` pool. TLS is set in the URL as `pg` spells it
 * (`?sslmode=verify-full&sslrootcert=/path/ca.pem`). int8 values (every `count()`) arrive as
 * numbers: the counts here never come near 2^53. A malformed URL throws NBF_CONFIG_INVALID at
 * once; an unreachable server does not (see database-monitor.ts and postgres-pool.ts).
 */
export function openPostgres(url: string, options: PostgresOptions = {}): OpenDatabase {
  const target = postgresTarget(url);
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const config = {
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    keepAlive: true,
    types: { getTypeParser: numericInt8 },
  };
  const pool = new pg.Pool({
    ...config,
    max: options.poolSize ?? 10,
    query_timeout: options.queryTimeoutMs ?? 60_000,
  });
  const monitor = new DatabaseMonitor({
    address: target.address,
    client: () => new pg.Client({ ...config, connectionTimeoutMillis: Math.min(connectTimeoutMs, 5000) }),
    ...(options.probeIntervalMs ? { intervalMs: options.probeIntervalMs } : {}),
    ...(options.onStateChange ? { onChange: options.onStateChange } : {}),
  });
  // An idle connection that dies (the server restarts) is dropped by the pool; without a
  // listener its error would end the process.
  pool.on("error", () => monitor.suspect());
  // Queued before the client's first query, so every statement is planned with it (a failure
  // here is the connection's, and its next query meets it).
  pool.on("connect", (client) => void client.query(PLANNER_SETTINGS).catch(() => {}));
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: nulFreePool(
        preparingPool(guardedPool(pool, monitor), (text) => queryShapes.preparedNameOf(text)),
      ),
    }),
  });
  monitor.start();
  return {
    db,
    dialect: "postgres",
    database: monitor,
    close: () => monitor.stop().then(() => db.destroy()),
  };
}

/**
 * How this controller's sessions plan. The rows it looks up by key (commands by id, by the
 * thousand in a bulk operation) live in a working set that stays cached, where a random page
 * costs about what a sequential one does (1.1, the usual value for SSD storage). At the
 * default 4.0 PostgreSQL read a commands table whose statistics were older than its rows (a
 * new database's first bulk operation; never analyzed yet) with a scan of the whole table for
 * every claim of 64 ids, up to about 12,000 rows, instead of 64 primary-key probes.
 */
export const PLANNER_SETTINGS = "SET random_page_cost = 1.1";

const INT8_OID = 20;
const numericInt8 = ((oid: number, format?: "text" | "binary") =>
  oid === INT8_OID
    ? (value: string) => Number(value)
    : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser;

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
