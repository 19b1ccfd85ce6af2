/**
 * The operations API's and the idle policy's enumerations as plain lists, free of TypeBox, so
 * the web console uses them without bundling the schemas; operations.ts builds its schemas
 * from these.
 */
export const OPERATION_ACTIONS = [
  "notebook.restart",
  "notebook.stop",
  "notebook.start",
  "notebook.password",
  "notebook.certificate",
  "vm.start",
  "vm.stop",
  "vm.restart",
  "agent.upgrade",
  "controller.trust",
] as const;
export type OperationAction = (typeof OPERATION_ACTIONS)[number];

export const OPERATION_STATES = ["pending", "running", "succeeded", "failed", "cancelled"] as const;
export type OperationState = (typeof OPERATION_STATES)[number];

export const TARGET_STATES = ["pending", "running", "succeeded", "failed", "skipped", "cancelled"] as const;
export type TargetState = (typeof TARGET_STATES)[number];

/** What an idle policy rule does to an idle VM: stop its notebook server, or deallocate it. */
export const IDLE_ACTIONS = ["notebook.stop", "vm.stop"] as const;
export type IdleAction = (typeof IDLE_ACTIONS)[number];
