/** The version a VM's agent last reported (its hello, kept in `vm_status.agent_info`) as SQL, per dialect. */
import { type RawBuilder, sql } from "kysely";
import type { Dialect } from "./db.js";

export function agentVersionSql(dialect: Dialect): RawBuilder<string | null> {
  return dialect === "postgres"
    ? sql<string | null>`(vm_status.agent_info::jsonb ->> 'version')`
    : sql<string | null>`json_extract(vm_status.agent_info, '$.version')`;
}
