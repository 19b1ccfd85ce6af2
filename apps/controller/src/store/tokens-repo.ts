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

  async findByHash(hash: string): Promise<TokenRecord | undefined> {
    const row = await this.db
      .selectFrom("tokens")
      .select(["id", "name", "role", "created_at"])
      .where("hash", "=", hash)
      .executeTakeFirst();
    return row
      ? { id: row.id, name: row.name, role: row.role as Role, createdAt: row.created_at }
      : undefined;
  }

  async get(id: string): Promise<TokenRecord | undefined> {
    const row = await this.db
      .selectFrom("tokens")
      .select(["id", "name", "role", "created_at"])
      .where("id", "=", id)
      .executeTakeFirst();
    return row
      ? { id: row.id, name: row.name, role: row.role as Role, createdAt: row.created_at }
      : undefined;
  }

  async list(): Promise<TokenRecord[]> {
    const rows = await this.db
      .selectFrom("tokens")
      .select(["id", "name", "role", "created_at"])
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      role: row.role as Role,
      createdAt: row.created_at,
    }));
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
}
