/**
 * A TypeScript script of this folder run as a child process (node with the tsx loader, one
 * pid: /proc of it is the script's own usage), with the open-files limit raised for thousands
 * of sockets. Talks through lines: `{"bench": <event>, …}` on its stdout, commands on its stdin;
 * closing its stdin (or the bench exiting) ends it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const OPEN_FILES = 65_536;

export interface BenchEvent {
  bench: string;
  [key: string]: unknown;
}

export class BenchChild {
  readonly process: ChildProcess;
  private readonly events: BenchEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private exited: string | null = null;
  private stderrTail = "";

  constructor(
    readonly name: string,
    script: string,
    args: string[],
    options: { env?: Record<string, string>; nodeFlags?: string[] } = {},
  ) {
    const node = [process.execPath, ...(options.nodeFlags ?? []), "--import", "tsx", path.join(HERE, script)];
    // `exec` keeps the pid: the child's pid is node's.
    this.process = spawn(
      "sh",
      [
        "-c",
        `ulimit -n ${OPEN_FILES} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`,
        "sh",
        ...node,
        ...args,
      ],
      { cwd: REPO, env: { ...process.env, ...options.env }, stdio: ["pipe", "pipe", "pipe"] },
    );
    createInterface({ input: this.process.stdout! }).on("line", (line) => {
      if (!line.startsWith('{"bench"')) return;
      this.events.push(JSON.parse(line) as BenchEvent);
      this.notify();
    });
    this.process.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
    this.process.on("exit", (code, signal) => {
      this.exited = `exited with ${signal ?? code}`;
      this.notify();
    });
  }

  get pid(): number {
    return this.process.pid!;
  }

  send(line: string): void {
    this.process.stdin!.write(`${line}\n`);
  }

  /** The next event named `name` not yet taken (events are kept in order). */
  async next(name: string, timeoutMs: number): Promise<BenchEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.events.findIndex((e) => e.bench === name);
      if (index >= 0) return this.events.splice(index, 1)[0]!;
      if (this.exited) throw new Error(`${this.name} ${this.exited} before "${name}":\n${this.stderrTail}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`${this.name}: no "${name}" within ${timeoutMs} ms:\n${this.stderrTail}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        const waiters = this.waiters;
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.process.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
