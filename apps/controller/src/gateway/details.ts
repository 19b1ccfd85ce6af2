/**
 * Whether a state report changes what the store keeps about a VM. Every report renews its
 * timestamps (`observedAt`, each check's `checkedAt`) and check data such as days left on a
 * certificate; those alone are not a change. Compared in place: a bulk operation brings
 * thousands of reports a second, and building a string of each to compare cost more than
 * storing it.
 */
import type { AgentState, HealthReport, NotebookStatus } from "@nbfleet/shared";

export function sameDetails(
  notebook: NotebookStatus | null,
  health: HealthReport | null,
  next: AgentState,
): boolean {
  if (notebook === null || health === null) return false;
  if (!sameJson(notebook, next.notebook)) return false;
  if (health.status !== next.health.status || !sameJson(health.reasons, next.health.reasons)) return false;
  const before = health.checks;
  const after = next.health.checks;
  if (before.length !== after.length) return false;
  for (let i = 0; i < before.length; i++) {
    const a = before[i]!;
    const b = after[i]!;
    if (a.name !== b.name || a.status !== b.status || a.message !== b.message) return false;
  }
  return true;
}

/** Equality of two JSON values (parsed from the wire: plain objects, arrays and primitives). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  let keys = 0;
  for (const key in left) {
    if (!Object.hasOwn(right, key) || !sameJson(left[key], right[key])) return false;
    keys++;
  }
  for (const _ in right) keys--;
  return keys === 0;
}
