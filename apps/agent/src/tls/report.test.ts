import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { makeTestCa, operatorPair } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certificateSourceFile, readCertificateSource, recordAcmeCertificate } from "./certificate-source.js";
import { formatFingerprint } from "./fingerprint.js";
import { generateSelfSigned } from "./generate.js";
import { certificatePhrase } from "./issuer.js";
import { certificateReport, reportCertificateFile } from "./report.js";

const DAY_MS = 86_400_000;
const fingerprintOf = (pem: string) => formatFingerprint(new X509Certificate(pem).fingerprint256);

let stateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), "nbf-cert-report-"));
});
afterAll(() => rm(stateDir, { recursive: true, force: true }));

describe("certificateReport", () => {
  it("the agent's own certificate: self-signed, named by its subject, a valid one-link chain", async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const { certPem } = await generateSelfSigned({ hostnames: ["nb7.example.org"], days: 90, now });
    const report = certificateReport(certPem, null, new Date(now.getTime() + 10 * DAY_MS));
    expect(report).toMatchObject({
      selfSigned: true,
      issuer: { kind: "self-signed", name: "nb7.example.org" },
      chainValid: true,
      chainProblem: null,
      daysLeft: 80,
    });
    expect(certificatePhrase(report.issuer!)).toBe("self-signed certificate");
  });

  it("an operator's certificate is provided, named by its issuer's CN (its own when self-made)", async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const issued = await operatorPair({ notBefore: now, days: 30 });
    // The operator's CA is not in cert.pem here: a lone leaf, nothing to check it against.
    expect(certificateReport(issued.certPem, null, now)).toMatchObject({
      issuer: { kind: "provided", name: "Example Operator CA" },
      chainValid: true,
      daysLeft: 30,
    });
    const foreign = await operatorPair({ notBefore: now, days: 30, selfSigned: true });
    expect(certificateReport(foreign.certPem, null, now).issuer).toEqual({
      kind: "provided",
      name: "notebooks.example.com",
    });
  });

  it("acme only for the certificate the record names, with the directory's host", async () => {
    const ca = await makeTestCa("Pretend ACME Intermediate");
    const leaf = await ca.issueServer();
    const chainPem = `${leaf.certPem}${ca.caPem}\n`;
    const source = {
      kind: "acme" as const,
      fingerprintSha256: fingerprintOf(leaf.certPem),
      directoryUrl: "https://acme-v02.api.letsencrypt.org:443/directory",
    };
    const report = certificateReport(chainPem, source);
    expect(report).toMatchObject({
      issuer: { kind: "acme", name: "acme-v02.api.letsencrypt.org" },
      chainValid: true,
      chainProblem: null,
    });
    expect(certificatePhrase(report.issuer!)).toBe("ACME certificate from acme-v02.api.letsencrypt.org");

    // cert.pem replaced since (an operator installed another pair): the record no longer applies.
    const other = await ca.issueServer();
    expect(certificateReport(`${other.certPem}${ca.caPem}`, source).issuer).toEqual({
      kind: "provided",
      name: "Pretend ACME Intermediate",
    });
  });

  it("reports a chain whose next certificate did not sign the leaf", async () => {
    const ca = await makeTestCa("Right CA");
    const wrong = await makeTestCa("Wrong CA");
    const leaf = await ca.issueServer();
    expect(certificateReport(`${leaf.certPem}${wrong.caPem}`, null)).toMatchObject({
      chainValid: false,
      chainProblem:
        "the certificate (CN=localhost) names CN=Right CA as its issuer, not chain certificate 2 (CN=Wrong CA)",
    });
  });

  it("refuses text that is not a certificate, naming the file", () => {
    expect(() => certificateReport("garbage", null, new Date(), "/d/cert.pem")).toThrow(
      /\/d\/cert\.pem is not a PEM certificate/,
    );
  });
});

describe("the certificate-source record", () => {
  it("is written 0600 and read back; the file's report then says acme", async () => {
    const ca = await makeTestCa("Recorded CA");
    const leaf = await ca.issueServer();
    await recordAcmeCertificate(stateDir, {
      fingerprintSha256: fingerprintOf(leaf.certPem),
      directoryUrl: "https://127.0.0.1:14000/dir",
    });
    expect((await stat(certificateSourceFile(stateDir))).mode & 0o777).toBe(0o600);
    expect(await readCertificateSource(stateDir)).toEqual({
      kind: "acme",
      fingerprintSha256: fingerprintOf(leaf.certPem),
      directoryUrl: "https://127.0.0.1:14000/dir",
    });
    const report = await reportCertificateFile(`${leaf.certPem}${ca.caPem}`, {
      certFile: "/d/cert.pem",
      stateDir,
    });
    expect(report.issuer).toEqual({ kind: "acme", name: "127.0.0.1" });
  });

  it("a missing or damaged record reads as none", async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), "nbf-cert-source-"));
    try {
      expect(await readCertificateSource(empty)).toBeNull();
      await writeFile(certificateSourceFile(empty), "{not json");
      expect(await readCertificateSource(empty)).toBeNull();
      await writeFile(
        certificateSourceFile(empty),
        JSON.stringify({ kind: "provided", fingerprintSha256: "AA" }),
      );
      expect(await readCertificateSource(empty)).toBeNull();
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
