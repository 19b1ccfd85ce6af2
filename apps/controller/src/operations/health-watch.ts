/**
 * The rolling health gate: waits until a VM's agent reports, after the wait began, a running
 * notebook with no failing check (`healthy`, or `degraded` = warnings only). Only reports that
 * arrive after the action finished count, so a report from before a restart cannot open the
 * gate.
 */
import type { AgentState } from "@nbfleet/shared";
import type { AgentGateway } from "../gateway/gateway.js";

export function isServingState(state: AgentState): boolean {
  return (
    state.notebook.state === "running" &&
    (state.health.status === "healthy" || state.health.status === "degraded")
  );
}

export class HealthWatch {
  private readonly waiters = new Map<string, Set<(ok: boolean) => void>>();
  private readonly unsubscribe: () => void;

  constructor(gateway: AgentGateway) {
    this.unsubscribe = gateway.onState((vmName, state) => this.onState(vmName, state));
  }

  /** Resolves true at the first serving report from now on, false after `timeoutMs`. */
  waitServing(vmName: string, timeoutMs: number): { promise: Promise<boolean>; cancel(): void } {
    let settle: (ok: boolean) => void = () => {};
    const promise = new Promise<boolean>((resolve) => {
      const set = this.waiters.get(vmName) ?? new Set();
      this.waiters.set(vmName, set);
      const timer = setTimeout(() => settle(false), timeoutMs);
      settle = (ok: boolean) => {
        clearTimeout(timer);
        set.delete(settle);
        if (set.size === 0 && this.waiters.get(vmName) === set) this.waiters.delete(vmName);
        resolve(ok);
      };
      set.add(settle);
    });
    return { promise, cancel: () => settle(false) };
  }

  close(): void {
    this.unsubscribe();
    for (const set of this.waiters.values()) for (const settle of [...set]) settle(false);
  }

  private onState(vmName: string, state: AgentState): void {
    const set = this.waiters.get(vmName);
    if (!set || !isServingState(state)) return;
    for (const settle of [...set]) settle(true);
  }
}
