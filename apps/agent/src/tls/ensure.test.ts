import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { rejectionOf } from "@nbfleet/testkit/rejection";
import { operatorPair } from "@nbfleet/testkit/test-ca";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { AgentError } from "../errors.js";
import { ensureCertificate, installCertificate, rotateCertificate } from "./ensure.js";
import { generateSelfSigned } from "./generate.js";
import { inspectCertificate } from "./inspect.js";

const DAY_MS = 24 * 60 * 60 * 1000;
let dir: string;
let paths: { certFile: string; keyFile: string };

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "nbf-tls-"));
  paths = dataPaths(dir);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (file: string) => statSync(file).mode & 0o777;
const read = (file: string) => readFileSync(file, "utf8");
const fingerprintOnDisk = () => inspectCertificate(read(paths.certFile)).fingerprintSha256;

const rejection = (promise: Promise<unknown>) => rejectionOf(promise, AgentError);

describe("ensureCertificate", () => {
  it("generates into an empty data dir with key 0600 and cert 0644, then keeps it", async () => {
    const first = await ensureCertificate(paths, { hostnames: ["nb.example.org"], ips: ["192.0.2.10"] });
    expect(first.action).toBe("generated");
    expect(mode(paths.keyFile)).toBe(0o600);
    expect(mode(paths.certFile)).toBe(0o644);
    expect(first.info.fingerprintSha256).toBe(fingerprintOnDisk());
    expect(first.info.subjectAltNames).toEqual(
      expect.arrayContaining(["DNS:nb.example.org", "IP:192.0.2.10", "DNS:localhost"]),
    );
    expect(readdirSync(path.dirname(paths.certFile)).filter((f) => f.endsWith(".tmp"))).toEqual([]);

    const second = await ensureCertificate(paths, { hostnames: ["nb.example.org"], ips: ["192.0.2.10"] });
    expect(second).toEqual({ info: first.info, action: "kept" });
  });

  it("renews a self-signed certificate within 30 days of expiry, and an expired one", async () => {
    const now = new Date();
    await rotateCertificate(paths, { days: 10, now });
    const before = fingerprintOnDisk();
    const result = await ensureCertificate(paths, { now });
    expect(result.action).toBe("renewed");
    expect(result.reason).toMatch(/within 30 days/);
    expect(result.info.daysLeft).toBeGreaterThanOrEqual(364);
    expect(fingerprintOnDisk()).not.toBe(before);

    await rotateCertificate(paths, { days: 1, now: new Date(now.getTime() - 5 * DAY_MS) });
    const expired = await ensureCertificate(paths, { now });
    expect(expired).toMatchObject({ action: "renewed", reason: expect.stringMatching(/expired on/) });
  });

  it("renews when the certificate no longer covers the requested names", async () => {
    await ensureCertificate(paths, { hostnames: ["old.example.org"] });
    const result = await ensureCertificate(paths, { hostnames: ["new.example.org"], ips: ["198.51.100.4"] });
    expect(result.action).toBe("renewed");
    expect(result.reason).toBe("the certificate does not cover DNS:new.example.org, IP:198.51.100.4");
    expect(result.info.subjectAltNames).toContain("DNS:new.example.org");
  });

  it("regenerates a garbage cert.pem, a missing key and a mismatched key, saying why", async () => {
    await ensureCertificate(paths);
    writeFileSync(paths.certFile, "not a certificate\n");
    const garbage = await ensureCertificate(paths);
    expect(garbage.action).toBe("regenerated");
    expect(garbage.reason).toContain(`${paths.certFile} is not a PEM certificate`);
    expect(inspectCertificate(read(paths.certFile)).fingerprintSha256).toBe(garbage.info.fingerprintSha256);

    rmSync(paths.keyFile);
    expect(await ensureCertificate(paths)).toMatchObject({
      action: "regenerated",
      reason: `${paths.keyFile} is missing`,
    });

    writeFileSync(paths.keyFile, (await generateSelfSigned()).keyPem, { mode: 0o600 });
    expect(await ensureCertificate(paths)).toMatchObject({
      action: "regenerated",
      reason: `${paths.keyFile} does not belong to ${paths.certFile}`,
    });
    expect((await ensureCertificate(paths)).action).toBe("kept");
  });

  it("keeps an operator's certificate, warns when it runs out, and refuses an expired one", async () => {
    const now = new Date();
    const pair = await operatorPair({ notBefore: new Date(now.getTime() - DAY_MS), days: 200 });
    await installCertificate(paths, pair.certPem, pair.keyPem, { now });
    const kept = await ensureCertificate(paths, { hostnames: ["other.example.org"], now });
    expect(kept).toMatchObject({ action: "kept", info: { selfSigned: false } });
    expect(kept.reason).toBeUndefined();
    expect(read(paths.certFile)).toBe(pair.certPem);

    const soon = await ensureCertificate(paths, { now: new Date(now.getTime() + 180 * DAY_MS) });
    expect(soon.action).toBe("kept");
    expect(soon.reason).toMatch(/install a new one/);

    const error = await rejection(ensureCertificate(paths, { now: new Date(now.getTime() + 300 * DAY_MS) }));
    expect(error.code).toBe("NBF_CERT_INVALID");
    expect(error.message).toContain(`${paths.certFile} expired on`);
    expect(read(paths.certFile)).toBe(pair.certPem);
  });

  it("never replaces an operator's self-signed certificate, and refuses it with a wrong key", async () => {
    const pair = await operatorPair({ notBefore: new Date(), days: 20, selfSigned: true });
    await installCertificate(paths, pair.certPem, pair.keyPem);
    expect((await ensureCertificate(paths)).action).toBe("kept");

    writeFileSync(paths.keyFile, (await generateSelfSigned()).keyPem);
    const error = await rejection(ensureCertificate(paths));
    expect(error.code).toBe("NBF_CERT_INVALID");
    expect(error.message).toContain("does not belong to");
    expect(read(paths.certFile)).toBe(pair.certPem);
  });

  it("gives the files to the owner", async () => {
    await ensureCertificate(paths, { owner: { uid: 65534, gid: 65534 } });
    for (const file of [paths.certFile, paths.keyFile]) {
      expect(statSync(file)).toMatchObject({ uid: 65534, gid: 65534 });
    }
    expect(mode(paths.keyFile)).toBe(0o600);
  });
});

describe("installCertificate", () => {
  it("refuses a mismatched pair and changes nothing on disk", async () => {
    await ensureCertificate(paths);
    const certBefore = read(paths.certFile);
    const keyBefore = read(paths.keyFile);
    const a = await operatorPair({ notBefore: new Date(), days: 90 });
    const b = await operatorPair({ notBefore: new Date(), days: 90 });

    const error = await rejection(installCertificate(paths, a.certPem, b.keyPem));
    expect(error.code).toBe("NBF_CERT_INVALID");
    expect(error.message).toBe(
      `the provided private key does not belong to the provided certificate (certificate ${inspectCertificate(a.certPem).fingerprintSha256}); provide the key the certificate was issued for`,
    );
    expect(read(paths.certFile)).toBe(certBefore);
    expect(read(paths.keyFile)).toBe(keyBefore);
    expect(readdirSync(path.dirname(paths.certFile)).sort()).toEqual(["cert.pem", "key.pem"]);
  });

  it("writes a valid pair with the key 0600", async () => {
    const pair = await operatorPair({ notBefore: new Date(), days: 90 });
    const info = await installCertificate(paths, pair.certPem, pair.keyPem);
    expect(read(paths.keyFile)).toBe(pair.keyPem);
    expect(mode(paths.keyFile)).toBe(0o600);
    expect(info.fingerprintSha256).toBe(fingerprintOnDisk());
  });
});

describe("rotateCertificate", () => {
  it("always makes a fresh self-signed certificate, even over an operator's", async () => {
    const pair = await operatorPair({ notBefore: new Date(), days: 90 });
    await installCertificate(paths, pair.certPem, pair.keyPem);
    const first = await rotateCertificate(paths, { hostnames: ["nb.example.org"] });
    const second = await rotateCertificate(paths, { hostnames: ["nb.example.org"] });
    expect(first).toMatchObject({ selfSigned: true, managed: true });
    expect(second.fingerprintSha256).not.toBe(first.fingerprintSha256);
    expect(fingerprintOnDisk()).toBe(second.fingerprintSha256);
  });
});
