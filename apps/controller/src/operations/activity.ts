/**
 * When a notebook server was last used, from the agent's `activity` check (Jupyter's own
 * `last_activity`, kernel and connection counts), never from CPU.
 *
 * The agent's deep `kernel` check starts a kernel and runs cells, which moves Jupyter's
 * `last_activity` and, during that round, shows a kernel and a connection that are the agent's
 * own. So:
 * - a `last_activity` stamp inside the deep check's window (from 1 s before its `checkedAt` to
 *   OWN_ACTIVITY_WINDOW_MS after) is the agent's own and is ignored — unless nothing else is
 *   known yet (first report after a controller start), when it is taken as a conservative
 *   "active then";
 * - kernel/connection counts from the same round as a deep check (activity and kernel checks
 *   with the same `checkedAt`) are ignored;
 * - an open connection (a browser attached to a kernel) counts as activity now; a kernel left
 *   running without connections does not (Jupyter's kernel `last_activity` covers it).
 * Durations are measured on the agent's clock (stamp vs the check's own time), then anchored
 * to the controller's clock when the report arrives, so clock skew between the two cancels.
 */
import type { AgentState, HealthCheck } from "@nbfleet/shared";

/** The kernel check's timeout (60 s) plus deleting its kernel (10 s) plus slack. */
export const OWN_ACTIVITY_WINDOW_MS = 75_000;
const SAME_ROUND_MS = 1000;

export interface ActivityData {
  kernels: number;
  connections: number | null;
  lastActivity: string | null;
}

export class ActivityTracker {
  /** Latest user activity, agent clock (ms). */
  private lastActive: number | null = null;
  /** Controller-clock time from which the VM counts as idle; null while unknown. */
  idleSince: number | null = null;
  notebookRunning = false;
  /** Set when the policy acted on this idle period; cleared by new activity. */
  actedAt: number | null = null;

  /** Takes one state report received at `receivedAt` (controller clock). */
  observe(state: AgentState, receivedAt: number): void {
    this.notebookRunning = state.notebook.state === "running";
    const activity = findCheck(state.health.checks, "activity");
    const data = activity?.status === "pass" ? readActivity(activity) : null;
    if (!activity || !data) {
      // A stopped notebook has no activity check; it has been idle since we last knew otherwise.
      if (!this.notebookRunning) this.idleSince ??= receivedAt;
      return;
    }
    const checkedAt = Date.parse(activity.checkedAt);
    const kernel = findCheck(state.health.checks, "kernel");
    const deepAt = kernel ? Date.parse(kernel.checkedAt) : Number.NaN;
    const sameRoundAsDeep = Math.abs(checkedAt - deepAt) < SAME_ROUND_MS;
    const isOwn = (stamp: number) =>
      stamp >= deepAt - SAME_ROUND_MS && stamp <= deepAt + OWN_ACTIVITY_WINDOW_MS;

    const before = this.lastActive;
    if (!sameRoundAsDeep && (data.connections ?? 0) > 0) this.bump(checkedAt);
    const stamp = data.lastActivity === null ? Number.NaN : Date.parse(data.lastActivity);
    if (!Number.isNaN(stamp)) {
      if (!isOwn(stamp)) this.bump(stamp);
      else if (this.lastActive === null) this.bump(stamp);
    }
    if (this.lastActive === null) return;
    if (this.lastActive !== before) this.actedAt = null;
    const idleMs = Math.max(0, checkedAt - this.lastActive);
    this.idleSince = receivedAt - idleMs;
  }

  idleMs(now: number): number | null {
    return this.idleSince === null ? null : Math.max(0, now - this.idleSince);
  }

  lastActivityAt(): string | null {
    return this.lastActive === null ? null : new Date(this.lastActive).toISOString();
  }

  private bump(at: number): void {
    if (this.lastActive === null || at > this.lastActive) this.lastActive = at;
  }
}

function findCheck(checks: HealthCheck[], name: string): HealthCheck | undefined {
  return checks.find((c) => c.name === name);
}

function readActivity(check: HealthCheck): ActivityData | null {
  const data = check.data as Partial<ActivityData> | undefined;
  if (!data || typeof data.kernels !== "number") return null;
  return {
    kernels: data.kernels,
    connections: typeof data.connections === "number" ? data.connections : null,
    lastActivity: typeof data.lastActivity === "string" ? data.lastActivity : null,
  };
}
