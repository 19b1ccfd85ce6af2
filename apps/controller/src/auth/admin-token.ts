/**
 * The first admin token: taken from NBFLEET_ADMIN_TOKEN or generated when no admin token
 * exists, and written 0600 to `<dataDir>/admin-token` so the CLI on this machine can use it.
 * The plaintext is returned so the caller can print it once (only one it generated).
 *
 * NBFLEET_ADMIN_TOKEN stays in the environment file of every replica, and revoking deletes a
 * token's row: so a configured token the store does not know is taken only while no admin
 * token exists, or a revoked one would come back as admin at the next restart.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isUniqueViolation } from "../store/db.js";
import { newId } from "../store/ids.js";
import type { TokensRepo } from "../store/tokens-repo.js";
import { hashSecret, newOperatorToken } from "./secrets.js";

export const ADMIN_TOKEN_FILE = "admin-token";

export interface AdminToken {
  /** The plaintext when known (just created, configured, or still valid in the file), else null. */
  token: string | null;
  /** True when this start created the token. */
  created: boolean;
  /** True when this start generated it (not configured): the only case worth printing. */
  generated: boolean;
  file: string;
  /** NBFLEET_ADMIN_TOKEN was given but not taken: revoked, or other admin tokens exist. */
  configuredIgnored: boolean;
}

export async function ensureAdminToken(
  tokens: TokensRepo,
  dataDir: string,
  configured: string | null,
): Promise<AdminToken> {
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  const none = { created: false, generated: false, file, configuredIgnored: false };
  // Counted before the lookup: a replica inserting the same token in between is then found.
  const admins = await tokens.countByRole("admin");
  if (configured !== null) {
    const known = (await tokens.findByHash(hashSecret(configured)))?.role === "admin";
    if (!known && admins > 0) return { ...none, ...(await fromFile(file, tokens)), configuredIgnored: true };
    if (!known) {
      // Replicas started together with one NBFLEET_ADMIN_TOKEN: one of them inserts it.
      await insertAdmin(tokens, configured, "admin (NBFLEET_ADMIN_TOKEN)").catch((error: unknown) => {
        if (!isUniqueViolation(error)) throw error;
      });
    }
    writeSecretFile(file, configured);
    return { ...none, token: configured, created: !known };
  }
  if (admins > 0) return { ...none, ...(await fromFile(file, tokens)) };
  const token = newOperatorToken();
  await insertAdmin(tokens, token, "admin (first start)");
  writeSecretFile(file, token);
  return { ...none, token, created: true, generated: true };
}

/** The token in the file, if it is still an admin token. */
async function fromFile(file: string, tokens: TokensRepo): Promise<{ token: string | null }> {
  const saved = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
  const valid = saved !== "" && (await tokens.findByHash(hashSecret(saved)))?.role === "admin";
  return { token: valid ? saved : null };
}

async function insertAdmin(tokens: TokensRepo, token: string, name: string): Promise<void> {
  await tokens.insert({
    id: newId("tok"),
    name,
    role: "admin",
    hash: hashSecret(token),
    createdAt: new Date().toISOString(),
  });
}

function writeSecretFile(file: string, secret: string): void {
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}
