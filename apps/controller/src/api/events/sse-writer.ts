/**
 * One Server-Sent Events response with a bounded buffer. Node queues whatever a slow reader
 * has not taken yet in memory without limit; here a reader with more than `maxBufferBytes`
 * waiting is disconnected instead (it reconnects with `Last-Event-ID` and the stream replays
 * what it missed from the store). Bulk writers (the replay) wait for the buffer to drain, with
 * a deadline.
 */
import { once } from "node:events";
import type { ServerResponse } from "node:http";

/** How long an ended stream's last words may wait for a reader before the connection is cut. */
const END_GRACE_MS = 5000;

export class SseWriter {
  private closedReason: string | null = null;

  constructor(
    private readonly raw: ServerResponse,
    private readonly maxBufferBytes: number,
    private readonly onOverflow: (bufferedBytes: number) => void = () => {},
  ) {
    raw.once("close", () => {
      this.closedReason ??= "the client went away";
    });
  }

  get closed(): boolean {
    return this.closedReason !== null || this.raw.destroyed;
  }

  /**
   * Queues `text`; false (and the connection closed) when the reader is too far behind. A bulk
   * writer passes `bounded: false` and keeps the buffer small itself with `drained()`.
   */
  send(text: string, bounded = true): boolean {
    if (this.closed) return false;
    this.raw.write(text);
    if (!bounded) return true;
    const buffered = this.raw.writableLength;
    if (buffered > this.maxBufferBytes) {
      this.close("too far behind");
      this.onOverflow(buffered);
      return false;
    }
    return true;
  }

  /**
   * Resolves true once at most a quarter of the buffer is in use; false when the connection
   * closed or the reader took nothing for `timeoutMs` (it is then disconnected).
   */
  async drained(timeoutMs: number): Promise<boolean> {
    while (!this.closed && this.raw.writableLength > this.lowWater) {
      const before = this.raw.writableLength;
      const waiting = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        waiting.abort();
      }, timeoutMs);
      try {
        const { signal } = waiting;
        await Promise.race([once(this.raw, "drain", { signal }), once(this.raw, "close", { signal })]);
      } catch {
        // Timed out (or the socket failed): only a reader that took nothing counts as stalled.
        if (timedOut && this.raw.writableLength >= before) {
          this.close("stalled");
          return false;
        }
      } finally {
        clearTimeout(timer);
        waiting.abort();
      }
    }
    return !this.closed;
  }

  /** True when a bulk writer should wait for `drained()` before writing more. */
  get full(): boolean {
    return this.raw.writableLength > this.lowWater;
  }

  /** Above the stream's high-water mark the last write returned false, so "drain" will come. */
  private get lowWater(): number {
    return Math.max(this.maxBufferBytes / 4, this.raw.writableHighWaterMark);
  }

  close(reason: string): void {
    this.closedReason ??= reason;
    this.raw.destroy();
  }

  /** Ends the stream after `lastWords`; a reader that does not take them is cut off soon after. */
  end(reason: string, lastWords: string): void {
    if (this.closed) return;
    this.closedReason = reason;
    this.raw.end(lastWords);
    const cutOff = setTimeout(() => this.raw.destroy(), END_GRACE_MS);
    cutOff.unref();
    this.raw.once("close", () => clearTimeout(cutOff));
  }
}
