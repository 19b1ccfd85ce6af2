/**
 * The idle shutdown policy: rules (for the whole fleet or a label expression, the first match
 * wins) that stop the notebook (`notebook.stop`) or deallocate the machine (`vm.stop`) once a
 * VM has been idle for `idleMinutes`, measured by ActivityTracker from Jupyter activity. Each
 * action is an event (`policy.idle`) that says which rule, how long idle, and since when.
 * The policy is stored (policies table, name `idle`) and set with `PUT /v1/policies/idle`.
 * Idle clocks live in memory: after a controller restart they restart from Jupyter's own
 * `last_activity`, which survives it.
 */
import type { AgentState } from "@nbfleet/shared";
import type { IdlePolicyBody, IdleRule } from "@nbfleet/shared/operations";
import { PoliciesRepo } from "../store/policies-repo.js";
import { ActivityTracker } from "./activity.js";
import { type LabelTerm, matchesLabels, parseLabelExpression } from "./selector.js";
import type { FleetServices } from "./services.js";

/** A rule's name is shown in events (default: its label expression, or "fleet"). */
export type { IdleRule };
export type IdlePolicy = IdlePolicyBody;

export const POLICY_NAME = "idle";
const MAX_SWEEP_MS = 15_000;
const MIN_SWEEP_MS = 100;

export type IdlePolicyOptions = FleetServices;

interface CompiledRule extends IdleRule {
  terms: LabelTerm[];
  label: string;
}

export class IdlePolicyService {
  private readonly repo: PoliciesRepo;
  private readonly trackers = new Map<string, ActivityTracker>();
  private rules: CompiledRule[] = [];
  private policy: IdlePolicy = { enabled: false, rules: [] };
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private sweeping = false;

  constructor(private readonly options: IdlePolicyOptions) {
    this.repo = new PoliciesRepo(options.store.db);
  }

  async start(): Promise<void> {
    this.unsubscribe ??= this.options.gateway.onState((vmName, state) => this.observe(vmName, state));
    const stored = await this.repo.get<IdlePolicy>(POLICY_NAME);
    if (stored) this.apply(stored.value);
  }

  close(): void {
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async get(): Promise<IdlePolicy & { updatedAt: string | null; updatedBy: string | null }> {
    const stored = await this.repo.get<IdlePolicy>(POLICY_NAME);
    return { ...this.policy, updatedAt: stored?.updatedAt ?? null, updatedBy: stored?.updatedBy ?? null };
  }

  async set(policy: IdlePolicy, by: string | null): Promise<void> {
    for (const rule of policy.rules) if (rule.labels) parseLabelExpression(rule.labels);
    await this.repo.put(POLICY_NAME, policy, by);
    this.apply(policy);
    this.options.signals?.send("policy.changed", [POLICY_NAME]);
    this.options.bus.emit({
      vmName: null,
      kind: "policy.updated",
      message: `idle policy ${policy.enabled ? "enabled" : "disabled"} by ${by ?? "unknown"}: ${
        policy.rules.map((r) => `${ruleLabel(r)} → ${r.action} after ${r.idleMinutes} min`).join("; ") ||
        "no rules"
      }`,
      data: { policy: POLICY_NAME, value: policy, by },
    });
  }

  /** The stored policy changed (on another replica): apply it here too. */
  async reload(): Promise<void> {
    const stored = await this.repo.get<IdlePolicy>(POLICY_NAME);
    this.apply(stored?.value ?? { enabled: false, rules: [] });
  }

  /** What the policy knows about a VM's idleness (for tests and diagnostics). */
  idleMs(vmName: string, now = Date.now()): number | null {
    return this.trackers.get(vmName)?.idleMs(now) ?? null;
  }

  private apply(policy: IdlePolicy): void {
    this.policy = policy;
    this.rules = policy.rules.map((rule) => ({
      ...rule,
      terms: rule.labels ? parseLabelExpression(rule.labels) : [],
      label: ruleLabel(rule),
    }));
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!policy.enabled || this.rules.length === 0) return;
    // A quarter of the shortest idle limit, so a VM is acted on at most 25% late.
    const shortest = Math.min(...this.rules.map((r) => r.idleMinutes * 60_000));
    const every = Math.max(MIN_SWEEP_MS, Math.min(MAX_SWEEP_MS, shortest / 4));
    this.timer = setInterval(() => void this.sweep(), every);
    this.timer.unref();
  }

  private observe(vmName: string, state: AgentState): void {
    let tracker = this.trackers.get(vmName);
    if (!tracker) {
      tracker = new ActivityTracker();
      this.trackers.set(vmName, tracker);
    }
    tracker.observe(state, Date.now());
  }

  async sweep(now = Date.now()): Promise<void> {
    if (this.sweeping || !this.policy.enabled || this.rules.length === 0) return;
    this.sweeping = true;
    try {
      const shortest = Math.min(...this.rules.map((r) => r.idleMinutes * 60_000));
      for (const [vmName, tracker] of this.trackers) {
        const idle = tracker.idleMs(now);
        if (idle === null || idle < shortest || tracker.actedAt !== null) continue;
        if (!this.options.gateway.isConnected(vmName)) continue;
        const vm = await this.options.store.vms.get(vmName);
        if (!vm) {
          this.trackers.delete(vmName);
          continue;
        }
        const rule = this.rules.find((r) => matchesLabels(r.terms, vm.labels));
        if (!rule || idle < rule.idleMinutes * 60_000) continue;
        if (rule.action === "notebook.stop" && !tracker.notebookRunning) continue;
        if (rule.action === "vm.stop" && vm.state !== "running") continue;
        tracker.actedAt = now;
        await this.act(vmName, rule, idle, tracker.lastActivityAt());
      }
    } catch (error) {
      this.options.log.error({ err: error }, "idle policy sweep failed");
    } finally {
      this.sweeping = false;
    }
  }

  private async act(vmName: string, rule: CompiledRule, idleMs: number, lastActivity: string | null) {
    const minutes = (idleMs / 60_000).toFixed(1);
    const what = rule.action === "notebook.stop" ? "stopping the notebook server" : "deallocating the VM";
    this.options.bus.emit({
      vmName,
      kind: "policy.idle",
      level: "warn",
      message: `idle policy: ${what} on ${vmName}: no kernel or connection activity for ${minutes} min (last activity ${lastActivity ?? "unknown"}; rule ${rule.label}: ${rule.action} after ${rule.idleMinutes} min)`,
      data: { rule: rule.label, action: rule.action, idleMs, idleMinutes: rule.idleMinutes, lastActivity },
    });
    try {
      if (rule.action === "notebook.stop") {
        await this.options.commands.enqueue({ vmName, name: "notebook.stop" });
      } else {
        // The provider call may take minutes; the sweep does not wait for it.
        this.options.vms
          .machineAction(vmName, "stop")
          .catch((error) =>
            this.options.log.error({ err: error, vm: vmName }, "idle policy: stopping the VM failed"),
          );
      }
    } catch (error) {
      this.options.log.error({ err: error, vm: vmName }, "idle policy action failed");
    }
  }
}

function ruleLabel(rule: IdleRule): string {
  return rule.name ?? (rule.labels ? `'${rule.labels}'` : "fleet");
}
