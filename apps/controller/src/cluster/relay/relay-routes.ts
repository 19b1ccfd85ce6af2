import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/**
 * The internal routes another replica relays a client's stream to (stream-relay.ts), served from
 * this replica's own agents only — never relayed again:
 * - `GET /internal/v1/vms/{name}/shell` (WebSocket; the public route's query), admin
 * - `GET /internal/v1/vms/{name}/logs` (the public route's query), viewer
 * Only requests signed with the replica secret pass (relay-auth.ts): anything else is refused
 * 401 before any database access, an operator token included. The token the relaying replica
 * names is then looked up here and its role checked as if its owner had called us directly, so a
 * token revoked or demoted meanwhile is refused and the audit names the token as it is now.
 * Registered only with PostgreSQL (with SQLite there are no other replicas).
 */
import type {} from "@fastify/websocket";
import type { FastifyRequest } from "fastify";
import type WebSocket from "ws";
import { LogsQuery, serveLogs } from "../../api/logs/plugin.js";
import { NameParams } from "../../api/schemas.js";
import {
  type PreparedShell,
  ShellQuery,
  type Tracked,
  destroyRefusedUpgrades,
  endRevokedClient,
  prepareShell,
  trackShell,
} from "../../api/terminal/plugin.js";
import { type Role, roleAllows } from "../../auth/roles.js";
import { NbfError } from "../../errors.js";
import { INTERNAL_PREFIX } from "./stream-relay.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The least role the relayed caller's token needs on an internal relay route. */
    relayRole?: Role;
  }
}

export const relayRoutesPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { relay, store, terminals, logs, streams } = app.nbfleet;
  if (!relay.enabled) return;

  app.addHook("onRequest", async (request) => {
    const verifier = relay.verifier;
    const verdict = verifier
      ? verifier.verify(request.method, request.url, request.headers.authorization)
      : ({ ok: false, why: "invalid" } as const);
    if (!verdict.ok) throw new NbfError(verdict.why === "missing" ? "NBF_AUTH_REQUIRED" : "NBF_AUTH_INVALID");
    const token = await store.tokens.get(verdict.tokenId);
    if (!token) throw new NbfError("NBF_AUTH_INVALID");
    const needed = request.routeOptions.config.relayRole ?? "admin";
    if (!roleAllows(token.role, needed)) {
      throw new NbfError("NBF_FORBIDDEN", {
        role: token.role,
        action: `${request.method} ${request.routeOptions.url}`,
        needed,
      });
    }
    request.principal = token;
  });
  destroyRefusedUpgrades(app);

  const ready = new WeakMap<FastifyRequest, PreparedShell & Tracked>();
  app.get(
    `${INTERNAL_PREFIX}/vms/:name/shell`,
    {
      websocket: true,
      config: { role: "replica", relayRole: "admin" },
      schema: { hide: true, params: NameParams, querystring: ShellQuery },
      preHandler: async (request) => {
        const { name } = request.params;
        if (!request.ws) throw new NbfError("NBF_WEBSOCKET_REQUIRED", { url: `/v1/vms/${name}/shell` });
        // The relaying replica ends its client on a revocation too; this covers its token here.
        const tracked = trackShell(streams, request);
        const prepared = await prepareShell(terminals, name, request.query, request.principal!);
        ready.set(request, { ...prepared, tracked });
      },
    },
    (socket: WebSocket, request) => {
      const { session, size, tracked } = ready.get(request)!;
      terminals.attach(session, socket, size);
      tracked.endWith((revoked) => endRevokedClient(socket, revoked));
    },
  );

  app.get(
    `${INTERNAL_PREFIX}/vms/:name/logs`,
    {
      config: { role: "replica", relayRole: "viewer" },
      schema: { hide: true, params: NameParams, querystring: LogsQuery },
    },
    serveLogs(logs, streams),
  );
};
