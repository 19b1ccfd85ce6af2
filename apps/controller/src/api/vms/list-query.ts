/**
 * `GET /v1/vms`'s sort, label and cursor parameters: `sort=<key>&order=asc|desc`, a label
 * expression (`labels=team=a,env!=prod`, as operation selectors take it) beside the older
 * repeatable `label=k=v`, and keyset cursors that carry the sort they were made under.
 */
import { SORT_ORDERS, type SortOrder, VM_SORT_KEYS, type VmSortKey } from "@nbfleet/shared";
import { Type } from "@sinclair/typebox";
import { NbfError, isNbfError } from "../../errors.js";
import { parseLabelExpression } from "../../operations/selector.js";
import type { LabelTermSql, VmListPosition, VmSort } from "../../store/vm-list-order.js";
import { NUMERIC_SORT_KEYS } from "../../store/vm-list-order.js";
import type { ListedVm } from "../../store/vms-repo.js";
import { encodeCursor } from "../cursor.js";

export const SortQuery = {
  sort: Type.Optional(
    Type.Union(
      VM_SORT_KEYS.map((key) => Type.Literal(key)),
      { description: `sort key: ${VM_SORT_KEYS.join(", ")} (default name); ties by name` },
    ),
  ),
  order: Type.Optional(
    Type.Union(
      SORT_ORDERS.map((order) => Type.Literal(order)),
      { description: "asc (default) or desc; health ascending is worst first" },
    ),
  ),
  labels: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 1024,
      description: "label expression: key=value, key!=value, key, !key, comma-separated (all must hold)",
    }),
  ),
};

/** `certExpiresWithinDays=N`: VMs whose served certificate ends within N days (expired ones too). */
export const CertExpiresWithinDays = Type.Integer({
  minimum: 0,
  maximum: 3650,
  description:
    "only VMs whose served certificate's notAfter is before now + N days (expired ones included; VMs that reported no certificate are not)",
});

/** The ISO instant `days` from `nowMs`, which cert_not_after is compared with. */
export function certNotAfterBefore(days: number, nowMs = Date.now()): string {
  return new Date(nowMs + days * 86_400_000).toISOString();
}

/** The `labels` expression and the `label=k=v` pairs as one list of terms. */
export function labelTerms(expression: string | undefined, pairs: readonly string[]): LabelTermSql[] {
  const terms: LabelTermSql[] = pairs.map((pair) => {
    const at = pair.indexOf("=");
    return { key: pair.slice(0, at), op: "=", value: pair.slice(at + 1) };
  });
  if (expression === undefined) return terms;
  try {
    return [...terms, ...parseLabelExpression(expression)];
  } catch (error) {
    if (isNbfError(error)) throw new NbfError(error.code, { ...error.details, field: "labels" });
    throw error;
  }
}

/**
 * A cursor under the default order is `{after: name}` as before; under another sort it also
 * names the sort and the last row's value, and is refused under any other sort.
 */
export function encodeListCursor(sort: VmSort, last: ListedVm): string {
  if (sort.key === "name" && sort.order === "asc") return encodeCursor(last.name);
  const position = { after: last.name, sort: sort.key, order: sort.order, value: last.sortValue };
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export function decodeListCursor(cursor: string, sort: VmSort): VmListPosition {
  let parsed: { after?: unknown; sort?: unknown; order?: unknown; value?: unknown } | null = null;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    // refused below
  }
  const byName = sort.key === "name" && sort.order === "asc";
  const value = byName ? parsed?.after : parsed?.value;
  const numeric = NUMERIC_SORT_KEYS.has(sort.key);
  if (
    parsed === null ||
    typeof parsed !== "object" ||
    typeof parsed.after !== "string" ||
    parsed.sort !== (byName ? undefined : sort.key) ||
    parsed.order !== (byName ? undefined : sort.order) ||
    (numeric ? typeof value !== "number" || !Number.isFinite(value) : typeof value !== "string")
  ) {
    throw new NbfError("NBF_CURSOR_INVALID", { cursor });
  }
  return { name: parsed.after, value: value as string | number };
}

export function sortOf(key: VmSortKey | undefined, order: SortOrder | undefined): VmSort {
  return { key: key ?? "name", order: order ?? "asc" };
}
