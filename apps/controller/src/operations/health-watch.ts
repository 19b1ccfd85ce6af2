/**
 * The rolling health gate: waits until a VM's agent reports, after the wait began, a running
 * notebook with no failing check (`healthy`, or `degraded` = warnings only). Only reports that
 * arrive after the action finished count, so a report from before a restart cannot open the
 * gate.
 *
 * Across replicas the gate may wait here for an agent held by another replica: it asks that
 * replica (`health.watch`), which forwards the agent's next serving report (`vm.serving`). A
 * watch is forgotten after WATCH_TTL_MS. The ask is repeated every REASK_MS while a wait lasts,
 * and at once after this replica missed signals (resync): the holder keeps watches in memory
 * only, so one that missed the ask (its listener reconnecting after a slow self-probe, a
 * replica started since, the agent moved to another one) would otherwise leave the gate closed
 * until its health timeout.
 */
import type { AgentState } from "@nbfleet/shared";
import type { Signals } from "../cluster/signals.js";
import type { AgentGateway } from "../gateway/gateway.js";

const WATCH_TTL_MS = 3_600_000;
export const REASK_MS = 10_000;

export function isServingState(state: AgentState): boolean {
  return (
    state.notebook.state === "running" &&
    (state.health.status === "healthy" || state.health.status === "degraded")
  );
}

export class HealthWatch {
  private readonly waiters = new Map<string, Set<(ok: boolean) => void>>();
  private readonly unsubscribe: () => void;
  /** Agents held here whose next serving report another replica waits for, with when to forget. */
  private readonly watchedElsewhere = new Map<string, number>();
  private reask: NodeJS.Timeout | undefined;

  constructor(
    private readonly gateway: AgentGateway,
    private readonly signals?: Signals,
  ) {
    const unsubscribes = [gateway.onState((vmName, state) => this.onState(vmName, state))];
    if (signals?.clustered) {
      unsubscribes.push(
        signals.on("health.watch", (names) => {
          for (const name of names) this.watchedElsewhere.set(name, Date.now() + WATCH_TTL_MS);
        }),
        signals.on("vm.serving", (names) => {
          for (const name of names) this.serving(name);
        }),
        signals.onResync(() => this.askElsewhere([...this.waiters.keys()])),
      );
    }
    this.unsubscribe = () => {
      for (const unsubscribe of unsubscribes) unsubscribe();
    };
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
    this.askElsewhere([vmName]);
    this.keepAsking();
    return { promise, cancel: () => settle(false) };
  }

  /** Repeats the ask for every wait every REASK_MS until none is left. */
  private keepAsking(): void {
    if (!this.signals?.clustered || this.reask) return;
    this.reask = setInterval(() => {
      if (this.waiters.size > 0) return this.askElsewhere([...this.waiters.keys()]);
      clearInterval(this.reask);
      this.reask = undefined;
    }, REASK_MS);
    this.reask.unref();
  }

  /** For agents not held here: their holder forwards the next serving report. */
  private askElsewhere(vmNames: string[]): void {
    if (!this.signals?.clustered) return;
    const elsewhere = vmNames.filter((name) => !this.gateway.isConnected(name));
    if (elsewhere.length > 0) this.signals.send("health.watch", elsewhere);
  }

  private serving(vmName: string): void {
    const set = this.waiters.get(vmName);
    if (set) for (const settle of [...set]) settle(true);
  }

  /**
   * Ends every wait as not serving (the runners waiting stop: the lease moved, or the controller
   * closes). A gate waits up to its health timeout (300 s by default), so a runner stopping
   * without this stayed until its engine's deadline, twice while closing.
   */
  releaseAll(): void {
    for (const set of [...this.waiters.values()]) for (const settle of [...set]) settle(false);
  }

  close(): void {
    clearInterval(this.reask);
    this.reask = undefined;
    this.unsubscribe();
    this.releaseAll();
  }

  private onState(vmName: string, state: AgentState): void {
    if (!isServingState(state)) return;
    const watchedUntil = this.watchedElsewhere.get(vmName);
    if (watchedUntil !== undefined) {
      this.watchedElsewhere.delete(vmName);
      if (watchedUntil > Date.now()) this.signals?.send("vm.serving", [vmName]);
    }
    this.serving(vmName);
  }
}
