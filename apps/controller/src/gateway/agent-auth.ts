/**
 * Who an agent's bearer secret speaks for, decided at the HTTP upgrade: a secret the controller
 * never issued (or none) is refused there with a 401 and never becomes a WebSocket. A bootstrap
 * token that was issued but has expired is upgraded only to be closed with 4001 and a reason
 * naming the expiry, so the agent (any ws client) can say what happened.
 */
import { bearer, hashSecret, secretKind } from "../auth/secrets.js";
import type { AgentSecretsRepo } from "../store/agent-secrets-repo.js";

/** Whom a connection speaks for, and with which secret. */
export interface AgentIdentity {
  vmName: string;
  /** Set when the agent came with a bootstrap token (its welcome then carries a credential). */
  bootstrapHash: string | null;
  /** Set when it came with a credential from an exchange it has not connected with before. */
  unconfirmedCredentialHash: string | null;
}

export type AgentAdmission =
  | { kind: "admitted"; identity: AgentIdentity }
  /** Upgraded, then closed with 4001 and this reason. */
  | { kind: "expired"; vmName: string; reason: string }
  /** Answered 401 without upgrading. */
  | { kind: "refused"; code: "NBF_AUTH_REQUIRED" | "NBF_AUTH_INVALID"; reason: string };

export async function admitAgent(
  secrets: Pick<AgentSecretsRepo, "find">,
  authorization: string | string[] | undefined,
  nowMs = Date.now(),
): Promise<AgentAdmission> {
  const secret = bearer(authorization);
  if (!secret) {
    return {
      kind: "refused",
      code: "NBF_AUTH_REQUIRED",
      reason: "missing 'Authorization: Bearer <agent credential or bootstrap token>'",
    };
  }
  const kind = secretKind(secret);
  if (kind === "operator") {
    return {
      kind: "refused",
      code: "NBF_AUTH_INVALID",
      reason: "operator tokens cannot connect as an agent",
    };
  }
  const hash = hashSecret(secret);
  const found = await secrets.find(hash);
  if (!found || found.kind !== (kind === "agent" ? "credential" : "bootstrap")) {
    return {
      kind: "refused",
      code: "NBF_AUTH_INVALID",
      reason:
        kind === "agent"
          ? "unknown or revoked agent credential"
          : "unknown or already used bootstrap token (the agent has connected with its credential since)",
    };
  }
  if (found.kind === "bootstrap") {
    const expiresAt = found.expiresAt ?? found.createdAt;
    if (Date.parse(expiresAt) <= nowMs) {
      return {
        kind: "expired",
        vmName: found.vmName,
        reason: `bootstrap token expired at ${expiresAt}; issue a new one: nbfleet vm bootstrap-token <vm>`,
      };
    }
  }
  return {
    kind: "admitted",
    identity: {
      vmName: found.vmName,
      bootstrapHash: found.kind === "bootstrap" ? hash : null,
      unconfirmedCredentialHash: found.kind === "credential" && found.confirmedAt === null ? hash : null,
    },
  };
}
