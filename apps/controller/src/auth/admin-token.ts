/**
 * The first admin token: taken from NBFLEET_ADMIN_TOKEN or generated when no admin token
 * exists, and written 0600 to `<dataDir>/admin-token` so the CLI on this machine can use it.
 * The plaintext is returned so the caller can print it once.
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
  file: string;
}

export async function ensureAdminToken(
  tokens: TokensRepo,
  dataDir: string,
  configured: string | null,
): Promise<AdminToken> {
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  if (configured !== null) {
    const known = await tokens.findByHash(hashSecret(configured));
    if (!known) {
      // Replicas started together with one NBFLEET_ADMIN_TOKEN: one of them inserts it.
      await insertAdmin(tokens, configured, "admin (NBFLEET_ADMIN_TOKEN)").catch((error: unknown) => {
        if (!isUniqueViolation(error)) throw error;
      });
    }
    writeSecretFile(file, configured);
    return { token: configured, created: !known, file };
  }
  if ((await tokens.countByRole("admin")) > 0) {
    const fromFile = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
    const valid = fromFile !== "" && (await tokens.findByHash(hashSecret(fromFile)))?.role === "admin";
    return { token: valid ? fromFile : null, created: false, file };
  }
  const token = newOperatorToken();
  await insertAdmin(tokens, token, "admin (first start)");
  writeSecretFile(file, token);
  return { token, created: true, file };
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
