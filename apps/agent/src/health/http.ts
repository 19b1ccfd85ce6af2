/**
 * A small HTTPS JSON client for the notebook's REST API, pinned to the profile's certificate
 * (tls/pinned-connection): the server is self-signed, and a request goes only to the server
 * showing exactly the certificate the agent keeps. Every request carries
 * `no_track_activity=1` so the agent's own polling never counts as user activity.
 */
import type { IncomingHttpHeaders } from "node:http";
import https from "node:https";
import { isIPv6 } from "node:net";
import { certificateFileFingerprint, pinnedConnection } from "../tls/pinned-connection.js";
import { describeError } from "./result.js";
import type { CheckTarget } from "./target.js";

const MAX_BODY_BYTES = 1024 * 1024;

/** How long a cheap check waits for the server. */
export const NETWORK_CHECK_TIMEOUT_MS = 5000;

export interface ApiRequest {
  method?: "GET" | "POST" | "DELETE";
  /** Relative to the base URL, without a leading slash: "api", "api/kernels". */
  path: string;
  /** Sent as `Authorization: token <t>`; omit to ask as a stranger. */
  token?: string;
  body?: unknown;
  timeoutMs: number;
  /** Aborts the request (the kernel check is cancelled when its server goes away). */
  signal?: AbortSignal;
}

export interface ApiResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Parsed JSON, or the raw text when the body is not JSON. */
  body: unknown;
}

export function normalizeBaseUrl(baseUrl: string): string {
  const trimmed = baseUrl.replace(/^\/+|\/+$/g, "");
  return trimmed === "" ? "/" : `/${trimmed}/`;
}

/** Where the server answers and the certificate it must show; all a readiness probe needs. */
export type ApiEndpoint = Pick<CheckTarget, "host" | "port" | "baseUrl" | "certFile">;

/** A `createConnection` pinned to the certificate the endpoint's profile holds now. */
export async function notebookConnection(target: Pick<CheckTarget, "certFile">, timeoutMs: number) {
  let pin: string;
  try {
    pin = await certificateFileFingerprint(target.certFile);
  } catch (error) {
    throw new Error(`cannot read the notebook's certificate ${target.certFile}: ${(error as Error).message}`);
  }
  return pinnedConnection(pin, timeoutMs);
}

export function apiUrl(
  target: Pick<ApiEndpoint, "host" | "port" | "baseUrl">,
  path: string,
  scheme: "https" | "wss" = "https",
): URL {
  const host = isIPv6(target.host) ? `[${target.host}]` : target.host;
  const url = new URL(
    `${scheme}://${host}:${target.port}${normalizeBaseUrl(target.baseUrl)}${path.replace(/^\/+/, "")}`,
  );
  url.searchParams.set("no_track_activity", "1");
  return url;
}

export async function requestApi(target: ApiEndpoint, request: ApiRequest): Promise<ApiResponse> {
  const method = request.method ?? "GET";
  const url = apiUrl(target, request.path);
  const headers: Record<string, string> = { Accept: "application/json" };
  if (request.token !== undefined) headers.Authorization = `token ${request.token}`;
  const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const what = `${method} ${url.origin}${url.pathname}`;
  const createConnection = await notebookConnection(target, request.timeoutMs);

  return new Promise((resolve, reject) => {
    // With createConnection and no agent, every request has a fresh socket: none outlives a check.
    const req = https.request(url, {
      method,
      headers,
      createConnection: createConnection as unknown as https.RequestOptions["createConnection"],
      ...(request.signal ? { signal: request.signal } : {}),
    });
    const timer = setTimeout(
      () => req.destroy(new Error(`${what}: no answer within ${request.timeoutMs} ms`)),
      request.timeoutMs,
    );
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(error.message.startsWith(what) ? error : new Error(`${what}: ${error.message}`));
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy(new Error(`${what}: answer larger than ${MAX_BODY_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parseBody(text) });
      });
      res.on("error", (error) => {
        clearTimeout(timer);
        reject(new Error(`${what}: ${error.message}`));
      });
      // After "end" this rejects nothing; before it, the answer was cut off.
      res.on("close", () => {
        clearTimeout(timer);
        reject(new Error(`${what}: the connection closed before the answer was complete`));
      });
    });
    req.end(payload);
  });
}

function parseBody(text: string): unknown {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export type ApiProbe = { ok: true; version: string } | { ok: false; error: string };

/** Ready = `GET <base>api` answers 200 with a version over TLS; used by the https check and readiness. */
export async function probeApi(target: ApiEndpoint, timeoutMs: number): Promise<ApiProbe> {
  try {
    const res = await requestApi(target, { path: "api", timeoutMs });
    const version = (res.body as { version?: unknown } | null)?.version;
    if (res.status === 200 && typeof version === "string") return { ok: true, version };
    if (res.status === 200) return { ok: false, error: "GET /api answered 200 without a version" };
    return { ok: false, error: `GET /api answered HTTP ${res.status}` };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}
