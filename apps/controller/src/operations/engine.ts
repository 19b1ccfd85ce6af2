/**
 * Bulk operations: create (selector → targets, persisted before anything runs), run (one
 * OperationRunner each), cancel, and resume after a controller restart. Progress goes out as
 * events (`operation.created`, `operation.progress` at most every PROGRESS_MS,
 * `operation.target_failed`, `operation.finished`), so `GET /v1/events` streams it.
 *
 * Across replicas the engine runs on the holder of the `operations` lease (cluster/leases.ts):
 * `start()` when it takes the lease (resuming what the tables say is running, as after a
 * restart), `pause()` when it loses it (runners stop without finishing their targets, for the
 * next holder to resume). An operation created or cancelled on another replica is found by
 * `sync()`, every `syncMs` while running here (and on a signal from that replica).
 *
 * Password rotation: a new password is generated per target and only its argon2 hash is
 * stored (with the target) and sent; the plaintexts exist only in the create call's answer.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { CertificatePin } from "@nbfleet/shared/certificate-pin";
import type { ArtifactCatalog } from "../artifacts/catalog.js";
import type { ClusterClock } from "../cluster/cluster-clock.js";
import { NbfError } from "../errors.js";
import { generatePassword, hashNotebookPassword } from "../fleet/password.js";
import type { CommandRecord } from "../store/commands-repo.js";
import { newId } from "../store/ids.js";
import {
  type NewTarget,
  OperationTargetsRepo,
  TARGET_STATES,
  type TargetRecord,
  type TargetState,
} from "../store/operation-targets-repo.js";
import type { OperationRecord, OperationState } from "../store/operations-repo.js";
import { type OperationAction, allowsRolling, commandOf } from "./actions.js";
import type { CommandWatch, TargetPlan, UpgradePlan } from "./execute-target.js";
import { HealthWatch } from "./health-watch.js";
import { type Limit, resolveConcurrency, resolveMaxErrors } from "./limits.js";
import { OperationRunner, type StopReason } from "./runner.js";
import { type Selector, describeSelector, resolveSelector } from "./selector.js";
import type { FleetServices } from "./services.js";
import { type TrustCatchUp, recordTrustSet } from "./trust-catch-up.js";
import { trustPlan } from "./trust-plan.js";
import { upgradePlan } from "./upgrade-plan.js";
import { UpgradeWatch } from "./upgrade-watch.js";

const PROGRESS_MS = 500;
/** How soon an operation whose runner left targets not done (a store error) runs again. */
const RESUME_AFTER_MS = 1000;
/** Password hashes made at once (argon2 runs on the libuv pool). */
const HASH_PARALLELISM = 4;

export interface CreateOperationInput {
  action: OperationAction;
  selector: Selector;
  maxConcurrency?: Limit;
  maxErrors?: Limit;
  rolling?: { enabled: boolean; healthTimeoutSec?: number };
  /**
   * notebook.certificate: extra names and addresses for the new certificate; agent.upgrade: the
   * version to install (from the artifact catalog) and the guest's rollback timeout;
   * controller.trust: every controller certificate (PEM) the agents are to trust.
   */
  params?: {
    hostnames?: string[];
    ips?: string[];
    version?: string;
    timeoutSec?: number;
    certificates?: string[];
  };
  /** agent.upgrade: the first N targets go alone and must stay healthy canarySoakSec first. */
  canary?: number;
  canarySoakSec?: number;
  commandTtlSec?: number;
  commandTimeoutSec?: number;
  ifOffline?: "queue" | "fail";
}

/** What the operation was asked for, stored as the operation's params. */
export interface OperationSpec {
  maxConcurrency: Limit;
  maxErrors: Limit;
  rolling: { enabled: boolean; healthTimeoutSec: number };
  commandParams: Record<string, unknown>;
  commandTtlSec: number;
  commandTimeoutSec: number;
  ifOffline: "queue" | "fail";
  total: number;
  /** agent.upgrade only. */
  upgrade?: UpgradePlan;
}

export interface OperationsEngineOptions extends FleetServices {
  /** The time stored for replicas to compare (cluster-clock.ts). */
  clock: ClusterClock;
  commandTtlSec: number;
  commandTimeoutSec: number;
  /** While running here, look for operations created or cancelled elsewhere this often (PostgreSQL). */
  syncMs?: number;
  /** The agent versions agent.upgrade can install. */
  artifacts?: ArtifactCatalog;
  /** agent.upgrade's params.timeoutSec when the operation names none (NBFLEET_UPGRADE_TIMEOUT_SEC). */
  upgradeTimeoutSec?: number;
  /** The served certificate when guests pin it (no CA): controller.trust must keep it trusted. */
  guestPin?: CertificatePin | null;
  /** Told when a controller.trust makes another set the one in effect. */
  trustSets?: Pick<TrustCatchUp, "forget">;
}

export const DEFAULTS = { maxConcurrency: "10%", maxErrors: 0, healthTimeoutSec: 300 } as const;

export class OperationsEngine {
  readonly targets: OperationTargetsRepo;
  private readonly runners = new Map<string, { runner: OperationRunner; done: Promise<void> }>();
  private readonly commandWatchers = new Map<string, (command: CommandRecord | null) => void>();
  private readonly progressTimers = new Map<string, NodeJS.Timeout>();
  private readonly health: HealthWatch;
  private readonly upgrades: UpgradeWatch;
  private artifacts: ArtifactCatalog | undefined;
  private closing = false;
  /** This replica runs operations (it holds their lease). */
  private active = false;
  private readonly launching = new Set<string>();
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | null = null;

  constructor(private readonly options: OperationsEngineOptions) {
    this.targets = new OperationTargetsRepo(options.store.db);
    this.health = new HealthWatch(options.gateway, options.signals);
    this.artifacts = options.artifacts;
    this.upgrades = new UpgradeWatch({
      store: options.store,
      gateway: options.gateway,
      bus: options.bus,
      log: options.log,
      clustered: options.signals?.clustered ?? false,
      clock: this.options.clock,
    });
  }

  /**
   * Starts running operations here: resumes those the tables say are running (left by a
   * previous process, or by the replica that held the lease before; `why` says which).
   */
  async start(why = "after a controller restart"): Promise<void> {
    if (this.closing || this.active) return;
    this.active = true;
    for (const operation of await this.options.store.operations.listByState(["pending", "running"])) {
      if (!this.active) return;
      if (this.runners.has(operation.id)) continue;
      this.options.bus.emit({
        vmName: null,
        kind: "operation.resumed",
        message: `operation ${operation.id} (${operation.kind}) resumed ${why}`,
        data: { operationId: operation.id },
      });
      await this.launch(operation);
    }
    if (this.options.syncMs && this.active && !this.syncTimer) {
      this.syncTimer = setInterval(() => void this.sync(), this.options.syncMs);
      this.syncTimer.unref();
    }
  }

  /**
   * Stops running operations here (the lease went to another replica): runners stop without
   * finishing their targets, which the next holder resumes from their commands.
   */
  async pause(): Promise<void> {
    this.active = false;
    clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    await this.stopRunners();
  }

  /**
   * Picks up what other replicas changed: operations created there are launched here, cancels
   * requested there stop their runner. Does nothing unless operations run here.
   */
  sync(): Promise<void> {
    if (!this.active) return Promise.resolve();
    this.syncing ??= this.syncOnce()
      .catch((error) => this.options.log.error({ err: error }, "looking for operations failed"))
      .finally(() => {
        this.syncing = null;
      });
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    for (const operation of await this.options.store.operations.listByState(["pending", "running"])) {
      if (!this.active) return;
      const runner = this.runners.get(operation.id)?.runner;
      if (!runner) await this.launch(operation);
      else if (operation.cancelRequestedAt && runner.stopReason === null) {
        runner.cancel();
        if (runner.stopReason === "cancel") await runner.closePending();
      }
    }
  }

  async create(
    input: CreateOperationInput,
    createdBy: string | null,
  ): Promise<{ operation: OperationRecord; passwords: Record<string, string> | null }> {
    const { store, bus } = this.options;
    const rolling = {
      enabled: input.rolling?.enabled ?? false,
      healthTimeoutSec: input.rolling?.healthTimeoutSec ?? DEFAULTS.healthTimeoutSec,
    };
    if (rolling.enabled && !allowsRolling(input.action)) {
      throw new NbfError("NBF_OPERATION_INVALID", {
        problem: `${input.action} leaves the notebook down, so a rolling health gate can never pass; omit rolling`,
      });
    }
    rejectForeignFields(input);
    const upgrade =
      input.action === "agent.upgrade"
        ? await upgradePlan(input, this.artifacts, this.options.upgradeTimeoutSec)
        : null;
    const trust =
      input.action === "controller.trust" ? trustPlan(input, this.options.guestPin ?? null) : null;
    const names = await resolveSelector(store, input.selector);
    if (names.length === 0)
      throw new NbfError("NBF_OPERATION_NO_TARGETS", { selector: describeSelector(input.selector) });
    const spec: OperationSpec = {
      maxConcurrency: input.maxConcurrency ?? DEFAULTS.maxConcurrency,
      maxErrors: input.maxErrors ?? DEFAULTS.maxErrors,
      rolling,
      commandParams: upgrade?.commandParams ?? trust ?? input.params ?? {},
      commandTtlSec: input.commandTtlSec ?? this.options.commandTtlSec,
      commandTimeoutSec: input.commandTimeoutSec ?? this.options.commandTimeoutSec,
      ifOffline: input.ifOffline ?? "queue",
      total: names.length,
      ...(upgrade ? { upgrade: upgrade.plan } : {}),
    };
    const maxConcurrency = resolveConcurrency(spec.maxConcurrency, names.length);
    const maxErrors = resolveMaxErrors(spec.maxErrors, names.length);

    const id = newId("op");
    const passwords = input.action === "notebook.password" ? await newPasswords(names) : null;
    const rows: NewTarget[] = names.map((vmName, seq) => ({
      operationId: id,
      seq,
      vmName,
      params: passwords ? { hash: passwords.hashes.get(vmName)! } : null,
    }));
    const now = new Date(this.options.clock.now()).toISOString();
    await store.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("operations")
        .values({
          id,
          kind: input.action,
          selector: JSON.stringify(input.selector),
          params: JSON.stringify(spec),
          state: "running",
          max_concurrency: maxConcurrency,
          max_errors: maxErrors,
          summary: JSON.stringify(countsOf({ pending: names.length })),
          created_at: now,
          updated_at: now,
          finished_at: null,
          reason: null,
          cancel_requested_at: null,
          created_by: createdBy,
        })
        .execute();
      await new OperationTargetsRepo(trx).insertMany(rows);
      if (trust) await recordTrustSet(trx, trust.pins, id);
    });
    if (trust) this.options.trustSets?.forget();
    // The replica that runs operations (see the operations lease) picks it up at once.
    this.options.signals?.send("operation.created", [id]);
    const operation = (await store.operations.get(id))!;
    bus.emit({
      vmName: null,
      kind: "operation.created",
      message: `operation ${id}: ${input.action} on ${names.length} VM(s) (${describeSelector(input.selector)}), ${maxConcurrency} at a time, up to ${maxErrors} error(s)${rolling.enabled ? ", rolling" : ""}`,
      data: {
        operationId: id,
        action: input.action,
        total: names.length,
        maxConcurrency,
        maxErrors,
        createdBy,
      },
    });
    // Just stored, every target pending: no need to count them back. Run here only if
    // operations run here; otherwise the lease holder finds it (sync).
    if (this.active) await this.launch(operation, countsOf({ pending: names.length }));
    return { operation, passwords: passwords ? Object.fromEntries(passwords.plain) : null };
  }

  /** The artifact catalog agent.upgrade installs from (the catalog may be built after the engine). */
  useArtifacts(artifacts: ArtifactCatalog): void {
    this.artifacts = artifacts;
  }

  async require(id: string): Promise<OperationRecord> {
    const operation = await this.options.store.operations.get(id);
    if (!operation) throw new NbfError("NBF_OPERATION_NOT_FOUND", { id });
    return operation;
  }

  /**
   * Target counts without counting rows where that can be helped: the operation's own tally when
   * it runs here; the summary its runner stores when it runs on another replica (at most
   * PROGRESS_MS old) or has finished (written with its final state). Counting 30,000 targets
   * takes PostgreSQL ~10 ms, and clients poll a running operation.
   */
  async counts(
    idOrOperation: string | OperationRecord,
    options: { exact?: boolean } = {},
  ): Promise<Record<TargetState, number>> {
    const operation =
      typeof idOrOperation === "string"
        ? await this.options.store.operations.get(idOrOperation)
        : idOrOperation;
    const id = typeof idOrOperation === "string" ? idOrOperation : idOrOperation.id;
    const runner = this.runners.get(id)?.runner;
    if (runner) return { ...runner.counts };
    const stored = operation && !options.exact ? storedCounts(operation) : null;
    return stored ?? this.targets.counts(id);
  }

  /** Stops starting targets; pending ones become `cancelled`, running ones finish. */
  async cancel(id: string): Promise<OperationRecord> {
    const operation = await this.require(id);
    if (!(await this.options.store.operations.requestCancel(id))) {
      throw new NbfError("NBF_OPERATION_FINISHED", { id, state: operation.state });
    }
    // The operation may run on another replica: that one stops it.
    this.options.signals?.send("operation.cancel", [id]);
    await this.stopCancelled(id);
    this.options.bus.emit({
      vmName: null,
      kind: "operation.cancel_requested",
      level: "warn",
      message: `operation ${id}: cancel requested; no new target starts, running ones finish`,
      data: { operationId: id },
    });
    return this.require(id);
  }

  /** A cancel was requested (here or on another replica): the runner here, if any, stops starting targets. */
  async stopCancelled(id: string): Promise<void> {
    const active = this.runners.get(id);
    if (!active) return;
    active.runner.cancel();
    if (active.runner.stopReason === "cancel") await active.runner.closePending();
  }

  /** The ids of the operations running in this process. */
  runningIds(): string[] {
    return [...this.runners.keys()];
  }

  /** Stops every runner without finishing its targets: they resume at the next start. */
  async close(): Promise<void> {
    this.closing = true;
    await this.pause();
    this.health.close();
    this.upgrades.close();
  }

  private async stopRunners(): Promise<void> {
    for (const { runner } of this.runners.values()) runner.shutdown();
    for (const settle of [...this.commandWatchers.values()]) settle(null);
    // Health gates under way end too; the targets stay running for the next start to resume.
    this.health.releaseAll();
    this.upgrades.releaseAll();
    const all = Promise.all([...this.runners.values()].map((r) => r.done));
    await Promise.race([all, sleep(5000, undefined, { ref: false })]);
    for (const timer of this.progressTimers.values()) clearTimeout(timer);
    this.progressTimers.clear();
  }

  /** The runner of an operation in this process, if it runs here. */
  runner(id: string): OperationRunner | undefined {
    return this.runners.get(id)?.runner;
  }

  private async launch(operation: OperationRecord, counts?: Record<TargetState, number>): Promise<void> {
    if (this.runners.has(operation.id) || this.launching.has(operation.id) || this.closing) return;
    this.launching.add(operation.id);
    try {
      await this.launchNow(operation, counts);
    } finally {
      this.launching.delete(operation.id);
    }
  }

  private async launchNow(operation: OperationRecord, counts?: Record<TargetState, number>): Promise<void> {
    const spec = operation.params as OperationSpec;
    const plan: TargetPlan & { maxConcurrency: number; maxErrors: number } = {
      operationId: operation.id,
      action: operation.kind as OperationAction,
      commandParams: spec.commandParams ?? {},
      commandTtlSec: spec.commandTtlSec,
      commandTimeoutSec: spec.commandTimeoutSec,
      ifOffline: spec.ifOffline ?? "queue",
      rolling: spec.rolling,
      ...(spec.upgrade ? { upgrade: spec.upgrade } : {}),
      maxConcurrency: operation.maxConcurrency,
      maxErrors: operation.maxErrors,
    };
    if (!commandOf(plan.action) && !plan.action.startsWith("vm.")) {
      throw new NbfError("NBF_INTERNAL", {
        reason: `operation ${operation.id} has unknown action ${plan.action}`,
      });
    }
    const runner = new OperationRunner(
      operation,
      plan,
      this.targets,
      {
        store: this.options.store,
        commands: this.options.commands,
        vms: this.options.vms,
        health: this.health,
        upgrades: this.upgrades,
        clock: this.options.clock,
        watchCommand: (commandId) => this.watchCommand(commandId),
      },
      {
        progress: (r) => this.scheduleProgress(r),
        targetFailed: (r, target, error) => this.targetFailed(r, target, error),
        log: (error, message) => this.options.log.error({ err: error }, message),
      },
      counts ?? (await this.targets.counts(operation.id)),
    );
    if (!this.active || this.closing) return;
    const done = runner
      .run()
      .then((stop) => this.finish(runner, stop))
      .catch((error) => this.options.log.error({ err: error, operation: operation.id }, "operation failed"))
      .finally(() => this.runners.delete(operation.id));
    this.runners.set(operation.id, { runner, done });
  }

  private watchCommand(commandId: string): CommandWatch {
    let settle: (command: CommandRecord | null) => void = () => {};
    let unwatch = () => {};
    const promise = new Promise<CommandRecord | null>((resolve) => {
      settle = (command) => {
        unwatch();
        if (this.commandWatchers.get(commandId) === settle) this.commandWatchers.delete(commandId);
        resolve(command);
      };
      this.commandWatchers.set(commandId, settle);
    });
    unwatch = this.options.commands.watch(commandId, settle);
    return { promise, cancel: () => settle(null) };
  }

  /** Runs the operation again once its runner is gone (unless it ended, or runs elsewhere now). */
  private resumeLater(operationId: string): void {
    const timer = setTimeout(() => {
      void (async () => {
        const operation = await this.options.store.operations.get(operationId);
        if (operation && (operation.state === "pending" || operation.state === "running")) {
          await this.launch(operation);
        }
      })().catch((error: unknown) =>
        this.options.log.error({ err: error, operation: operationId }, "resuming an operation failed"),
      );
    }, RESUME_AFTER_MS);
    timer.unref();
  }

  private async finish(runner: OperationRunner, stop: StopReason | null): Promise<void> {
    if (stop === "shutdown" || this.closing) return;
    const { store, bus } = this.options;
    const { operation } = runner;
    const skipped = await runner.closePending();
    const counts = await this.targets.counts(operation.id);
    if (stop === null && counts.pending + counts.running > 0) {
      // A start that failed (a store error: its targets stayed pending) or one whose commit was
      // never heard of (running, followed by nobody) must not end as "succeeded": the
      // operation runs again, as after a restart, and finishes its targets then.
      this.options.log.warn(
        { operation: operation.id, pending: counts.pending, running: counts.running },
        "operation ended with targets not done; resuming it",
      );
      this.resumeLater(operation.id);
      return;
    }
    const cancelled = stop === "cancel";
    const state: OperationState = cancelled ? "cancelled" : counts.failed > 0 ? "failed" : "succeeded";
    const reason = cancelled
      ? `cancelled: ${counts.cancelled} target(s) not started`
      : stop === "canary"
        ? `canary failed: ${counts.failed} target(s) failed; ${skipped} target(s) not started`
        : stop === "errors"
          ? `error budget exceeded: ${counts.failed} failure(s) > maxErrors ${operation.maxErrors}; ${skipped} target(s) skipped`
          : counts.failed > 0
            ? `${counts.failed} target(s) failed (within maxErrors ${operation.maxErrors})`
            : null;
    const now = new Date(this.options.clock.now()).toISOString();
    const timer = this.progressTimers.get(operation.id);
    if (timer) clearTimeout(timer);
    this.progressTimers.delete(operation.id);
    await store.operations.update(operation.id, { state, summary: counts, finishedAt: now, reason }, now);
    bus.emit({
      vmName: null,
      kind: "operation.finished",
      level: state === "succeeded" ? "info" : state === "cancelled" ? "warn" : "error",
      message: `operation ${operation.id} (${operation.kind}) ${state}: ${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.skipped} skipped, ${counts.cancelled} cancelled${reason ? ` — ${reason}` : ""}`,
      data: { operationId: operation.id, state, counts, reason },
    });
  }

  private targetFailed(
    runner: OperationRunner,
    target: TargetRecord,
    error: { code: string; message: string },
  ): void {
    this.options.bus.emit({
      vmName: target.vmName,
      kind: "operation.target_failed",
      level: "error",
      message: `operation ${runner.operation.id} (${runner.operation.kind}) failed on ${target.vmName}: ${error.code} ${error.message}`,
      data: { operationId: runner.operation.id, seq: target.seq, error },
    });
  }

  /** At most one progress event (and summary write) per PROGRESS_MS per operation. */
  private scheduleProgress(runner: OperationRunner): void {
    const id = runner.operation.id;
    if (this.progressTimers.has(id) || this.closing) return;
    const timer = setTimeout(() => {
      this.progressTimers.delete(id);
      if (this.closing || !this.runners.has(id)) return;
      const counts = { ...runner.counts };
      this.options.bus.emit({
        vmName: null,
        kind: "operation.progress",
        message: `operation ${id}: ${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.running} running, ${counts.pending} pending`,
        data: { operationId: id, counts, budgetExceededAt: runner.budgetExceededAt },
      });
      this.options.store.operations
        .update(id, { summary: counts })
        .catch((error) => this.options.log.error({ err: error }, "writing operation progress failed"));
    }, PROGRESS_MS);
    timer.unref();
    this.progressTimers.set(id, timer);
  }
}

/** The action each field of params belongs to. */
const PARAM_ACTION: Record<keyof NonNullable<CreateOperationInput["params"]>, OperationAction> = {
  hostnames: "notebook.certificate",
  ips: "notebook.certificate",
  version: "agent.upgrade",
  timeoutSec: "agent.upgrade",
  certificates: "controller.trust",
};

/** Fields given to an action they are not for: refused, naming them. */
function rejectForeignFields(input: CreateOperationInput): void {
  const problems: string[] = [];
  if (input.action !== "agent.upgrade" && (input.canary !== undefined || input.canarySoakSec !== undefined))
    problems.push(`canary and canarySoakSec are only for agent.upgrade, not ${input.action}`);
  const owners = new Set(Object.values(PARAM_ACTION));
  if (input.params && !owners.has(input.action))
    problems.push(`params are only for ${[...owners].join(", ")}, not ${input.action}`);
  else
    for (const key of Object.keys(input.params ?? {}) as Array<keyof typeof PARAM_ACTION>)
      if (PARAM_ACTION[key] !== input.action) problems.push(`params.${key} is only for ${PARAM_ACTION[key]}`);
  if (problems.length > 0) throw new NbfError("NBF_OPERATION_INVALID", { problem: problems.join("; ") });
}

function countsOf(partial: Partial<Record<TargetState, number>>): Record<TargetState, number> {
  return { pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0, ...partial };
}

async function newPasswords(
  names: string[],
): Promise<{ plain: Map<string, string>; hashes: Map<string, string> }> {
  const plain = new Map<string, string>();
  const hashes = new Map<string, string>();
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++]!;
      const password = generatePassword();
      plain.set(name, password);
      hashes.set(name, await hashNotebookPassword(password));
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_PARALLELISM, names.length) }, worker));
  // In name order, as the targets are.
  return { plain: new Map(names.map((n) => [n, plain.get(n)!])), hashes };
}

/** The counts an operation's runner stored with it; null when it stored none (yet). */
export function storedCounts(operation: OperationRecord): Record<TargetState, number> | null {
  const stored = operation.summary;
  if (stored === null || typeof stored !== "object") return null;
  const counts = stored as Partial<Record<TargetState, unknown>>;
  return Object.fromEntries(
    TARGET_STATES.map((state) => {
      const n = counts[state];
      return [state, typeof n === "number" && Number.isFinite(n) ? n : 0];
    }),
  ) as Record<TargetState, number>;
}
