/**
 * What an operation can do to each target, how each action reaches the VM (a command to its
 * agent, or the provider for machine actions), and the error codes a target can end with.
 */
import type { CommandName, VmState } from "@nbfleet/shared";
import { OPERATION_ACTIONS, type OperationAction } from "@nbfleet/shared/operation-lists";

// The list lives in @nbfleet/shared (the web console reads it too); add new actions there.
export { OPERATION_ACTIONS, type OperationAction };
export type MachineOperationAction = Extract<OperationAction, `vm.${string}`>;

const COMMAND_OF: Record<Exclude<OperationAction, MachineOperationAction>, CommandName> = {
  "notebook.restart": "notebook.restart",
  "notebook.stop": "notebook.stop",
  "notebook.start": "notebook.start",
  "notebook.password": "password.set",
  "notebook.certificate": "certificate.rotate",
  "agent.upgrade": "agent.upgrade",
  "controller.trust": "controller.trust",
};

/** The agent command an action sends, or null for a machine action (done through the provider). */
export function commandOf(action: OperationAction): CommandName | null {
  return isMachineAction(action) ? null : COMMAND_OF[action];
}

export function isMachineAction(action: OperationAction): action is MachineOperationAction {
  return action.startsWith("vm.");
}

/** Actions that leave the notebook down cannot wait for it to be healthy again. */
export function allowsRolling(action: OperationAction): boolean {
  return action !== "notebook.stop" && action !== "vm.stop";
}

/** The machine states a provider call passes through (mirrors VmService.machineAction). */
export const MACHINE_TRANSITION: Record<MachineOperationAction, { during: VmState; after: VmState }> = {
  "vm.start": { during: "starting", after: "running" },
  "vm.stop": { during: "stopping", after: "stopped" },
  "vm.restart": { during: "restarting", after: "running" },
};

/**
 * The command id of a target, derived from the operation and the target's place in it: a
 * resumed operation finds the command it may already have sent instead of sending another.
 */
export function commandIdFor(operationId: string, seq: number): string {
  return `${commandIdPrefix(operationId)}${seq}`;
}

/** What every command id of the operation starts with (the seq follows, in decimal). */
export function commandIdPrefix(operationId: string): string {
  return `cmd_${operationId.replace(/^op_/, "")}_`;
}

/** Codes a target ends with (stored with the target, shown in `GET /v1/operations/{id}`). */
export const TARGET_ERRORS = {
  NBF_TARGET_COMMAND_EXPIRED: "the agent did not take the command before it expired (offline?)",
  NBF_TARGET_COMMAND_TIMED_OUT: "the agent acknowledged the command but gave no result in time",
  NBF_TARGET_UNHEALTHY: "the VM was not healthy again within the rolling health timeout",
  NBF_TARGET_VM_GONE: "the VM was deleted before its turn",
  NBF_TARGET_INTERRUPTED: "a controller restart interrupted the provider call; the result is unknown",
  NBF_TARGET_SKIPPED_ERROR_BUDGET: "not started: the operation's error budget was exceeded",
  NBF_TARGET_CANCELLED: "not started: the operation was cancelled",
  NBF_TARGET_ALREADY_ON_VERSION: "skipped: the agent already runs this version",
  NBF_TARGET_UPGRADE_UNSUPPORTED: "the agent does not support agent.upgrade (its hello lacks the capability)",
  NBF_TARGET_UPGRADE_ROLLED_BACK: "the new agent version failed on the guest and its launcher rolled back",
  NBF_TARGET_UPGRADE_TIMED_OUT: "the agent did not come back on the new version and healthy in time",
  NBF_TARGET_CANARY_UNHEALTHY: "the canary did not stay healthy on the new version through its soak",
  NBF_TARGET_SKIPPED_CANARY_FAILED: "not started: a canary target failed, so the rollout stopped",
} as const;
export type TargetErrorCode = keyof typeof TARGET_ERRORS;

export function targetError(code: TargetErrorCode, detail?: string): { code: string; message: string } {
  return { code, message: detail ? `${TARGET_ERRORS[code]}: ${detail}` : TARGET_ERRORS[code] };
}
