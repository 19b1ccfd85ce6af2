/**
 * The fleet page's filters: read from and written to the URL query, turned into the list API's
 * query and into an operation selector ("all matching the filter").
 */
import type { OverallHealth, VmList, VmState } from "@nbfleet/shared";
import { OVERALL_HEALTHS, VM_STATES } from "@nbfleet/shared/states";
import { api } from "../api/client.js";
import type { Selector } from "../api/types.js";

export const HEALTHS = OVERALL_HEALTHS;
export const STATES = VM_STATES;
export const DEFAULT_LIMIT = 100;
export const PAGE_SIZES = [50, 100, 250, 500, 1000];

export interface Filters {
  label: string;
  health: OverallHealth | "";
  state: VmState | "";
  limit: number;
}

export function filtersOf(search: string): Filters {
  const query = new URLSearchParams(search);
  const health = query.get("health") ?? "";
  const state = query.get("state") ?? "";
  const limit = Number(query.get("limit"));
  return {
    label: query.get("label") ?? "",
    health: (HEALTHS as readonly string[]).includes(health) ? (health as OverallHealth) : "",
    state: (STATES as readonly string[]).includes(state) ? (state as VmState) : "",
    limit: PAGE_SIZES.includes(limit) ? limit : DEFAULT_LIMIT,
  };
}

/** `k=v,k2=v2` → the list API's repeated `label=k=v`; it filters by equality only. */
export function labelPairs(expression: string): string[] {
  const pairs = expression
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  for (const pair of pairs) {
    if (!/^[^=!]+=/.test(pair)) {
      throw new Error(`label filter "${pair}": write key=value (several joined with commas)`);
    }
  }
  return pairs;
}

export function listQuery(filters: Filters, cursor: string | null, limit = filters.limit): string {
  const query = new URLSearchParams();
  for (const pair of labelPairs(filters.label)) query.append("label", pair);
  if (filters.health) query.set("health", filters.health);
  if (filters.state) query.set("state", filters.state);
  query.set("limit", String(limit));
  if (cursor) query.set("cursor", cursor);
  return `/v1/vms?${query}`;
}

export function filtersToSearch(filters: Filters): string {
  const query = new URLSearchParams();
  if (filters.label) query.set("label", filters.label);
  if (filters.health) query.set("health", filters.health);
  if (filters.state) query.set("state", filters.state);
  if (filters.limit !== DEFAULT_LIMIT) query.set("limit", String(filters.limit));
  return query.toString();
}

/** The selector for a filter without a state (selectors know labels and health, not states). */
export function selectorOf(filters: Filters): Selector {
  const selector: Selector = {};
  const labels = labelPairs(filters.label);
  if (labels.length) selector.labels = labels.join(",");
  if (filters.health) selector.health = [filters.health];
  if (!selector.labels && !selector.health) selector.all = true;
  return selector;
}

/**
 * "All matching the filter" as an operation selector. Selectors know labels and health but not
 * the machine state, so with a state filter the matching names are listed first.
 */
export async function matchingSelector(filters: Filters): Promise<Selector> {
  if (filters.state) {
    const names: string[] = [];
    let cursor: string | null = null;
    do {
      const page: VmList = await api<VmList>(listQuery(filters, cursor, 1000));
      names.push(...page.items.map((vm) => vm.name));
      cursor = page.nextCursor;
    } while (cursor);
    if (names.length === 0) throw new Error("no machine matches the filter");
    return { names };
  }
  return selectorOf(filters);
}
