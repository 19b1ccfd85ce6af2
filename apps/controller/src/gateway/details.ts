/**
 * Whether a state report changes what the store keeps about a VM. Every report renews its
 * timestamps (`observedAt`, each check's `checkedAt`) and check data such as days left on a
 * certificate; those alone are not a change. Compared in place: a bulk operation brings
 * thousands of reports a second, and building a string of each to compare cost more than
 * storing it.
 */
import { type AgentState, type HealthReport, type NotebookStatus, canonicalIsoMs } from "@nbfleet/shared";

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

/**
 * `next`, built from what `kept` already holds where the two are equal: the result equals
 * `next`, but an unchanged subtree is `kept`'s own (changed leaves are written into it). A
 * session keeps its agent's latest report for a whole report interval, so a fresh parsed tree
 * per report outlives two scavenges and is copied and promoted each time; with 10,000 agents
 * that copying made every minor GC pause 20–30 ms. Renewed in place, only the leaves a report
 * really changes (its timestamps) outlive it. Plain JSON values only (parsed from the wire).
 */
export function renewed<T>(kept: T | null, next: T): T {
  return renew(kept, next) as T;
}

function renew(kept: unknown, next: unknown): unknown {
  if (kept === next || typeof kept !== "object" || typeof next !== "object" || kept === null || next === null)
    return next;
  if (Array.isArray(kept) || Array.isArray(next)) {
    if (!Array.isArray(kept) || !Array.isArray(next) || kept.length !== next.length) return next;
    for (let i = 0; i < next.length; i++) {
      const value = renew(kept[i], next[i]);
      if (value !== kept[i]) kept[i] = value;
    }
    return kept;
  }
  const left = kept as Record<string, unknown>;
  const right = next as Record<string, unknown>;
  // The same keys or none reused; "__proto__" (an own key JSON.parse may make) is never assigned.
  let keys = 0;
  for (const key in left) {
    if (!Object.hasOwn(right, key) || key === "__proto__") return next;
    keys++;
  }
  for (const _ in right) keys--;
  if (keys !== 0) return next;
  for (const key in right) {
    const value = renew(left[key], right[key]);
    if (value !== left[key]) left[key] = value;
  }
  return kept;
}

/**
 * A session's health report from one report to the next. Every report brings a new
 * `observedAt` and a new `checkedAt` per check, and a kept tree renewed with them held five
 * fresh strings each time: they outlived a scavenge, were promoted, and with 10,000 agents made
 * up most of what each scavenge copied. The timestamps are kept as milliseconds in a
 * Float64Array (written in place) instead, and put back only into the copy a reader gets.
 */
export class KeptHealth {
  private tree: HealthReport | null = null;
  /** observedAt, then each check's checkedAt, in ms; NaN where the tree's own string is current. */
  private times = new Float64Array(0);
  private sharedCopy: HealthReport | null = null;

  /** The report with stale timestamps: for comparing everything else (see sameDetails). */
  get details(): HealthReport | null {
    return this.tree;
  }

  /** The latest report, equal to the one last kept. */
  get report(): HealthReport | null {
    const { tree, times } = this;
    if (tree === null) return null;
    return {
      ...tree,
      observedAt: stampAt(times[0]!, tree.observedAt),
      checks: tree.checks.map((check, i) => ({
        ...check,
        checkedAt: stampAt(times[i + 1]!, check.checkedAt),
      })),
    };
  }

  /**
   * The latest report for readers that only read it (API views), made on the first read after
   * a report and then shared: a page of VMs read again and again writes each stamp once. Not
   * for the status writes, which read every session once per ping round: a copy kept for each
   * of them would outlive scavenges again.
   */
  get shared(): HealthReport | null {
    this.sharedCopy ??= this.report;
    return this.sharedCopy;
  }

  keep(next: HealthReport): void {
    this.sharedCopy = null;
    const checks = next.checks;
    if (this.times.length !== checks.length + 1) this.times = new Float64Array(checks.length + 1);
    const times = this.times;
    times[0] = canonicalIsoMs(next.observedAt);
    for (let i = 0; i < checks.length; i++) times[i + 1] = canonicalIsoMs(checks[i]!.checkedAt);
    const kept = this.tree;
    if (kept === null) {
      this.tree = next;
      return;
    }
    // While the tree is renewed, `next` carries the kept strings wherever the numbers hold the
    // new time, so renewing writes no new string into the kept tree; then `next` is put back.
    const own = { observedAt: next.observedAt, checkedAt: checks.map((check) => check.checkedAt) };
    if (!Number.isNaN(times[0]!)) next.observedAt = kept.observedAt;
    if (kept.checks.length === checks.length)
      for (let i = 0; i < checks.length; i++)
        if (!Number.isNaN(times[i + 1]!)) checks[i]!.checkedAt = kept.checks[i]!.checkedAt;
    this.tree = renewed(kept, next);
    next.observedAt = own.observedAt;
    for (let i = 0; i < checks.length; i++) checks[i]!.checkedAt = own.checkedAt[i]!;
  }
}

function stampAt(ms: number, kept: string): string {
  return Number.isNaN(ms) ? kept : new Date(ms).toISOString();
}
