/**
 * The end of agent.upgrade on one target. Once the agent has answered the command (it switched
 * versions and restarts), the target succeeds when the VM's agent is connected on the new
 * version and serving (see isUpgraded); it fails when the agent's `agent.upgrade.rolled_back`
 * event about that version arrives (its launcher went back to the previous version), or when
 * the deadline passes. A canary must then stay so through its soak.
 *
 * Agents held here are followed at once, from the gateway's reports and the bus. With replicas
 * the agent may come back on another replica: every POLL_MS the store's status rows and events
 * are read for the VMs waited on. A wait first looks at what is known already, so a wait resumed
 * after a controller restart sees an agent that came back (or a rollback recorded) meanwhile.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { CAPABILITY_AGENT_UPGRADE } from "@nbfleet/shared";
import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { ClusterClock } from "../cluster/cluster-clock.js";
import type { EventBus } from "../events/bus.js";
import type { AgentGateway } from "../gateway/gateway.js";
import type { Database } from "../store/schema.js";
import type { Store } from "../store/store.js";
import { targetError } from "./actions.js";
import type { TargetOutcome } from "./execute-target.js";
import {
  type AgentNow,
  ROLLED_BACK_EVENT,
  currentVersions,
  isUpgraded,
  liveAgent,
  rollbackConcerns,
  rolledBackFrom,
  storedAgents,
  storedRollbacks,
} from "./upgrade-status.js";

const POLL_MS = 1000;
/** How often a soak looks at its agent (besides every report of an agent held here). */
const SOAK_CHECK_MS = 500;

export interface UpgradeWatchOptions {
  store: Store;
  gateway: AgentGateway;
  bus: EventBus;
  log: FastifyBaseLogger;
  /** Agents may be held by other replicas: read the store for them. */
  clustered: boolean;
  /** Rollback events are looked for from a time on it (event ids are made on it). */
  clock: ClusterClock;
  pollMs?: number;
}

interface Waiter {
  vmName: string;
  version: string;
  sinceMs: number;
  /** Settles on a report that is not upgraded (a soak) instead of ignoring it. */
  strict: boolean;
  settle(outcome: TargetOutcome | null): void;
}

export class UpgradeWatch {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly unsubscribes: Array<() => void>;
  private stopListening: (() => void) | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private closed = false;
  private readonly closing = new AbortController();

  constructor(private readonly options: UpgradeWatchOptions) {
    this.unsubscribes = [
      options.gateway.onState((vmName) => {
        if (this.waiters.has(vmName)) this.judge(vmName, liveAgent(options.gateway, vmName));
      }),
    ];
  }

  /** Listens to the event bus only while some upgrade is waited for (no cost per event otherwise). */
  private listenForRollbacks(): void {
    this.stopListening ??= this.options.bus.subscribe((event) => {
      if (event.kind !== ROLLED_BACK_EVENT || event.vmName === null) return;
      for (const waiter of this.waitersOf(event.vmName))
        if (rolledBackFrom(event, waiter.version)) waiter.settle(rolledBack(event.message));
    });
  }

  /**
   * Resolves with the target's outcome: ok once the agent is upgraded, failed on its rollback or
   * after `timeoutMs`; null when the controller closes first. `sinceMs`: when the target started
   * (rollbacks recorded before it are another attempt's). `resumed`: the target was under way
   * before this process took it over, so what happened meanwhile is read from the store.
   */
  waitUpgraded(
    vmName: string,
    version: string,
    sinceMs: number,
    timeoutMs: number,
    resumed = false,
  ): { promise: Promise<TargetOutcome | null>; cancel(): void } {
    const { promise, waiter } = this.add(vmName, version, sinceMs, false, timeoutMs, () =>
      failed(
        "NBF_TARGET_UPGRADE_TIMED_OUT",
        `not connected and healthy on ${version} within ${timeoutMs / 1000} s`,
      ),
    );
    void this.lookNow(waiter, resumed);
    return { promise, cancel: () => waiter.settle(null) };
  }

  /**
   * A canary's soak: ok when the agent stays upgraded for `soakMs`; failed at the first look that
   * finds it otherwise (disconnected, unhealthy, another version) or on a rollback event.
   */
  async soak(vmName: string, version: string, soakMs: number): Promise<TargetOutcome | null> {
    const { promise, waiter } = this.add(vmName, version, this.options.clock.now(), true, soakMs, () => ({
      ok: true,
    }));
    const looks = (async () => {
      while (!this.closed) {
        await this.lookNow(waiter, false);
        await sleep(SOAK_CHECK_MS, undefined, { signal: this.closing.signal }).catch(() => {});
        if (!this.isWaiting(waiter)) return;
      }
    })();
    const outcome = await promise;
    waiter.settle(null);
    await looks;
    return outcome;
  }

  /**
   * Before the command is sent: targets whose agent already runs `version` end skipped, and
   * those whose agent (held here, so its hello is known) cannot upgrade end failed. The others
   * are not in the answer.
   */
  async precheck(
    db: Kysely<Database>,
    names: readonly string[],
    version: string,
  ): Promise<Map<string, TargetOutcome>> {
    const out = new Map<string, TargetOutcome>();
    const { gateway } = this.options;
    for (const [name, current] of await currentVersions(db, gateway, names)) {
      if (current === version)
        out.set(name, {
          ok: false,
          skip: true,
          error: targetError("NBF_TARGET_ALREADY_ON_VERSION", `${name} runs ${version}`),
        });
      else if (gateway.capabilities(name) && !gateway.capabilities(name)!.includes(CAPABILITY_AGENT_UPGRADE))
        out.set(
          name,
          failed(
            "NBF_TARGET_UPGRADE_UNSUPPORTED",
            `${name}'s agent ${current ?? "(unknown version)"} cannot be upgraded in place; recreate the machine or run its bootstrap again`,
          ),
        );
    }
    return out;
  }

  /** Ends every wait without an outcome (operations stop running here; the next holder waits again). */
  releaseAll(): void {
    for (const set of [...this.waiters.values()]) for (const waiter of [...set]) waiter.settle(null);
  }

  close(): void {
    this.closed = true;
    this.closing.abort();
    clearInterval(this.pollTimer);
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    this.stopListening?.();
    this.stopListening = undefined;
    for (const set of [...this.waiters.values()]) for (const waiter of [...set]) waiter.settle(null);
  }

  private add(
    vmName: string,
    version: string,
    sinceMs: number,
    strict: boolean,
    timeoutMs: number,
    onTimeout: () => TargetOutcome,
  ): { promise: Promise<TargetOutcome | null>; waiter: Waiter } {
    let waiter!: Waiter;
    const promise = new Promise<TargetOutcome | null>((resolve) => {
      const timer = setTimeout(() => waiter.settle(onTimeout()), timeoutMs);
      waiter = {
        vmName,
        version,
        sinceMs,
        strict,
        settle: (outcome) => {
          const set = this.waiters.get(vmName);
          if (!set?.delete(waiter)) return;
          if (set.size === 0) this.waiters.delete(vmName);
          if (this.waiters.size === 0) {
            this.stopListening?.();
            this.stopListening = undefined;
          }
          clearTimeout(timer);
          resolve(outcome);
        },
      };
    });
    if (this.closed) {
      setImmediate(() => waiter.settle(null));
    }
    const set = this.waiters.get(vmName) ?? new Set();
    set.add(waiter);
    this.waiters.set(vmName, set);
    this.listenForRollbacks();
    if (this.options.clustered && !this.pollTimer) {
      this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs ?? POLL_MS);
      this.pollTimer.unref();
    }
    return { promise, waiter };
  }

  private isWaiting(waiter: Waiter): boolean {
    return this.waiters.get(waiter.vmName)?.has(waiter) ?? false;
  }

  private waitersOf(vmName: string): Waiter[] {
    return [...(this.waiters.get(vmName) ?? [])];
  }

  /**
   * What is known now about one waiter's agent: held here, else (with replicas, or `history`)
   * the store's row; with `history` also the rollbacks the store recorded since the target
   * started. A single controller holds every connected agent, and sees every rollback reported
   * while it waits: a fresh wait there costs no query (10,000 targets in a rollout).
   */
  private async lookNow(waiter: Waiter, history: boolean): Promise<void> {
    const { gateway, store, clustered } = this.options;
    try {
      const live = liveAgent(gateway, waiter.vmName);
      if (live) this.judgeOne(waiter, live);
      else if (clustered || history) {
        const stored = await storedAgents(store.db, [waiter.vmName]);
        this.judgeOne(waiter, stored.get(waiter.vmName) ?? disconnected());
      } else this.judgeOne(waiter, disconnected());
      if (!history || !this.isWaiting(waiter)) return;
      for (const rollback of await storedRollbacks(store.db, [waiter.vmName], waiter.sinceMs))
        if (rollbackConcerns(rollback, waiter.version, waiter.sinceMs))
          waiter.settle(rolledBack(rollback.message));
    } catch (error) {
      this.options.log.error({ err: error, vm: waiter.vmName }, "reading an upgrading agent's state failed");
    }
  }

  private judge(vmName: string, agent: AgentNow | undefined): void {
    for (const waiter of this.waitersOf(vmName)) this.judgeOne(waiter, agent);
  }

  private judgeOne(waiter: Waiter, agent: AgentNow | undefined): void {
    if (isUpgraded(agent, waiter.version)) {
      if (!waiter.strict) waiter.settle({ ok: true });
    } else if (waiter.strict) {
      waiter.settle(failed("NBF_TARGET_CANARY_UNHEALTHY", describe(agent, waiter.version)));
    }
  }

  /** Replicas: the agents waited on that are not held here, from the store. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    if (this.waiters.size === 0) {
      clearInterval(this.pollTimer);
      this.pollTimer = undefined;
      return;
    }
    this.polling = true;
    try {
      const names = [...this.waiters.keys()];
      const elsewhere = names.filter((name) => !this.options.gateway.isConnected(name));
      const stored = elsewhere.length > 0 ? await storedAgents(this.options.store.db, elsewhere) : new Map();
      for (const name of elsewhere) this.judge(name, stored.get(name) ?? disconnected());
      const since = Math.min(...[...this.waiters.values()].flatMap((set) => [...set].map((w) => w.sinceMs)));
      if (!Number.isFinite(since)) return;
      for (const rollback of await storedRollbacks(this.options.store.db, [...this.waiters.keys()], since))
        for (const waiter of this.waitersOf(rollback.vmName))
          if (rollbackConcerns(rollback, waiter.version, waiter.sinceMs))
            waiter.settle(rolledBack(rollback.message));
    } catch (error) {
      this.options.log.error({ err: error }, "reading upgrading agents' state failed");
    } finally {
      this.polling = false;
    }
  }
}

function disconnected(): AgentNow {
  return { connected: false, version: null, notebookState: null, health: "unknown" };
}

function describe(agent: AgentNow | undefined, version: string): string {
  if (!agent?.connected) return "its agent disconnected";
  if (agent.version !== version)
    return `its agent reports version ${agent.version ?? "(none)"}, not ${version}`;
  return `its notebook is ${agent.notebookState ?? "unknown"} and its health ${agent.health}`;
}

function failed(code: Parameters<typeof targetError>[0], detail: string): TargetOutcome {
  return { ok: false, error: targetError(code, detail) };
}

function rolledBack(message: string): TargetOutcome {
  return failed("NBF_TARGET_UPGRADE_ROLLED_BACK", message);
}
