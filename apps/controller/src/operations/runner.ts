import type { OperationTargetsRepo, TargetRecord, TargetState } from "../store/operation-targets-repo.js";
/**
 * Runs one operation to its end: starts targets in rollout order, never more than
 * `maxConcurrency` at once, and stops starting new ones once failures exceed `maxErrors` or a
 * cancel arrives (targets already under way finish and are counted). Without `rolling` a
 * finished target's slot goes to the next one at once; with `rolling` targets go in batches of
 * `maxConcurrency` and the next batch starts only when every target of the previous one is
 * serving again (or failed the gate).
 *
 * Resuming after a restart: targets left `running` are finished first (each resolved from its
 * own command, see execute-target), then pending ones continue. Every state change is a
 * conditional update, so nothing is started or finished twice.
 */
import type { OperationRecord } from "../store/operations-repo.js";
import { commandIdFor, isMachineAction, targetError } from "./actions.js";
import { type TargetDeps, type TargetOutcome, type TargetPlan, executeTarget } from "./execute-target.js";

const PAGE = 1000;

export type StopReason = "errors" | "cancel" | "shutdown";

export interface RunnerHooks {
  /** Counts changed (for throttled progress events). */
  progress(runner: OperationRunner): void;
  /** A target ended badly (its own event). */
  targetFailed(runner: OperationRunner, target: TargetRecord, error: { code: string; message: string }): void;
  log(error: unknown, message: string): void;
}

export class OperationRunner {
  readonly counts: Record<TargetState, number>;
  private readonly inFlight = new Map<number, Promise<void>>();
  private stop: StopReason | null = null;
  private wake: (() => void) | null = null;
  /** A change happened while the loop was not waiting for one. */
  private signalled = false;
  /** When the failure that exceeded the error budget was counted. */
  budgetExceededAt: string | null = null;

  constructor(
    readonly operation: OperationRecord,
    private readonly plan: TargetPlan & { maxConcurrency: number; maxErrors: number },
    private readonly targets: OperationTargetsRepo,
    private readonly deps: TargetDeps,
    private readonly hooks: RunnerHooks,
    initialCounts: Record<TargetState, number>,
  ) {
    this.counts = { ...initialCounts };
    if (operation.cancelRequestedAt) this.stop = "cancel";
    else if (this.counts.failed > plan.maxErrors) this.stop = "errors";
  }

  get stopReason(): StopReason | null {
    return this.stop;
  }

  get running(): number {
    return this.inFlight.size;
  }

  /** Stops starting targets; an operation already stopped by its error budget stays so. */
  cancel(): void {
    this.stop ??= "cancel";
    this.signal();
  }

  /** Stops starting targets (the controller is closing); unfinished ones resume at the next start. */
  shutdown(): void {
    this.stop = "shutdown";
    this.signal();
  }

  /** Runs until every target is final (or the controller closes); returns why it stopped early. */
  async run(): Promise<StopReason | null> {
    const leftRunning = await this.targets.list(this.operation.id, { state: "running", limit: 1_000_000 });
    for (const target of leftRunning) this.launch(target, true);
    if (this.plan.rolling.enabled) await this.drain();
    let cursor = -1;
    let buffer: TargetRecord[] = [];
    let exhausted = false;
    while (this.stop === null) {
      const room = this.plan.maxConcurrency - this.inFlight.size;
      if (this.plan.rolling.enabled || room > 0) {
        const want = this.plan.rolling.enabled ? this.plan.maxConcurrency : room;
        const batch: TargetRecord[] = [];
        while (batch.length < want) {
          if (buffer.length === 0 && !exhausted) {
            buffer = await this.targets.list(this.operation.id, {
              state: "pending",
              afterSeq: cursor,
              limit: PAGE,
            });
            if (buffer.length === 0) exhausted = true;
            else cursor = buffer.at(-1)!.seq;
          }
          const next = buffer.shift();
          if (!next) break;
          batch.push(next);
        }
        for (const target of batch) {
          if (this.stop !== null) break;
          this.launch(target, false);
        }
        if (this.plan.rolling.enabled) {
          if (batch.length === 0) break;
          await this.drain();
          continue;
        }
      }
      if (this.stop !== null || (this.inFlight.size === 0 && exhausted && buffer.length === 0)) break;
      await this.nextChange();
    }
    await this.drain();
    return this.stop;
  }

  private launch(target: TargetRecord, resumed: boolean): void {
    const run = this.runTarget(target, resumed)
      .catch((error) =>
        this.hooks.log(error, `operation ${this.operation.id} target ${target.vmName} failed`),
      )
      .finally(() => {
        this.inFlight.delete(target.seq);
        this.signal();
      });
    this.inFlight.set(target.seq, run);
  }

  private async runTarget(given: TargetRecord, resumed: boolean): Promise<void> {
    let target = given;
    if (!resumed) {
      const commandId = isMachineAction(this.plan.action)
        ? null
        : commandIdFor(this.operation.id, target.seq);
      const startedAt = new Date().toISOString();
      // Persisted before anything is sent: a crash from here on finds the target running.
      if (!(await this.targets.markRunning(this.operation.id, target.seq, commandId, startedAt))) return;
      target = { ...target, state: "running", commandId, startedAt };
      this.move("pending", "running");
    }
    let outcome: TargetOutcome;
    try {
      outcome = await executeTarget(this.deps, this.plan, target, resumed);
    } catch (error) {
      this.hooks.log(error, `operation ${this.operation.id}: target ${target.vmName} threw`);
      outcome = {
        ok: false,
        error: { code: "NBF_INTERNAL", message: (error as Error).message ?? String(error) },
      };
    }
    if (this.stop === "shutdown") return;
    const now = new Date().toISOString();
    // Counted before the write, in the same tick the outcome is known: once the budget is
    // exceeded, the scheduling loop cannot start another target.
    if (!outcome.ok) {
      this.move("running", "failed");
      if (this.counts.failed > this.plan.maxErrors && this.budgetExceededAt === null) {
        this.budgetExceededAt = now;
        if (this.stop === null) this.stop = "errors";
      }
    } else this.move("running", "succeeded");
    const finished = await this.targets.finish(
      this.operation.id,
      target.seq,
      outcome.ok ? "succeeded" : "failed",
      outcome.ok ? null : outcome.error,
      now,
    );
    if (!finished) return;
    if (!outcome.ok) this.hooks.targetFailed(this, target, outcome.error);
  }

  /** Closes the targets that will never start; returns how many. */
  async closePending(): Promise<number> {
    if (this.stop === null || this.stop === "shutdown") return 0;
    const state = this.stop === "cancel" ? "cancelled" : "skipped";
    const reason = targetError(
      this.stop === "cancel" ? "NBF_TARGET_CANCELLED" : "NBF_TARGET_SKIPPED_ERROR_BUDGET",
    );
    const closed = await this.targets.closePending(
      this.operation.id,
      state,
      reason,
      new Date().toISOString(),
    );
    this.counts.pending -= closed;
    this.counts[state] += closed;
    this.hooks.progress(this);
    return closed;
  }

  private move(from: TargetState, to: TargetState): void {
    this.counts[from]--;
    this.counts[to]++;
    this.hooks.progress(this);
  }

  private signal(): void {
    if (this.wake) this.wake();
    else this.signalled = true;
  }

  private nextChange(): Promise<void> {
    if (this.signalled) {
      this.signalled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = null;
        this.signalled = false;
        resolve();
      };
    });
  }

  private async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight.values()]);
  }
}
