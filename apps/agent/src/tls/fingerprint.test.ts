import { execFileSync } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { formatFingerprint } from "./fingerprint.js";
import { generateSelfSigned } from "./generate.js";
import { inspectCertificate } from "./inspect.js";

describe("formatFingerprint", () => {
  it("prints what openssl prints for the same certificate", async () => {
    const { certPem } = await generateSelfSigned({ hostnames: ["nb.example.org"] });
    const openssl = execFileSync("openssl", ["x509", "-noout", "-fingerprint", "-sha256"], { input: certPem })
      .toString()
      .trim();
    const printed = openssl.slice(openssl.indexOf("=") + 1);
    expect(printed).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

    const der = new X509Certificate(certPem).raw;
    expect(formatFingerprint(createHash("sha256").update(der).digest())).toBe(printed);
    expect(formatFingerprint(createHash("sha256").update(der).digest("hex"))).toBe(printed);
    expect(formatFingerprint(printed.toLowerCase())).toBe(printed);
    expect(inspectCertificate(certPem).fingerprintSha256).toBe(printed);
  });

  it("refuses something that is not a SHA-256 digest", () => {
    expect(() => formatFingerprint("AB:CD")).toThrow(/expected 32 bytes/);
    expect(() => formatFingerprint("zz".repeat(32))).toThrow(/NBF|SHA-256/);
    expect(() => formatFingerprint(new Uint8Array(20))).toThrow(/got 20 bytes/);
  });
});
