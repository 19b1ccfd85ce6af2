/**
 * How many machines' agents report each version (the version in their last hello), for the
 * artifact list's `agents` column: one grouped query over `vm_status`, on either dialect.
 */
import { sql } from "kysely";
import type { Store } from "../store/store.js";

export async function countAgentsByVersion(
  store: Pick<Store, "db" | "dialect">,
): Promise<Map<string, number>> {
  const version =
    store.dialect === "postgres"
      ? sql<string | null>`(vm_status.agent_info::jsonb ->> 'version')`
      : sql<string | null>`json_extract(vm_status.agent_info, '$.version')`;
  const rows = await store.db
    .selectFrom("vm_status")
    .innerJoin("vms", "vms.name", "vm_status.vm_name")
    .select(version.as("version"))
    .select((eb) => eb.fn.countAll<number>().as("count"))
    .where("vm_status.agent_info", "is not", null)
    .groupBy(version)
    .execute();
  const counts = new Map<string, number>();
  for (const row of rows) if (row.version) counts.set(row.version, Number(row.count));
  return counts;
}
