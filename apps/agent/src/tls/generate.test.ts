import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { AgentError } from "../errors.js";
import { generateSelfSigned } from "./generate.js";
import { inspectCertificate } from "./inspect.js";

const opensslText = (certPem: string) =>
  execFileSync("openssl", ["x509", "-noout", "-text"], { input: certPem }).toString();

describe("generateSelfSigned", () => {
  it("covers the given names plus the loopback names", async () => {
    const { certPem } = await generateSelfSigned({
      hostnames: ["NB-1.example.org", "10.1.2.3"],
      ips: ["203.0.113.7", "2001:db8:0:0:0:0:0:5"],
    });
    const cert = new X509Certificate(certPem);
    for (const name of [
      "nb-1.example.org",
      "localhost",
      "10.1.2.3",
      "203.0.113.7",
      "127.0.0.1",
      "::1",
      "2001:db8::5",
    ]) {
      expect(cert.checkHost(name) ?? cert.checkIP(name), name).toBeTruthy();
    }
    expect(cert.checkHost("other.example.org")).toBeUndefined();

    const text = opensslText(certPem);
    expect(text).toMatch(
      /Subject Alternative Name:\s*\n\s*DNS:nb-1.example.org, DNS:localhost, IP Address:10.1.2.3, IP Address:203.0.113.7, IP Address:2001:DB8:0:0:0:0:0:5, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1/,
    );
    expect(text).toMatch(/Subject: CN = nb-1.example.org, O = nbfleet/);
    expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(text).toMatch(/Basic Constraints: critical\s*\n\s*CA:FALSE/);
    expect(text).toMatch(/Key Usage: critical\s*\n\s*Digital Signature\n/);
    expect(text).toMatch(/Extended Key Usage:\s*\n\s*TLS Web Server Authentication\n/);

    expect(inspectCertificate(certPem).subjectAltNames).toEqual([
      "DNS:nb-1.example.org",
      "DNS:localhost",
      "IP:10.1.2.3",
      "IP:203.0.113.7",
      "IP:2001:db8::5",
      "IP:127.0.0.1",
      "IP:::1",
    ]);
  });

  it("uses localhost as CN by default, the requested lifetime, and a PKCS#8 key that matches", async () => {
    const now = new Date("2030-01-01T12:00:00.000Z");
    const { certPem, keyPem } = await generateSelfSigned({ days: 10, now });
    const cert = new X509Certificate(certPem);
    expect(cert.subject).toBe("CN=localhost\nO=nbfleet");
    expect(new Date(cert.validTo).toISOString()).toBe("2030-01-11T12:00:00.000Z");
    expect(new Date(cert.validFrom).getTime()).toBeLessThanOrEqual(now.getTime());
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    // OpenSSL accepts it as its own trust anchor for a TLS server at that moment.
    const dir = mkdtempSync(path.join(os.tmpdir(), "nbf-gen-"));
    try {
      const file = path.join(dir, "cert.pem");
      writeFileSync(file, certPem);
      const at = String(now.getTime() / 1000);
      const verify = execFileSync("openssl", [
        "verify",
        "-purpose",
        "sslserver",
        "-attime",
        at,
        "-CAfile",
        file,
        file,
      ]);
      expect(verify.toString()).toBe(`${file}: OK\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("makes a new key every time", async () => {
    const a = await generateSelfSigned();
    const b = await generateSelfSigned();
    expect(a.keyPem).not.toBe(b.keyPem);
    expect(new X509Certificate(a.certPem).serialNumber).not.toBe(new X509Certificate(b.certPem).serialNumber);
  });

  it("refuses invalid names and lifetimes, naming the value", async () => {
    await expect(generateSelfSigned({ hostnames: ["bad_name!"] })).rejects.toThrow(/"bad_name!"/);
    await expect(generateSelfSigned({ ips: ["300.1.1.1"] })).rejects.toThrow(/"300.1.1.1"/);
    await expect(generateSelfSigned({ days: 0 })).rejects.toBeInstanceOf(AgentError);
    await expect(generateSelfSigned({ days: 1.5 })).rejects.toThrow(/got 1.5/);
  });
});
