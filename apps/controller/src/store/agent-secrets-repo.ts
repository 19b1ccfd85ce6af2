/**
 * Per-VM agent secrets, hashed: bootstrap tokens and the long-lived credential an agent gets in
 * exchange for one. A bootstrap token expires unused; once exchanged it stays good for another
 * exchange (the welcome carrying the credential may have been lost) until the agent connects
 * with that credential, which consumes it.
 */
import type { Kysely, Transaction } from "kysely";
import { inLists } from "./chunks.js";
import type { AgentSecretsTable, Database } from "./schema.js";

export type AgentSecretKind = "bootstrap" | "credential";

export interface AgentSecret {
  vmName: string;
  kind: AgentSecretKind;
  createdAt: string;
  expiresAt: string | null;
  exchangedAt: string | null;
  confirmedAt: string | null;
}

/** A VM's outstanding bootstrap token, as the VM view shows it. */
export interface BootstrapTokenRecord {
  issuedAt: string;
  expiresAt: string;
  exchangedAt: string | null;
}

export class AgentSecretsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** A new bootstrap token replaces any other (used or not) of the same VM. */
  async issueBootstrap(
    vmName: string,
    hash: string,
    expiresAt: string,
    now = new Date().toISOString(),
  ): Promise<void> {
    await this.db
      .transaction()
      .execute((trx) => replaceSecret(trx, hash, vmName, "bootstrap", now, { expires_at: expiresAt }));
  }

  /** Sets a VM's credential directly (seeding fleets for tests and benchmarks). */
  async issueCredential(vmName: string, hash: string, now = new Date().toISOString()): Promise<void> {
    await this.db.transaction().execute((trx) => replaceCredential(trx, vmName, hash, now, now));
  }

  async find(hash: string): Promise<AgentSecret | undefined> {
    return (await this.findMany([hash])).get(hash);
  }

  /** The secrets stored under these hashes (a reconnecting fleet's, in few queries), by hash. */
  async findMany(hashes: readonly string[]): Promise<Map<string, AgentSecret>> {
    const found = new Map<string, AgentSecret>();
    for (const list of inLists(hashes)) {
      const rows = await this.db
        .selectFrom("agent_secrets")
        .select(["hash", "vm_name", "kind", "created_at", "expires_at", "exchanged_at", "confirmed_at"])
        .where("hash", "in", list)
        .execute();
      for (const row of rows)
        found.set(row.hash, {
          vmName: row.vm_name,
          kind: row.kind as AgentSecretKind,
          createdAt: row.created_at,
          expiresAt: row.expires_at,
          exchangedAt: row.exchanged_at,
          confirmedAt: row.confirmed_at,
        });
    }
    return found;
  }

  /** The VM's bootstrap token, if one is outstanding (unused, exchanged but unproven, or expired). */
  async bootstrapOf(vmName: string): Promise<BootstrapTokenRecord | null> {
    const row = await this.db
      .selectFrom("agent_secrets")
      .select(["created_at", "expires_at", "exchanged_at"])
      .where("vm_name", "=", vmName)
      .where("kind", "=", "bootstrap")
      .orderBy("created_at", "desc")
      .executeTakeFirst();
    return row ? toBootstrapRecord(row) : null;
  }

  /** `bootstrapOf` for many VMs at once (a page of the VM list), one statement per 512. */
  async bootstrapsOf(vmNames: readonly string[]): Promise<Map<string, BootstrapTokenRecord>> {
    const found = new Map<string, BootstrapTokenRecord>();
    for (const list of inLists(vmNames)) {
      const rows = await this.db
        .selectFrom("agent_secrets")
        .select(["vm_name", "created_at", "expires_at", "exchanged_at"])
        .where("kind", "=", "bootstrap")
        .where("vm_name", "in", list)
        .orderBy("created_at")
        .execute();
      for (const row of rows) found.set(row.vm_name, toBootstrapRecord(row));
    }
    return found;
  }

  /**
   * Exchanges a bootstrap token for a credential: the VM's credential is replaced by the new one
   * (unconfirmed), and the token is kept, marked exchanged, until `expiresAt`. Returns the VM
   * name, or undefined when the token is gone (replaced, consumed, or its VM deleted).
   */
  async exchangeBootstrap(
    bootstrapHash: string,
    credentialHash: string,
    expiresAt: string,
    now = new Date().toISOString(),
  ): Promise<string | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await vmOfSecret(trx, bootstrapHash, "bootstrap").executeTakeFirst();
      if (!row) return undefined;
      const updated = await trx
        .updateTable("agent_secrets")
        .set({ exchanged_at: now, expires_at: expiresAt })
        .where("hash", "=", bootstrapHash)
        .where("kind", "=", "bootstrap")
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) return undefined;
      await replaceCredential(trx, row.vm_name, credentialHash, now, null);
      return row.vm_name;
    });
  }

  /**
   * The agent connected with a credential it got from an exchange: that proves it holds it, so
   * the exchanged bootstrap token is consumed. True when this call confirmed it.
   */
  async confirmCredential(credentialHash: string, now = new Date().toISOString()): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const row = await vmOfSecret(trx, credentialHash, "credential")
        .where("confirmed_at", "is", null)
        .executeTakeFirst();
      if (!row) return false;
      // Conditional: on PostgreSQL two connections may both have read it unconfirmed.
      const confirmed = await trx
        .updateTable("agent_secrets")
        .set({ confirmed_at: now })
        .where("hash", "=", credentialHash)
        .where("confirmed_at", "is", null)
        .executeTakeFirst();
      if (Number(confirmed.numUpdatedRows) !== 1) return false;
      await trx
        .deleteFrom("agent_secrets")
        .where("vm_name", "=", row.vm_name)
        .where("kind", "=", "bootstrap")
        .where("exchanged_at", "is not", null)
        .execute();
      return true;
    });
  }

  async deleteForVm(vmName: string): Promise<void> {
    await this.db.deleteFrom("agent_secrets").where("vm_name", "=", vmName).execute();
  }
}

function toBootstrapRecord(row: {
  created_at: string;
  expires_at: string | null;
  exchanged_at: string | null;
}): BootstrapTokenRecord {
  return {
    issuedAt: row.created_at,
    expiresAt: row.expires_at ?? row.created_at,
    exchangedAt: row.exchanged_at,
  };
}

function vmOfSecret(trx: Transaction<Database>, hash: string, kind: AgentSecretKind) {
  return trx.selectFrom("agent_secrets").select("vm_name").where("hash", "=", hash).where("kind", "=", kind);
}

function replaceCredential(
  trx: Transaction<Database>,
  vmName: string,
  hash: string,
  now: string,
  confirmedAt: string | null,
): Promise<void> {
  return replaceSecret(trx, hash, vmName, "credential", now, { confirmed_at: confirmedAt });
}

/** A VM has at most one secret of each kind: the new one replaces any other. */
async function replaceSecret(
  trx: Transaction<Database>,
  hash: string,
  vmName: string,
  kind: AgentSecretKind,
  now: string,
  lifecycle: Partial<Pick<AgentSecretsTable, "expires_at" | "exchanged_at" | "confirmed_at">>,
): Promise<void> {
  await trx.deleteFrom("agent_secrets").where("vm_name", "=", vmName).where("kind", "=", kind).execute();
  await trx
    .insertInto("agent_secrets")
    .values({
      hash,
      vm_name: vmName,
      kind,
      created_at: now,
      expires_at: null,
      exchanged_at: null,
      confirmed_at: null,
      ...lifecycle,
    })
    .execute();
}
