/**
 * The secret replicas authenticate each other with: 32 random bytes kept in `cluster_settings`,
 * created by whichever replica needs it first. Every replica proposes one and keeps what the
 * table holds afterwards (insert-if-absent), so replicas starting together agree. The value
 * never leaves the database and process memory: it is neither logged nor put in a URL.
 */
import { randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import type { Database } from "../../store/schema.js";

export const REPLICA_SECRET_SETTING = "replica_secret";
const SECRET_BYTES = 32;

export async function loadReplicaSecret(db: Kysely<Database>): Promise<Buffer> {
  await db
    .insertInto("cluster_settings")
    .values({ name: REPLICA_SECRET_SETTING, value: randomBytes(SECRET_BYTES).toString("base64url") })
    .onConflict((conflict) => conflict.column("name").doNothing())
    .execute();
  const row = await db
    .selectFrom("cluster_settings")
    .select("value")
    .where("name", "=", REPLICA_SECRET_SETTING)
    .executeTakeFirstOrThrow();
  const secret = Buffer.from(row.value, "base64url");
  if (secret.length !== SECRET_BYTES) {
    // Never the value itself: only what is wrong with it.
    throw new Error(
      `cluster_settings '${REPLICA_SECRET_SETTING}' holds ${secret.length} bytes, not ${SECRET_BYTES}; delete the row and restart the replicas`,
    );
  }
  return secret;
}
