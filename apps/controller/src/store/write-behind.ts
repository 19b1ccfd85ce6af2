/**
 * Batches the high-rate writes (agent status/health rows, events) instead of one write per
 * agent message: status rows coalesce per VM (only the latest is written), events append;
 * everything pending is written (in short transactions) after `flushMs` or once `maxItems` are
 * waiting, and on close. Readers that need their own writes call `flush()` first.
 */
import type { Kysely } from "kysely";
import { powerOfTwoChunks } from "./chunks.js";
import { EventsRepo } from "./events-repo.js";
import type { Database, EventsTable } from "./schema.js";
import { type StatusRow, VmsRepo } from "./vms-repo.js";

/** Rows per statement at most: small enough that building the SQL stays cheap. */
const CHUNK = 128;
/** Rows per transaction: each blocks the event loop (better-sqlite3 is synchronous) for a few ms only. */
const ROWS_PER_TRANSACTION = 200;

export interface WriteBehindOptions {
  flushMs: number;
  maxItems: number;
  onError?: (error: unknown) => void;
}

export class WriteBehind {
  private statuses = new Map<string, StatusRow>();
  private events: EventsTable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private closed = false;
  /** A flush is waiting in `running` and will take whatever is pending when it starts. */
  private queued = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly options: WriteBehindOptions,
  ) {}

  get pending(): number {
    return this.statuses.size + this.events.length;
  }

  putStatus(row: StatusRow): void {
    this.statuses.set(row.vm_name, row);
    this.schedule();
  }

  appendEvent(row: EventsTable): void {
    this.events.push(row);
    this.schedule();
  }

  /** Drops a VM's pending status (it was deleted; its row must not come back). */
  forget(vmName: string): void {
    this.statuses.delete(vmName);
  }

  /**
   * Writes everything pending now, a few hundred rows per transaction with the event loop
   * free in between; resolves when it (and any flush before it) is stored.
   */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.queued) return this.running;
    this.queued = true;
    this.running = this.running
      .then(async () => {
        this.queued = false;
        while (this.pending > 0) {
          await this.writeSome();
          if (this.pending > 0) await new Promise((resolve) => setImmediate(resolve));
        }
      })
      .catch((error) => {
        this.queued = false;
        this.options.onError?.(error);
      });
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private schedule(): void {
    if (this.pending >= this.options.maxItems) {
      void this.flush();
      return;
    }
    if (!this.timer && !this.closed) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.options.flushMs);
      this.timer.unref();
    }
  }

  private async writeSome(): Promise<void> {
    const budget = ROWS_PER_TRANSACTION;
    const statuses: StatusRow[] = [];
    for (const [name, row] of this.statuses) {
      if (statuses.length >= budget) break;
      statuses.push(row);
      this.statuses.delete(name);
    }
    const events = this.events.splice(0, Math.max(0, budget - statuses.length));
    if (statuses.length === 0 && events.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      const vms = new VmsRepo(trx);
      for (const chunk of powerOfTwoChunks(statuses, CHUNK)) await vms.upsertStatuses(chunk);
      const log = new EventsRepo(trx);
      for (const chunk of powerOfTwoChunks(events, CHUNK)) await log.insertMany(chunk);
    });
  }
}
