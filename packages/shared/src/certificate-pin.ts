/**
 * What a certificate pin accepts. A pin names one certificate by its SHA-256 fingerprint and,
 * once known, that certificate's public key by the SHA-256 of its DER SubjectPublicKeyInfo (both
 * uppercase colon hex, as `openssl x509 -fingerprint -sha256` prints a fingerprint). A served
 * certificate passes when it is the pinned one, or when it carries the pinned key: only the
 * holder of that private key can complete a handshake with it, so a certificate renewed with the
 * same key is as trustworthy as the one pinned, and a controller can renew its certificate
 * without every guest being pinned again. A new key still needs a new pin (or a CA).
 */
import { type X509Certificate, createHash } from "node:crypto";

/** A SHA-256 as pins spell it: 32 bytes in uppercase hex pairs joined by colons. */
export const SHA256_COLON_HEX = "^([0-9A-F]{2}:){31}[0-9A-F]{2}$";

export interface CertificatePin {
  certificateSha256: string;
  /** The pinned certificate's key, when known. */
  keySha256?: string | null;
}

/** Which part of the pin the served certificate matched; null: neither. */
export type PinMatch = "certificate" | "key" | null;

export function certificateSha256(cert: X509Certificate): string {
  return cert.fingerprint256.toUpperCase();
}

/** `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256`, in colon hex. */
export function publicKeySha256(cert: X509Certificate): string {
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  const hex = createHash("sha256").update(spki).digest("hex").toUpperCase();
  return hex.match(/../g)!.join(":");
}

/**
 * The id of a set of pins (a controller.trust): the first 32 hex digits of the SHA-256 of its
 * pins, one `certificate/key` line each, sorted. The agent says it in its hello, so the
 * controller knows whether it holds the set in effect.
 */
export function trustSetId(pins: readonly CertificatePin[]): string {
  const lines = pins.map((pin) => `${pin.certificateSha256}/${pin.keySha256 ?? ""}\n`).sort();
  return createHash("sha256").update(lines.join("")).digest("hex").slice(0, 32);
}

export function matchPin(served: X509Certificate | undefined, pin: CertificatePin): PinMatch {
  if (!served) return null;
  if (certificateSha256(served) === pin.certificateSha256) return "certificate";
  if (pin.keySha256 && publicKeySha256(served) === pin.keySha256) return "key";
  return null;
}
