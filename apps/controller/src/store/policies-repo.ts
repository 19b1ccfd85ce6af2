/** Named policies (JSON documents) set through the API, with who set them last and when. */
import type { Kysely } from "kysely";
import { fromJson, toJson } from "./json.js";
import type { Database } from "./schema.js";

export interface PolicyRecord<T> {
  name: string;
  value: T;
  updatedAt: string;
  updatedBy: string | null;
}

export class PoliciesRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async get<T>(name: string): Promise<PolicyRecord<T> | undefined> {
    const row = await this.db.selectFrom("policies").selectAll().where("name", "=", name).executeTakeFirst();
    if (!row) return undefined;
    return {
      name: row.name,
      value: fromJson<T>(row.value, null as T),
      updatedAt: row.updated_at,
      updatedBy: row.updated_by,
    };
  }

  async put<T>(name: string, value: T, updatedBy: string | null, now = new Date().toISOString()) {
    const row = { name, value: toJson(value), updated_at: now, updated_by: updatedBy };
    await this.db
      .insertInto("policies")
      .values(row)
      .onConflict((oc) =>
        oc.column("name").doUpdateSet({ value: row.value, updated_at: now, updated_by: updatedBy }),
      )
      .execute();
  }
}
