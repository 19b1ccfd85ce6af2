/**
 * Which VMs an operation (or a policy rule) applies to: explicit names, a label expression
 * like `team=a,env!=prod`, health statuses, or `all`. Criteria combine with AND. Label terms:
 * `key=value`, `key!=value` (also true when the key is absent, as in Kubernetes), `key`
 * (present) and `!key` (absent).
 */
import type { OverallHealth } from "@nbfleet/shared";
import { NbfError } from "../errors.js";
import type { Store } from "../store/store.js";

export interface Selector {
  names?: string[];
  labels?: string;
  health?: OverallHealth[];
  /** Required to select the whole fleet, so an empty selector never does by accident. */
  all?: boolean;
}

export type LabelTerm =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "exists" | "absent" };

const KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

export function parseLabelExpression(expression: string): LabelTerm[] {
  const terms: LabelTerm[] = [];
  const invalid = (problem: string) => new NbfError("NBF_SELECTOR_INVALID", { expression, problem });
  for (const raw of expression.split(",")) {
    const term = raw.trim();
    if (term === "") throw invalid("an empty term");
    const match = /^([^=!]+?)\s*(!=|==|=)\s*(.*)$/.exec(term);
    if (match) {
      const [, key, op, value] = match as unknown as [string, string, string, string];
      if (!KEY.test(key)) throw invalid(`'${key}' is not a label key`);
      terms.push({ key, op: op === "!=" ? "!=" : "=", value: value.trim() });
      continue;
    }
    const absent = term.startsWith("!");
    const key = absent ? term.slice(1).trim() : term;
    if (!KEY.test(key)) throw invalid(`'${term}' is neither key=value, key!=value, key nor !key`);
    terms.push({ key, op: absent ? "absent" : "exists" });
  }
  return terms;
}

export function matchesLabels(terms: LabelTerm[], labels: Record<string, string>): boolean {
  return terms.every((term) => {
    const has = Object.hasOwn(labels, term.key);
    switch (term.op) {
      case "=":
        return has && labels[term.key] === term.value;
      case "!=":
        return !has || labels[term.key] !== term.value;
      case "exists":
        return has;
      case "absent":
        return !has;
    }
  });
}

export function describeSelector(selector: Selector): string {
  const parts: string[] = [];
  if (selector.all) parts.push("all");
  if (selector.names?.length) parts.push(`names=${selector.names.join(",")}`);
  if (selector.labels) parts.push(`labels '${selector.labels}'`);
  if (selector.health?.length) parts.push(`health=${selector.health.join("|")}`);
  return parts.join(" and ") || "(empty)";
}

/**
 * The names the selector picks now, in name order. Named VMs must exist. Health is the
 * stored effective health (pending status writes are flushed first).
 */
export async function resolveSelector(store: Store, selector: Selector): Promise<string[]> {
  const hasCriteria =
    (selector.names?.length ?? 0) > 0 || Boolean(selector.labels) || (selector.health?.length ?? 0) > 0;
  if (!hasCriteria && !selector.all) {
    throw new NbfError("NBF_OPERATION_INVALID", {
      problem: "the selector is empty: give names, labels or health, or all: true for the whole fleet",
    });
  }
  const terms = selector.labels ? parseLabelExpression(selector.labels) : [];
  // The whole fleet needs names only: reading labels and health for 10,000 VMs takes far longer.
  if (!hasCriteria) return store.vms.names();
  await store.writer.flushChanges();
  const rows = await store.db
    .selectFrom("vms")
    .leftJoin("vm_status", "vm_status.vm_name", "vms.name")
    .select(["vms.name", "vms.labels", "vm_status.health"])
    .orderBy("vms.name")
    .execute();
  const names = selector.names?.length ? new Set(selector.names) : null;
  if (names) {
    const known = new Set(rows.map((r) => r.name));
    const missing = [...names].filter((n) => !known.has(n));
    if (missing.length > 0) throw new NbfError("NBF_VM_NOT_FOUND", { name: missing.join(", ") });
  }
  const health = selector.health?.length ? new Set<string>(selector.health) : null;
  return rows
    .filter((row) => {
      if (names && !names.has(row.name)) return false;
      if (health && !health.has(row.health ?? "unknown")) return false;
      if (terms.length > 0 && !matchesLabels(terms, parseLabels(row.labels))) return false;
      return true;
    })
    .map((row) => row.name);
}

function parseLabels(text: string): Record<string, string> {
  try {
    return JSON.parse(text) as Record<string, string>;
  } catch {
    return {};
  }
}
