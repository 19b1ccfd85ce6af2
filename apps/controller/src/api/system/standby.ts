/**
 * The listener of a controller waiting for PostgreSQL at start-up: before the store can open,
 * `/healthz` already answers (503, `database.status: unreachable` with the cause, the same
 * shape as the real one) so a load balancer or an operator sees why this replica is not
 * serving; every other request gets NBF_DATABASE_UNAVAILABLE. It closes once the database
 * answers, just before the controller itself listens on the same address.
 */
import { createServer as createHttpServer } from "node:http";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { AGENT_VERSION, PROTOCOL_VERSION } from "@nbfleet/shared";
import { NbfError } from "../../errors.js";
import type { ControllerTls } from "../../tls/files.js";

export interface Standby {
  /** The latest failed try (the cause /healthz shows). */
  failed(cause: string): void;
  close(): Promise<void>;
}

export async function startStandby(options: {
  host: string;
  port: number;
  tls: ControllerTls | null;
  provider: string;
  address: string;
  cause: string;
}): Promise<Standby> {
  const startedAt = Date.now();
  let cause = options.cause;
  let failures = 1;
  const since = new Date().toISOString();
  const handler: Parameters<typeof createHttpServer>[1] = (request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    response.setHeader("content-type", "application/json; charset=utf-8");
    response.setHeader("connection", "close");
    response.statusCode = 503;
    if (path === "/healthz") {
      response.end(
        JSON.stringify({
          status: "degraded",
          version: AGENT_VERSION,
          protocol: PROTOCOL_VERSION,
          provider: options.provider,
          agentsConnected: 0,
          uptimeSec: Math.round((Date.now() - startedAt) / 1000),
          store: { status: "error", pendingRows: 0, failures, lastError: cause, droppedRows: 0 },
          database: { status: "unreachable", address: options.address, error: cause, since },
        }),
      );
      return;
    }
    response.end(
      JSON.stringify(
        new NbfError("NBF_DATABASE_UNAVAILABLE", { target: options.address, reason: cause }).toJSON(),
      ),
    );
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handler)
    : createHttpServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    failed(next) {
      cause = next;
      failures += 1;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
