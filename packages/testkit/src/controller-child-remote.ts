/**
 * The parent's side of controller-child.ts: starts the controller process, waits until it
 * listens, and asks it one command at a time (each answered by the next line it prints).
 */
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import type { ControllerCommand, ControllerEvent, LoopStats, MemoryStats } from "./controller-child.js";
import { hasExited, spawnTs, stopChild } from "./processes.js";
import { repoRoot } from "./repo.js";
import { Waiters } from "./waiters.js";

const SCRIPT = path.join(repoRoot, "packages/testkit/src/controller-child.ts");

type EventOf<T extends ControllerEvent["event"]> = Extract<ControllerEvent, { event: T }>;

export interface ControllerChildOptions {
  /** Its whole environment (NBFLEET_* settings; nothing else of this process is passed). */
  env: NodeJS.ProcessEnv;
  nodeFlags?: string[];
  /** Raise its open-files limit, for thousands of agents. */
  manySockets?: boolean;
  /** How long to wait for it to listen. */
  readyTimeoutMs?: number;
}

export class ControllerChild {
  url = "";
  token = "";
  private readonly lines: string[] = [];
  private readonly waiters = new Waiters();
  private stderrTail = "";

  private constructor(readonly process: ChildProcess) {
    createInterface({ input: process.stdout! }).on("line", (line) => {
      this.lines.push(line);
      this.waiters.notify();
    });
    process.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
    process.on("exit", () => this.waiters.notify());
  }

  static async start(options: ControllerChildOptions): Promise<ControllerChild> {
    const child = new ControllerChild(
      spawnTs(SCRIPT, [], {
        nodeFlags: options.nodeFlags ?? [],
        manySockets: options.manySockets ?? false,
        stdio: ["pipe", "pipe", "pipe"],
        env: options.env,
      }),
    );
    try {
      const ready = await child.next("ready", options.readyTimeoutMs ?? 60_000);
      child.url = ready.url;
      child.token = ready.token;
      return child;
    } catch (error) {
      await child.stop();
      throw error;
    }
  }

  get pid(): number {
    return this.process.pid!;
  }

  /** How late its event loop ran, and its GC pauses, since the last time this was asked. */
  loop(timeoutMs = 30_000): Promise<LoopStats> {
    return this.ask({ cmd: "loop" }, "loop", timeoutMs);
  }

  /** Emits `count` events of `bytes` payload each; resolves once the store has them. */
  emit(count: number, bytes: number, timeoutMs = 60_000): Promise<EventOf<"emitted">> {
    return this.ask({ cmd: "emit", count, bytes }, "emitted", timeoutMs);
  }

  /** Its memory after garbage collection (start it with `--expose-gc`). */
  memory(timeoutMs = 60_000): Promise<MemoryStats> {
    return this.ask({ cmd: "mem" }, "mem", timeoutMs);
  }

  /** Closes its stdin (it closes the controller and exits); SIGKILL after `killAfterMs`. */
  stop(killAfterMs = 10_000): Promise<void> {
    return stopChild(this.process, (child) => child.stdin!.end(), killAfterMs);
  }

  private async ask<T extends ControllerEvent["event"]>(
    command: ControllerCommand,
    event: T,
    timeoutMs: number,
  ): Promise<EventOf<T>> {
    this.process.stdin!.write(`${JSON.stringify(command)}\n`);
    return this.next(event, timeoutMs);
  }

  /** Its next line, which must be `event`; fails when it dies first or the deadline passes. */
  private async next<T extends ControllerEvent["event"]>(event: T, timeoutMs: number): Promise<EventOf<T>> {
    const next = await this.waiters.until(
      () => {
        if (this.lines.length > 0) return { line: this.lines.shift()! };
        return hasExited(this.process) ? { exited: true as const } : undefined;
      },
      `"${event}" from the controller process`,
      timeoutMs,
    );
    if ("exited" in next)
      throw new Error(`the controller process exited before "${event}":\n${this.stderrTail}`);
    const line = next.line;
    const message = JSON.parse(line) as ControllerEvent;
    if (message.event !== event) throw new Error(`the controller process said ${line}, expected "${event}"`);
    return message as EventOf<T>;
  }
}
