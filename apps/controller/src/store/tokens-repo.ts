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

export class TokensRepo {
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

  findByHash(hash: string): Promise<TokenRecord | undefined> {
    return this.findBy("hash", hash);
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
    const result = await this.db.deleteFrom("tokens").where("id", "=", id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
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
