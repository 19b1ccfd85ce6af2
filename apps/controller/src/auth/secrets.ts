/**
 * Bearer secrets and their hashes. Every secret is 32 random bytes, so a fast hash (SHA-256)
 * is the right way to store them: there is nothing to brute-force. The prefix says what a
 * secret is for, so a misplaced one is refused with a precise message.
 */
import { createHash, randomBytes } from "node:crypto";

export const SECRET_PREFIX = { operator: "nbf_", agent: "nbfa_", bootstrap: "nbfb_" } as const;
export type SecretKind = keyof typeof SECRET_PREFIX;

function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString("base64url");
}

export const newOperatorToken = () => newSecret(SECRET_PREFIX.operator);
export const newAgentCredential = () => newSecret(SECRET_PREFIX.agent);
export const newBootstrapToken = () => newSecret(SECRET_PREFIX.bootstrap);

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** What a presented secret claims to be, by its prefix; operator tokens may be any string. */
export function secretKind(secret: string): SecretKind {
  if (secret.startsWith(SECRET_PREFIX.agent)) return "agent";
  if (secret.startsWith(SECRET_PREFIX.bootstrap)) return "bootstrap";
  return "operator";
}

/** The secret of `Authorization: Bearer <secret>`, or undefined. */
export function bearer(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = value ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  return match?.[1];
}
