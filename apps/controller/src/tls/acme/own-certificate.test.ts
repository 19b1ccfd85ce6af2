/** The controller's ACME pair on disk before any CA is asked: made, kept, replaced when unusable. */
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { OwnAcmeCertificate } from "./own-certificate.js";

const DOMAIN = "ctl.example.com";
const options = (dataDir: string) => ({
  domain: DOMAIN,
  directoryUrl: "https://acme.invalid/directory",
  email: null,
  caFile: null,
  dataDir,
});
const mode = (file: string) => statSync(file).mode & 0o777;
const quietLog = () => {
  const lines: string[] = [];
  const log = (_: object, message: string) => lines.push(message);
  return { lines, log: { info: log, warn: log, error: log } };
};

describe("OwnAcmeCertificate before the CA answers", () => {
  it("serves a temporary self-signed pair for the domain, 0600 in a 0700 folder, due for issuance now", async () => {
    const dataDir = makeDataDir("nbf-own-acme-", 0o700);
    const own = await OwnAcmeCertificate.prepare(options(dataDir));
    expect(mode(own.files.dir)).toBe(0o700);
    expect(mode(own.files.cert)).toBe(0o600);
    expect(mode(own.files.key)).toBe(0o600);
    const cert = new X509Certificate(readFileSync(own.files.cert));
    expect(cert.subjectAltName).toBe(`DNS:${DOMAIN}`);
    expect(own.httpsOptions().cert).toBe(readFileSync(own.files.cert, "utf8"));
    const status = own.status();
    expect(status).toMatchObject({
      source: "acme",
      domain: DOMAIN,
      issuer: { kind: "self-signed" },
      failure: null,
    });
    expect(status.daysLeft).toBeGreaterThanOrEqual(6);
    expect(Date.parse(status.nextAttemptAt!)).toBeLessThanOrEqual(Date.now());

    // A restart serves the same pair.
    const again = await OwnAcmeCertificate.prepare(options(dataDir));
    expect(again.status().fingerprintSha256).toBe(status.fingerprintSha256);
  });

  it("replaces a pair whose key does not match, and says so once it has a log", async () => {
    const dataDir = makeDataDir("nbf-own-acme-", 0o700);
    const first = await OwnAcmeCertificate.prepare(options(dataDir));
    const other = await OwnAcmeCertificate.prepare(options(makeDataDir("nbf-own-acme-", 0o700)));
    writeFileSync(first.files.key, readFileSync(other.files.key));
    const replaced = await OwnAcmeCertificate.prepare(options(dataDir));
    expect(replaced.status().fingerprintSha256).not.toBe(first.status().fingerprintSha256);
    const { lines, log } = quietLog();
    // Started on no real server: only the note is wanted here, then it is stopped at once.
    const fake = { on: () => fake, setSecureContext: () => {} } as unknown as Parameters<
      typeof replaced.start
    >[0];
    replaced.start(fake, { emit: () => {}, log });
    await replaced.stop();
    expect(lines[0]).toMatch(
      /the stored certificate for ctl\.example\.com is unusable \(the key does not belong/,
    );
  });
});
