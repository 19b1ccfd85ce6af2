/**
 * One release key per cluster. The database records the cluster's release PUBLIC key (the
 * first replica to start records its own: insert-if-absent), and a replica whose key file holds
 * another key refuses to start: its signatures would be refused by every guest bootstrapped by
 * the others. The private key never reaches the database; the refusal names the key file only.
 *
 * On SQLite there is one controller, and the database sits in its data dir beside the key: a
 * key file replaced there (the rotation H1's store always allowed) is adopted, and the caller
 * signs the stored versions again.
 */
import type { Kysely } from "kysely";
import { NbfError } from "../errors.js";
import type { Dialect } from "../store/db.js";
import type { Database } from "../store/schema.js";
import type { ReleaseKey } from "./release-key.js";

export const RELEASE_PUBLIC_KEY_SETTING = "release_public_key";

export interface ClusterKeyCheck {
  /** True when this replica recorded its key (the first start, or an adoption on SQLite). */
  recorded: boolean;
  /** SQLite only: the public key recorded before this one was adopted. */
  replaced?: string;
}

export async function checkClusterReleaseKey(
  store: { db: Kysely<Database>; dialect: Dialect },
  key: Pick<ReleaseKey, "file" | "publicKeyPem">,
): Promise<ClusterKeyCheck> {
  const { db } = store;
  const inserted = await db
    .insertInto("cluster_settings")
    .values({ name: RELEASE_PUBLIC_KEY_SETTING, value: key.publicKeyPem })
    .onConflict((conflict) => conflict.column("name").doNothing())
    .returning("name")
    .executeTakeFirst();
  if (inserted) return { recorded: true };
  const row = await db
    .selectFrom("cluster_settings")
    .select("value")
    .where("name", "=", RELEASE_PUBLIC_KEY_SETTING)
    .executeTakeFirstOrThrow();
  if (samePem(row.value, key.publicKeyPem)) return { recorded: false };
  if (store.dialect === "sqlite") {
    await db
      .updateTable("cluster_settings")
      .set({ value: key.publicKeyPem })
      .where("name", "=", RELEASE_PUBLIC_KEY_SETTING)
      .execute();
    return { recorded: true, replaced: row.value };
  }
  throw new NbfError("NBF_CONFIG_INVALID", {
    source: key.file,
    problems: `the release key in ${key.file} is not the cluster's: the database records another release public key (made by the replica that started first). Every replica signs with the same key; copy the cluster's key file (release-key.pem from a running replica, mode 0600) to ${key.file} and start again`,
  });
}

function samePem(a: string, b: string): boolean {
  return a.trim() === b.trim();
}
