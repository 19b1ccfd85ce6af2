/**
 * ACME problem documents (RFC 8555 §6.7, `urn:ietf:params:acme:error:*`) as NBF_ACME_FAILED
 * errors: the problem type and detail in the message, and a rate limit's
 * Retry-After kept as `retryAt` so whoever schedules the next attempt waits that long.
 */
import { AcmeError } from "./error.js";

export const PROBLEM_PREFIX = "urn:ietf:params:acme:error:";
export const RATE_LIMITED = `${PROBLEM_PREFIX}rateLimited`;
export const BAD_NONCE = `${PROBLEM_PREFIX}badNonce`;

export interface AcmeProblem {
  type: string;
  detail?: string;
  subproblems?: Array<{ type?: string; detail?: string; identifier?: { value?: string } }>;
}

export function isProblem(value: unknown): value is AcmeProblem {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { type?: unknown }).type === "string" &&
    (value as { type: string }).type.startsWith(PROBLEM_PREFIX)
  );
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date); null when absent or unreadable. */
export function retryAfterSeconds(header: unknown, now = Date.now()): number | null {
  if (typeof header !== "string" || header.trim() === "") return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

export function problemError(
  problem: AcmeProblem,
  context: { step: string; status?: number; retryAfterSec?: number | null; now?: number },
): AcmeError {
  const subproblems = (problem.subproblems ?? [])
    .map((sub) => `${sub.identifier?.value ?? "?"}: ${sub.type ?? "?"} ${sub.detail ?? ""}`.trim())
    .join("; ");
  const retryAt =
    context.retryAfterSec != null
      ? new Date((context.now ?? Date.now()) + context.retryAfterSec * 1000).toISOString()
      : null;
  const message = [
    `ACME ${context.step} failed: ${problem.type}`,
    problem.detail ? `: ${problem.detail}` : "",
    subproblems ? ` (${subproblems})` : "",
    retryAt ? `; the server asks to retry after ${retryAt}` : "",
    "; the current certificate was kept",
  ].join("");
  return new AcmeError(message, {
    problemType: problem.type,
    ...(problem.detail ? { problemDetail: problem.detail } : {}),
    ...(context.status ? { status: context.status } : {}),
    ...(retryAt ? { retryAt, retryAfterSec: context.retryAfterSec } : {}),
    step: context.step,
  });
}

/** Any other failure during `step` (the network, TLS trust, a local port) as NBF_ACME_FAILED. */
export function stepError(step: string, error: unknown, details: Record<string, unknown> = {}): AcmeError {
  if (error instanceof AcmeError) return error;
  // acme-client 5.4's retry handler reads `response.config` of a request that got no response.
  const noResponse = error instanceof TypeError && /reading 'config'/.test(error.message);
  const reason = noResponse
    ? "the ACME server did not answer (connection refused, reset or timed out)"
    : error instanceof Error
      ? error.message
      : String(error);
  return new AcmeError(`ACME ${step} failed: ${reason}; the current certificate was kept`, {
    step,
    ...details,
  });
}
