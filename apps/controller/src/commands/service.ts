/**
 * Commands to agents, persisted with their lifecycle (queued → sent → acked → succeeded |
 * failed | timed_out, or queued|sent → expired). A command is sent at once when its agent is
 * connected, otherwise when the agent (re)connects, until its TTL runs out; an acknowledged
 * command without a result past its timeout is timed out. Repeated acks and results are
 * ignored (the first result wins), and only the VM a command belongs to can answer it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  type CommandError,
  CommandMessage,
  type CommandName,
  PROTOCOL_VERSION,
  type ResultMessage,
  compileValidator,
} from "@nbfleet/shared";
import type { Kysely } from "kysely";
import type { ClusterClock } from "../cluster/cluster-clock.js";
import {
  claimQueued,
  commandsByIds,
  connectedAmong,
  requeueSent,
  strandedQueued,
} from "../cluster/command-rows.js";
import type { Signals } from "../cluster/signals.js";
import { NbfError } from "../errors.js";
import type { EventBus } from "../events/bus.js";
import type { Metrics } from "../metrics/metrics.js";
import { type CommandRecord, CommandsRepo, TERMINAL_STATES } from "../store/commands-repo.js";
import { newId } from "../store/ids.js";
import { mayPassOnRetry } from "../store/postgres-errors.js";
import type { Database } from "../store/schema.js";
import type { Store } from "../store/store.js";
import { TurnBatch, batchedLookup } from "../store/turn-batch.js";

const commandValidator = compileValidator(CommandMessage, "command");

type Outcome = { state: "succeeded" | "failed"; result?: unknown; error?: CommandError };
/** How long a reconnected agent has to deliver its buffered results before commands are resent. */
const REDELIVER_GRACE_MS = 2000;
const MAX_REMEMBERED_TIMEOUTS = 100_000;

interface SentOn {
  vmName: string;
  timeoutMs: number;
  connection: number | undefined;
}
/**
 * How long a result whose write failed for a reason that may pass (a deadlock, the database
 * away) is tried again: the agent sent it once, and sends it again only on its next connection.
 */
const RESULT_RETRY_MS = 30_000;
const ACK_HOLD_MS = 1000;
/**
 * A connected agent's queued command is claimed within milliseconds; one queued this long lost
 * its routing (the replica that committed it died before its signal left), and the sweep, at
 * most this often, routes it again.
 */
const STRANDED_AFTER_MS = 5000;

interface HeldAck {
  commandId: string;
  vmName: string;
  at: number;
}

/**
 * Held acks are keyed by machine too: an agent may name any command id (bulk ids are
 * predictable), and its ack must never replace the one the command's own machine sent.
 * VM names cannot hold a space, so the key is unambiguous.
 */
const heldAckKey = (vmName: string, commandId: string) => `${vmName} ${commandId}`;

/** How commands reach agents; the gateway implements it. */
export interface CommandLink {
  isConnected(vmName: string): boolean;
  send(vmName: string, message: CommandMessage): boolean;
  /** Which connection of the VM's agent is current (a command sent on it is not sent again). */
  connectionOf(vmName: string): number | undefined;
}

export interface EnqueueRequest {
  /** A caller-chosen id (e.g. derived from a bulk operation's target, so a retry finds it); generated when absent. */
  id?: string;
  vmName: string;
  name: CommandName;
  params?: Record<string, unknown>;
  ttlSec?: number;
  timeoutSec?: number;
  operationId?: string | null;
  /** `fail` refuses with NBF_AGENT_OFFLINE instead of queueing for an offline agent. */
  ifOffline?: "queue" | "fail";
}

export type EnqueueOutcome = { ok: true; value: EnqueueResult } | { ok: false; error: unknown };

export interface EnqueueOptions {
  /** Emit `command.queued` for each (default true; a bulk operation announces itself). */
  announce?: boolean;
}

export interface EnqueueResult {
  command: CommandRecord;
  /** Whether the agent was connected and the command went out at once. */
  delivered: boolean;
}

export interface CommandServiceOptions {
  store: Store;
  bus: EventBus;
  metrics: Metrics;
  ttlSec: number;
  timeoutSec: number;
  sweepMs: number;
  onError: (error: unknown) => void;
  /** Other replicas: queued commands for agents held elsewhere and finished ones are signalled. */
  signals?: Signals;
  /**
   * The times commands store and the sweeps compare (sent, acknowledged, timed out, expired):
   * with replicas, the cluster's clock (cluster-clock.ts), as one replica stores what another sweeps.
   */
  clock: ClusterClock;
}

/** The command's frame as it goes out `now` (its time left is counted at each send). */
function toMessage(command: CommandRecord, now: number): CommandMessage {
  const deadline = Date.parse(command.expiresAt);
  return {
    v: PROTOCOL_VERSION,
    id: command.id,
    type: "command",
    name: command.name,
    params: command.params,
    deadline,
    ttlMs: Math.max(0, deadline - now),
  } as CommandMessage;
}

export function isTerminal(command: CommandRecord): boolean {
  return TERMINAL_STATES.includes(command.state);
}

export class CommandService {
  private link: CommandLink | undefined;
  private readonly waiters = new Map<string, Set<(command: CommandRecord) => void>>();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping = false;
  private strandedCheckedAt = 0;
  /**
   * Acks wait here up to ACK_HOLD_MS and are then written together; a result that comes first
   * carries its ack time into the one write that finishes the command. A crash before the write
   * loses nothing: the command is still `sent` and is delivered again, the agent de-duplicating.
   */
  private readonly heldAcks = new Map<string, HeldAck>();
  private ackTimer: NodeJS.Timeout | undefined;
  /** Results arrive by the thousand during bulk operations: each turn's go in one commit. */
  private readonly results = new TurnBatch(
    (items: Array<{ vmName: string; commandId: string; outcome: Outcome; at: Date }>) =>
      this.storeResults(items),
  );
  /** Commands marked sent whose frame could not go out (the agent had gone): see requeue. */
  private readonly unsent = new TurnBatch(async (commands: CommandRecord[]) => {
    await this.requeue(commands);
    return commands.map(() => undefined);
  });
  /** What a welcomed agent is owed, read for all agents welcomed in one turn together. */
  private readonly deliverableOf = batchedLookup((vmNames: string[]) =>
    this.options.store.commands.deliverableFor(vmNames, new Date(this.now()).toISOString()),
  );
  private readonly earliestAckedOf = batchedLookup((vmNames: string[]) =>
    this.options.store.commands.earliestAckedFor(vmNames),
  );
  /**
   * Commands sent and not yet acknowledged: their timeout, and the connection they went out on
   * (bounded: a sweep forgets the old ones).
   */
  private readonly sentTimeouts = new Map<string, SentOn>();
  /**
   * Acknowledged commands already sent again once after a reconnection (bounded like
   * sentTimeouts: once cleared, a command may be sent again, which the agent answers from memory).
   */
  private readonly redelivered = new Set<string>();

  constructor(private readonly options: CommandServiceOptions) {}

  private now(): number {
    return this.options.clock.now();
  }

  attach(link: CommandLink): void {
    this.link = link;
  }

  start(): void {
    this.sweeper ??= setInterval(() => void this.sweep(), this.options.sweepMs);
    this.sweeper.unref();
  }

  /** Stops the expiry and timeout sweeps (another replica holds their lease now). */
  stopSweeping(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Stops sweeping and writes the acks still held. */
  async stop(): Promise<void> {
    this.stopSweeping();
    await this.writeHeldAcks();
  }

  async enqueue(request: EnqueueRequest): Promise<EnqueueResult> {
    const connected = this.link?.isConnected(request.vmName) ?? false;
    if (
      !connected &&
      request.ifOffline === "fail" &&
      !(await this.heldElsewhere([request])).has(request.vmName)
    ) {
      const vm = await this.options.store.vms.require(request.vmName);
      throw new NbfError("NBF_AGENT_OFFLINE", { name: vm.name, lastSeenAt: vm.status.lastSeenAt ?? "never" });
    }
    // One path for one command and for thousands: stored as `sent` when its agent is connected.
    const [outcome] = await this.enqueueMany([request]);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.value;
  }

  /**
   * Queues many commands in one commit (bulk operations): commands for connected agents
   * are stored as `sent` and go out right after the commit, the others wait for their agent.
   * Each request succeeds or fails on its own (a bad request or an offline agent with
   * `ifOffline: "fail"`); an id that exists already fails as a unique violation for the caller.
   */
  async enqueueMany(requests: EnqueueRequest[], options: EnqueueOptions = {}): Promise<EnqueueOutcome[]> {
    const queued = await this.enqueueManyIn(this.options.store.db, requests, options);
    queued.dispatch();
    return queued.outcomes;
  }

  /**
   * enqueueMany on `db`: the caller's transaction (so a bulk operation marks its targets
   * running and stores their commands in one commit) or the store itself. Nothing is sent until
   * the caller has committed and calls `dispatch`.
   */
  async enqueueManyIn(
    db: Kysely<Database>,
    requests: EnqueueRequest[],
    options: EnqueueOptions = {},
  ): Promise<{ outcomes: EnqueueOutcome[]; dispatch(): void }> {
    const now = new Date(this.now());
    const at = now.toISOString();
    const out: EnqueueOutcome[] = [];
    const rows: Array<Parameters<Store["commands"]["insertMany"]>[0][number]> = [];
    const slots: number[] = [];
    const elsewhere = await this.heldElsewhere(requests, db);
    for (const request of requests) {
      const connected = this.link?.isConnected(request.vmName) ?? false;
      const id = request.id ?? newId("cmd");
      const params = request.params ?? {};
      const message = { v: PROTOCOL_VERSION, id, type: "command", name: request.name, params };
      if (!connected && request.ifOffline === "fail" && !elsewhere.has(request.vmName)) {
        out.push({
          ok: false,
          error: new NbfError("NBF_AGENT_OFFLINE", { name: request.vmName, lastSeenAt: "unknown" }),
        });
        continue;
      }
      if (!commandValidator.is(message)) {
        out.push({
          ok: false,
          error: new NbfError("NBF_INVALID_BODY", {
            problems: commandValidator.problems(message).join("; "),
          }),
        });
        continue;
      }
      slots.push(out.length);
      out.push({ ok: false, error: null });
      rows.push({
        id,
        vmName: request.vmName,
        name: request.name,
        params,
        createdAt: at,
        expiresAt: new Date(now.getTime() + (request.ttlSec ?? this.options.ttlSec) * 1000).toISOString(),
        timeoutMs: Math.round((request.timeoutSec ?? this.options.timeoutSec) * 1000),
        operationId: request.operationId ?? null,
        sentAt: connected ? at : null,
      });
    }
    let records: CommandRecord[] = [];
    if (rows.length > 0) {
      try {
        records = await new CommandsRepo(db).insertMany(rows);
      } catch (error) {
        for (const slot of slots) out[slot] = { ok: false, error };
      }
    }
    records.forEach((command, i) => {
      out[slots[i]!] = { ok: true, value: { command, delivered: false } };
    });
    const dispatch = () => {
      // Stored `queued` because their agent was not connected when this transaction looked. An
      // agent welcomed here since then may have read its queue before this commit (its read
      // cannot see these rows): it is connected now, so it is claimed and sent from here.
      this.routeQueued(records);
      records.forEach((command, i) => {
        const outcome = out[slots[i]!] as { ok: true; value: EnqueueResult };
        outcome.value.delivered = command.state === "sent" && this.sendRemembering(command);
        // A bulk operation announces its targets itself (operation.created) and reports their ends.
        if (options.announce !== false)
          this.options.bus.emit({
            vmName: command.vmName,
            kind: "command.queued",
            message: `${command.name} queued as ${command.id}${command.state === "sent" ? "" : " (agent offline)"}`,
            data: { commandId: command.id, name: command.name },
          });
      });
    };
    return { outcomes: out, dispatch };
  }

  /**
   * Commands stored `queued`: claimed and sent from here when this replica holds their agent;
   * for the others, their holder (another replica) claims and sends them on the signal. A claim
   * is conditional, so routing a command twice sends it once.
   */
  routeQueued(commands: readonly CommandRecord[]): void {
    const here: string[] = [];
    const elsewhere: string[] = [];
    for (const command of commands) {
      if (command.state !== "queued") continue;
      (this.link?.isConnected(command.vmName) ? here : elsewhere).push(queuedSignalId(command));
    }
    if (elsewhere.length > 0) this.options.signals?.send("command.queued", elsewhere);
    if (here.length > 0) this.deliverQueued(here).catch((error) => this.options.onError(error));
  }

  isConnected(vmName: string): boolean {
    return this.link?.isConnected(vmName) ?? false;
  }

  listForVm(vmName: string, limit: number): Promise<CommandRecord[]> {
    return this.options.store.commands.listForVm(vmName, limit);
  }

  get(id: string): Promise<CommandRecord | undefined> {
    return this.options.store.commands.get(id);
  }

  /** Resolves with the command once it is finished, or as it is after `timeoutMs`. */
  async waitFor(id: string, timeoutMs: number): Promise<CommandRecord | undefined> {
    if (timeoutMs <= 0) return this.get(id);
    // Watching before reading: a command that finishes in between is not missed.
    let unwatch = () => {};
    const finished = new Promise<CommandRecord>((resolve) => {
      unwatch = this.watch(id, resolve);
    });
    const current = await this.get(id);
    if (!current || isTerminal(current)) {
      unwatch();
      return current;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const command = await Promise.race([finished, timedOut]);
    clearTimeout(timer);
    unwatch();
    return command ?? (await this.get(id));
  }

  /** Calls `onFinished` once the command reaches a final state (unless unwatched first). */
  watch(id: string, onFinished: (command: CommandRecord) => void): () => void {
    const waiters = this.waiters.get(id) ?? new Set();
    this.waiters.set(id, waiters);
    const done = (command: CommandRecord) => {
      unwatch();
      onFinished(command);
    };
    const unwatch = () => {
      waiters.delete(done);
      if (waiters.size === 0 && this.waiters.get(id) === waiters) this.waiters.delete(id);
    };
    waiters.add(done);
    return unwatch;
  }

  /** The agent of `vmName` is connected and welcomed: send what waits for it. */
  async onAgentReady(vmName: string): Promise<void> {
    const pending = (await this.deliverableOf(vmName)) ?? [];
    for (const command of pending) await this.deliver(command);
    // A result the agent sent while the previous controller process was dying is lost, and so
    // is one whose write failed for good (the gateway then ended the connection). The agent
    // sends the results it could not deliver right after its welcome; a command still without
    // one after REDELIVER_GRACE_MS is sent once more. The agent de-duplicates by id and answers
    // with the outcome it remembers (or the run in progress), so nothing runs twice. With
    // replicas, the agent may come from a replica that died.
    const before = new Date(this.now()).toISOString();
    const earliestAcked = await this.earliestAckedOf(vmName);
    if (earliestAcked === undefined || earliestAcked >= before) return;
    setTimeout(() => void this.redeliver(vmName, before), REDELIVER_GRACE_MS).unref();
  }

  /**
   * Another replica queued these commands (ids from a signal): the ones for agents held here
   * are claimed (queued → sent, so only one replica sends each) and sent.
   */
  async deliverQueued(ids: readonly string[]): Promise<void> {
    const link = this.link;
    if (!link || ids.length === 0) return;
    const { db } = this.options.store;
    // Addressed ids name their VM: only the replica holding its agent claims them, and without
    // reading the rows first (the claim is the guard). Bare ids (a resync) are read first.
    const addressed: string[] = [];
    const bare: string[] = [];
    for (const entry of ids) {
      const parsed = parseQueuedSignalId(entry);
      if (!parsed) bare.push(entry);
      else if (link.isConnected(parsed.vmName)) addressed.push(parsed.id);
    }
    const mine = [
      ...addressed,
      ...(bare.length === 0 ? [] : await commandsByIds(db, bare))
        .filter((command) => command.state === "queued" && link.isConnected(command.vmName))
        .map((command) => command.id),
    ];
    if (mine.length === 0) return;
    for (const command of await claimQueued(db, mine, new Date(this.now()).toISOString()))
      this.sendRemembering(command);
  }

  /**
   * Commands finished on another replica (ids from a signal; every waited one when omitted,
   * after missed signals): waiters here get the stored row. Events were emitted there.
   */
  async refreshWaited(ids?: readonly string[]): Promise<void> {
    const waited = (ids ?? [...this.waiters.keys()]).filter((id) => this.waiters.has(id));
    if (waited.length === 0) return;
    for (const command of await commandsByIds(this.options.store.db, waited)) {
      if (!isTerminal(command)) continue;
      const waiters = this.waiters.get(command.id);
      if (waiters) for (const resolve of [...waiters]) resolve(command);
    }
  }

  /**
   * Whether some replica holds the agent's socket: this one, or (with replicas) another, as
   * recorded in the store. What a command's view calls "agent connected".
   */
  async agentConnected(vmName: string): Promise<boolean> {
    if (this.link?.isConnected(vmName)) return true;
    if (!this.options.signals?.clustered) return false;
    return (await connectedAmong(this.options.store.db, [vmName])).has(vmName);
  }

  /** Of the offline-refusing requests for agents not held here, those another replica holds. */
  private async heldElsewhere(
    requests: readonly EnqueueRequest[],
    db: Kysely<Database> = this.options.store.db,
  ): Promise<Set<string>> {
    if (!this.options.signals?.clustered) return new Set();
    const names = requests
      .filter((r) => r.ifOffline === "fail" && !(this.link?.isConnected(r.vmName) ?? false))
      .map((r) => r.vmName);
    return names.length === 0 ? new Set() : connectedAmong(db, names);
  }

  private async redeliver(vmName: string, before: string): Promise<void> {
    try {
      if (!this.link?.isConnected(vmName)) return;
      for (const command of await this.options.store.commands.ackedBefore(vmName, before)) {
        if (this.redelivered.has(command.id)) continue;
        if (this.redelivered.size >= MAX_REMEMBERED_TIMEOUTS) this.redelivered.clear();
        this.redelivered.add(command.id);
        this.link.send(vmName, toMessage(command, this.now()));
      }
    } catch (error) {
      this.options.onError(error);
    }
  }

  onAck(vmName: string, commandId: string): void {
    this.heldAcks.set(heldAckKey(vmName, commandId), { commandId, vmName, at: this.now() });
    if (!this.ackTimer) this.writeHeldAcksIn(ACK_HOLD_MS);
  }

  /** Comes back in `ms` to write the acks held a full ACK_HOLD_MS by then. */
  private writeHeldAcksIn(ms: number): void {
    this.ackTimer = setTimeout(() => void this.writeHeldAcks(this.now() - ACK_HOLD_MS), ms);
  }

  /**
   * Writes the acks held since `heldSince` or longer (all of them when omitted) and comes back
   * for the others when they have been held long enough: during a bulk operation most results
   * arrive within the hold, and their acks are never written on their own.
   */
  private async writeHeldAcks(heldSince = Number.POSITIVE_INFINITY): Promise<void> {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const acks: HeldAck[] = [];
    let oldestLeft = Number.POSITIVE_INFINITY;
    for (const ack of this.heldAcks.values()) {
      if (ack.at <= heldSince) acks.push(ack);
      else oldestLeft = Math.min(oldestLeft, ack.at);
    }
    if (oldestLeft !== Number.POSITIVE_INFINITY)
      this.writeHeldAcksIn(Math.max(0, oldestLeft + ACK_HOLD_MS - this.now()));
    if (acks.length === 0) return;
    try {
      await this.storeAcks(acks);
    } catch (error) {
      this.options.onError(error);
    } finally {
      for (const ack of acks) {
        const key = heldAckKey(ack.vmName, ack.commandId);
        if (this.heldAcks.get(key) === ack) this.heldAcks.delete(key);
      }
    }
  }

  onProgress(vmName: string, commandId: string, message: string): void {
    this.options.bus.emit({
      vmName,
      source: "agent",
      kind: "command.progress",
      message,
      data: { commandId },
    });
  }

  async onResult(vmName: string, result: ResultMessage): Promise<void> {
    const outcome = result.ok
      ? { state: "succeeded" as const, result: result.data }
      : {
          state: "failed" as const,
          result: result.data,
          error:
            result.error ??
            ({ code: "NBF_AGENT_ERROR", message: "the agent gave no reason" } as CommandError),
        };
    const command = await this.storeResult({
      vmName,
      commandId: result.commandId,
      outcome,
      at: new Date(this.now()),
    });
    if (!command) return;
    this.options.metrics.observeCommand(
      command.name,
      command.state,
      (this.now() - Date.parse(command.createdAt)) / 1000,
    );
    this.finished(command);
  }

  /**
   * Stores a result with its turn's batch, again (with backoff) while the failure may pass: a
   * finish is conditional, so writing it twice is harmless. A failure that persists is thrown,
   * and the gateway then ends the agent's connection so that its reconnection recovers it.
   */
  private async storeResult(item: { vmName: string; commandId: string; outcome: Outcome; at: Date }) {
    const deadline = this.now() + RESULT_RETRY_MS;
    for (let waitMs = 50; ; waitMs = Math.min(waitMs * 2, 2000)) {
      try {
        return await this.results.add(item);
      } catch (error) {
        if (!mayPassOnRetry(error) || this.now() + waitMs > deadline) throw error;
        await sleep(waitMs);
      }
    }
  }

  /** The acks of one turn in one transaction (only the VM a command belongs to can ack it). */
  private async storeAcks(acks: HeldAck[]): Promise<void> {
    await this.options.store.db.transaction().execute(async (trx) => {
      const repo = new CommandsRepo(trx);
      for (const ack of acks) {
        // Commands this process sent: their timeout is known without reading them back.
        let timeoutMs = this.forgetSent(ack.commandId, ack.vmName)?.timeoutMs;
        if (timeoutMs === undefined) {
          const command = await repo.get(ack.commandId);
          if (!command || command.vmName !== ack.vmName) continue;
          timeoutMs = command.timeoutMs;
        }
        // markAcked itself checks that the command belongs to the VM that acknowledges it.
        await repo.markAcked(
          ack.commandId,
          ack.vmName,
          new Date(ack.at).toISOString(),
          new Date(ack.at + timeoutMs).toISOString(),
        );
      }
    });
  }

  /** The results of one turn in one commit; answers each with its finished command (or none). */
  private async storeResults(
    results: Array<{ vmName: string; commandId: string; outcome: Outcome; at: Date }>,
  ): Promise<Array<CommandRecord | undefined>> {
    const requests = results.map((r) => {
      const ack = this.heldAcks.get(heldAckKey(r.vmName, r.commandId));
      const ackedAt = ack ? new Date(ack.at).toISOString() : null;
      return { id: r.commandId, vmName: r.vmName, outcome: r.outcome, now: r.at.toISOString(), ackedAt };
    });
    const finished = await this.options.store.commands.finishManyReturning(requests);
    for (const r of requests) {
      this.heldAcks.delete(heldAckKey(r.vmName, r.id));
      this.forgetSent(r.id, r.vmName);
    }
    return finished;
  }

  /**
   * Forgets a command sent from here once its own machine answers it; another machine naming
   * its id leaves it remembered.
   */
  private forgetSent(commandId: string, vmName: string): SentOn | undefined {
    const sent = this.sentTimeouts.get(commandId);
    if (sent?.vmName !== vmName) return undefined;
    this.sentTimeouts.delete(commandId);
    return sent;
  }

  /** A deleted VM's commands end as expired. */
  async dropForVm(vmName: string): Promise<void> {
    const dropped = await this.options.store.commands.expireAllForVm(
      vmName,
      new Date(this.now()).toISOString(),
    );
    for (const command of dropped) this.finished(command);
  }

  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = new Date(this.now()).toISOString();
      const { commands } = this.options.store;
      for (const command of await commands.expireDue(now)) this.finished(command);
      for (const command of await commands.timeoutDue(now)) {
        this.options.metrics.observeCommand(
          command.name,
          "timed_out",
          (Date.parse(now) - Date.parse(command.createdAt)) / 1000,
        );
        this.finished(command);
      }
      await this.rerouteStranded();
    } catch (error) {
      this.options.onError(error);
    } finally {
      this.sweeping = false;
    }
  }

  /** Routes again the queued commands whose signal was lost (see STRANDED_AFTER_MS). */
  private async rerouteStranded(): Promise<void> {
    const checkedAt = this.now();
    if (checkedAt - this.strandedCheckedAt < STRANDED_AFTER_MS) return;
    this.strandedCheckedAt = checkedAt;
    const stranded = await strandedQueued(
      this.options.store.db,
      new Date(checkedAt).toISOString(),
      new Date(checkedAt - STRANDED_AFTER_MS).toISOString(),
    );
    if (stranded.length === 0) return;
    this.options.metrics.commandsRerouted.inc(stranded.length);
    this.routeQueued(stranded);
  }

  private async deliver(command: CommandRecord): Promise<boolean> {
    const link = this.link;
    if (!link?.isConnected(command.vmName)) return false;
    // Persisted as sent before it goes out: a lost frame is resent on reconnect, never forgotten.
    if (!(await this.options.store.commands.markSent(command.id, new Date(this.now()).toISOString())))
      return false;
    return this.sendRemembering(command);
  }

  /**
   * Sends a command stored as sent; one whose frame cannot go out is queued again (see requeue).
   * A command already sent on the agent's current connection is not sent again: a welcome's
   * read of the agent's queue can find one that the enqueue itself, or another replica's
   * signal, sent on the new connection meanwhile.
   */
  private sendRemembering(command: CommandRecord): boolean {
    const connection = this.link?.connectionOf(command.vmName);
    if (connection !== undefined && this.sentTimeouts.get(command.id)?.connection === connection) return true;
    const sent = this.link?.send(command.vmName, toMessage(command, this.now())) ?? false;
    if (!sent) {
      this.unsent.add(command).catch((error) => this.options.onError(error));
      return false;
    }
    // A command whose ack never comes stays here until the map is cleared; acks then read the store.
    if (this.sentTimeouts.size >= MAX_REMEMBERED_TIMEOUTS) this.sentTimeouts.clear();
    this.sentTimeouts.set(command.id, { vmName: command.vmName, timeoutMs: command.timeoutMs, connection });
    return true;
  }

  /**
   * Commands stored as sent whose frame never left: the agent went away after it was seen here
   * and before the command was committed. It may already be welcomed by another replica whose
   * read of its queue could not see them, and a `sent` command is sent again only at the
   * agent's next connection. Queued again, they are claimed by whoever holds the agent now
   * (here, or the replica the signal reaches), or delivered at its next welcome.
   */
  private async requeue(commands: CommandRecord[]): Promise<void> {
    const requeued = await requeueSent(
      this.options.store.db,
      commands.map((command) => command.id),
    );
    this.routeQueued(requeued);
  }

  private finished(command: CommandRecord): void {
    const waiters = this.waiters.get(command.id);
    if (waiters) for (const resolve of [...waiters]) resolve(command);
    this.options.signals?.send("command.finished", [command.id]);
    // A bulk operation reports its commands' ends itself (progress, operation.target_failed):
    // ten thousand command.succeeded events would only bury the operation's own.
    if (command.operationId !== null) return;
    const level = command.state === "succeeded" ? "info" : command.state === "failed" ? "error" : "warn";
    this.options.bus.emit({
      vmName: command.vmName,
      kind: `command.${command.state}`,
      level,
      message: `${command.name} ${command.id} ${command.state.replace("_", " ")}${
        command.error ? `: ${command.error.code} ${command.error.message}` : ""
      }`,
      data: { commandId: command.id, name: command.name, state: command.state },
    });
  }
}

/**
 * A `command.queued` signal's id: the command's id and its VM's name (neither holds a space),
 * so a replica can tell from the signal alone whether it holds the agent.
 */
export function queuedSignalId(command: Pick<CommandRecord, "id" | "vmName">): string {
  return `${command.id} ${command.vmName}`;
}

export function parseQueuedSignalId(entry: string): { id: string; vmName: string } | null {
  const space = entry.indexOf(" ");
  if (space <= 0 || space === entry.length - 1) return null;
  return { id: entry.slice(0, space), vmName: entry.slice(space + 1) };
}
