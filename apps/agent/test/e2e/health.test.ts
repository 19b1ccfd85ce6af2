import { X509Certificate } from "node:crypto";
import { copyFile, readFile } from "node:fs/promises";
import path from "node:path";
import { CHECK_NAMES, foldHealth } from "@nbfleet/shared";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import { hostLoadOnly } from "@nbfleet/testkit/vm-serving";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkActivity,
  checkAuth,
  checkHttps,
  checkKernel,
  checkProcess,
  checkTls,
  probeApi,
  requestApi,
  runChecks,
} from "../../src/health/index.js";
import { type NotebookFixture, startNotebook } from "./health-notebook-fixture.js";

const TOKEN = "agent-token-for-health-e2e";

describe("health checks against a real notebook 6.4.12 server", () => {
  let secured: NotebookFixture;
  let open: NotebookFixture;

  beforeAll(async () => {
    [secured, open] = await Promise.all([startNotebook(TOKEN), startNotebook("")]);
  });

  afterAll(async () => {
    await Promise.all([secured?.stop(), open?.stop()]);
  });

  it("probeApi reads the server's version", async () => {
    expect(await probeApi(secured.target, 5000)).toEqual({ ok: true, version: "6.4.12" });
  });

  it("passes every check on the live server, including a deep kernel check that gets a PNG back", async () => {
    const checks = await runChecks(secured.target, { deep: true });

    expect(checks.map((c) => c.name)).toEqual([...CHECK_NAMES]);
    // The host's run queue is not this server's doing: with other test files beside this one it
    // can pass twice the cores, and `resources` rightly warns (its thresholds have unit tests).
    const ours = checks.map((c) => (hostLoadOnly(c) ? { ...c, status: "pass" as const } : c));
    expect(ours.map((c) => [c.name, c.status, c.message])).toEqual(
      ours.map((c) => [c.name, "pass", c.message]),
    );
    expect(foldHealth(ours, "running").status).toBe("healthy");

    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    expect(byName.https?.data?.version).toBe("6.4.12");
    const served = new X509Certificate(await readFile(secured.target.certFile));
    expect(byName.tls?.data?.fingerprintSha256).toBe(served.fingerprint256);
    expect(byName.tls?.data?.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(byName.tls?.data?.daysLeft).toBeGreaterThanOrEqual(363);
    expect(byName.tls?.data?.notAfter).toBe(new Date(served.validTo).toISOString());

    const kernel = byName.kernel?.data ?? {};
    expect(kernel.pngBytes).toBeGreaterThan(1000);
    expect(kernel.pngSignature).toBe("89504e470d0a1a0a");
    expect(kernel.kernelStartMs).toBeGreaterThan(0);
    expect(kernel.executeMs).toBeGreaterThan(0);
    expect(kernel.kernelDeleted).toBe(true);

    const kernels = await requestApi(secured.target, { path: "api/kernels", token: TOKEN, timeoutMs: 5000 });
    expect(kernels.body).toEqual([]);
  });

  it("reuses the previous kernel result on a round that is not deep", async () => {
    const previous = await checkKernel(secured.target);
    const checks = await runChecks(secured.target, { deep: false, previousKernelCheck: previous });
    expect(checks.find((c) => c.name === "kernel")).toBe(previous);
    const withoutPrevious = await runChecks(secured.target, { deep: false });
    expect(withoutPrevious.map((c) => c.name)).toEqual(CHECK_NAMES.filter((n) => n !== "kernel"));
  });

  it("activity reports the kernel that is open", async () => {
    const created = await requestApi(secured.target, {
      method: "POST",
      path: "api/kernels",
      token: TOKEN,
      body: {},
      timeoutMs: 10_000,
    });
    expect(created.status).toBe(201);
    const kernelId = (created.body as { id: string }).id;
    try {
      const activity = await checkActivity(secured.target);
      expect(activity.status).toBe("pass");
      expect(activity.data?.kernels).toBe(1);
      expect(activity.data?.connections).toBe(0);
      expect(Date.parse(String(activity.data?.lastActivity))).toBeGreaterThanOrEqual(
        Date.parse(String(activity.data?.started)),
      );
    } finally {
      await requestApi(secured.target, {
        method: "DELETE",
        path: `api/kernels/${kernelId}`,
        token: TOKEN,
        timeoutMs: 10_000,
      });
    }
    const after = await checkActivity(secured.target);
    expect(after.data?.kernels).toBe(0);
  });

  it("kernel check fails and activity warns when the token is wrong", async () => {
    const wrong = { ...secured.target, token: "not-the-token" };
    const kernel = await checkKernel(wrong);
    expect(kernel.status).toBe("fail");
    expect(kernel.message).toContain("POST /api/kernels answered HTTP 403");
    const activity = await checkActivity(wrong);
    expect(activity.status).toBe("warn");
    expect(activity.message).toContain("token was refused");
  });

  it("auth passes when the server refuses strangers and fails when it answers without authentication", async () => {
    const guarded = await checkAuth(secured.target);
    expect(guarded.status).toBe("pass");
    expect(guarded.data?.status).toBe(403);

    const unguarded = await checkAuth(open.target);
    expect(unguarded.status).toBe("fail");
    expect(unguarded.message).toBe("the notebook answers without authentication");
    expect(foldHealth([unguarded], "running").status).toBe("unhealthy");
  });

  it("tls warns when the certificate file differs from the one the server presents", async () => {
    const served = new X509Certificate(await readFile(secured.target.certFile));
    const { cert: rotated } = await selfSignedPair(secured.dir, "rotated", 365);
    const onDisk = new X509Certificate(await readFile(rotated));

    const tls = await checkTls({ ...secured.target, certFile: rotated });
    expect(tls.status).toBe("warn");
    expect(tls.message).toContain("restart needed to serve the new certificate");
    expect(tls.data?.fingerprintSha256).toBe(served.fingerprint256);
    expect(tls.data?.fileFingerprintSha256).toBe(onDisk.fingerprint256);
    expect(foldHealth([tls], "running").status).toBe("degraded");
  });

  it("tls follows notebook 6 re-reading its certificate and key files on every connection", async () => {
    const { cert: freshCert, key: freshKey } = await selfSignedPair(secured.dir, "fresh", 365);
    const fresh = new X509Certificate(await readFile(freshCert));

    // A new cert.pem beside the old key.pem: Tornado cannot load the pair and every handshake hangs.
    await copyFile(freshCert, secured.target.certFile);
    const broken = await checkTls(secured.target, new Date(), 1500);
    expect(broken.status).toBe("fail");
    expect(broken.message).toContain("no TLS handshake");
    expect(broken.message).toContain("match its key");

    // With the matching key in place the new certificate is served at once, without a restart.
    await copyFile(freshKey, secured.keyFile);
    const tls = await checkTls(secured.target);
    expect(tls.status).toBe("pass");
    expect(tls.data?.fingerprintSha256).toBe(fresh.fingerprint256);
  });

  it("process and https fail once the server is killed, and the network checks fail fast", async () => {
    expect((await checkProcess(secured.target)).status).toBe("pass");
    process.kill(secured.target.pid!, "SIGKILL");
    await secured.exited;

    const processCheck = await checkProcess(secured.target);
    expect(processCheck.status).toBe("fail");
    expect(processCheck.message).toContain("is not running");
    const https = await checkHttps(secured.target);
    expect(https.status).toBe("fail");
    expect(https.message).toContain("ECONNREFUSED");

    const started = performance.now();
    const checks = await runChecks(secured.target, { deep: true });
    expect(performance.now() - started).toBeLessThan(2000);
    for (const name of ["https", "auth", "tls", "kernel", "activity"]) {
      expect(checks.find((c) => c.name === name)).toMatchObject({
        status: "fail",
        message: "notebook not running",
      });
    }
    expect(foldHealth(checks, "running").status).toBe("unhealthy");
  });
});
