/**
 * PostgreSQL connection failures in words an operator can act on: which errors mean "the
 * database cannot be reached or refuses us" (as opposed to a failing statement), and one line
 * naming the cause. API calls that meet one answer NBF_DATABASE_UNAVAILABLE (503).
 */
import { NbfError, isNbfError } from "../errors.js";

interface ErrorFields {
  code?: unknown;
  message?: unknown;
  errors?: unknown;
}

/** Socket-level codes: the server is not there, or went away. */
const NETWORK: Record<string, string> = {
  ECONNREFUSED: "refused the connection",
  ECONNRESET: "closed the connection",
  EPIPE: "closed the connection",
  ETIMEDOUT: "did not answer: TCP timeout",
  EHOSTUNREACH: "cannot be reached: no route to host",
  ENETUNREACH: "cannot be reached: network unreachable",
  ENOTFOUND: "does not resolve: no such host name",
  EAI_AGAIN: "does not resolve: the DNS lookup failed (it may be temporary)",
  ENOENT: "has no socket there: is the server running?",
};

/** Messages `pg` gives without a code when a connection ends or never completes. */
const PG_MESSAGES: [RegExp, string][] = [
  [/timeout exceeded when trying to connect/i, "did not answer in time (connection timeout)"],
  [/connection timeout/i, "did not answer in time (connection timeout)"],
  [/Connection terminated/i, "closed the connection"],
  [/not queryable/i, "closed the connection"],
  [/Query read timeout/i, "did not answer a query in time (query_timeout)"],
  [/does not support SSL/i, "does not offer TLS, but the URL's sslmode asks for it"],
];

/** TLS verification codes from Node: the server's certificate is not the one the URL trusts. */
const TLS_CODE = /^(ERR_TLS_|CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO|ERR_SSL_)/;

/**
 * SQLSTATE classes meaning the session cannot be used: 08 connection exception, 28 invalid
 * authorization, 3D000 unknown database, 53300 too many connections, 57P01-03 shutting down or
 * starting up.
 */
function isSessionState(code: string): boolean {
  return /^(08|28)/.test(code) || code === "3D000" || code === "53300" || /^57P0[1-3]$/.test(code);
}

/** True when `error` says the database cannot be used at all (not that one statement failed). */
export function isConnectionError(error: unknown): boolean {
  if (isNbfError(error)) return error.code === "NBF_DATABASE_UNAVAILABLE";
  const { code, message } = fields(error);
  if (code !== undefined && (code in NETWORK || TLS_CODE.test(code) || isSessionState(code))) return true;
  return PG_MESSAGES.some(([pattern]) => pattern.test(message));
}

/**
 * True when trying the same write again may succeed: the database was unreachable, or PostgreSQL
 * chose this transaction as a deadlock's victim (40P01) or could not serialize it (40001).
 */
export function mayPassOnRetry(error: unknown): boolean {
  const { code } = fields(error);
  return isConnectionError(error) || code === "40P01" || code === "40001";
}

/**
 * The cause in one line, e.g. "refused the connection (ECONNREFUSED)" or
 * `password authentication failed for user "nbfleet" (28P01)`.
 */
export function describeCause(error: unknown): string {
  if (isNbfError(error) && error.code === "NBF_DATABASE_UNAVAILABLE") return String(error.details.reason);
  const { code, message } = fields(error);
  if (code !== undefined && code in NETWORK) return `${NETWORK[code]} (${code})`;
  if (code !== undefined && TLS_CODE.test(code)) {
    return `failed the TLS check: ${message} (${code}); check sslmode and sslrootcert`;
  }
  if (code !== undefined && /^[0-9A-Z]{5}$/.test(code)) return `${message} (${code})`;
  const known = PG_MESSAGES.find(([pattern]) => pattern.test(message));
  if (known) return known[1];
  return message || "failed";
}

/** One line for a log or a start-up error: "PostgreSQL at 127.0.0.1:5432: <cause>". */
export function describeFailure(address: string, error: unknown): string {
  return `PostgreSQL at ${address}: ${describeCause(error)}`;
}

/** NBF_DATABASE_UNAVAILABLE for `address`; `cause` is an error or an already described cause. */
export function databaseUnavailable(address: string, cause: unknown): NbfError {
  const reason = typeof cause === "string" ? cause : describeCause(cause);
  return new NbfError("NBF_DATABASE_UNAVAILABLE", { target: address, reason });
}

/** The code and message of `error`, or of the first of an AggregateError's errors that has a code. */
function fields(error: unknown): { code: string | undefined; message: string } {
  const { code, message, errors } = (error ?? {}) as ErrorFields;
  if (code === undefined && Array.isArray(errors) && errors.length > 0) return fields(errors[0]);
  return {
    code: typeof code === "string" ? code : undefined,
    message: typeof message === "string" ? message : "",
  };
}
