/**
 * The local terminal in raw mode for `nbfleet shell`: every key goes to the remote side as is
 * (Ctrl-C included), and the terminal is put back however the CLI ends — a normal exit, an
 * error, or a signal — because a shell left in raw mode is unusable.
 */
export class RawTty {
  private raw = false;
  private readonly restoreOnExit = () => this.restore();

  constructor(
    private readonly input: NodeJS.ReadStream = process.stdin,
    private readonly output: NodeJS.WriteStream = process.stdout,
  ) {}

  get interactive(): boolean {
    return Boolean(this.input.isTTY);
  }

  /** The local window size, when there is a terminal to measure. */
  size(): { cols: number; rows: number } | undefined {
    const { columns, rows } = this.output;
    return this.output.isTTY && columns > 0 && rows > 0 ? { cols: columns, rows } : undefined;
  }

  enter(): void {
    if (this.raw || !this.input.isTTY) return;
    this.input.setRawMode(true);
    this.raw = true;
    process.once("exit", this.restoreOnExit);
  }

  /** Idempotent; safe from any exit path. */
  restore(): void {
    if (!this.raw) return;
    this.raw = false;
    process.off("exit", this.restoreOnExit);
    try {
      this.input.setRawMode(false);
    } catch {
      // The terminal is gone already (hang-up).
    }
  }
}
