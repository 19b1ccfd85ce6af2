/**
 * The VM list's order and filters in SQL: each sort key's value per dialect, the keyset
 * condition that resumes after a row (ties broken by name, A to Z), and label-expression terms.
 * Values that may be missing are coalesced, so both dialects order them alike (SQLite puts
 * nulls first, PostgreSQL last) and a cursor can always name the value it stopped at.
 */
import { HEALTH_SEVERITY, type SortOrder, type VmSortKey } from "@nbfleet/shared/vm-sort";
import { type Expression, type RawBuilder, type SqlBool, sql } from "kysely";
import type { Dialect } from "./db.js";

export interface VmSort {
  key: VmSortKey;
  order: SortOrder;
}

/** Where the previous page ended: its last row's name and sort value. */
export interface VmListPosition {
  name: string;
  value: string | number;
}

/** One term of a label expression (the operations selector's LabelTerm has this shape). */
export type LabelTermSql =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "exists" | "absent" };

/** Numeric sort keys; the others compare as text (byte order on both dialects). */
export const NUMERIC_SORT_KEYS: ReadonlySet<VmSortKey> = new Set(["health", "restarts"]);

const severity = sql.join(
  HEALTH_SEVERITY.map((health, rank) => sql`when ${sql.lit(health)} then ${sql.lit(rank)}`),
  sql` `,
);

/**
 * The sort value of a row of `vms left join vm_status`. `nameColumn` is the name column the
 * query orders by (the health filter orders by vm_status.vm_name, its index's column).
 */
export function sortValue(key: VmSortKey, dialect: Dialect, nameColumn: string): RawBuilder<string | number> {
  const postgres = dialect === "postgres";
  switch (key) {
    case "name":
      return sql.ref(nameColumn);
    case "state":
      return sql`vms.state`;
    case "agent":
      return sql`coalesce(vm_status.agent_status, 'never_connected')`;
    case "health":
      return sql`(case coalesce(vm_status.health, 'unknown') ${severity} else ${sql.lit(HEALTH_SEVERITY.length)} end)`;
    case "lastSeen":
      return sql`coalesce(vm_status.last_seen_at, '')`;
    case "notebook":
      return postgres
        ? sql`coalesce((vm_status.notebook::json ->> 'state') collate "C", '')`
        : sql`coalesce(json_extract(vm_status.notebook, '$.state'), '')`;
    case "restarts":
      return postgres
        ? sql`coalesce((vm_status.notebook::json ->> 'restarts')::bigint, 0)`
        : sql`coalesce(json_extract(vm_status.notebook, '$.restarts'), 0)`;
  }
}

/** Rows strictly after `after` in the order (value in `order`, then name ascending). */
export function afterPosition(
  value: Expression<unknown>,
  nameColumn: string,
  sort: VmSort,
  after: VmListPosition,
): RawBuilder<SqlBool> {
  const name = sql.ref(nameColumn);
  if (sort.key === "name")
    return sort.order === "asc" ? sql`${name} > ${after.name}` : sql`${name} < ${after.name}`;
  const beyond = sort.order === "asc" ? sql`${value} > ${after.value}` : sql`${value} < ${after.value}`;
  return sql`(${beyond} or (${value} = ${after.value} and ${name} > ${after.name}))`;
}

/** A label term as a condition on vms.name (absent keys count as "not equal", as in Kubernetes). */
export function labelTermCondition(term: LabelTermSql): RawBuilder<SqlBool> {
  const holders =
    term.op === "=" || term.op === "!="
      ? sql`select vm_name from vm_labels where key = ${term.key} and value = ${term.value}`
      : sql`select vm_name from vm_labels where key = ${term.key}`;
  return term.op === "=" || term.op === "exists"
    ? sql`vms.name in (${holders})`
    : sql`vms.name not in (${holders})`;
}
