/** The `process` check: the notebook's pid exists and is not a zombie. */
import { readFile } from "node:fs/promises";
import type { HealthCheck } from "@nbfleet/shared";
import { checkResult } from "./result.js";
import type { CheckTarget } from "./target.js";

export async function checkProcess(target: Pick<CheckTarget, "pid">, now = new Date()): Promise<HealthCheck> {
  const { pid } = target;
  if (pid === null) return checkResult("process", "fail", "no notebook process is known", now, { pid });
  if (!pidExists(pid)) {
    return checkResult("process", "fail", `notebook process ${pid} is not running`, now, { pid });
  }
  const state = await procState(pid);
  if (state === "Z" || state === "X") {
    return checkResult("process", "fail", `notebook process ${pid} has exited (state ${state})`, now, {
      pid,
      state,
    });
  }
  return checkResult("process", "pass", `notebook process ${pid} is running`, now, { pid, state });
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to a user we may not signal.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The one-letter state from /proc/<pid>/stat, or null where there is no /proc. */
async function procState(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name in parentheses may itself contain spaces and ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? null;
  } catch {
    return null;
  }
}
