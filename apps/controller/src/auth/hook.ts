/**
 * Operator authentication for the HTTP API. Every route declares the least role it needs in
 * its `config.role` (`public` routes need none; the agent gateway and the replicas' internal
 * relay routes (`replica`, cluster/relay/relay-routes.ts) authenticate themselves); a
 * route that declares nothing needs `admin`, so forgetting is safe. A route declaring anything
 * else fails at registration. Every route is listed in `app.routeTable` with its access.
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from "fastify";
import { NbfError } from "../errors.js";
import type { SessionRecord, SessionsRepo } from "../store/sessions-repo.js";
import type { TokenRecord, TokensRepo } from "../store/tokens-repo.js";
import { ROLES, type Role, roleAllows } from "./roles.js";
import { bearer, hashSecret, secretKind } from "./secrets.js";
import { checkCookieOrigin, sessionCookie, wellFormedSession } from "./session-cookie.js";

/** What authentication reads: the tokens, the console sessions, and the public URL (Origin). */
export interface AuthSources {
  tokens: TokensRepo;
  sessions: SessionsRepo;
  publicUrl: string | null;
}

/** A session's last_seen_at is written at most this often (not on every request). */
const TOUCH_EVERY_MS = 60_000;

export type RouteAccess = Role | "public" | "agent" | "replica";
export const ROUTE_ACCESS: readonly RouteAccess[] = [...ROLES, "public", "agent", "replica"];

/** One route as registered, with the access it declared: what the authorization tests walk. */
export interface RouteEntry {
  method: string;
  url: string;
  access: RouteAccess;
  websocket: boolean;
  schema: FastifySchema | undefined;
}

declare module "fastify" {
  interface FastifyContextConfig {
    role?: RouteAccess;
  }
  interface FastifyRequest {
    principal: TokenRecord | null;
    /** The console session the request was authenticated by (null: a bearer token or none). */
    session: SessionRecord | null;
  }
  interface FastifyInstance {
    /** Every route registered after `installAuth` (HEAD twins of GET routes left out). */
    routeTable: readonly RouteEntry[];
  }
}

export function installAuth(app: FastifyInstance, auth: AuthSources): void {
  const table: RouteEntry[] = [];
  app.decorate("routeTable", table);
  app.addHook("onRoute", (route) => {
    const access = (route.config as { role?: unknown } | undefined)?.role ?? "admin";
    if (!ROUTE_ACCESS.includes(access as RouteAccess)) {
      throw new Error(
        `route ${route.url} declares role '${String(access)}'; use one of ${ROUTE_ACCESS.join(", ")}`,
      );
    }
    for (const method of [route.method].flat()) {
      if (method === "HEAD") continue;
      table.push({
        method,
        url: route.url,
        access: access as RouteAccess,
        websocket: (route as { websocket?: boolean }).websocket === true,
        schema: route.schema,
      });
    }
  });
  app.decorateRequest("principal", null);
  app.decorateRequest("session", null);
  app.addHook("onRequest", async (request) => {
    // Unmatched URLs get the 404 handler, which needs no token.
    if (request.routeOptions.url === undefined) return;
    const access = request.routeOptions.config.role ?? "admin";
    if (access === "public" || access === "agent" || access === "replica") return;
    request.principal = await authenticate(request, auth);
    if (!roleAllows(request.principal.role, access)) {
      throw new NbfError("NBF_FORBIDDEN", {
        role: request.principal.role,
        action: `${request.method} ${request.routeOptions.url}`,
        needed: access,
      });
    }
  });
}

async function authenticate(request: FastifyRequest, auth: AuthSources): Promise<TokenRecord> {
  const secret = bearer(request.headers.authorization);
  if (!secret) {
    const cookie = sessionCookie(request.headers.cookie);
    if (cookie !== undefined) return authenticateSession(request, cookie, auth);
    throw new NbfError("NBF_AUTH_REQUIRED");
  }
  if (secretKind(secret) !== "operator") throw new NbfError("NBF_AUTH_AGENT_CREDENTIAL");
  const token = await auth.tokens.findByHash(hashSecret(secret));
  if (!token) throw new NbfError("NBF_AUTH_INVALID");
  return token;
}

async function authenticateSession(
  request: FastifyRequest,
  cookie: string,
  auth: AuthSources,
): Promise<TokenRecord> {
  if (!wellFormedSession(cookie)) throw new NbfError("NBF_SESSION_INVALID");
  const now = new Date();
  const session = await auth.sessions.findLiveByHash(hashSecret(cookie), now.toISOString());
  if (!session) throw new NbfError("NBF_SESSION_INVALID");
  checkCookieOrigin(request, auth.publicUrl);
  request.session = session;
  if (now.getTime() - Date.parse(session.lastSeenAt) >= TOUCH_EVERY_MS) {
    await auth.sessions.touch(session.id, now.toISOString());
  }
  return {
    id: session.tokenId,
    name: session.tokenName,
    role: session.role,
    createdAt: session.tokenCreatedAt,
  };
}
