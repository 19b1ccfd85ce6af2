import { X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { makeTestCa, selfSignedPair } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { recordAcmeCertificate } from "../tls/certificate-source.js";
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
    // Self-signed, but not by the agent: the operator provided it.
    expect(check.message).toBe("certificate issued by localhost valid for 200 more days");
    expect(check.data).toEqual({
      fingerprintSha256: cert.fingerprint256,
      notAfter: new Date(cert.validTo).toISOString(),
      daysLeft: 200,
      issuer: { kind: "provided", name: "localhost" },
      chainValid: true,
    });
  });

  it("warns under 30 days left", async () => {
    expect((await checkTls(target, new Date(notAfter() - 30 * DAY - 1000))).status).toBe("pass");
    const check = await checkTls(target, new Date(notAfter() - 10 * DAY - 1000));
    expect(check).toMatchObject({
      status: "warn",
      message: "the certificate issued by localhost expires in 10 days",
    });
  });

  it("fails once expired, and before it is valid", async () => {
    const expired = await checkTls(target, new Date(notAfter() + 1000));
    expect(expired.status).toBe("fail");
    expect(expired.message).toContain("the certificate issued by localhost expired on");
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

describe("checkTls names the issuer and checks the chain of cert.pem", () => {
  let dir: string;
  let server: tls.Server | undefined;
  afterAll(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await rm(dir, { recursive: true, force: true });
  });

  // The test CA's certificates run 31 days from yesterday: half a day ago they had 30 left.
  const halfDayAgo = () => new Date(Date.now() - DAY / 2);

  /** Serves `chainPem` (with its key) and writes it as DIR/profile cert.pem; returns the target. */
  async function serve(chainPem: string, keyPem: string): Promise<CheckTarget> {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    dir ??= await mkdtemp(path.join(os.tmpdir(), "nbfleet-tls-issuer-"));
    const certFile = path.join(dir, "cert.pem");
    await writeFile(certFile, chainPem);
    server = tls.createServer({ cert: chainPem, key: keyPem }, (s) => s.end());
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    return {
      host: "127.0.0.1",
      port,
      baseUrl: "/",
      token: "",
      pid: null,
      certFile,
      diskPath: dir,
      dataDir: dir,
    };
  }

  it("an ACME chain the agent recorded: ACME certificate from the directory's host", async () => {
    const ca = await makeTestCa("Pebble Intermediate CA");
    const leaf = await ca.issueServer();
    const target = await serve(`${leaf.certPem}${ca.caPem}\n`, leaf.keyPem);
    await mkdir(dataPaths(dir).stateDir, { recursive: true });
    await recordAcmeCertificate(dataPaths(dir).stateDir, {
      fingerprintSha256: new X509Certificate(leaf.certPem).fingerprint256,
      directoryUrl: "https://acme.example.net/directory",
    });
    const check = await checkTls(target, halfDayAgo());
    expect(check.status).toBe("pass");
    expect(check.message).toBe("ACME certificate from acme.example.net valid for 30 more days");
    expect(check.data).toMatchObject({
      issuer: { kind: "acme", name: "acme.example.net" },
      chainValid: true,
    });
  });

  it("warns when the next certificate in cert.pem did not sign the one before", async () => {
    const ca = await makeTestCa("Real Issuer CA");
    const stranger = await makeTestCa("Stranger CA");
    const leaf = await ca.issueServer();
    const target = await serve(`${leaf.certPem}${stranger.caPem}\n`, leaf.keyPem);
    const check = await checkTls(target, halfDayAgo());
    expect(check.status).toBe("warn");
    expect(check.message).toBe(
      `the chain in ${target.certFile} is broken: the certificate (CN=localhost) names CN=Real Issuer CA as its issuer, not chain certificate 2 (CN=Stranger CA)`,
    );
    expect(check.data).toMatchObject({
      chainValid: false,
      issuer: { kind: "provided", name: "Real Issuer CA" },
    });
  });
});
