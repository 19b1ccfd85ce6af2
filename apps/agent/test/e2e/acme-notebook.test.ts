import { rmSync, statSync } from "node:fs";
/**
 * The real notebook server (Debian's Jupyter, started by `nbfleet-agent up`) serving a
 * certificate from a real ACME server (pebble, validation on): after
 * `nbfleet-agent certificate acme`, a client that trusts only pebble's root reaches `/api`
 * with full verification (chain and name) — no pin, no "not private" warning.
 */
import { request } from "node:https";
import type { CertificateInfo, HealthCheck } from "@nbfleet/shared";
import {
  type RunningAgent,
  agentCli,
  agentJson,
  startAgent,
  stopAgent,
} from "@nbfleet/testkit/agent-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { type SharedPebble, sharedPebble } from "@nbfleet/testkit/shared-pebble";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../../src/config/paths.js";

const NAME = "nb6.acme.test";

interface CertificateStatus {
  notebook: { certificate: CertificateInfo | null };
  health: { checks: HealthCheck[] };
}
let pebble: SharedPebble;
let agent: RunningAgent | undefined;
let dataDir: string;
let port: number;

beforeAll(async () => {
  pebble = await sharedPebble(NAME);
  dataDir = makeDataDir("nbf-acme-nb-");
  port = await freePort();
  agent = await startAgent(dataDir, port, { password: "correct horse battery staple" });
});
afterAll(async () => {
  if (agent) await stopAgent(agent, "SIGINT").catch(() => undefined);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** GET /api over TLS verified against `ca` alone, for `servername`: the status, or the TLS error. */
function getApi(
  ca: string,
  servername: string,
): Promise<{ status?: number; version?: string; error?: string }> {
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/api", servername, ca, timeout: 10_000 },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => {
          const parsed = (() => {
            try {
              return JSON.parse(body) as { version?: string };
            } catch {
              return {};
            }
          })();
          resolve({ status: response.statusCode, ...(parsed.version ? { version: parsed.version } : {}) });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    req.end();
  });
}

describe("the notebook serves an ACME certificate", () => {
  it("is reached with full verification through pebble's root after `certificate acme`", async () => {
    const root = await pebble.rootPem();
    // Before: the agent's self-signed certificate, which pebble's root does not vouch for.
    expect((await getApi(root, NAME)).error).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/);
    const before = await agentJson<CertificateStatus>(["status", "--data-dir", dataDir]);
    expect(before.notebook.certificate).toMatchObject({ issuer: { kind: "self-signed" }, chainValid: true });

    const run = await agentCli([
      "certificate",
      "acme",
      "--data-dir",
      dataDir,
      "--hostname",
      NAME,
      "--directory",
      pebble.directoryUrl,
      "--ca-file",
      pebble.caFile,
      "--challenge-port",
      String(pebble.httpPort),
      "--json",
    ]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const issued = JSON.parse(run.stdout) as { fingerprintSha256: string };

    const served = await waitFor("the notebook serving the ACME certificate", async () => {
      const result = await getApi(root, NAME);
      return result.status === 200 && result;
    });
    expect(served.version).toMatch(/^\d+\.\d+/);
    // Full verification means the name too: the same server is refused under another name.
    expect((await getApi(root, "other.acme.test")).error).toBe("ERR_TLS_CERT_ALTNAME_INVALID");

    const status = await agentJson<CertificateStatus>(["status", "--data-dir", dataDir]);
    expect(status.notebook.certificate?.fingerprintSha256).toBe(issued.fingerprintSha256);
    // Recorded by `certificate acme`: the issuer is the ACME directory's host, the chain holds.
    expect(status.notebook.certificate).toMatchObject({
      issuer: { kind: "acme", name: "127.0.0.1" },
      chainValid: true,
      chainProblem: null,
    });
    expect(status.health.checks.find((c) => c.name === "tls")?.message).toMatch(
      /^ACME certificate from 127\.0\.0\.1 valid for \d+ more days$/,
    );
    // The key stays the notebook user's alone.
    expect(statSync(dataPaths(dataDir).keyFile).mode & 0o777).toBe(0o600);
  });
});
