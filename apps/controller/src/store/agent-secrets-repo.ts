/**
 * Per-VM agent secrets, hashed: one-time bootstrap tokens and the long-lived credential an
 * agent gets in exchange for one.
 */
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

export type AgentSecretKind = "bootstrap" | "credential";

export class AgentSecretsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** A new bootstrap token replaces any unused one for the same VM. */
  async issueBootstrap(vmName: string, hash: string, now = new Date().toISOString()): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .deleteFrom("agent_secrets")
        .where("vm_name", "=", vmName)
        .where("kind", "=", "bootstrap")
        .execute();
      await trx
        .insertInto("agent_secrets")
        .values({ hash, vm_name: vmName, kind: "bootstrap", created_at: now })
        .execute();
    });
  }

  /** Sets a VM's credential directly (seeding fleets for tests and benchmarks). */
  async issueCredential(vmName: string, hash: string, now = new Date().toISOString()): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .deleteFrom("agent_secrets")
        .where("vm_name", "=", vmName)
        .where("kind", "=", "credential")
        .execute();
      await trx
        .insertInto("agent_secrets")
        .values({ hash, vm_name: vmName, kind: "credential", created_at: now })
        .execute();
    });
  }

  async find(hash: string): Promise<{ vmName: string; kind: AgentSecretKind } | undefined> {
    const row = await this.db
      .selectFrom("agent_secrets")
      .select(["vm_name", "kind"])
      .where("hash", "=", hash)
      .executeTakeFirst();
    return row ? { vmName: row.vm_name, kind: row.kind as AgentSecretKind } : undefined;
  }

  /**
   * Spends a bootstrap token: it is deleted and the VM's credential replaced, atomically.
   * Returns the VM name, or undefined when the token was already spent (a race lost).
   */
  async exchangeBootstrap(
    bootstrapHash: string,
    credentialHash: string,
    now = new Date().toISOString(),
  ): Promise<string | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom("agent_secrets")
        .select("vm_name")
        .where("hash", "=", bootstrapHash)
        .where("kind", "=", "bootstrap")
        .executeTakeFirst();
      if (!row) return undefined;
      const deleted = await trx
        .deleteFrom("agent_secrets")
        .where("hash", "=", bootstrapHash)
        .where("kind", "=", "bootstrap")
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) !== 1) return undefined;
      await trx
        .deleteFrom("agent_secrets")
        .where("vm_name", "=", row.vm_name)
        .where("kind", "=", "credential")
        .execute();
      await trx
        .insertInto("agent_secrets")
        .values({ hash: credentialHash, vm_name: row.vm_name, kind: "credential", created_at: now })
        .execute();
      return row.vm_name;
    });
  }

  async deleteForVm(vmName: string): Promise<void> {
    await this.db.deleteFrom("agent_secrets").where("vm_name", "=", vmName).execute();
  }
}
