/**
 * Start-up against PostgreSQL: try a connection until the server answers, waiting 1 s, 2 s, 4 s
 * … up to 30 s between tries. Refused, unknown host, wrong password, missing database, TLS
 * refused: all can be fixed on the database's side while we wait, so they are retried (a
 * crash loop under systemd would hit its start limit and stop trying for good). A malformed URL
 * or an unreadable CA file cannot heal without a new configuration: it throws at once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { describeCause } from "./postgres-errors.js";
import { postgresTarget } from "./postgres-target.js";

export interface DatabaseWaitFailure {
  /** host:port */
  address: string;
  /** One line, e.g. "refused the connection (ECONNREFUSED)". */
  cause: string;
  attempt: number;
  /** The wait before the next try. */
  retryInMs: number;
}

export interface WaitOptions {
  /** Each failed try (log it: it names the cause). */
  onRetry?: (failure: DatabaseWaitFailure) => void | Promise<void>;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** One try's deadline (default 10 s). */
  connectTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Resolves with the number of failed tries once `select 1` answers; throws NBF_CONFIG_INVALID at once. */
export async function waitForDatabase(url: string, options: WaitOptions = {}): Promise<number> {
  const { address } = postgresTarget(url);
  const minDelayMs = options.minDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    const error = await tryOnce(url, options.connectTimeoutMs ?? 10_000);
    if (error === undefined) return attempt - 1;
    const retryInMs = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(20, attempt - 1));
    await options.onRetry?.({ address, cause: describeCause(error), attempt, retryInMs });
    await sleep(retryInMs, undefined, options.signal ? { signal: options.signal } : {});
  }
}

async function tryOnce(url: string, connectTimeoutMs: number): Promise<unknown> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: connectTimeoutMs,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await client.end().catch(() => {});
  }
}
