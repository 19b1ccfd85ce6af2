/**
 * The controller's store: one Kysely database, migrated at open, its repositories and the
 * write-behind buffer for latest-state writes. `close()` flushes and then closes the database.
 */
import type { Kysely } from "kysely";
import { AgentSecretsRepo } from "./agent-secrets-repo.js";
import { CommandsRepo } from "./commands-repo.js";
import type { DatabaseMonitor, DatabaseState } from "./database-monitor.js";
import { type Dialect, openPostgres, openSqlite } from "./db.js";
import { EventsRepo } from "./events-repo.js";
import { migrateToLatest } from "./migrations.js";
import { OperationsRepo } from "./operations-repo.js";
import { databaseUnavailable } from "./postgres-errors.js";
import type { Database } from "./schema.js";
import { SessionsRepo } from "./sessions-repo.js";
import { TerminalSessionsRepo } from "./terminal-sessions-repo.js";
import { TokensRepo } from "./tokens-repo.js";
import { VmsRepo } from "./vms-repo.js";
import { WriteBehind, type WriteBehindOptions } from "./write-behind.js";

export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** PostgreSQL only: whether the server answers now (the SQLite file always does). */
  database?: DatabaseMonitor;
  vms: VmsRepo;
  tokens: TokensRepo;
  sessions: SessionsRepo;
  agentSecrets: AgentSecretsRepo;
  commands: CommandsRepo;
  events: EventsRepo;
  operations: OperationsRepo;
  terminalSessions: TerminalSessionsRepo;
  writer: WriteBehind;
  close(): Promise<void>;
}

export interface StoreOptions {
  dataDir: string;
  /** PostgreSQL (`postgres://…`); unset, the embedded SQLite file under `dataDir`. */
  databaseUrl?: string;
  flushMs: number;
  flushMaxItems: number;
  onError?: WriteBehindOptions["onError"];
  onRecovered?: WriteBehindOptions["onRecovered"];
  /** PostgreSQL became unreachable or answers again (once per change, for the log). */
  onDatabaseChange?: (state: DatabaseState) => void;
  /** Retry timing of the write-behind buffer (tests shorten it). */
  retry?: Pick<WriteBehindOptions, "retryMinMs" | "retryMaxMs" | "closeTimeoutMs" | "maxPendingEvents">;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  // Set once the buffer exists (after migrating); a state change before that has nothing to wake.
  const pending: { writer?: WriteBehind } = {};
  const database = options.databaseUrl
    ? openPostgres(options.databaseUrl, {
        onStateChange: (state) => {
          options.onDatabaseChange?.(state);
          // Rows kept through an outage are written now, not at the end of a long backoff.
          if (state.status === "ok") pending.writer?.retryNow();
        },
      })
    : openSqlite(options.dataDir);
  const { db, dialect } = database;
  if (database.database) {
    const state = await database.database.probe();
    if (state.status === "unreachable") {
      await database.close();
      throw databaseUnavailable(state.address, state.error ?? "does not answer");
    }
  }
  await migrateToLatest(db as Kysely<unknown>);
  const writer = new WriteBehind(db, {
    flushMs: options.flushMs,
    maxItems: options.flushMaxItems,
    onError: options.onError,
    onRecovered: options.onRecovered,
    ...options.retry,
  });
  pending.writer = writer;
  let closed: Promise<void> | undefined;
  return {
    db,
    dialect,
    ...(database.database ? { database: database.database } : {}),
    vms: new VmsRepo(db),
    tokens: new TokensRepo(db),
    sessions: new SessionsRepo(db),
    agentSecrets: new AgentSecretsRepo(db),
    commands: new CommandsRepo(db),
    events: new EventsRepo(db),
    operations: new OperationsRepo(db),
    terminalSessions: new TerminalSessionsRepo(db),
    writer,
    close() {
      closed ??= writer.close().then(() => database.close());
      return closed;
    },
  };
}
