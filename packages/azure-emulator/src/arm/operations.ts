/**
 * Long-running operations as Resource Manager runs them: a write is accepted at once (201/202
 * with `Azure-AsyncOperation`, `Location` and `Retry-After`), its work happens after a delay,
 * and the operation URL reports `InProgress` until it ends `Succeeded` or `Failed` with Azure's
 * error code and message.
 */
import { randomUUID } from "node:crypto";
import { ArmError } from "./errors.js";

export type OperationStatus = "InProgress" | "Succeeded" | "Failed";

export interface Operation {
  id: string;
  subscription: string;
  namespace: string;
  location: string;
  resourceId: string;
  /** What it does, e.g. `PUT`, `DELETE`, `POST start`. */
  what: string;
  status: OperationStatus;
  startTime: Date;
  /** When the work is due; the operation reports InProgress until then. */
  dueAt: number;
  endTime: Date | null;
  error: { code: string; message: string } | null;
}

export interface StartOperation {
  subscription: string;
  namespace: string;
  location: string;
  resourceId: string;
  what: string;
  durationMs: number;
  /** The work; an ArmError (or any error) makes the operation Failed. */
  run(): Promise<void> | void;
  /** When set, the work is skipped and the operation fails with this error. */
  failWith?: { code: string; message: string };
  /** Runs after a failure (e.g. mark the resource Failed). */
  onFailed?(error: { code: string; message: string }): void;
}

export class Operations {
  private readonly operations = new Map<string, Operation>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly onError: (error: unknown) => void) {}

  start(spec: StartOperation): Operation {
    const operation: Operation = {
      id: randomUUID(),
      subscription: spec.subscription,
      namespace: spec.namespace,
      location: spec.location,
      resourceId: spec.resourceId,
      what: spec.what,
      status: "InProgress",
      startTime: new Date(),
      dueAt: Date.now() + spec.durationMs,
      endTime: null,
      error: null,
    };
    this.operations.set(operation.id, operation);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const done = this.finish(operation, spec).finally(() => this.pending.delete(done));
      this.pending.add(done);
    }, spec.durationMs);
    this.timers.add(timer);
    return operation;
  }

  get(id: string): Operation | undefined {
    return this.operations.get(id);
  }

  inProgress(): Operation[] {
    return [...this.operations.values()].filter((op) => op.status === "InProgress");
  }

  /** Stops timers; operations still running are left InProgress. Waits for work already started. */
  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.pending]);
  }

  private async finish(operation: Operation, spec: StartOperation): Promise<void> {
    let failure = spec.failWith ?? null;
    if (!failure) {
      try {
        await spec.run();
      } catch (error) {
        if (!(error instanceof ArmError)) this.onError(error);
        failure =
          error instanceof ArmError
            ? { code: error.code, message: error.message }
            : { code: "InternalServerError", message: `The operation failed: ${(error as Error).message}` };
      }
    }
    operation.endTime = new Date();
    if (failure) {
      operation.status = "Failed";
      operation.error = failure;
      try {
        spec.onFailed?.(failure);
      } catch (error) {
        this.onError(error);
      }
    } else {
      operation.status = "Succeeded";
    }
  }
}
