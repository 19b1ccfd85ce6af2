/**
 * The lines of a log answer held before it is sent: only the newest `keep` of them, and at most
 * `maxBytes` received in all. An agent is trusted to send a tail of the size asked for; one that
 * sends more is cut off instead of growing the answer (and the controller's memory) with it.
 */
export class KeptLines {
  private lines: string[] = [];
  private bytes = 0;

  constructor(
    private readonly keep: number,
    readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.lines.length;
  }

  /** Adds a batch; false once more than `maxBytes` came (then the batch is dropped). */
  add(batch: string[]): boolean {
    for (const line of batch) this.bytes += Buffer.byteLength(line) + 1;
    if (this.bytes > this.maxBytes) return false;
    this.lines.push(...batch);
    if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep);
    return true;
  }

  /** The kept lines, oldest first; none are kept after this. */
  take(): string[] {
    const taken = this.lines;
    this.lines = [];
    return taken;
  }
}
