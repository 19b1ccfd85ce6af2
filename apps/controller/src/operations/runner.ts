/**
 * Runs one operation to its end: starts targets in rollout order, never more than
 * `maxConcurrency` at once, and stops starting new ones once failures exceed `maxErrors` or a
 * cancel arrives (targets already under way finish and are counted). Without `rolling` a
 * finished target's slot goes to the next one at once; with `rolling` targets go in batches of
 * `maxConcurrency` and the next batch starts only when every target of the previous one is
 * serving again (or failed the gate).
 *
 * Targets that start together are started with one transaction: marked running (with their
 * derived command ids) and their commands stored, then sent after the commit. A command target
 * settles in the turn its result is stored (its watch calls back; no promise chain), and ends
 * are written behind, together, at most every ENDS_WRITE_MS. At 10,000 targets this keeps the
 * store from committing several times per target.
 *
 * Resuming after a restart: targets left `running` are finished first (each resolved from its
 * own command, see execute-target), then pending ones continue. Every state change is a
 * conditional update, so nothing is started or finished twice.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Kysely } from "kysely";
import {
  OperationTargetsRepo,
  type TargetRecord,
  type TargetState,
} from "../store/operation-targets-repo.js";
import type { OperationRecord } from "../store/operations-repo.js";
import type { Database } from "../store/schema.js";
import { commandIdFor, commandIdPrefix, commandOf, isMachineAction, targetError } from "./actions.js";
import {
  type TargetDeps,
  type TargetOutcome,
  type TargetPlan,
  afterOutcome,
  commandOutcome,
  executeTarget,
  needsFollowUp,
} from "./execute-target.js";

const PAGE = 1000;
const ENDS_WRITE_MS = 50;

/** `canary`: agent.upgrade's canary target failed (whatever maxErrors allows). */
export type StopReason = "errors" | "cancel" | "shutdown" | "canary";

export interface RunnerHooks {
  /** Counts changed (for throttled progress events). */
  progress(runner: OperationRunner): void;
  /** A target ended badly (its own event). */
  targetFailed(runner: OperationRunner, target: TargetRecord, error: { code: string; message: string }): void;
  log(error: unknown, message: string): void;
}

/** What starting a target produced: a stored (and watched) command, a machine action to run, or its end. */
type Started = { kind: "command" } | { kind: "machine" } | { kind: "ended"; outcome: TargetOutcome };

type StartedBatch = { out: Map<number, Started>; running: number; dispatch(): void };

type Ending = {
  seq: number;
  state: "succeeded" | "failed" | "skipped";
  error: { code: string; message: string } | null;
  at: string;
};

export class OperationRunner {
  readonly counts: Record<TargetState, number>;
  /** Targets under way, by seq; a slot is taken until the target's outcome is known. */
  private readonly inFlight = new Set<number>();
  /** Fresh command targets waiting for their command: how to stop waiting (on shutdown). */
  private readonly watching = new Map<number, () => void>();
  private idle: Array<() => void> = [];
  private stop: StopReason | null = null;
  private wake: (() => void) | null = null;
  /** A change happened while the loop was not waiting for one. */
  private signalled = false;
  /** A batch's start (its transaction) is under way. */
  private starting = false;
  private endings: Ending[] = [];
  private endingsWritten: Promise<void> | null = null;
  private writeEndsNow: (() => void) | null = null;
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
    for (const [seq, unwatch] of [...this.watching]) {
      unwatch();
      this.release(seq);
    }
    this.signal();
  }

  /** Runs until every target is final (or the controller closes); returns why it stopped early. */
  async run(): Promise<StopReason | null> {
    const leftRunning = await this.targets.list(this.operation.id, { state: "running", limit: 1_000_000 });
    for (const target of leftRunning) {
      this.inFlight.add(target.seq);
      this.settleLater(target, () => executeTarget(this.deps, this.plan, target, { resumed: true }));
    }
    if (this.plan.rolling.enabled || this.canary > 0) await this.drain();
    if (this.canary > 0 && (this.stop === null || this.stop === "errors")) await this.runCanary();
    let cursor = -1;
    let buffer: TargetRecord[] = [];
    let exhausted = false;
    while (this.stop === null) {
      const room = this.plan.maxConcurrency - this.inFlight.size;
      // One start at a time: slots freed while a start is being stored are filled together by
      // the next one (one transaction for many targets when the store is busy, at once when not).
      if (!this.starting && (this.plan.rolling.enabled || room > 0)) {
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
      await new Promise((resolve) => process.nextTick(resolve));
    }
    await this.drain();
    return this.stop;
  }

  private get canary(): number {
    return this.plan.upgrade?.canary ?? 0;
  }

  /**
   * agent.upgrade's canary: the first `canary` targets (rollout order) alone, each ending only
   * after its soak; one failure stops the operation. A resumed operation runs whatever of them
   * is still pending, then looks at how they all ended.
   */
  private async runCanary(): Promise<void> {
    if (this.stop === null) {
      const canaries = (
        await this.targets.list(this.operation.id, { state: "pending", afterSeq: -1, limit: this.canary })
      ).filter((t) => t.seq < this.canary);
      if (canaries.length > 0) this.launch(canaries);
      await this.drain();
    }
    // A failed canary stops the rollout even within the error budget (and names why when beyond it).
    if (this.stop !== null && this.stop !== "errors") return;
    const failed = await this.targets.list(this.operation.id, {
      state: "failed",
      afterSeq: -1,
      limit: this.canary,
    });
    if (failed.some((t) => t.seq < this.canary)) {
      this.stop = "canary";
      this.budgetExceededAt ??= new Date(this.deps.clock.now()).toISOString();
    }
  }

  /** Starts fresh targets together; each slot is taken now, before anything is awaited. */
  private launch(batch: TargetRecord[]): void {
    for (const target of batch) this.inFlight.add(target.seq);
    this.starting = true;
    const started = this.start(batch).finally(() => {
      this.starting = false;
      this.signal();
    });
    started.then(
      (started) => {
        for (const target of batch) this.follow(target, started.get(target.seq));
      },
      (error) => {
        // Nothing was stored: the targets stay pending, and their slots are free again.
        this.hooks.log(error, `operation ${this.operation.id}: starting ${batch.length} target(s) failed`);
        for (const target of batch) {
          this.unwatchFresh(target.seq);
          this.release(target.seq);
        }
      },
    );
  }

  /** What happens to a target after its start: it ended already, waits for its command, or runs. */
  private follow(target: TargetRecord, how: Started | undefined): void {
    if (how === undefined) this.release(target.seq);
    else if (how.kind === "ended") this.settle(target, how.outcome);
    else if (how.kind === "machine")
      this.settleLater(target, () => executeTarget(this.deps, this.plan, target, { resumed: false }));
    // A command target is settled by its watch (see watchFresh).
  }

  /**
   * Watches a fresh target's command before it is stored (its result cannot come first). The
   * common case settles in the same turn the result is stored, without a promise in between.
   */
  private watchFresh(target: TargetRecord): void {
    const unwatch = this.deps.commands.watch(commandIdFor(this.operation.id, target.seq), (command) => {
      this.watching.delete(target.seq);
      const outcome = commandOutcome(command);
      if (needsFollowUp(this.plan, outcome))
        this.settleLater(target, () => afterOutcome(this.deps, this.plan, target, outcome));
      else this.settle(target, outcome);
    });
    this.watching.set(target.seq, unwatch);
  }

  private unwatchFresh(seq: number): void {
    this.watching.get(seq)?.();
    this.watching.delete(seq);
  }

  /** A target whose outcome takes async work (a provider call, a resumed command, a health gate). */
  private settleLater(target: TargetRecord, work: () => Promise<TargetOutcome>): void {
    work().then(
      (outcome) => this.settle(target, outcome),
      (error) => {
        this.hooks.log(error, `operation ${this.operation.id}: target ${target.vmName} threw`);
        this.settle(target, {
          ok: false,
          error: { code: "NBF_INTERNAL", message: (error as Error).message ?? String(error) },
        });
      },
    );
  }

  private release(seq: number): void {
    if (!this.inFlight.delete(seq)) return;
    this.signal();
    if (this.inFlight.size > 0) return;
    const idle = this.idle;
    this.idle = [];
    for (const resolve of idle) resolve();
  }

  /**
   * Marks the batch running and stores their commands in one transaction, then sends them: a
   * crash before the commit leaves them pending with no command; after it, they are running
   * and each resolves from its own command.
   */
  private async start(batch: TargetRecord[]): Promise<Map<number, Started>> {
    const machine = isMachineAction(this.plan.action);
    const { out, running, dispatch } = await this.deps.store.db
      .transaction()
      .execute((trx) => (machine ? this.startMachines(trx, batch) : this.startCommands(trx, batch)));
    for (let i = 0; i < running; i++) this.move("pending", "running");
    dispatch();
    return out;
  }

  private async startMachines(trx: Kysely<Database>, batch: TargetRecord[]): Promise<StartedBatch> {
    const out = new Map<number, Started>();
    const { mine } = await this.markRunning(trx, batch, null);
    for (const target of mine) out.set(target.seq, { kind: "machine" });
    return { out, running: mine.length, dispatch: () => {} };
  }

  private async startCommands(trx: Kysely<Database>, batch: TargetRecord[]): Promise<StartedBatch> {
    const { commands } = this.deps;
    const out = new Map<number, Started>();
    const { mine, vmGone } = await this.markRunning(trx, batch, commandIdPrefix(this.operation.id));
    const upgrade = this.plan.upgrade;
    const prechecked = upgrade
      ? await this.deps.upgrades.precheck(
          trx,
          mine.map((t) => t.vmName),
          upgrade.version,
        )
      : null;
    const sendable: TargetRecord[] = [];
    for (const target of mine) {
      const ended = prechecked?.get(target.vmName);
      if (vmGone.has(target.seq))
        out.set(target.seq, {
          kind: "ended",
          outcome: { ok: false, skip: true, error: targetError("NBF_TARGET_VM_GONE") },
        });
      else if (ended) out.set(target.seq, { kind: "ended", outcome: ended });
      else sendable.push(target);
    }
    for (const target of sendable) this.watchFresh(target);
    let queued: Awaited<ReturnType<typeof commands.enqueueManyIn>>;
    try {
      queued = await commands.enqueueManyIn(
        trx,
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
    } catch (error) {
      for (const target of sendable) this.unwatchFresh(target.seq);
      throw error;
    }
    sendable.forEach((target, i) => {
      const result = queued.outcomes[i]!;
      if (result.ok) out.set(target.seq, { kind: "command" });
      else {
        this.unwatchFresh(target.seq);
        // A command with this id exists (a resumed start): follow it instead.
        out.set(target.seq, { kind: "ended", outcome: { ok: false, error: describe(result.error) } });
      }
    });
    return { out, running: mine.length, dispatch: queued.dispatch };
  }

  /** pending → running; returns the targets moved, and the seqs of those whose VM is gone. */
  private async markRunning(
    trx: Kysely<Database>,
    batch: TargetRecord[],
    prefix: string | null,
  ): Promise<{ mine: TargetRecord[]; vmGone: Set<number> }> {
    const now = new Date(this.deps.clock.now()).toISOString();
    const running = await new OperationTargetsRepo(trx).markRunningMany(
      this.operation.id,
      batch.map((t) => t.seq),
      prefix,
      now,
    );
    const mine = batch.filter((t) => running.has(t.seq));
    // As stored: what happened to the VM since then is this target's doing (agent.upgrade's rollbacks).
    for (const target of mine) target.startedAt = now;
    const vmGone = new Set([...running].filter(([, t]) => !t.vmExists).map(([seq]) => seq));
    return { mine, vmGone };
  }

  /** A target's outcome is known: it is counted, its slot freed, its end written behind. */
  private settle(target: TargetRecord, outcome: TargetOutcome): void {
    if (!this.inFlight.has(target.seq)) return;
    if (this.stop === "shutdown") {
      this.release(target.seq);
      return;
    }
    const at = new Date(this.deps.clock.now()).toISOString();
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
    this.release(target.seq);
  }

  /**
   * Records an end. The slot is already free, so ends are written together at most every
   * ENDS_WRITE_MS (at 2,500 ends a second, a write per event-loop turn cost a commit every
   * few milliseconds); drain writes the last ones at once.
   */
  private end(ending: Ending): Promise<void> {
    this.endings.push(ending);
    if (this.endingsWritten) return this.endingsWritten;
    // Due after ENDS_WRITE_MS, or at once when drain calls writeEndsNow.
    const early = new AbortController();
    this.writeEndsNow = () => early.abort();
    const due = sleep(ENDS_WRITE_MS, undefined, { signal: early.signal }).catch(() => {});
    this.endingsWritten = due.then(async () => {
      const endings = this.endings;
      this.endings = [];
      this.endingsWritten = null;
      this.writeEndsNow = null;
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
      this.stop === "cancel"
        ? "NBF_TARGET_CANCELLED"
        : this.stop === "canary"
          ? "NBF_TARGET_SKIPPED_CANARY_FAILED"
          : "NBF_TARGET_SKIPPED_ERROR_BUDGET",
    );
    const closed = await this.targets.closePending(
      this.operation.id,
      state,
      reason,
      new Date(this.deps.clock.now()).toISOString(),
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
    if (this.inFlight.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    this.writeEndsNow?.();
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
