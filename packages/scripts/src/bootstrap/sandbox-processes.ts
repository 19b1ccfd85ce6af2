/**
 * Stopping a sandbox guest's processes (launcher, agent, notebook) named by pid files: a process
 * is signalled only while it is still the one the file recorded (its start time, from
 * /proc/<pid>/stat, matches), then waited for with a deadline, SIGKILLed after a grace, and
 * waited for again with a deadline; zombies count as gone.
 */
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isRunning } from "@nbfleet/shared/proc";
import { ScriptsError } from "../errors.js";

/** What a pid file names: the pid and, where the writer recorded it, the process's start time. */
export interface PidFileRecord {
  pid: number;
  /** Clock ticks since boot (field 22 of /proc/<pid>/stat). */
  startTime?: number;
}

/**
 * Reads a pid file: `PID`, `PID STARTTIME` (the sandbox launcher's) or JSON `{pid, startTime}`
 * (the agent's notebook record). Null when it is missing or names no usable pid.
 */
export async function readPidFile(file: string): Promise<PidFileRecord | null> {
  const text = (await readFile(file, "utf8").catch(() => "")).trim();
  let pid: unknown;
  let startTime: unknown;
  if (text.startsWith("{")) {
    try {
      ({ pid, startTime } = JSON.parse(text) as { pid?: unknown; startTime?: unknown });
    } catch {
      return null;
    }
  } else {
    const [first, second] = text.split(/\s+/);
    pid = /^\d+$/.test(first ?? "") ? Number(first) : null;
    startTime = /^\d+$/.test(second ?? "") ? Number(second) : undefined;
  }
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 1) return null;
  return typeof startTime === "number" && Number.isInteger(startTime) ? { pid, startTime } : { pid };
}

export interface StopOptions {
  /** Signal the process group (`-pid`) rather than the process. */
  group?: boolean;
  /** How long the first signal has before SIGKILL (default 30 s). */
  graceMs?: number;
  /** How long a SIGKILLed process has to be gone before stopping fails (default 5 s). */
  killWaitMs?: number;
  /** Liveness and identity probe (tests inject one that never reports the process gone). */
  isRunning?: (pid: number, startTime?: number) => Promise<boolean>;
}

export type StopOutcome = "stopped" | "not-running" | "not-ours";

/**
 * Stops the process a pid file names, if it is still that process. A record without a start
 * time cannot prove who its pid is now and is signalled only when `verify` accepts the pid
 * (e.g. its command line shows the launcher). Never signals a process it cannot identify.
 */
export async function stopRecordedProcess(
  file: string,
  signal: NodeJS.Signals,
  options: StopOptions & { verify?: (pid: number) => Promise<boolean> } = {},
): Promise<StopOutcome | "no-record"> {
  const record = await readPidFile(file);
  if (!record) return "no-record";
  if (record.startTime === undefined && !(await options.verify?.(record.pid))) return "not-ours";
  return stopProcess(record, signal, options);
}

/**
 * Signals a process (or its group) and waits until it is gone: SIGKILL after `graceMs`, then
 * at most `killWaitMs` more (then a ScriptsError NBF_PROCESS_STOP_TIMEOUT). With a start time, the
 * identity is checked before every signal: a pid that now names another process is left alone.
 */
export async function stopProcess(
  target: PidFileRecord,
  signal: NodeJS.Signals,
  options: StopOptions = {},
): Promise<StopOutcome> {
  const { pid, startTime } = target;
  const running = options.isRunning ?? isRunning;
  const ours = () => running(pid, startTime);
  if (!(await ours())) {
    // Gone, or the pid was reused (a live process with another start time is not ours).
    return startTime !== undefined && (await running(pid)) ? "not-ours" : "not-running";
  }
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(options.group ? -pid : pid, sig);
    } catch {
      // already gone
    }
  };
  send(signal);
  if (await waitGone(ours, options.graceMs ?? 30_000)) return "stopped";
  if (!(await ours())) return "stopped";
  send("SIGKILL");
  const killWaitMs = options.killWaitMs ?? 5000;
  if (await waitGone(ours, killWaitMs)) return "stopped";
  throw new ScriptsError(
    "NBF_PROCESS_STOP_TIMEOUT",
    `process ${pid} was still running ${killWaitMs} ms after SIGKILL (stuck in the kernel?); it was not stopped`,
    { pid, killWaitMs },
  );
}

/** True once `ours` says the process is gone, false when `timeoutMs` passed first. */
async function waitGone(ours: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await ours())) return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
  }
}

/**
 * Stops a sandbox guest: its launcher with SIGINT (the agent under it stops its notebook server
 * too), then a notebook server that an agent killed earlier left behind, with its process group.
 * A launcher pid file from before start times were recorded is trusted only while the pid's
 * command line runs the launcher script.
 */
export async function stopSandboxGuest(
  layout: { pidFile: string; launcher: string },
  notebookPidFile: string,
  options: Omit<StopOptions, "group"> = {},
): Promise<void> {
  await stopRecordedProcess(layout.pidFile, "SIGINT", {
    ...options,
    verify: async (pid) => (await commandLine(pid)).includes(layout.launcher),
  });
  await stopRecordedProcess(notebookPidFile, "SIGTERM", { ...options, group: true });
}

async function commandLine(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return raw.split("\0");
}
