/**
 * The agent's event record: JSON lines in state/events.jsonl, trimmed to the newest entries.
 *
 * Appends are queued and written in batches by one writer at a time. A failed write (a full
 * disk) keeps its lines queued — at most KEEP of them, the oldest dropped first — and is retried
 * with backoff and at the next append, so the record catches up once the disk has room again.
 * Nothing here throws or rejects: failures go to the reporter.
 */
import { open, readFile } from "node:fs/promises";
import type { AgentEvent } from "@nbfleet/shared";
import { writeFileAtomic } from "../util/atomic-write.js";
import { type WriteReporter, ignoreWrites } from "../util/write-failures.js";

const KEEP = 1000;
const RETRY_INITIAL_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class EventLog {
  private appended = 0;
  /** Lines not yet on disk, oldest first. */
  private queued: string[] = [];
  /** How many lines ever left the front of `queued` (written or dropped): the first one's number. */
  private head = 0;
  private dropped = 0;
  private writing: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_INITIAL_MS;
  /** A failed append may have left half a line behind: the next write starts on a new line. */
  private torn = false;

  constructor(
    private readonly file: string,
    private readonly reporter: WriteReporter = ignoreWrites,
  ) {}

  /** Queues the event; resolves once a write attempt that included it ended (never rejects). */
  append(event: AgentEvent): Promise<void> {
    this.queued.push(`${JSON.stringify(event)}\n`);
    if (this.queued.length > KEEP) this.dropped += this.shift(this.queued.length - KEEP);
    return this.flush();
  }

  /** Events that could not be written and were dropped to keep the queue bounded. */
  get droppedCount(): number {
    return this.dropped;
  }

  async read(limit = KEEP): Promise<AgentEvent[]> {
    await this.writing;
    const text = await readFile(this.file, "utf8").catch(() => "");
    return text
      .split("\n")
      .filter(Boolean)
      .slice(-limit)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as AgentEvent];
        } catch {
          return [];
        }
      });
  }

  /** Stops retrying; lines still queued are not written. */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private flush(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const previous = this.writing ?? Promise.resolve();
    const run = previous.then(() => this.writeQueued());
    this.writing = run;
    void run.then(() => {
      if (this.writing === run) this.writing = null;
    });
    return run;
  }

  private async writeQueued(): Promise<void> {
    while (this.queued.length > 0) {
      const batch = this.queued.slice();
      const first = this.head;
      const { lines, error } = await this.appendLines(batch);
      // Lines that are on disk leave the queue (unless dropped meanwhile); later ones stay.
      this.shift(first + lines - this.head);
      if (error !== null) {
        this.reporter.failed("event log", this.file, error);
        this.scheduleRetry();
        return;
      }
      this.retryMs = RETRY_INITIAL_MS;
      this.reporter.succeeded("event log");
      const before = this.appended;
      this.appended += lines;
      if (Math.floor(before / KEEP) !== Math.floor(this.appended / KEEP)) await this.trim();
    }
  }

  /** Appends the lines; says how many complete lines reached the file before any error. */
  private async appendLines(batch: string[]): Promise<{ lines: number; error: unknown }> {
    const prefix = this.torn ? "\n" : "";
    const buffer = Buffer.from(prefix + batch.join(""));
    let offset = 0;
    let error: unknown = null;
    try {
      const handle = await open(this.file, "a", 0o600);
      try {
        while (offset < buffer.length) {
          const { bytesWritten } = await handle.write(buffer, offset);
          offset += bytesWritten;
        }
      } finally {
        await handle.close();
      }
    } catch (failure) {
      error = failure;
    }
    // Count the lines whose last byte was written; a line cut short is written again, whole.
    let lines = 0;
    let end = Buffer.byteLength(prefix);
    let onBoundary = offset === end;
    for (const line of batch) {
      end += Buffer.byteLength(line);
      if (end > offset) break;
      lines += 1;
      onBoundary = offset === end;
    }
    if (error === null || offset > 0) this.torn = !onBoundary;
    return { lines, error };
  }

  private shift(count: number): number {
    const n = Math.max(0, Math.min(count, this.queued.length));
    this.queued.splice(0, n);
    this.head += n;
    return n;
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.flush();
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private async trim(): Promise<void> {
    try {
      const events = await readFile(this.file, "utf8");
      const lines = events.split("\n").filter(Boolean);
      if (lines.length > KEEP)
        await writeFileAtomic(this.file, `${lines.slice(-KEEP).join("\n")}\n`, { mode: 0o600 });
      this.reporter.succeeded("event log trim");
    } catch (error) {
      // The record stays longer than KEEP until a later trim succeeds; appends go on.
      this.reporter.failed("event log trim", this.file, error);
    }
  }
}
