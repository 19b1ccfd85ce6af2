/**
 * Shapes the console reads that are not in @nbfleet/shared (the operations, policy and session
 * views are defined in the controller). Kept to the fields the pages use.
 */
import type { OverallHealth } from "@nbfleet/shared";

export type OperationAction =
  | "notebook.restart"
  | "notebook.stop"
  | "notebook.start"
  | "notebook.password"
  | "notebook.certificate";

export type TargetState = "pending" | "running" | "succeeded" | "failed" | "skipped" | "cancelled";
export const TARGET_STATES: readonly TargetState[] = [
  "pending",
  "running",
  "succeeded",
  "failed",
  "skipped",
  "cancelled",
];

export interface Selector {
  names?: string[];
  labels?: string;
  health?: OverallHealth[];
  all?: boolean;
}

export interface OperationView {
  id: string;
  action: string;
  state: "pending" | "running" | "succeeded" | "failed" | "cancelled";
  selector: Selector;
  total: number;
  counts: Record<TargetState, number>;
  maxConcurrency: number;
  maxErrors: number;
  rolling: { enabled: boolean; healthTimeoutSec: number };
  reason: string | null;
  createdBy: string | null;
  createdAt: string;
  finishedAt: string | null;
  cancelRequestedAt: string | null;
}

export interface TargetView {
  seq: number;
  vmName: string;
  state: TargetState;
  commandId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
}

export interface OperationDetail extends OperationView {
  targets: { items: TargetView[]; nextCursor: string | null };
}

export interface CreatedOperation {
  operation: OperationView;
  passwords: Record<string, string> | null;
}

export type { SessionView } from "@nbfleet/shared";

export interface IdleRule {
  name?: string;
  labels?: string;
  idleMinutes: number;
  action: "notebook.stop" | "vm.stop";
}

export interface IdlePolicy {
  enabled: boolean;
  rules: IdleRule[];
  updatedAt: string | null;
  updatedBy: string | null;
}
