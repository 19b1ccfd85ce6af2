/** `@nbfleet/shared/certificate-pin`, with certificates an operator would make (openssl). */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { certificateSha256, matchPin, publicKeySha256 } from "@nbfleet/shared/certificate-pin";
import { renewWithSameKey } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatFingerprint } from "./fingerprint.js";
import { generateSelfSigned } from "./generate.js";

const dir = mkdtempSync(path.join(tmpdir(), "nbf-pin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openssl = (args: string[], input?: Buffer | string) => execFileSync("openssl", args, { input });

let original: X509Certificate;
let renewed: X509Certificate;
let stranger: X509Certificate;

beforeAll(async () => {
  const pair = await generateSelfSigned();
  const keyFile = path.join(dir, "key.pem");
  writeFileSync(keyFile, pair.keyPem, { mode: 0o600 });
  original = new X509Certificate(pair.certPem);
  renewed = new X509Certificate(readFileSync(renewWithSameKey(keyFile, dir, "renewed")));
  stranger = new X509Certificate((await generateSelfSigned()).certPem);
});

describe("certificate pins", () => {
  it("prints the key's SHA-256 as the README's openssl pipeline does", () => {
    const pem = openssl(["x509", "-pubkey", "-noout"], original.toString());
    const digest = openssl(["dgst", "-sha256", "-r"], openssl(["pkey", "-pubin", "-outform", "der"], pem));
    expect(publicKeySha256(original)).toBe(formatFingerprint(digest.toString().split(" ")[0]!));
    expect(certificateSha256(original)).toBe(formatFingerprint(original.fingerprint256));
  });

  it("accepts the pinned certificate, a renewal with its key once the key is known, nothing else", () => {
    const pin = { certificateSha256: certificateSha256(original) };
    const withKey = { ...pin, keySha256: publicKeySha256(original) };
    expect(certificateSha256(renewed)).not.toBe(pin.certificateSha256);
    expect(matchPin(original, pin)).toBe("certificate");
    expect(matchPin(original, withKey)).toBe("certificate");
    expect(matchPin(renewed, pin)).toBeNull();
    expect(matchPin(renewed, withKey)).toBe("key");
    expect(matchPin(stranger, withKey)).toBeNull();
    expect(matchPin(undefined, withKey)).toBeNull();
  });
});
