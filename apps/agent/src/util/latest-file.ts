/**
 * A small file the agent keeps at its latest content (the restart count, the pid record). A
 * write that fails (a full disk) is retried with backoff until it lands or newer content (or a
 * removal) replaces it, so the file is right again soon after the disk has room. Writes and
 * removals run one at a time in the order asked, and never throw: failures go to the reporter.
 */
import { rm } from "node:fs/promises";
import { writeFileAtomic } from "./atomic-write.js";
import type { WriteReporter } from "./write-failures.js";

export interface LatestFileOptions {
  mode?: number;
  retryMs?: { initial: number; max: number };
}

const DEFAULT_RETRY = { initial: 1000, max: 30_000 };

export class LatestFile {
  /** What the file should hold: content, `null` for "absent", `undefined` when it already does. */
  private wanted: string | null | undefined = undefined;
  private running: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private closed = false;
  private readonly retry: { initial: number; max: number };

  constructor(
    readonly file: string,
    private readonly what: string,
    private readonly reporter: WriteReporter,
    private readonly options: LatestFileOptions = {},
  ) {
    this.retry = options.retryMs ?? DEFAULT_RETRY;
    this.delayMs = this.retry.initial;
  }

  /** Resolves true when this content (or newer) is on disk, false when it will be retried. */
  write(content: string): Promise<boolean> {
    this.wanted = content;
    return this.kick();
  }

  remove(): Promise<boolean> {
    this.wanted = null;
    return this.kick();
  }

  /** Stops retrying (what is not written by now stays unwritten). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private kick(): Promise<boolean> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const run = this.running.then(() => this.attempt());
    this.running = run;
    return run;
  }

  private async attempt(): Promise<boolean> {
    const wanted = this.wanted;
    if (wanted === undefined) return true;
    try {
      if (wanted === null) await rm(this.file, { force: true });
      else await writeFileAtomic(this.file, wanted, { mode: this.options.mode ?? 0o600 });
    } catch (error) {
      this.reporter.failed(this.what, this.file, error);
      if (!this.closed && this.timer === null) {
        this.timer = setTimeout(() => void this.kick(), this.delayMs);
        this.timer.unref();
        this.delayMs = Math.min(this.delayMs * 2, this.retry.max);
      }
      return false;
    }
    if (this.wanted === wanted) this.wanted = undefined;
    this.delayMs = this.retry.initial;
    this.reporter.succeeded(this.what);
    return true;
  }
}
