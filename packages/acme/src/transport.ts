/**
 * How acme-client's HTTP requests (its documented `acme.axios` instance) behave for the ACME
 * servers this process talks to: the server's own TLS trusted through a CA file when one is set,
 * a timeout on every request, and problem documents turned into NBF_ACME_FAILED errors that
 * keep the problem type, which acme-client's own errors drop (they carry only the detail).
 *
 * acme-client's built-in retries are off: it would sleep out a rate limit's Retry-After (hours)
 * inside one request; the caller schedules the next attempt from the error's `retryAt` instead.
 * badNonce stays acme-client's to retry, as RFC 8555 §6.5 intends.
 */
import { Agent as HttpsAgent } from "node:https";
import acme from "acme-client";
import { BAD_NONCE, isProblem, problemError, retryAfterSeconds } from "./problem.js";

const REQUEST_TIMEOUT_MS = 15_000;

/** Per ACME server origin: the TLS agent that trusts its CA file (undefined = the system's roots). */
const servers = new Map<string, HttpsAgent | undefined>();
let installed = false;

/** Requests to `directoryUrl`'s origin trust `caPem` alone (or the system's roots when null). */
export function registerAcmeServer(directoryUrl: string, caPem: string | null): void {
  install();
  const origin = new URL(directoryUrl).origin;
  servers.get(origin)?.destroy();
  servers.set(origin, caPem ? new HttpsAgent({ ca: caPem, keepAlive: false }) : undefined);
}

/** The HTTPS agent for `url`'s origin as registered (for the directory probe). */
export function httpsAgentFor(url: string): HttpsAgent | undefined {
  return servers.get(new URL(url).origin);
}

function originOf(url: string | undefined): string | null {
  try {
    return url ? new URL(url).origin : null;
  } catch {
    return null;
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings;
  if (settings) settings.retryMaxAttempts = 0;

  acme.axios.interceptors.request.use((config) => {
    const origin = originOf(config.url);
    if (origin && servers.has(origin)) {
      const agent = servers.get(origin);
      if (agent) config.httpsAgent = agent;
      config.timeout = REQUEST_TIMEOUT_MS;
    }
    return config;
  });
  acme.axios.interceptors.response.use((response) => {
    const origin = originOf(response.config?.url);
    if (!origin || !servers.has(origin) || response.status < 400) return response;
    const body: unknown = response.data;
    if (!isProblem(body) || body.type === BAD_NONCE) return response;
    throw problemError(body, {
      step: `request to ${new URL(response.config.url ?? origin).pathname}`,
      status: response.status,
      retryAfterSec: retryAfterSeconds(response.headers["retry-after"]),
    });
  });
}
