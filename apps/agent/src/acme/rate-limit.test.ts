/**
 * ACME refusals as the agent reports them, through acme-client's real HTTP path against a
 * small HTTPS server speaking just enough ACME to refuse (pebble cannot be made to rate-limit):
 * the problem type is named, rateLimited's Retry-After becomes `retryAt` without the issuance
 * sleeping it out, and the current certificate stays.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Server, createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { problemError, retryAfterSeconds } from "@nbfleet/acme";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { AgentError } from "../errors.js";
import { ensureCertificate } from "../tls/ensure.js";
import { obtainCertificate } from "./obtain.js";

type Refusal = { status: number; headers: Record<string, string>; problem: Record<string, unknown> };

let server: Server;
let base: string;
let caFile: string;
let dir: string;
let refusal: Refusal;
const requests: string[] = [];

function reply(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  response.writeHead(status, {
    "replay-nonce": randomBytes(12).toString("base64url"),
    "content-type": status >= 400 ? "application/problem+json" : "application/json",
    ...headers,
  });
  response.end(body === undefined ? undefined : JSON.stringify(body));
}

function handle(request: IncomingMessage, response: ServerResponse) {
  requests.push(`${request.method} ${request.url}`);
  request.resume();
  if (request.url === "/dir") {
    return reply(response, 200, {
      newNonce: `${base}/nonce`,
      newAccount: `${base}/account`,
      newOrder: `${base}/order`,
      revokeCert: `${base}/revoke`,
      keyChange: `${base}/key-change`,
    });
  }
  if (request.url === "/nonce") return reply(response, 200, undefined);
  return reply(response, refusal.status, refusal.problem, refusal.headers);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-acme-refuse-"));
  const ca = await makeTestCa("refusing ACME TLS CA");
  const pair = await ca.issueServer();
  caFile = path.join(dir, "ca.pem");
  await writeFile(caFile, ca.caPem);
  server = createServer({ cert: pair.certPem, key: pair.keyPem }, handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

async function attempt() {
  const paths = dataPaths(await mkdtemp(path.join(dir, "machine-")));
  await ensureCertificate(paths);
  const before = await readFile(paths.certFile, "utf8");
  const started = Date.now();
  const error = await obtainCertificate({
    settings: {
      directoryUrl: `${base}/dir`,
      email: null,
      hostname: "nb.example.com",
      caFile,
      challenge: "http-01",
      challengePort: 80,
    },
    paths,
    timeoutMs: 20_000,
  }).catch((caught: unknown) => caught);
  return {
    error: error as AgentError,
    elapsedMs: Date.now() - started,
    kept: (await readFile(paths.certFile, "utf8")) === before,
  };
}

describe("ACME refusals", () => {
  it("rateLimited with Retry-After: named, retryAt kept, not slept out inside the request", async () => {
    refusal = {
      status: 429,
      headers: { "retry-after": "3600" },
      problem: {
        type: "urn:ietf:params:acme:error:rateLimited",
        detail: "too many new registrations from this address",
      },
    };
    const { error, elapsedMs, kept } = await attempt();
    expect(error).toBeInstanceOf(AgentError);
    expect(error.code).toBe("NBF_ACME_FAILED");
    expect(error.details.problemType).toBe("urn:ietf:params:acme:error:rateLimited");
    expect(error.details.status).toBe(429);
    expect(error.details.retryAfterSec).toBe(3600);
    const retryAt = Date.parse(String(error.details.retryAt));
    expect(retryAt - Date.now()).toBeGreaterThan(3500_000);
    expect(retryAt - Date.now()).toBeLessThanOrEqual(3600_000);
    expect(error.message).toContain("urn:ietf:params:acme:error:rateLimited: too many new registrations");
    expect(error.message).toContain("retry after");
    expect(elapsedMs).toBeLessThan(5000);
    expect(kept).toBe(true);
    expect(requests.filter((line) => line === "POST /account")).toHaveLength(1);
  });

  it("another problem (a 403 unauthorized) names its type and detail, without a retry time", async () => {
    refusal = {
      status: 403,
      headers: {},
      problem: { type: "urn:ietf:params:acme:error:unauthorized", detail: "account is deactivated" },
    };
    const { error, kept } = await attempt();
    expect(error.code).toBe("NBF_ACME_FAILED");
    expect(error.details.problemType).toBe("urn:ietf:params:acme:error:unauthorized");
    expect(error.details.retryAt).toBeUndefined();
    expect(error.message).toMatch(/unauthorized: account is deactivated; the current certificate was kept$/);
    expect(kept).toBe(true);
  });
});

describe("problem helpers", () => {
  it("reads Retry-After as seconds or an HTTP date, and nothing else", () => {
    const now = Date.parse("2026-12-04T12:00:00Z");
    expect(retryAfterSeconds("120", now)).toBe(120);
    expect(retryAfterSeconds("Fri, 04 Dec 2026 13:00:00 GMT", now)).toBe(3600);
    expect(retryAfterSeconds("Fri, 04 Dec 2026 11:00:00 GMT", now)).toBe(0);
    expect(retryAfterSeconds("soon", now)).toBeNull();
    expect(retryAfterSeconds(undefined, now)).toBeNull();
  });

  it("names each subproblem's identifier", () => {
    const error = problemError(
      {
        type: "urn:ietf:params:acme:error:rejectedIdentifier",
        detail: "some names were refused",
        subproblems: [
          {
            type: "urn:ietf:params:acme:error:rejectedIdentifier",
            detail: "policy",
            identifier: { value: "a.test" },
          },
        ],
      },
      { step: "new order" },
    );
    expect(error.message).toBe(
      "ACME new order failed: urn:ietf:params:acme:error:rejectedIdentifier: some names were refused (a.test: urn:ietf:params:acme:error:rejectedIdentifier policy); the current certificate was kept",
    );
  });
});
