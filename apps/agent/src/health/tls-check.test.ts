import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckTarget } from "./target.js";
import { checkTls } from "./tls-check.js";

const DAY = 86_400_000;

describe("checkTls against a local TLS server", () => {
  let dir: string;
  let server: tls.Server;
  let target: CheckTarget;
  let cert: X509Certificate;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "nbfleet-tls-check-"));
    const { cert: certFile, key: keyFile } = await selfSignedPair(dir, "cert", 365);
    cert = new X509Certificate(await readFile(certFile));
    server = tls.createServer({ cert: await readFile(certFile), key: await readFile(keyFile) }, (s) =>
      s.end(),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    target = { host: "127.0.0.1", port, baseUrl: "/", token: "", pid: null, certFile, diskPath: dir };
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  const notAfter = () => new Date(cert.validTo).getTime();

  it("passes a fresh certificate and reports fingerprint, expiry and days left", async () => {
    const check = await checkTls(target, new Date(notAfter() - 200 * DAY - 1000));
    expect(check.status).toBe("pass");
    expect(check.message).toBe("certificate valid for 200 more days");
    expect(check.data).toEqual({
      fingerprintSha256: cert.fingerprint256,
      notAfter: new Date(cert.validTo).toISOString(),
      daysLeft: 200,
    });
  });

  it("warns under 30 days left", async () => {
    expect((await checkTls(target, new Date(notAfter() - 30 * DAY - 1000))).status).toBe("pass");
    const check = await checkTls(target, new Date(notAfter() - 10 * DAY - 1000));
    expect(check).toMatchObject({ status: "warn", message: "the certificate expires in 10 days" });
  });

  it("fails once expired, and before it is valid", async () => {
    const expired = await checkTls(target, new Date(notAfter() + 1000));
    expect(expired.status).toBe("fail");
    expect(expired.message).toContain("the certificate expired on");
    expect(expired.data?.daysLeft).toBe(-1);
    const early = await checkTls(target, new Date(new Date(cert.validFrom).getTime() - DAY));
    expect(early.status).toBe("fail");
    expect(early.message).toContain("not valid before");
  });

  it("warns when the certificate file cannot be read", async () => {
    const check = await checkTls({ ...target, certFile: path.join(dir, "missing.pem") });
    expect(check.status).toBe("warn");
    expect(check.message).toContain("cannot compare with");
  });

  it("fails when nothing answers", async () => {
    const check = await checkTls({ ...target, port: 1 }, new Date(), 2000);
    expect(check.status).toBe("fail");
    expect(check.message).toContain("ECONNREFUSED");
  });
});
