/**
 * A figure that is slow to read (a count over the store), served from memory so that scrapes
 * cost nothing: a read finding it older than `maxAgeMs` starts one refresh in the background and
 * answers with the value it has. Only the very first read waits for a value, and at most
 * `firstReadTimeoutMs`. Refreshes never overlap, so the source is read at most once per
 * `maxAgeMs` however often the figure is asked for.
 */
import { setTimeout as sleep } from "node:timers/promises";

export class CachedFigure<T> {
  private value: T | undefined;
  private readAt = 0;
  private refreshing: Promise<void> | null = null;
  /** Bumped by `invalidate`: a read started before it does not keep its value. */
  private generation = 0;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly options: {
      maxAgeMs: number;
      firstReadTimeoutMs?: number;
      onError: (error: unknown) => void;
      now?: () => number;
    },
  ) {}

  /** The cached value (undefined until a first read succeeded). */
  async get(): Promise<T | undefined> {
    const now = this.options.now ?? Date.now;
    if (this.value === undefined) {
      const read = new AbortController();
      const deadline = sleep(this.options.firstReadTimeoutMs ?? 5000, undefined, { signal: read.signal });
      await Promise.race([this.refresh(), deadline.catch(() => {})]).finally(() => read.abort()); // no timer left
    } else if (now() - this.readAt >= this.options.maxAgeMs) {
      void this.refresh();
    }
    return this.value;
  }

  /** The source changed (here): the next `get` waits for a fresh read, as the very first does. */
  invalidate(): void {
    this.generation++;
    this.value = undefined;
    this.refreshing = null;
  }

  private refresh(): Promise<void> {
    const now = this.options.now ?? Date.now;
    const generation = this.generation;
    this.refreshing ??= this.read()
      .then(
        (value) => {
          if (generation !== this.generation) return;
          this.value = value;
          this.readAt = now();
        },
        (error: unknown) => {
          // A failed read is tried again on the next scrape, not before the usual age.
          this.readAt = now();
          this.options.onError(error);
        },
      )
      .finally(() => {
        if (generation === this.generation) this.refreshing = null;
      });
    return this.refreshing;
  }
}
