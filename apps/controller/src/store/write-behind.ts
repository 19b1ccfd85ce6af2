/**
 * Batches the high-rate writes (agent status/health rows, events) instead of one write per
 * agent message: status rows coalesce per VM (only the latest is written), events append;
 * everything pending is written (in short transactions) after `flushMs` or once `maxItems` are
 * waiting, and on close. Readers that need their own writes call `flush()` first.
 *
 * A row leaves the buffer only once the transaction that wrote it has committed: a failed write
 * keeps every row (a newer status for the same VM still replaces an older one) and is retried
 * with exponential backoff; `health()` says so (for `/healthz`) and `onError`/`onRecovered` log it.
 * While writes fail, events are kept up to `maxPendingEvents`; past that the oldest are dropped
 * and counted, so a store that never comes back cannot take the process's memory with it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Kysely } from "kysely";
import { powerOfTwoChunks } from "./chunks.js";
import { EventsRepo } from "./events-repo.js";
import { eventIdBound, newId } from "./ids.js";
import { inOneCommit } from "./one-commit.js";
import type { Database, EventsTable } from "./schema.js";
import { type StatusRow, VmsRepo } from "./vms-repo.js";

/** Rows per statement at most: small enough that building the SQL stays cheap. */
const CHUNK = 128;
/** Rows per transaction: each blocks the event loop (better-sqlite3 is synchronous) for a few ms only. */
const ROWS_PER_TRANSACTION = 200;

export interface WriteBehindOptions {
  flushMs: number;
  maxItems: number;
  /** Events kept at most while writes fail (default 100,000); beyond, the oldest are dropped. */
  maxPendingEvents?: number;
  /** First retry delay after a failed write (default 100 ms), doubled per failure up to `retryMaxMs`. */
  retryMinMs?: number;
  /** Longest retry delay (default 30 s). */
  retryMaxMs?: number;
  /** How long `close()` keeps retrying a failing write before it gives the rows up (default 5 s). */
  closeTimeoutMs?: number;
  /** A write failed; its rows are kept and retried at `health.nextRetryAt`. */
  onError?: (error: unknown, health: WriteBehindHealth) => void;
  /** Writes succeed again after `failures` failed attempts. */
  onRecovered?: (failures: number) => void;
}

export interface WriteBehindHealth {
  /** `degraded` while the last write attempt failed (rows are waiting for a retry). */
  status: "ok" | "degraded";
  pendingRows: number;
  /** Failed attempts in a row (0 once a write succeeds). */
  failures: number;
  lastError?: string;
  lastErrorAt?: string;
  nextRetryAt?: string;
  /** Events dropped since start because the buffer was full while writes failed. */
  droppedRows: number;
}

export class WriteBehind {
  private statuses = new Map<string, StatusRow>();
  /**
   * VMs whose pending status row changes what a query by status finds (a connect, a disconnect,
   * a new health status): until it is committed, `flushChanges()` writes. The rest (a refreshed
   * last-seen time) waits for its timer even then.
   */
  private readonly changed = new Set<string>();
  private events: EventsTable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private closed = false;
  /** A flush is waiting in `running` and will take whatever is pending when it starts. */
  private queued = false;
  private failures = 0;
  private lastError: { message: string; at: string } | undefined;
  private nextRetryAt: number | undefined;
  private droppedRows = 0;
  private readonly maxPendingEvents: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly eventsWritten = new Set<() => void>();
  private restampAfterMs: number | undefined;
  private restampClock: () => number = Date.now;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly options: WriteBehindOptions,
  ) {
    this.maxPendingEvents = options.maxPendingEvents ?? 100_000;
    this.retryMinMs = options.retryMinMs ?? 100;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
  }

  get pending(): number {
    return this.statuses.size + this.events.length;
  }

  health(): WriteBehindHealth {
    return {
      status: this.failures > 0 ? "degraded" : "ok",
      pendingRows: this.pending,
      failures: this.failures,
      ...(this.lastError ? { lastError: this.lastError.message, lastErrorAt: this.lastError.at } : {}),
      ...(this.failures > 0 && this.nextRetryAt !== undefined
        ? { nextRetryAt: new Date(this.nextRetryAt).toISOString() }
        : {}),
      droppedRows: this.droppedRows,
    };
  }

  /** `changed`: the row changes what a query by status finds (see flushChanges). */
  putStatus(row: StatusRow, changed = true): void {
    this.statuses.set(row.vm_name, row);
    if (changed) this.changed.add(row.vm_name);
    this.schedule();
  }

  appendEvent(row: EventsTable): void {
    this.events.push(row);
    if (this.events.length > this.maxPendingEvents) {
      this.droppedRows += this.events.length - this.maxPendingEvents;
      this.events.splice(0, this.events.length - this.maxPendingEvents);
    }
    this.schedule();
  }

  /** Called after each commit that stored events (other replicas' event streams learn of them). */
  onEventsWritten(listener: () => void): () => void {
    this.eventsWritten.add(listener);
    return () => this.eventsWritten.delete(listener);
  }

  /**
   * Replicas (PostgreSQL): an event still unwritten `ms` after its id was made (its writes
   * failed meanwhile) gets a fresh id when it is written, so the event tails, which read only
   * ids older than their settle window, do not pass over it. Its `at` stays.
   */
  restampEventsAfter(ms: number, clock: () => number): void {
    this.restampAfterMs = ms;
    this.restampClock = clock;
  }

  /** Drops a VM's pending status (it was deleted; its row must not come back). */
  forget(vmName: string): void {
    this.statuses.delete(vmName);
    this.changed.delete(vmName);
  }

  /**
   * Writes everything pending now, a few hundred rows per transaction with the event loop
   * free in between; resolves when it (and any flush before it) is stored or has failed.
   * While writes are failing it does not try again before the retry timer does.
   */
  flush(): Promise<void> {
    if (this.failures > 0) return this.running;
    return this.start();
  }

  /**
   * For readers of status (the VM list, the fleet's counts): resolves once every status change
   * put so far is stored, at once when there is none. Unlike `flush()` it does not write routine
   * refreshes or events first: a replica holding 10,000 agents always has some of those pending,
   * and the VM list used to wait for a transaction of them on every request.
   */
  flushChanges(): Promise<void> {
    return this.changed.size > 0 ? this.flush() : Promise.resolve();
  }

  /** The store answers again: retry a failing write now instead of at the end of its backoff. */
  retryNow(): void {
    if (this.failures > 0 && !this.closed) void this.start();
  }

  /** Writes what is pending, retrying a failing write for up to `closeTimeoutMs`; then stops. */
  async close(): Promise<void> {
    this.closed = true;
    const deadline = Date.now() + (this.options.closeTimeoutMs ?? 5000);
    for (;;) {
      await this.start();
      if (this.pending === 0 || this.failures === 0) break;
      const wait = Math.min(this.retryDelay(), deadline - Date.now());
      if (wait <= 0) {
        this.options.onError?.(
          new Error(`store closed with ${this.pending} rows not written: ${this.lastError?.message}`),
          this.health(),
        );
        break;
      }
      await sleep(wait);
    }
    this.clearTimer();
  }

  private start(): Promise<void> {
    this.clearTimer();
    if (this.queued) return this.running;
    this.queued = true;
    this.running = this.running.then(() => this.writeAll());
    return this.running;
  }

  /** Never rejects: a failure is recorded and retried. */
  private async writeAll(): Promise<void> {
    this.queued = false;
    try {
      while (this.pending > 0) {
        await this.writeSome();
        if (this.pending > 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      this.failed(error);
      return;
    }
    if (this.failures > 0) {
      const failures = this.failures;
      this.failures = 0;
      this.nextRetryAt = undefined;
      this.options.onRecovered?.(failures);
    }
  }

  private failed(error: unknown): void {
    this.failures += 1;
    this.lastError = {
      message: error instanceof Error ? error.message : String(error),
      at: new Date().toISOString(),
    };
    const delay = this.retryDelay();
    this.nextRetryAt = Date.now() + delay;
    if (!this.closed) this.arm(delay);
    this.options.onError?.(error, this.health());
  }

  private retryDelay(): number {
    return Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(30, Math.max(0, this.failures - 1)));
  }

  private schedule(): void {
    // While writes fail the retry timer is armed; new rows wait for it (backoff holds).
    if (this.failures > 0 || this.closed) return;
    if (this.pending >= this.options.maxItems) {
      void this.start();
      return;
    }
    if (!this.timer) this.arm(this.options.flushMs);
  }

  private arm(delayMs: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.start();
    }, delayMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private async writeSome(): Promise<void> {
    const budget = ROWS_PER_TRANSACTION;
    const statuses: StatusRow[] = [];
    for (const row of this.statuses.values()) {
      if (statuses.length >= budget) break;
      statuses.push(row);
    }
    const events = this.events.slice(0, Math.max(0, budget - statuses.length));
    if (statuses.length === 0 && events.length === 0) return;
    if (this.restampAfterMs !== undefined) {
      const now = this.restampClock();
      const late = eventIdBound(now - this.restampAfterMs);
      for (const row of events) if (row.id < late) row.id = newId("evt", now);
    }
    const statusChunks = [...powerOfTwoChunks(statuses, CHUNK)];
    const eventChunks = [...powerOfTwoChunks(events, CHUNK)];
    await inOneCommit(this.db, statusChunks.length + eventChunks.length, async (db) => {
      const vms = new VmsRepo(db);
      for (const chunk of statusChunks) await vms.upsertStatuses(chunk);
      const log = new EventsRepo(db);
      for (const chunk of eventChunks) await log.insertMany(chunk);
    });
    // Committed: these rows leave the buffer, unless a newer status for the VM came meanwhile.
    for (const row of statuses) {
      if (this.statuses.get(row.vm_name) !== row) continue;
      this.statuses.delete(row.vm_name);
      this.changed.delete(row.vm_name);
    }
    // Everything up to the last written event is stored (or was dropped as oldest meanwhile).
    const last = events.at(-1);
    if (last) this.events.splice(0, this.events.indexOf(last) + 1);
    if (last) for (const listener of this.eventsWritten) listener();
  }
}
