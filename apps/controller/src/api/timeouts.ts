/**
 * The HTTP server's deadlines. Fastify 5 leaves `requestTimeout` at 0 (never), so a client
 * could trickle a body forever; here the whole request must arrive within `requestTimeoutSec`,
 * its headers within `headersTimeoutSec`, and an idle keep-alive connection ends after
 * `keepAliveTimeoutSec`. Node checks the first two on a timer (`connectionsCheckingInterval`,
 * 30 s by default), so the interval follows the shorter deadline. A late request is answered
 * 408 and its connection closed (fastify's client error handler). Responses are not limited:
 * event and log streams, long polls and WebSockets live as long as they need.
 */
import type { ServerOptions } from "node:http";
import type { ControllerSettings } from "../config/settings.js";

export interface ServerTimeouts {
  /** For fastify's own options. */
  requestTimeout: number;
  keepAliveTimeout: number;
  /** For `http.createServer` / `https.createServer`. */
  node: Pick<ServerOptions, "requestTimeout" | "headersTimeout" | "connectionsCheckingInterval">;
}

export function serverTimeouts(
  settings: Pick<ControllerSettings, "requestTimeoutSec" | "headersTimeoutSec" | "keepAliveTimeoutSec">,
): ServerTimeouts {
  const requestTimeout = Math.round(settings.requestTimeoutSec * 1000);
  // Node refuses a headers timeout longer than the request timeout.
  const headersTimeout = Math.min(Math.round(settings.headersTimeoutSec * 1000), requestTimeout);
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4)));
  return {
    requestTimeout,
    keepAliveTimeout: Math.round(settings.keepAliveTimeoutSec * 1000),
    node: { requestTimeout, headersTimeout, connectionsCheckingInterval },
  };
}
