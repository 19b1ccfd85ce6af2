/**
 * One running process of a terminal session, behind one small interface whether it sits in a
 * pseudo-terminal (node-pty) or on pipes (child_process). Output and the exit are reported
 * through callbacks; the exit comes after the last output.
 */
import { spawn } from "node:child_process";
import os from "node:os";
import type { NodePty } from "./node-pty.js";
import { type SessionLaunch, sessionCommand } from "./shell.js";
import { TtyInput } from "./tty-input.js";

export type OutputStream = "stdout" | "stderr";

export interface ProcessExit {
  /** null when a signal ended it. */
  exitCode: number | null;
  signal: string | null;
}

export interface ProcessEvents {
  onOutput(data: Buffer, stream: OutputStream): void;
  onExit(exit: ProcessExit): void;
}

export interface ProcessSession {
  readonly pid: number;
  write(data: Buffer): void;
  /** Bytes written that the process has not read yet (still queued in the agent). */
  queuedInput(): number;
  /** Closes stdin (pipes), or types ^D (a tty). */
  endInput(): void;
  resize(cols: number, rows: number): void;
  setPaused(paused: boolean): void;
  /** SIGHUP now; SIGKILL for its whole process group if it is still there after the grace. */
  kill(graceMs: number): void;
}

export interface SpawnRequest {
  launch: SessionLaunch;
  command: string | undefined;
  cols: number;
  rows: number;
}

export async function spawnTty(
  pty: NodePty,
  request: SpawnRequest,
  events: ProcessEvents,
): Promise<ProcessSession> {
  const { file, args, uid, gid } = await sessionCommand(request.launch, request.command);
  const child = pty.spawn(file, args, {
    name: "xterm-256color",
    cols: request.cols,
    rows: request.rows,
    cwd: request.launch.cwd,
    env: request.launch.env,
    // Raw bytes both ways: the client's terminal decodes them.
    encoding: null,
    ...(uid !== undefined && gid !== undefined ? { uid, gid } : {}),
  });
  let exited = false;
  const input = new TtyInput(child);
  child.onData((data: string | Buffer) =>
    events.onOutput(typeof data === "string" ? Buffer.from(data) : data, "stdout"),
  );
  child.onExit(({ exitCode, signal }) => {
    exited = true;
    input.stop();
    events.onExit(signal ? { exitCode: null, signal: signalName(signal) } : { exitCode, signal: null });
  });
  return {
    pid: child.pid,
    write: (data) => input.write(data),
    queuedInput: () => input.queued(),
    // A terminal's end of input is ^D (EOF at the start of a line, in canonical mode).
    endInput: () => input.write(Buffer.from("\x04")),
    resize: (cols, rows) => {
      if (!exited) child.resize(cols, rows);
    },
    setPaused: (paused) => (paused ? child.pause() : child.resume()),
    kill: (graceMs) => {
      if (exited) return;
      signalQuietly(child.pid, "SIGHUP");
      setTimeout(() => {
        if (!exited) signalQuietly(-child.pid, "SIGKILL");
      }, graceMs).unref();
    },
  };
}

export async function spawnPiped(request: SpawnRequest, events: ProcessEvents): Promise<ProcessSession> {
  const { file, args, uid, gid } = await sessionCommand(request.launch, request.command);
  const child = spawn(file, args, {
    cwd: request.launch.cwd,
    env: request.launch.env,
    stdio: ["pipe", "pipe", "pipe"],
    // Its own process group, so ending the session reaches whatever the command started.
    detached: true,
    ...(uid !== undefined && gid !== undefined ? { uid, gid } : {}),
  });
  const pid = await new Promise<number>((resolve, reject) => {
    child.once("spawn", () => resolve(child.pid!));
    child.once("error", reject);
  });
  child.stdin.on("error", () => {
    // EPIPE: the command stopped reading; its exit says the rest.
  });
  child.stdout.on("data", (data: Buffer) => events.onOutput(data, "stdout"));
  child.stderr.on("data", (data: Buffer) => events.onOutput(data, "stderr"));
  let exited = false;
  let reported = false;
  const report = (code: number | null, signal: NodeJS.Signals | null) => {
    if (reported) return;
    reported = true;
    events.onExit(signal ? { exitCode: null, signal } : { exitCode: code ?? 0, signal: null });
  };
  child.on("exit", (code, signal) => {
    exited = true;
    // A background child may hold stdout open; the exit is reported at the latest shortly after.
    setTimeout(() => report(code, signal), 500).unref();
  });
  child.on("close", (code, signal) => report(code, signal));
  return {
    pid,
    write: (data) => {
      if (child.stdin.writable) child.stdin.write(data);
    },
    queuedInput: () => child.stdin.writableLength,
    endInput: () => child.stdin.end(),
    resize: () => {},
    setPaused: (paused) => {
      for (const stream of [child.stdout, child.stderr]) paused ? stream.pause() : stream.resume();
    },
    kill: (graceMs) => {
      if (exited) return;
      signalQuietly(-pid, "SIGHUP");
      setTimeout(() => {
        if (!exited) signalQuietly(-pid, "SIGKILL");
      }, graceMs).unref();
    },
  };
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function signalName(signal: number): string {
  const entry = Object.entries(os.constants.signals).find(([, value]) => value === signal);
  return entry ? entry[0] : `SIG${signal}`;
}
