import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { certificateSha256, matchPin, publicKeySha256 } from "./certificate-pin.js";

const dir = mkdtempSync(path.join(tmpdir(), "nbf-pin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openssl = (args: string[], input?: Buffer | string) => execFileSync("openssl", args, { input });

/** A self-signed certificate from `keyFile` (made when missing), as an operator would make one. */
function certificate(name: string, keyFile: string): X509Certificate {
  const certFile = path.join(dir, `${name}.pem`);
  openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    keyFile,
    "-subj",
    "/CN=localhost",
    "-days",
    "30",
    "-out",
    certFile,
  ]);
  return new X509Certificate(readFileSync(certFile));
}

function key(name: string): string {
  const file = path.join(dir, `${name}-key.pem`);
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file]);
  return file;
}

const colonHex = (hex: string) => hex.toUpperCase().match(/../g)!.join(":");

describe("certificate pins", () => {
  const firstKey = key("first");
  const original = certificate("original", firstKey);
  const renewed = certificate("renewed", firstKey);
  const stranger = certificate("stranger", key("second"));

  it("prints the key's SHA-256 as the README's openssl pipeline does", () => {
    const spki = openssl(
      ["pkey", "-pubin", "-outform", "der"],
      openssl(["x509", "-pubkey", "-noout"], original.toString()),
    );
    const digest = openssl(["dgst", "-sha256", "-r"], spki).toString().split(" ")[0]!;
    expect(publicKeySha256(original)).toBe(colonHex(digest));
    expect(certificateSha256(original)).toBe(original.fingerprint256.toUpperCase());
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
