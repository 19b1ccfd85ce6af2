/**
 * A terminal's input, counted. node-pty keeps every write in a queue of its own until the kernel
 * takes it, without limit and without a way to ask how much it holds; here at most one write
 * sits in node-pty at a time and the rest waits in this queue, whose size is known, so a session
 * whose process does not read can be ended before it fills the agent's memory.
 */
import type { IPty } from "node-pty";

/**
 * Where node-pty 1.x keeps its pending writes (not part of its API). If an upgrade moves it, the
 * queue reads as empty and input is no longer held back; pty-host.test.ts then fails.
 */
interface PtyInternals {
  _writeStream?: { _writeQueue?: Array<{ buffer: Uint8Array; offset: number }> };
}

/** How often a held write looks again whether node-pty has handed the previous one over. */
const RETRY_MS = 10;

export class TtyInput {
  private waiting: Buffer[] = [];
  private waitingBytes = 0;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly pty: IPty) {}

  write(data: Buffer): void {
    if (data.length === 0) return;
    this.waiting.push(data);
    this.waitingBytes += data.length;
    this.handOver();
  }

  /** Bytes written here that the terminal has not taken yet. */
  queued(): number {
    return this.waitingBytes + this.inPty();
  }

  /** The process is gone: what it never read is dropped. */
  stop(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    this.waiting = [];
    this.waitingBytes = 0;
  }

  private handOver(): void {
    if (this.retry || this.waiting.length === 0) return;
    if (this.inPty() > 0) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.handOver();
      }, RETRY_MS);
      this.retry.unref();
      return;
    }
    const data = this.waiting.length === 1 ? this.waiting[0]! : Buffer.concat(this.waiting);
    this.waiting = [];
    this.waitingBytes = 0;
    this.pty.write(data);
  }

  private inPty(): number {
    const queue = (this.pty as unknown as PtyInternals)._writeStream?._writeQueue ?? [];
    // One entry at most: only handOver writes to node-pty.
    return queue.reduce((sum, task) => sum + task.buffer.byteLength - task.offset, 0);
  }
}
