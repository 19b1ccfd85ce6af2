/**
 * The single format every part of nbfleet uses for a certificate's SHA-256 fingerprint:
 * uppercase hex pairs joined by colons, exactly what `openssl x509 -fingerprint -sha256`
 * prints and what node's `X509Certificate.fingerprint256` gives.
 */
import { AgentError } from "../errors.js";

const SHA256_BYTES = 32;

/** Accepts the raw digest bytes or hex in any case, with or without `:`/space separators. */
export function formatFingerprint(digest: Uint8Array | string): string {
  const hex = typeof digest === "string" ? digest.replace(/[:\s]/g, "") : Buffer.from(digest).toString("hex");
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== SHA256_BYTES * 2) {
    const got = typeof digest === "string" ? JSON.stringify(digest.slice(0, 120)) : `${digest.length} bytes`;
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `not a SHA-256 fingerprint: expected ${SHA256_BYTES} bytes as hex, got ${got}`,
      { value: typeof digest === "string" ? digest : hex },
    );
  }
  return hex.toUpperCase().match(/../g)!.join(":");
}
