/**
 * Console sign-in: an API token is exchanged for an HttpOnly session cookie (the token itself
 * never reaches the page's storage), read back, and signed out; admins list and revoke them.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ApiError, CreateSessionBody, SessionListItem, SessionView } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { hashSecret, secretKind } from "../../auth/secrets.js";
import {
  checkCookieOrigin,
  clearSessionCookie,
  newSessionSecret,
  setSessionCookie,
} from "../../auth/session-cookie.js";
import { NbfError } from "../../errors.js";
import { newId } from "../../store/ids.js";
import type { SessionRecord } from "../../store/sessions-repo.js";
import { Errors } from "../schemas.js";
import { SignInThrottle } from "./sign-in-throttle.js";

const SessionAnswer = Type.Object({ session: SessionView });

const view = (s: SessionRecord) => ({
  id: s.id,
  role: s.role,
  tokenId: s.tokenId,
  tokenName: s.tokenName,
  expiresAt: s.expiresAt,
});

const overTls = (request: FastifyRequest) => request.protocol === "https";

export const sessionPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store, settings, bus, streams } = app.nbfleet;
  const throttle = new SignInThrottle();

  /** The error for a sign-in with no valid token: 429 once its address has failed too often. */
  const signInRefusal = (address: string, token: string, reply: FastifyReply): NbfError => {
    const retryAfterSec = throttle.retryAfterSec(address);
    if (retryAfterSec > 0) {
      reply.header("retry-after", String(retryAfterSec));
      return new NbfError("NBF_SIGN_IN_THROTTLED", { address, retryAfterSec });
    }
    throttle.recordFailure(address);
    return new NbfError(secretKind(token) === "operator" ? "NBF_AUTH_INVALID" : "NBF_AUTH_AGENT_CREDENTIAL");
  };

  /** Announces a session's end, which ends its streams here and on every replica. */
  const revoked = (sessionId: string, message: string) => {
    bus.emit({ vmName: null, kind: "session.revoked", message, data: { sessionId } });
    streams.revoke({ kind: "session", id: sessionId });
  };

  /** The request's own session: cookie-authenticated routes only. */
  const ownSession = (request: FastifyRequest): SessionRecord => {
    if (!request.session) {
      throw new NbfError("NBF_SESSION_REQUIRED", { action: `${request.method} ${request.routeOptions.url}` });
    }
    return request.session;
  };

  app.post(
    "/v1/session",
    {
      config: { role: "public" },
      schema: {
        tags: ["session"],
        summary: "Sign in to the console: exchange an API token for a session cookie",
        security: [],
        body: CreateSessionBody,
        response: { 200: SessionAnswer, 429: ApiError, ...Errors },
      },
    },
    async (request, reply) => {
      // A browser always sends Origin on a POST; a foreign one is a cross-site sign-in attempt.
      if (request.headers.origin !== undefined) checkCookieOrigin(request, settings.publicUrl);
      const { token } = request.body;
      // Looked up before the throttle: a valid token is never refused for its address, which
      // a NAT or a load balancer may share with whoever is guessing.
      const record =
        secretKind(token) === "operator" ? await store.tokens.findByHash(hashSecret(token)) : undefined;
      if (!record) throw signInRefusal(request.ip, token, reply);
      const now = new Date();
      await store.sessions.deleteExpired(now.toISOString());
      const secret = newSessionSecret();
      const session: SessionRecord = {
        id: newId("ses"),
        tokenId: record.id,
        tokenName: record.name,
        tokenCreatedAt: record.createdAt,
        role: record.role,
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + settings.sessionTtlSec * 1000).toISOString(),
        lastSeenAt: now.toISOString(),
      };
      await store.sessions.insert({ ...session, hash: hashSecret(secret) });
      bus.emit({
        vmName: null,
        kind: "session.created",
        message: `console session ${session.id} opened with token ${record.id} (${record.name}, ${record.role})`,
      });
      reply.header("set-cookie", setSessionCookie(secret, settings.sessionTtlSec, overTls(request)));
      reply.header("cache-control", "no-store");
      return { session: view(session) };
    },
  );

  app.get(
    "/v1/session",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["session"],
        summary: "The console session of the cookie sent",
        response: { 200: SessionAnswer, ...Errors },
      },
    },
    async (request, reply) => {
      reply.header("cache-control", "no-store");
      return { session: view(ownSession(request)) };
    },
  );

  app.delete(
    "/v1/session",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["session"],
        summary: "Sign out: revoke the cookie's session and clear the cookie",
        response: { 204: Type.Null(), ...Errors },
      },
    },
    async (request, reply) => {
      const session = ownSession(request);
      await store.sessions.delete(session.id);
      revoked(session.id, `console session ${session.id} signed out`);
      return signedOut(reply, overTls(request));
    },
  );

  app.get(
    "/v1/sessions",
    {
      config: { role: "admin" },
      schema: {
        tags: ["session"],
        summary: "List live console sessions",
        response: { 200: Type.Object({ items: Type.Array(SessionListItem) }), ...Errors },
      },
    },
    async () => {
      const items = await store.sessions.listLive(new Date().toISOString());
      return {
        items: items.map((s) => ({
          id: s.id,
          tokenId: s.tokenId,
          tokenName: s.tokenName,
          role: s.role,
          createdAt: s.createdAt,
          expiresAt: s.expiresAt,
          lastSeenAt: s.lastSeenAt,
        })),
      };
    },
  );

  app.delete(
    "/v1/sessions/:id",
    {
      config: { role: "admin" },
      schema: {
        tags: ["session"],
        summary: "Revoke a console session",
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }),
        response: { 204: Type.Null(), ...Errors },
      },
    },
    async (request, reply) => {
      if (!(await store.sessions.delete(request.params.id))) {
        throw new NbfError("NBF_SESSION_NOT_FOUND", { id: request.params.id });
      }
      revoked(request.params.id, `console session ${request.params.id} revoked by ${request.principal?.id}`);
      return reply.status(204).send(null);
    },
  );
};

function signedOut(reply: FastifyReply, secure: boolean) {
  return reply.header("set-cookie", clearSessionCookie(secure)).status(204).send(null);
}
