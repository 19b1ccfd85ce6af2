/**
 * The fleet page's filters and sort: read from and written to the URL query, turned into the
 * list API's query and into an operation selector ("all matching the filter"). The label
 * filter is a label expression as selectors take it (`team=ml,env!=prod,gpu,!spot`); the API
 * checks it and says what is wrong with it.
 */
import type { OverallHealth, VmList, VmState } from "@nbfleet/shared";
import type { Selector } from "@nbfleet/shared/operations";
import { OVERALL_HEALTHS, VM_STATES } from "@nbfleet/shared/states";
import { SORT_ORDERS, type SortOrder, VM_SORT_KEYS, type VmSortKey } from "@nbfleet/shared/vm-sort";
import { api } from "../api/client.js";

export const HEALTHS = OVERALL_HEALTHS;
export const STATES = VM_STATES;
export const DEFAULT_LIMIT = 100;
export const PAGE_SIZES = [50, 100, 250, 500, 1000];
/** What the list API takes as a page size (a shared URL may carry any of these). */
const MAX_LIMIT = 1000;

export interface Filters {
  label: string;
  health: OverallHealth | "";
  state: VmState | "";
  limit: number;
  sort: VmSortKey;
  order: SortOrder;
}

export function filtersOf(search: string): Filters {
  const query = new URLSearchParams(search);
  const health = query.get("health") ?? "";
  const state = query.get("state") ?? "";
  const limit = Number(query.get("limit"));
  const sort = query.get("sort") ?? "";
  const order = query.get("order") ?? "";
  return {
    label: query.get("label") ?? "",
    health: (HEALTHS as readonly string[]).includes(health) ? (health as OverallHealth) : "",
    state: (STATES as readonly string[]).includes(state) ? (state as VmState) : "",
    limit: Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT ? limit : DEFAULT_LIMIT,
    sort: (VM_SORT_KEYS as readonly string[]).includes(sort) ? (sort as VmSortKey) : "name",
    order: (SORT_ORDERS as readonly string[]).includes(order) ? (order as SortOrder) : "asc",
  };
}

export function listQuery(filters: Filters, cursor: string | null, limit = filters.limit): string {
  const query = new URLSearchParams();
  if (filters.label.trim()) query.set("labels", filters.label.trim());
  if (filters.health) query.set("health", filters.health);
  if (filters.state) query.set("state", filters.state);
  if (filters.sort !== "name") query.set("sort", filters.sort);
  if (filters.order !== "asc") query.set("order", filters.order);
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
  if (filters.sort !== "name") query.set("sort", filters.sort);
  if (filters.order !== "asc") query.set("order", filters.order);
  return query.toString();
}

/** A click on a column header: that column ascending, or the other way round if it is sorted by already. */
export function sortedBy(filters: Filters, key: VmSortKey): Pick<Filters, "sort" | "order"> {
  return { sort: key, order: filters.sort === key && filters.order === "asc" ? "desc" : "asc" };
}

/** The selector for a filter without a state (selectors know labels and health, not states). */
export function selectorOf(filters: Filters): Selector {
  const selector: Selector = {};
  if (filters.label.trim()) selector.labels = filters.label.trim();
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
      const page: VmList = await api<VmList>(listQuery(filters, cursor, MAX_LIMIT));
      names.push(...page.items.map((vm) => vm.name));
      cursor = page.nextCursor;
    } while (cursor);
    if (names.length === 0) throw new Error("no machine matches the filter");
    return { names };
  }
  return selectorOf(filters);
}
