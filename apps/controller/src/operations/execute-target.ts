import type { ClusterClock } from "../cluster/cluster-clock.js";
/**
 * Doing an operation's action to one target, once. A notebook action is a command with an id
 * derived from the operation and the target: when an operation is resumed after a controller
 * restart, a target that already has its command is resolved from that command's persisted
 * state (waiting for it if it is still under way), never sent a second one. A machine action
 * is a provider call; its resume is decided from the VM's stored state (see `resumeMachine`).
 */
import { type CommandService, isTerminal } from "../commands/service.js";
import { isNbfError } from "../errors.js";
import type { VmService } from "../fleet/vm-service.js";
import type { CommandRecord } from "../store/commands-repo.js";
import { isUniqueViolation } from "../store/db.js";
import type { TargetRecord } from "../store/operation-targets-repo.js";
import type { Store } from "../store/store.js";
import {
  MACHINE_TRANSITION,
  type MachineOperationAction,
  type OperationAction,
  commandIdFor,
  commandOf,
  isMachineAction,
  targetError,
} from "./actions.js";
import type { HealthWatch } from "./health-watch.js";
import type { UpgradeWatch } from "./upgrade-watch.js";

export interface TargetPlan {
  operationId: string;
  action: OperationAction;
  commandParams: Record<string, unknown>;
  commandTtlSec: number;
  commandTimeoutSec: number;
  ifOffline: "queue" | "fail";
  rolling: { enabled: boolean; healthTimeoutSec: number };
  /** agent.upgrade only. */
  upgrade?: UpgradePlan;
}

export interface UpgradePlan {
  version: string;
  /** What the guest's launcher gives the new agent before it rolls back (sent with the command). */
  timeoutSec: number;
  /** Waited beyond timeoutSec for the agent (or its rollback event) after its answer. */
  graceSec: number;
  /** The first `canary` targets (rollout order) go alone and must stay upgraded for canarySoakSec. */
  canary: number;
  canarySoakSec: number;
}

export interface TargetDeps {
  store: Store;
  commands: CommandService;
  vms: VmService;
  health: HealthWatch;
  upgrades: UpgradeWatch;
  /** A target's times, compared with the events of other replicas (rollbacks). */
  clock: ClusterClock;
  /**
   * Registers for the command's final state before anything can finish it; resolves null when
   * the controller shuts down first.
   */
  watchCommand(commandId: string): CommandWatch;
}

export interface CommandWatch {
  /** The command once final; null when the controller shuts down first. */
  promise: Promise<CommandRecord | null>;
  cancel(): void;
}

/** `skip`: the target did not apply (its VM is gone); it does not count as an error. */
export type TargetOutcome =
  | { ok: true }
  | { ok: false; skip?: true; error: { code: string; message: string } };

/** How the target got here: `resumed` (left running by an earlier process) or freshly started. */
export interface TargetMode {
  resumed: boolean;
}

export async function executeTarget(
  deps: TargetDeps,
  plan: TargetPlan,
  target: TargetRecord,
  mode: TargetMode,
): Promise<TargetOutcome> {
  const outcome = isMachineAction(plan.action)
    ? await machineTarget(deps, plan.action, target, mode.resumed)
    : await commandTarget(deps, plan, target, mode);
  return afterOutcome(deps, plan, target, outcome, mode.resumed);
}

/** What a final command means for its target, before any follow-up (see needsFollowUp). */
export function commandOutcome(command: CommandRecord): TargetOutcome {
  switch (command.state) {
    case "succeeded":
      return { ok: true };
    case "expired":
      return { ok: false, error: targetError("NBF_TARGET_COMMAND_EXPIRED") };
    case "timed_out":
      return { ok: false, error: targetError("NBF_TARGET_COMMAND_TIMED_OUT") };
    default:
      return {
        ok: false,
        error: command.error ?? {
          code: "NBF_AGENT_ERROR",
          message: `command ${command.id} ${command.state}`,
        },
      };
  }
}

/** Whether a target's outcome needs more work before it is final (a stored hash, a health gate). */
export function needsFollowUp(plan: TargetPlan, outcome: TargetOutcome): boolean {
  return (
    outcome.ok &&
    (plan.rolling.enabled || plan.action === "notebook.password" || plan.action === "agent.upgrade")
  );
}

/** The follow-ups of a successful target: its new password hash is stored, its health gate awaited. */
export async function afterOutcome(
  deps: TargetDeps,
  plan: TargetPlan,
  target: TargetRecord,
  outcome: TargetOutcome,
  resumed = false,
): Promise<TargetOutcome> {
  if (!needsFollowUp(plan, outcome)) return outcome;
  // Its own gate: the agent back on the new version and serving (the rolling gate's "a new
  // serving report" is part of it).
  if (plan.upgrade) return afterUpgrade(deps, plan.upgrade, target, resumed);
  if (plan.action === "notebook.password" && typeof target.params?.hash === "string")
    await deps.store.vms.setPasswordHash(target.vmName, target.params.hash);
  if (!plan.rolling.enabled) return outcome;
  const gate = deps.health.waitServing(target.vmName, plan.rolling.healthTimeoutSec * 1000);
  if (await gate.promise) return outcome;
  return {
    ok: false,
    error: targetError("NBF_TARGET_UNHEALTHY", `no serving report within ${plan.rolling.healthTimeoutSec} s`),
  };
}

/**
 * The agent answered agent.upgrade (it switched and restarts): the target ends when the agent is
 * back on the version and serving, or rolled back, or late; a canary then soaks.
 */
async function afterUpgrade(
  deps: TargetDeps,
  upgrade: UpgradePlan,
  target: TargetRecord,
  resumed: boolean,
): Promise<TargetOutcome> {
  const since = target.startedAt ? Date.parse(target.startedAt) : deps.clock.now();
  const wait = deps.upgrades.waitUpgraded(
    target.vmName,
    upgrade.version,
    since,
    (upgrade.timeoutSec + upgrade.graceSec) * 1000,
    resumed,
  );
  const outcome = await wait.promise;
  if (outcome === null) return shuttingDown();
  if (!outcome.ok || target.seq >= upgrade.canary || upgrade.canarySoakSec <= 0) return outcome;
  return (
    (await deps.upgrades.soak(target.vmName, upgrade.version, upgrade.canarySoakSec * 1000)) ?? shuttingDown()
  );
}

function shuttingDown(): TargetOutcome {
  return { ok: false, error: { code: "NBF_INTERNAL", message: "controller shutting down" } };
}

/**
 * A command target resumed after a restart (or started without a batch): follows the command
 * that has its id, or stores one when there is none yet.
 */
async function commandTarget(
  deps: TargetDeps,
  plan: TargetPlan,
  target: TargetRecord,
  mode: TargetMode,
): Promise<TargetOutcome> {
  const { store, commands } = deps;
  const id = commandIdFor(plan.operationId, target.seq);
  const watch = deps.watchCommand(id);
  try {
    let command = mode.resumed ? await commands.get(id) : undefined;
    // Committed by a runner that stopped before its signal left (a replica killed right after
    // the commit): the replica holding the agent would not hear of it until a reconnect.
    if (command?.state === "queued") commands.routeQueued([command]);
    if (!command) {
      if (!(await store.vms.exists(target.vmName)))
        return { ok: false, skip: true, error: targetError("NBF_TARGET_VM_GONE") };
      if (plan.upgrade) {
        const ended = (await deps.upgrades.precheck(store.db, [target.vmName], plan.upgrade.version)).get(
          target.vmName,
        );
        if (ended) return ended;
      }
      try {
        command = (
          await commands.enqueue({
            id,
            vmName: target.vmName,
            name: commandOf(plan.action)!,
            params: { ...plan.commandParams, ...(target.params ?? {}) },
            ttlSec: plan.commandTtlSec,
            timeoutSec: plan.commandTimeoutSec,
            operationId: plan.operationId,
            ifOffline: plan.ifOffline,
          })
        ).command;
      } catch (error) {
        // Another attempt of this very target got there first: follow that command.
        if (isUniqueViolation(error)) command = await commands.get(id);
        else if (isNbfError(error)) return { ok: false, error: { code: error.code, message: error.message } };
        else throw error;
      }
      if (!command) throw new Error(`command ${id} vanished right after it was queued`);
    }
    const final = isTerminal(command) ? command : await watch.promise;
    if (final === null) return shuttingDown();
    return commandOutcome(final);
  } finally {
    watch.cancel();
  }
}

async function machineTarget(
  deps: TargetDeps,
  action: MachineOperationAction,
  target: TargetRecord,
  resumed: boolean,
): Promise<TargetOutcome> {
  if (resumed) {
    const decided = await resumeMachine(deps, action, target);
    if (decided) return decided;
  }
  if (!(await deps.store.vms.exists(target.vmName)))
    return { ok: false, skip: true, error: targetError("NBF_TARGET_VM_GONE") };
  try {
    await deps.vms.machineAction(target.vmName, action.slice(3) as "start" | "stop" | "restart");
    return { ok: true };
  } catch (error) {
    if (isNbfError(error)) return { ok: false, error: { code: error.code, message: error.message } };
    throw error;
  }
}

/**
 * A machine target found `running` after a restart. The VM row says how far the provider call
 * got: untouched since the target started → run it; in its final state since then → done;
 * `failed` since then → failed; still in the in-between state → the call was cut off. Start
 * and stop are run again (they converge, so running them again does not do anything twice);
 * an interrupted restart is reported, never repeated.
 */
async function resumeMachine(
  deps: TargetDeps,
  action: MachineOperationAction,
  target: TargetRecord,
): Promise<TargetOutcome | null> {
  const vm = await deps.store.vms.get(target.vmName);
  if (!vm) return { ok: false, skip: true, error: targetError("NBF_TARGET_VM_GONE") };
  if (target.startedAt === null || vm.updatedAt < target.startedAt) return null;
  const { during, after } = MACHINE_TRANSITION[action];
  if (vm.state === after) return { ok: true };
  if (vm.state === "failed")
    return { ok: false, error: { code: "NBF_PROVIDER_FAILED", message: vm.error ?? "the provider failed" } };
  if (vm.state === during && action === "vm.restart")
    return { ok: false, error: targetError("NBF_TARGET_INTERRUPTED", `VM ${vm.name} was left ${vm.state}`) };
  return null;
}
