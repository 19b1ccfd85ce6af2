/**
 * How `GET /v1/vms` can be sorted (`sort=<key>&order=asc|desc`), as plain lists free of TypeBox
 * so the web console uses the same names. Ties are broken by name, A to Z, in either order.
 * Health sorts by severity: ascending puts unhealthy first, then degraded, unknown, healthy.
 */
export const VM_SORT_KEYS = ["name", "state", "agent", "notebook", "health", "restarts", "lastSeen"] as const;
export type VmSortKey = (typeof VM_SORT_KEYS)[number];

export const SORT_ORDERS = ["asc", "desc"] as const;
export type SortOrder = (typeof SORT_ORDERS)[number];

/** Health values from the worst to the best: the ascending health sort. */
export const HEALTH_SEVERITY = ["unhealthy", "degraded", "unknown", "healthy"] as const;
