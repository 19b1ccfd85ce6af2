/**
 * When an ACME-configured machine asks its CA again. Pure arithmetic over the current
 * certificate and the last failure, so a caller (the agent's loop, the controller's own certificate) only asks "when?".
 *
 * - Renewal is due `min(30 days, a third of the lifetime)` before notAfter at the latest: 30 days
 *   for a 90-day Let's Encrypt certificate (the `tls` check warns from 30 days left, so a healthy
 *   fleet never shows it), 40 s for pebble's 2-minute test ones.
 * - Up to a third of that earlier, each machine picks its own moment from a hash of its name and
 *   the certificate's notAfter: a fleet issued together spreads its renewals (over about ten
 *   days for Let's Encrypt, 40 to 30 days before expiry) instead of meeting the CA at once, and
 *   a restarted agent keeps its moment.
 * - After a failure: exponential backoff (1 min doubling, capped at 6 h or a quarter of the time
 *   left, whichever is shorter, never under 1 s; at 1 min once the certificate has expired) with
 *   equal jitter, and never before the server's own Retry-After (`retryAt` on NBF_ACME_FAILED).
 */
import { createHash } from "node:crypto";

const DAY_MS = 86_400_000;
export const RENEW_BEFORE_MS = 30 * DAY_MS;
const FIRST_RETRY_MS = 60_000;
const MAX_RETRY_MS = 6 * 3_600_000;
const MIN_RETRY_MS = 1000;

export interface CurrentCertificate {
  notBefore: string;
  notAfter: string;
  subjectAltNames: string[];
  selfSigned: boolean;
}

/** When to ask the CA for `hostname` next, given what is served now (null: nothing usable). */
export function renewalDueAt(current: CurrentCertificate | null, hostname: string, now: Date): Date {
  if (!current || current.selfSigned || !current.subjectAltNames.includes(`DNS:${hostname.toLowerCase()}`)) {
    return now;
  }
  const notBefore = Date.parse(current.notBefore);
  const notAfter = Date.parse(current.notAfter);
  const window = Math.min(RENEW_BEFORE_MS, Math.max(0, notAfter - notBefore) / 3);
  const latest = notAfter - window;
  const spread = (window / 3) * fraction(`${hostname.toLowerCase()}\n${current.notAfter}`);
  return new Date(Math.max(now.getTime(), Math.round(latest - spread)));
}

export interface FailureInput {
  /** Failures in a row so far, this one included (1 for the first). */
  failures: number;
  /** The server's Retry-After as an instant (NBF_ACME_FAILED's `retryAt`), when it gave one. */
  retryAt?: string | null;
  /** The served certificate's notAfter, when there is one: retries grow denser as it nears. */
  notAfter?: string | null;
  now: Date;
  /** [0, 1); Math.random by default. */
  random?: () => number;
}

export function retryAt(input: FailureInput): Date {
  const now = input.now.getTime();
  const left = input.notAfter ? Date.parse(input.notAfter) - now : Number.POSITIVE_INFINITY;
  // An expired certificate is an outage: at most the first step apart, not back to 6 h (the
  // CA's Retry-After still holds a rate-limited machine back).
  const cap = Math.max(MIN_RETRY_MS, Math.min(MAX_RETRY_MS, left > 0 ? left / 4 : FIRST_RETRY_MS));
  const exponent = Math.min(30, Math.max(0, input.failures - 1));
  const ceiling = Math.max(MIN_RETRY_MS, Math.min(cap, FIRST_RETRY_MS * 2 ** exponent));
  const delay = ceiling / 2 + (ceiling / 2) * (input.random ?? Math.random)();
  const serverFloor = input.retryAt ? Date.parse(input.retryAt) : Number.NaN;
  return new Date(Math.max(now + delay, Number.isNaN(serverFloor) ? 0 : serverFloor));
}

/** A stable number in [0, 1) from `text`. */
function fraction(text: string): number {
  return createHash("sha256").update(text).digest().readUInt32BE(0) / 2 ** 32;
}
