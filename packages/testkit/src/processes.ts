/** Starting this checkout's TypeScript entry points as child processes, and stopping them. */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { bundledCli, repoRoot, tsxLoader } from "./repo.js";

/** Node's arguments to run `script` (a .ts file of this checkout) under tsx. */
export function tsxArgs(script: string, args: string[] = [], nodeFlags: string[] = []): string[] {
  return [...nodeFlags, "--import", tsxLoader, script, ...args];
}

/** Open files for a process holding one socket per agent of a ten-thousand-agent fleet. */
const MANY_SOCKETS = 65_536;

export type NodeSpawnOptions = SpawnOptions & { nodeFlags?: string[]; manySockets?: boolean };

/**
 * `script` under tsx in a node process of its own, from the repository root. With
 * `manySockets`, it starts through sh to raise the open-files limit (to the hard limit if that
 * is lower; the usual soft limit is 1024); `exec` keeps the pid node's own, for /proc, and any
 * IPC channel.
 */
export function spawnTs(script: string, args: string[] = [], options: NodeSpawnOptions = {}): ChildProcess {
  return spawnNode(tsxArgs(script, args, options.nodeFlags), options);
}

/**
 * The checkout's `nbfleet` CLI (`server` included) from the run's bundle (cli-bundle.ts), as
 * spawnTs starts a script: without tsx's loader, about 4 s of CPU less for each `nbfleet server`.
 */
export function spawnCli(args: string[], options: NodeSpawnOptions = {}): ChildProcess {
  return spawnNode([...(options.nodeFlags ?? []), bundledCli(), ...args], options);
}

function spawnNode(nodeArgs: string[], options: NodeSpawnOptions): ChildProcess {
  const { nodeFlags: _, manySockets, ...spawnOptions } = options;
  const node = [process.execPath, ...nodeArgs];
  const [file, ...argv] = !manySockets
    ? node
    : [
        "sh",
        "-c",
        `ulimit -n ${MANY_SOCKETS} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`,
        "sh",
        ...node,
      ];
  return spawn(file!, argv, { cwd: repoRoot, ...spawnOptions });
}

/** Everything the child writes on stdout and stderr, interleaved as it arrives. */
export function captureOutput(child: ChildProcess): () => string {
  let output = "";
  const append = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  return () => output;
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Asks the child to end — a signal, or e.g. closing its stdin — and resolves once it has exited
 * (at once if it already had); with `killAfterMs`, one that is still there by then gets SIGKILL.
 */
export async function stopChild(
  child: ChildProcess,
  ask: NodeJS.Signals | ((child: ChildProcess) => void) = "SIGTERM",
  killAfterMs?: number,
): Promise<void> {
  if (hasExited(child)) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  if (typeof ask === "function") ask(child);
  else child.kill(ask);
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  await exited;
  clearTimeout(timer);
}

/** Whether a process with this pid exists (signal 0; a zombie counts as existing). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
