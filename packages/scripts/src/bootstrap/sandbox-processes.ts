/** Stopping a sandbox guest's processes (launcher, agent, notebook): signal, wait, SIGKILL after a grace; zombies count as gone. */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

const GRACE_MS = 30_000;

export async function readPidFile(file: string): Promise<number | null> {
  const text = await readFile(file, "utf8").catch(() => "");
  const trimmed = text.trim();
  let pid: unknown = Number.parseInt(trimmed, 10);
  if (trimmed.startsWith("{")) {
    try {
      pid = (JSON.parse(trimmed) as { pid?: unknown }).pid;
    } catch {
      pid = null;
    }
  }
  return typeof pid === "number" && Number.isInteger(pid) && pid > 1 ? pid : null;
}

/** Signals a process (or its group) and waits until it is gone. */
export async function stopProcess(pid: number, signal: NodeJS.Signals, group = false): Promise<void> {
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(group ? -pid : pid, sig);
    } catch {
      // already gone
    }
  };
  if (!alive(pid)) return;
  send(signal);
  const deadline = Date.now() + GRACE_MS;
  while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  if (alive(pid)) send("SIGKILL");
  while (alive(pid)) await new Promise((resolve) => setTimeout(resolve, 50));
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
