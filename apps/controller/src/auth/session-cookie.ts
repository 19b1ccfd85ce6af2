/**
 * The console's session cookie: its value is 32 random bytes (base64url), sent back by the
 * browser on every same-site request; only its SHA-256 is stored. Because a browser attaches
 * it by itself, a cookie-authenticated request that changes anything (or opens a WebSocket)
 * must prove it comes from the controller's own pages by its `Origin`.
 */
import { randomBytes } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { NbfError } from "../errors.js";

export const SESSION_COOKIE = "nbf_session";
const VALUE = /^[A-Za-z0-9_-]{43}$/;
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export const newSessionSecret = () => randomBytes(32).toString("base64url");

/**
 * The session cookie's value from a Cookie header, undefined when there is none (a strict
 * little parser: `name=value` pairs split by ';', the first nbf_session wins). A value not of
 * the form this controller issues is returned as is: it is then unknown, so 401, not ignored.
 * The header's size is capped by the server's header limit.
 */
export function sessionCookie(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const pair of header.split(";")) {
    const eq = pair.indexOf("=");
    if (eq < 0 || pair.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    const value = pair
      .slice(eq + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1");
    return value === "" ? undefined : value;
  }
  return undefined;
}

export const wellFormedSession = (value: string) => VALUE.test(value);

export function setSessionCookie(value: string, maxAgeSec: number, secure: boolean): string {
  const attributes = [
    `Max-Age=${Math.floor(maxAgeSec)}`,
    "Path=/",
    "HttpOnly",
    ...(secure ? ["Secure"] : []),
  ];
  return `${SESSION_COOKIE}=${value}; ${attributes.join("; ")}; SameSite=Strict`;
}

export const clearSessionCookie = (secure: boolean) => setSessionCookie("", 0, secure);

/** scheme://host[:port] of the request as it reached this controller. */
export function requestOrigin(request: FastifyRequest): string | undefined {
  const host = request.headers.host;
  if (!host) return undefined;
  try {
    return new URL(`${request.protocol}://${host}`).origin;
  } catch {
    return undefined;
  }
}

/**
 * Refuses a cookie-authenticated request that could change state (any method but GET, HEAD
 * and OPTIONS, and every WebSocket upgrade) unless its Origin is this controller's own:
 * as the request reached it, or NBFLEET_PUBLIC_URL's.
 */
export function checkCookieOrigin(request: FastifyRequest, publicUrl: string | null): void {
  const upgrade = String(request.headers.upgrade ?? "").toLowerCase() === "websocket";
  if (SAFE_METHODS.has(request.method) && !upgrade) return;
  const allowed = [requestOrigin(request), publicUrl ? new URL(publicUrl).origin : undefined].filter(
    (o): o is string => o !== undefined,
  );
  const origin = request.headers.origin;
  if (typeof origin === "string" && allowed.includes(origin)) return;
  throw new NbfError("NBF_ORIGIN_REFUSED", {
    origin: typeof origin === "string" ? origin : "(none)",
    expected: allowed.join(" or ") || "(unknown: no Host header)",
  });
}
