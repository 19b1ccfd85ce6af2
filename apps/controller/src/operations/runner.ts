/**
 * Runs one operation to its end: starts targets in rollout order, never more than
 * `maxConcurrency` at once, and stops starting new ones once failures exceed `maxErrors` or a
 * cancel arrives (targets already under way finish and are counted). Without `rolling` a
 * finished target's slot goes to the next one at once; with `rolling` targets go in batches of
 * `maxConcurrency` and the next batch starts only when every target of the previous one is
 * serving again (or failed the gate).
 *
 * Targets that start together are started with one write: marked running (with their derived
 * command ids) in one statement, their commands stored in one transaction, and sent after the
 * commit. Their ends are written in one transaction per event-loop turn. At 10,000 targets
 * this keeps the store from committing six times per target.
 *
 * Resuming after a restart: targets left `running` are finished first (each resolved from its
 * own command, see execute-target), then pending ones continue. Every state change is a
 * conditional update, so nothing is started or finished twice.
 */
import type { CommandRecord } from "../store/commands-repo.js";
import {
  OperationTargetsRepo,
  type TargetRecord,
  type TargetState,
} from "../store/operation-targets-repo.js";
import type { OperationRecord } from "../store/operations-repo.js";
import { commandIdFor, commandIdPrefix, commandOf, isMachineAction, targetError } from "./actions.js";
import {
  type CommandWatch,
  type TargetDeps,
  type TargetOutcome,
  type TargetPlan,
  executeTarget,
} from "./execute-target.js";

const PAGE = 1000;

export type StopReason = "errors" | "cancel" | "shutdown";

export interface RunnerHooks {
  /** Counts changed (for throttled progress events). */
  progress(runner: OperationRunner): void;
  /** A target ended badly (its own event). */
  targetFailed(runner: OperationRunner, target: TargetRecord, error: { code: string; message: string }): void;
  log(error: unknown, message: string): void;
}

/** What starting a target produced: its stored command (and the watch on it), or why not. */
type Started =
  | { kind: "command"; command: CommandRecord; watch: CommandWatch }
  | { kind: "machine" }
  | { kind: "ended"; outcome: TargetOutcome };

type Ending = {
  seq: number;
  state: "succeeded" | "failed" | "skipped";
  error: { code: string; message: string } | null;
  at: string;
};

export class OperationRunner {
  readonly counts: Record<TargetState, number>;
  private readonly inFlight = new Map<number, Promise<void>>();
  private stop: StopReason | null = null;
  private wake: (() => void) | null = null;
  /** A change happened while the loop was not waiting for one. */
  private signalled = false;
  private endings: Ending[] = [];
  private endingsWritten: Promise<void> | null = null;
  /** Ends being written; a slot is free before its end is stored. */
  private readonly writes = new Set<Promise<void>>();
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
    for (const target of leftRunning) this.track(target, this.runTarget(target, Promise.resolve(null)));
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
        if (this.stop === null && batch.length > 0) this.launch(batch);
        if (this.plan.rolling.enabled) {
          if (batch.length === 0) break;
          await this.drain();
          continue;
        }
      }
      if (this.stop !== null || (this.inFlight.size === 0 && exhausted && buffer.length === 0)) break;
      await this.nextChange();
      // Targets that end in the same turn free their slots together: start their successors together.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await this.drain();
    return this.stop;
  }

  /** Starts fresh targets together; each slot is taken now, before anything is awaited. */
  private launch(batch: TargetRecord[]): void {
    const started = this.start(batch);
    for (const target of batch) {
      this.track(
        target,
        started.then((all) => this.runTarget(target, Promise.resolve(all.get(target.seq) ?? "not-started"))),
      );
    }
  }

  private track(target: TargetRecord, run: Promise<void>): void {
    this.inFlight.set(
      target.seq,
      run
        .catch((error) =>
          this.hooks.log(error, `operation ${this.operation.id}: target ${target.vmName} failed`),
        )
        .finally(() => {
          this.inFlight.delete(target.seq);
          this.signal();
        }),
    );
  }

  /**
   * Marks the batch running (persisted before anything is sent: a crash from here on finds the
   * targets running and resolves them from their commands) and queues their commands.
   */
  private async start(batch: TargetRecord[]): Promise<Map<number, Started>> {
    const { store, commands } = this.deps;
    const out = new Map<number, Started>();
    const now = new Date().toISOString();
    const machine = isMachineAction(this.plan.action);
    const running = await this.targets.markRunningMany(
      this.operation.id,
      batch.map((t) => t.seq),
      machine ? null : commandIdPrefix(this.operation.id),
      now,
    );
    const mine = batch.filter((t) => running.has(t.seq));
    for (const _ of mine) this.move("pending", "running");
    if (machine) {
      for (const target of mine) out.set(target.seq, { kind: "machine" });
      return out;
    }
    // A VM whose agent is connected exists (deleting a VM drops its connection): only the
    // others are looked up.
    const live = new Set(mine.filter((t) => commands.isConnected(t.vmName)).map((t) => t.vmName));
    const existing = await store.vms.existing(mine.filter((t) => !live.has(t.vmName)).map((t) => t.vmName));
    const sendable: TargetRecord[] = [];
    for (const target of mine) {
      if (live.has(target.vmName) || existing.has(target.vmName)) sendable.push(target);
      else
        out.set(target.seq, {
          kind: "ended",
          outcome: { ok: false, skip: true, error: targetError("NBF_TARGET_VM_GONE") },
        });
    }
    // Watching first: a result cannot arrive before its watcher exists.
    const watches = new Map(
      sendable.map((t) => [t.seq, this.deps.watchCommand(commandIdFor(this.operation.id, t.seq))]),
    );
    const queued = await commands.enqueueMany(
      sendable.map((target) => ({
        id: commandIdFor(this.operation.id, target.seq),
        vmName: target.vmName,
        name: commandOf(this.plan.action)!,
        params: { ...this.plan.commandParams, ...(target.params ?? {}) },
        ttlSec: this.plan.commandTtlSec,
        timeoutSec: this.plan.commandTimeoutSec,
        operationId: this.operation.id,
        ifOffline: this.plan.ifOffline,
      })),
      { announce: false },
    );
    sendable.forEach((target, i) => {
      const result = queued[i]!;
      const watch = watches.get(target.seq)!;
      if (result.ok) out.set(target.seq, { kind: "command", command: result.value.command, watch });
      else {
        watch.cancel();
        // A command with this id exists (a resumed start): follow it instead.
        out.set(target.seq, { kind: "ended", outcome: { ok: false, error: describe(result.error) } });
      }
    });
    return out;
  }

  /** One target from start (or resume, when `started` resolves null) to its recorded end. */
  private async runTarget(
    target: TargetRecord,
    started: Promise<Started | "not-started" | null>,
  ): Promise<void> {
    const how = await started;
    if (how === "not-started") return;
    let outcome: TargetOutcome;
    try {
      outcome =
        how === null
          ? await executeTarget(this.deps, this.plan, target, { resumed: true })
          : how.kind === "ended"
            ? how.outcome
            : await executeTarget(this.deps, this.plan, target, {
                resumed: false,
                ...(how.kind === "command" ? { command: how.command, watch: how.watch } : {}),
              });
    } catch (error) {
      this.hooks.log(error, `operation ${this.operation.id}: target ${target.vmName} threw`);
      outcome = {
        ok: false,
        error: { code: "NBF_INTERNAL", message: (error as Error).message ?? String(error) },
      };
    }
    if (this.stop === "shutdown") return;
    const at = new Date().toISOString();
    // Counted in the same turn the outcome is known, before any write: once the budget is
    // exceeded, the scheduling loop cannot start another target.
    const state = outcome.ok ? "succeeded" : outcome.skip ? "skipped" : "failed";
    this.move("running", state);
    if (state === "failed" && this.counts.failed > this.plan.maxErrors && this.budgetExceededAt === null) {
      this.budgetExceededAt = at;
      if (this.stop === null) this.stop = "errors";
    }
    // The slot is free once the outcome is known: the agent is done, and a crash before the end
    // is written resumes this target from its finished command. The operation itself ends only
    // after every end is written (drain).
    const written = this.end({ seq: target.seq, state, error: outcome.ok ? null : outcome.error, at }).then(
      () => {
        if (!outcome.ok && !outcome.skip) this.hooks.targetFailed(this, target, outcome.error);
      },
      (error) =>
        this.hooks.log(error, `operation ${this.operation.id}: recording ${target.vmName}'s end failed`),
    );
    this.writes.add(written);
    void written.finally(() => this.writes.delete(written));
  }

  /** Records an end; the ends of one event-loop turn are written in one transaction. */
  private end(ending: Ending): Promise<void> {
    this.endings.push(ending);
    this.endingsWritten ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const endings = this.endings;
      this.endings = [];
      this.endingsWritten = null;
      await this.deps.store.db
        .transaction()
        .execute((trx) => new OperationTargetsRepo(trx).finishMany(this.operation.id, endings));
    });
    return this.endingsWritten;
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
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }
}

function describe(error: unknown): { code: string; message: string } {
  const code = (error as { code?: unknown })?.code;
  return {
    code: typeof code === "string" && code.startsWith("NBF_") ? code : "NBF_INTERNAL",
    message: error instanceof Error ? error.message : String(error),
  };
}
