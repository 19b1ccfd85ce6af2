/**
 * Fetches an artifact from the controller the agent is connected to, with the link's own TLS
 * trust (its CA, or its pinned certificate: checked before the request is written), bounded by
 * the announced size and a deadline, hashing as it writes. What arrived is judged by the caller;
 * here only the transfer is: too large, cut short, too slow or refused are errors.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AGENT_CONNECT_PATH, agentArtifactFilePath } from "@nbfleet/shared";
import { AgentError } from "../errors.js";
import { TlsRefusedError, type TlsTrust, verifiedTlsConnection } from "../link/dial.js";

/**
 * The transfer failed (connection refused or reset, cut short, a server error): worth trying
 * again, unlike a refusal of what was served.
 */
export class DownloadBrokeOff extends AgentError {}

export interface ArtifactSource {
  /** The agent endpoint the link is connected through (ws(s)://…/v1/agent/connect) or a base URL. */
  url: string;
  /** For https: the link's trust (`{}` = the system store). */
  trust: TlsTrust | null;
}

export interface DownloadRequest {
  source: ArtifactSource;
  version: string;
  /** The exact size announced; more is refused as soon as it arrives, less is a cut-short download. */
  bytes: number;
  file: string;
  deadlineMs: number;
}

/** `wss://c/v1/agent/connect` → `https://c/v1/agent/artifacts/<version>/file`; a proxy prefix is kept. */
export function artifactUrl(source: string, version: string): URL {
  const url = new URL(source);
  const scheme = { "ws:": "http:", "wss:": "https:", "http:": "http:", "https:": "https:" }[url.protocol];
  if (!scheme) throw new AgentError("NBF_INVALID_INPUT", `not a controller URL: ${source}`, { url: source });
  const base = url.pathname.replace(/\/+$/, "");
  const prefix = base.endsWith(AGENT_CONNECT_PATH) ? base.slice(0, -AGENT_CONNECT_PATH.length) : base;
  return new URL(`${scheme}//${url.host}${prefix}${agentArtifactFilePath(version)}`);
}

/** Downloads to `file`; resolves with the SHA-256 (hex) of exactly `bytes` bytes. */
export async function downloadArtifact(request: DownloadRequest): Promise<string> {
  const url = artifactUrl(request.source.url, request.version);
  const refused = (why: string) =>
    new AgentError("NBF_ARTIFACT_REFUSED", `artifact ${request.version} from ${url.href}: ${why}`, {
      url: url.href,
    });
  const brokeOff = (why: string) =>
    new DownloadBrokeOff("NBF_ARTIFACT_REFUSED", `artifact ${request.version} from ${url.href}: ${why}`, {
      url: url.href,
    });
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(brokeOff(`not downloaded within ${Math.round(request.deadlineMs / 1000)} s`)),
    request.deadlineMs,
  );
  const hash = createHash("sha256");
  let received = 0;
  try {
    const response = await get(url, request.source.trust, request.deadlineMs, abort.signal);
    if (response.statusCode !== 200) {
      response.resume();
      const status = `HTTP ${response.statusCode} ${response.statusMessage ?? ""}`.trim();
      throw (response.statusCode ?? 0) >= 500 ? brokeOff(status) : refused(status);
    }
    const length = Number(response.headers["content-length"] ?? Number.NaN);
    if (Number.isFinite(length) && length > request.bytes) {
      response.destroy();
      throw refused(`the controller announces ${length} bytes, more than the ${request.bytes} expected`);
    }
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        if (received > request.bytes) {
          done(refused(`more than the ${request.bytes} bytes expected arrived`));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(response, count, createWriteStream(request.file, { mode: 0o600 }), {
      signal: abort.signal,
    }).catch((error: unknown) => {
      if (abort.signal.aborted) throw abort.signal.reason;
      if (error instanceof AgentError) throw error;
      throw brokeOff(
        `the download broke off after ${received} of ${request.bytes} bytes (${describe(error)})`,
      );
    });
    if (!response.complete || received !== request.bytes) {
      throw brokeOff(`the download was cut short: ${received} of ${request.bytes} bytes arrived`);
    }
    return hash.digest("hex");
  } catch (error) {
    await rm(request.file, { force: true });
    if (error instanceof AgentError) throw error;
    if (abort.signal.aborted) throw abort.signal.reason;
    // A certificate that is not the trusted one is a refusal; anything else of the connection's
    // (refused, reset, unreachable) may pass.
    if (error instanceof TlsRefusedError) throw refused(describe(error));
    throw brokeOff(describe(error));
  } finally {
    clearTimeout(timer);
  }
}

function get(
  url: URL,
  trust: TlsTrust | null,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === "https:";
    const options: https.RequestOptions = {
      signal,
      headers: { "user-agent": "nbfleet-agent" },
      ...(secure && trust
        ? {
            createConnection: verifiedTlsConnection(
              trust,
              timeoutMs,
            ) as unknown as https.RequestOptions["createConnection"],
          }
        : {}),
    };
    const request = (secure ? https : http).get(url, options, resolve);
    request.once("error", (error) => reject(signal.aborted ? signal.reason : error));
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
