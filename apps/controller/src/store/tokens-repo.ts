/** Operator tokens: only their SHA-256 hashes are stored. */
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

import { ROLES, type Role } from "@nbfleet/shared";

export { ROLES, type Role };

export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
}

/**
 * How long a token found by its hash is answered from memory. Every API request authenticates,
 * and on PostgreSQL each lookup is a round trip that wakes a server process (a restart and its
 * long poll made two of them). A token revoked through this process is forgotten at once; one
 * revoked through another replica is still accepted here for at most this long.
 */
export const RECENT_TOKEN_MS = 2000;
/** Most tokens remembered at once (the oldest go first). */
const RECENT_TOKENS_MAX = 1024;

export class TokensRepo {
  /** Tokens found by hash lately: the record and until when it may be answered from here. */
  private readonly recent = new Map<string, { token: TokenRecord; until: number }>();
  /** Revocations through this repository so far: a lookup that overlapped one is not remembered. */
  private revocations = 0;

  constructor(private readonly db: Kysely<Database>) {}

  async insert(token: TokenRecord & { hash: string }): Promise<void> {
    await this.db
      .insertInto("tokens")
      .values({
        id: token.id,
        name: token.name,
        role: token.role,
        hash: token.hash,
        created_at: token.createdAt,
      })
      .execute();
  }

  /** The token with this hash, from memory if it was found in the last RECENT_TOKEN_MS. */
  async findByHash(hash: string, now = Date.now()): Promise<TokenRecord | undefined> {
    const known = this.recent.get(hash);
    if (known && known.until > now) return known.token;
    this.recent.delete(hash);
    const revocationsBefore = this.revocations;
    const token = await this.findBy("hash", hash);
    // Unknown hashes are not remembered: guessing would fill the memory, not the cache.
    if (token && this.revocations === revocationsBefore) {
      if (this.recent.size >= RECENT_TOKENS_MAX) this.recent.delete(this.recent.keys().next().value!);
      this.recent.set(hash, { token, until: now + RECENT_TOKEN_MS });
    }
    return token;
  }

  get(id: string): Promise<TokenRecord | undefined> {
    return this.findBy("id", id);
  }

  async list(): Promise<TokenRecord[]> {
    const rows = await this.db
      .selectFrom("tokens")
      .select(TOKEN_COLUMNS)
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    return rows.map(toTokenRecord);
  }

  async countByRole(role: Role): Promise<number> {
    const row = await this.db
      .selectFrom("tokens")
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .where("role", "=", role)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  async delete(id: string): Promise<boolean> {
    // Counted before and after: a lookup that overlapped the delete in any way is not remembered.
    this.revocations++;
    for (const [hash, { token }] of this.recent) if (token.id === id) this.recent.delete(hash);
    try {
      const result = await this.db.deleteFrom("tokens").where("id", "=", id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    } finally {
      this.revocations++;
    }
  }

  private async findBy(column: "hash" | "id", value: string): Promise<TokenRecord | undefined> {
    const row = await this.db
      .selectFrom("tokens")
      .select(TOKEN_COLUMNS)
      .where(column, "=", value)
      .executeTakeFirst();
    return row ? toTokenRecord(row) : undefined;
  }
}

const TOKEN_COLUMNS = ["id", "name", "role", "created_at"] as const;

function toTokenRecord(row: { id: string; name: string; role: string; created_at: string }): TokenRecord {
  return { id: row.id, name: row.name, role: row.role as Role, createdAt: row.created_at };
}
