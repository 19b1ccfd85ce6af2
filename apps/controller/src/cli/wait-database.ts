/**
 * `nbfleet server` against PostgreSQL that does not answer yet: wait for it with backoff (a log
 * line naming host and cause per try) while a stand-by listener answers `/healthz` with 503 and
 * the cause, then build the controller. A configuration that cannot work (malformed URL,
 * unreadable CA file) fails at once.
 */
import type { FastifyBaseLogger } from "fastify";
import type pino from "pino";
import { type Standby, startStandby } from "../api/system/standby.js";
import { type ControllerSettings, parseListen } from "../config/settings.js";
import { isNbfError } from "../errors.js";
import type { NbfleetApp } from "../server.js";
import { postgresTarget } from "../store/postgres-target.js";
import { waitForDatabase } from "../store/wait-for-database.js";
import { readTlsFiles } from "../tls/files.js";

type Logger = pino.Logger | FastifyBaseLogger;

/** Checks the URL (throws NBF_CONFIG_INVALID) before anything slow starts. */
export function checkDatabaseUrl(settings: ControllerSettings): void {
  if (settings.databaseUrl) postgresTarget(settings.databaseUrl);
}

/**
 * Builds the controller once the database answers; `build` failing because the database went
 * away again in between sends it back to waiting. The stand-by listener (if one was needed) is
 * closed just before this resolves, so the caller can listen on the same address.
 */
export async function buildWhenDatabaseAnswers(
  settings: ControllerSettings,
  log: Logger,
  build: () => Promise<NbfleetApp>,
  echo?: (line: string) => void,
): Promise<NbfleetApp> {
  const url = settings.databaseUrl;
  if (!url) return build();
  let standby: Standby | undefined;
  try {
    for (;;) {
      const failures = await waitForDatabase(url, {
        onRetry: async ({ address, cause, attempt, retryInMs }) => {
          const line = `PostgreSQL at ${address}: ${cause}; retrying in ${retryInMs / 1000} s`;
          log.warn({ database: address, cause, attempt, retryInMs }, line);
          echo?.(line);
          if (standby) standby.failed(cause);
          else standby = await openStandby(settings, address, cause, log);
        },
      });
      if (failures > 0) log.warn({ database: postgresTarget(url).address, failures }, "PostgreSQL answers");
      try {
        const app = await build();
        await standby?.close();
        standby = undefined;
        return app;
      } catch (error) {
        if (!(isNbfError(error) && error.code === "NBF_DATABASE_UNAVAILABLE")) throw error;
        log.warn({ err: error }, error.message);
      }
    }
  } finally {
    await standby?.close();
  }
}

/** A stand-by that cannot listen (the address is taken) is only logged: waiting goes on. */
async function openStandby(
  settings: ControllerSettings,
  address: string,
  cause: string,
  log: Logger,
): Promise<Standby | undefined> {
  const { host, port } = parseListen(settings.listen);
  try {
    return await startStandby({
      host,
      port,
      tls: readTlsFiles(settings),
      provider: settings.provider,
      address,
      cause,
    });
  } catch (error) {
    log.error({ err: error }, `cannot listen on ${settings.listen} while waiting for PostgreSQL`);
    return undefined;
  }
}
