/**
 * Operator authentication for the HTTP API. Every route declares the least role it needs in
 * its `config.role` (`public` routes need none; the agent gateway authenticates itself); a
 * route that declares nothing needs `admin`, so forgetting is safe.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { NbfError } from "../errors.js";
import type { TokenRecord, TokensRepo } from "../store/tokens-repo.js";
import { type Role, roleAllows } from "./roles.js";
import { bearer, hashSecret, secretKind } from "./secrets.js";

export type RouteAccess = Role | "public" | "agent";

declare module "fastify" {
  interface FastifyContextConfig {
    role?: RouteAccess;
  }
  interface FastifyRequest {
    principal: TokenRecord | null;
  }
}

export function installAuth(app: FastifyInstance, tokens: TokensRepo): void {
  app.decorateRequest("principal", null);
  app.addHook("onRequest", async (request) => {
    // Unmatched URLs get the 404 handler, which needs no token.
    if (request.routeOptions.url === undefined) return;
    const access = request.routeOptions.config.role ?? "admin";
    if (access === "public" || access === "agent") return;
    request.principal = await authenticate(request, tokens);
    if (!roleAllows(request.principal.role, access)) {
      throw new NbfError("NBF_FORBIDDEN", {
        role: request.principal.role,
        action: `${request.method} ${request.routeOptions.url}`,
        needed: access,
      });
    }
  });
}

async function authenticate(request: FastifyRequest, tokens: TokensRepo): Promise<TokenRecord> {
  const secret = bearer(request.headers.authorization);
  if (!secret) throw new NbfError("NBF_AUTH_REQUIRED");
  if (secretKind(secret) !== "operator") throw new NbfError("NBF_AUTH_AGENT_CREDENTIAL");
  const token = await tokens.findByHash(hashSecret(secret));
  if (!token) throw new NbfError("NBF_AUTH_INVALID");
  return token;
}
