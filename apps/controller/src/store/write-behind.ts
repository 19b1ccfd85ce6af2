/**
 * Batches the high-rate writes (agent status/health rows, events) instead of one write per
 * agent message: status rows coalesce per VM (only the latest is written), events append;
 * everything pending is written in one transaction after `flushMs` or once `maxItems` are
 * waiting, and on close. Readers that need their own writes call `flush()` first.
 */
import type { Kysely } from "kysely";
import type { Database, EventsTable } from "./schema.js";
import { type StatusRow, VmsRepo } from "./vms-repo.js";

const CHUNK = 400;

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

  /** Writes everything pending now; resolves when it (and any flush before it) is stored. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.running = this.running.then(() => this.write()).catch((error) => this.options.onError?.(error));
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

  private async write(): Promise<void> {
    if (this.pending === 0) return;
    const statuses = [...this.statuses.values()];
    const events = this.events;
    this.statuses = new Map();
    this.events = [];
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < statuses.length; i += CHUNK) {
        await new VmsRepo(trx).upsertStatuses(statuses.slice(i, i + CHUNK));
      }
      for (let i = 0; i < events.length; i += CHUNK) {
        await trx
          .insertInto("events")
          .values(events.slice(i, i + CHUNK))
          .execute();
      }
    });
  }
}
