/**
 * The `pg` pool as Kysely sees it, with the outage rules in one place: while the monitor says
 * the database is unreachable a connection is refused at once (NBF_DATABASE_UNAVAILABLE, 503)
 * instead of waiting out a connect timeout; a connection error turns into that same error and
 * wakes the monitor; a client that met one (or a stale prepared statement, see
 * postgres-prepared) is destroyed on release rather than reused; and a checked-out client always
 * has an 'error' listener (pg-pool removes its own while a client is out, and an unheard 'error'
 * would end the process).
 */
import type { PostgresPool, PostgresPoolClient } from "kysely";
import type pg from "pg";
import type { DatabaseMonitor } from "./database-monitor.js";
import { databaseUnavailable, isConnectionError } from "./postgres-errors.js";
import { isStalePreparedStatement } from "./postgres-prepared.js";

export function guardedPool(pool: pg.Pool, monitor: DatabaseMonitor): PostgresPool {
  const { address } = monitor.state;
  const failed = (error: unknown): unknown => {
    if (!isConnectionError(error)) return error;
    monitor.suspect();
    return databaseUnavailable(address, error);
  };
  return {
    async connect(): Promise<PostgresPoolClient> {
      const state = monitor.state;
      if (state.status === "unreachable")
        throw databaseUnavailable(address, state.error ?? "does not answer");
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw failed(error);
      }
      return guardClient(client, failed);
    },
    end: () => pool.end(),
  };
}

function guardClient(client: pg.PoolClient, failed: (error: unknown) => unknown): PostgresPoolClient {
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
    failed(error);
  };
  client.on("error", onError);
  const query = (...args: unknown[]) => {
    const result = (client.query as (...a: unknown[]) => unknown)(...args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      const mapped = failed(error);
      // A connection that lost the database, or holds a prepared statement the schema changed under.
      if (mapped !== error || isStalePreparedStatement(error)) broken = error as Error;
      throw mapped;
    });
  };
  return {
    query: query as PostgresPoolClient["query"],
    release() {
      client.removeListener("error", onError);
      // A truthy argument makes pg-pool destroy the client instead of keeping it.
      client.release(broken);
    },
  };
}
