/** The controller on TLS: its files checked, HTTPS served, and what guests are told to trust. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { renewWithSameKey, selfSignedPair } from "@nbfleet/testkit/test-ca";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { guestTrust, readTlsFiles } from "./files.js";

const dir = makeDataDir("nbf-controller-tls-", 0o700);

const a = await selfSignedPair(dir, "a");
const b = await selfSignedPair(dir, "b");

describe("controller TLS files", () => {
  it("reads a matching pair; guests pin its SHA-256 unless a CA is given", () => {
    const tls = readTlsFiles({ tlsCert: a.cert, tlsKey: a.key, tlsCa: null })!;
    const openssl = execFileSync("openssl", ["x509", "-in", a.cert, "-noout", "-fingerprint", "-sha256"], {
      encoding: "utf8",
    });
    expect(openssl.trim()).toBe(`sha256 Fingerprint=${tls.fingerprintSha256}`);
    expect(guestTrust(tls)).toEqual({
      fingerprint: tls.fingerprintSha256,
      certPem: readFileSync(a.cert, "utf8"),
    });
    const withCa = readTlsFiles({ tlsCert: a.cert, tlsKey: a.key, tlsCa: a.cert })!;
    expect(guestTrust(withCa)).toEqual({ caPem: readFileSync(a.cert, "utf8") });
    expect(readTlsFiles({ tlsCert: null, tlsKey: null, tlsCa: null })).toBeNull();
    expect(guestTrust(null)).toBeUndefined();
  });

  it("refuses half a pair, a key of another certificate and unreadable files", () => {
    expect(() => readTlsFiles({ tlsCert: a.cert, tlsKey: null, tlsCa: null })).toThrow(
      /give both --tls-cert and --tls-key/,
    );
    expect(() => readTlsFiles({ tlsCert: a.cert, tlsKey: b.key, tlsCa: null })).toThrow(
      /does not belong to the certificate/,
    );
    expect(() => readTlsFiles({ tlsCert: join(dir, "missing.pem"), tlsKey: a.key, tlsCa: null })).toThrow(
      /--tls-cert .*missing\.pem cannot be read/,
    );
    expect(() => readTlsFiles({ tlsCert: a.key, tlsKey: a.key, tlsCa: null })).toThrow(
      /is not a PEM certificate/,
    );
  });

  it("serves the API over HTTPS with that certificate", async () => {
    const c = await startTestController({ settings: { tlsCert: a.cert, tlsKey: a.key } });
    try {
      expect(c.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(c.app.nbfleet.controllerUrl()).toBe(c.url);
      const status = await new Promise<number>((resolve, reject) => {
        https
          .get(`${c.url}/healthz`, { ca: readFileSync(a.cert) }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on("error", reject);
      });
      expect(status).toBe(200);
      // Another certificate is not trusted for it.
      await expect(
        new Promise((resolve, reject) =>
          https.get(`${c.url}/healthz`, { ca: readFileSync(b.cert) }, resolve).on("error", reject),
        ),
      ).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    } finally {
      await c.close();
    }
  });

  it("says in /healthz until when its files serve and what guests compare; a renewal keeps the key's", async () => {
    const logged: Array<{ msg: string; daysLeft?: number }> = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const renewed = renewWithSameKey(a.key, dir, "a-renewed");
    const seen = [];
    for (const tlsCert of [a.cert, renewed]) {
      const c = await startTestController({ settings: { tlsCert, tlsKey: a.key }, listen: false, logger });
      try {
        const health = await c.app.inject({ method: "GET", url: "/healthz" });
        expect(health.statusCode).toBe(200);
        seen.push(health.json().certificate);
      } finally {
        await c.close();
      }
    }
    const [before, after] = seen;
    const files = readTlsFiles({ tlsCert: a.cert, tlsKey: a.key, tlsCa: null })!;
    expect(before).toEqual({
      source: "files",
      notAfter: files.notAfter,
      daysLeft: 1,
      fingerprintSha256: files.fingerprintSha256,
      keySha256: files.keySha256,
      guestsTrust: "pin",
    });
    expect(after.fingerprintSha256).not.toBe(before.fingerprintSha256);
    expect(after.keySha256).toBe(before.keySha256);
    expect(after.daysLeft).toBeGreaterThanOrEqual(364);
    // The 3-day pair warned at its start; the renewed one (365 days) did not.
    const warnings = logged.filter((line) => /renew it with the same key/.test(line.msg));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain(`${a.cert} expires at ${files.notAfter}`);
    expect(warnings[0]!.daysLeft).toBe(1);
  });
});
