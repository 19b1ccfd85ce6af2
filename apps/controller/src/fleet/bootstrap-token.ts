/**
 * Issuing a VM's bootstrap token: the one-time secret its agent trades for a credential. Only
 * its hash is stored; it expires unused after `NBFLEET_BOOTSTRAP_TOKEN_TTL_SEC`.
 */
import { hashSecret, newBootstrapToken } from "../auth/secrets.js";
import type { AgentSecretsRepo } from "../store/agent-secrets-repo.js";

export interface IssuedBootstrapToken {
  token: string;
  expiresAt: string;
}

export function bootstrapExpiry(ttlSec: number, nowMs = Date.now()): string {
  return new Date(nowMs + ttlSec * 1000).toISOString();
}

/** A new token for the VM; any earlier one of it (used or not) stops working. */
export async function issueBootstrapToken(
  secrets: AgentSecretsRepo,
  vmName: string,
  ttlSec: number,
  nowMs = Date.now(),
): Promise<IssuedBootstrapToken> {
  const token = newBootstrapToken();
  const expiresAt = bootstrapExpiry(ttlSec, nowMs);
  await secrets.issueBootstrap(vmName, hashSecret(token), expiresAt, new Date(nowMs).toISOString());
  return { token, expiresAt };
}
