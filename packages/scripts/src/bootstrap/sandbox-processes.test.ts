import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isRunning, readProcStat } from "@nbfleet/shared/proc";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { afterEach, describe, expect, it } from "vitest";
import type { ScriptsError } from "../errors.js";
import { readPidFile, stopProcess, stopRecordedProcess, stopSandboxGuest } from "./sandbox-processes.js";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

async function spawned(command: string, args: string[]): Promise<{ pid: number; startTime: number }> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"] });
  children.push(child);
  const pid = child.pid!;
  // A child that says "ready" has set up what the test relies on (a trap, say).
  if (args.some((arg) => arg.includes("echo ready"))) {
    await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
  }
  for (let i = 0; i < 100; i++) {
    const stat = await readProcStat(pid);
    if (stat) return { pid, startTime: stat.startTime };
    await sleep(10);
  }
  throw new Error(`no /proc entry for ${command}`);
}

async function pidFile(content: string): Promise<string> {
  const dir = makeDataDir("nbf-pidfile-", 0o700);
  const file = path.join(dir, "x.pid");
  await writeFile(file, content);
  return file;
}

describe("sandbox process stopping", () => {
  it("reads the launcher's `PID STARTTIME`, a bare pid and the agent's JSON record", async () => {
    expect(await readPidFile(await pidFile("1234 5678\n"))).toEqual({ pid: 1234, startTime: 5678 });
    expect(await readPidFile(await pidFile("1234 \n"))).toEqual({ pid: 1234 });
    expect(await readPidFile(await pidFile('{"pid":42,"startTime":7,"port":1}'))).toEqual({
      pid: 42,
      startTime: 7,
    });
    expect(await readPidFile(await pidFile("1"))).toBeNull();
    expect(await readPidFile(await pidFile("12abc"))).toBeNull();
    expect(await readPidFile("/nonexistent/pid")).toBeNull();
  });

  it("does not signal a live process whose start time differs from the recorded one (a reused pid)", async () => {
    const sleeper = await spawned("sleep", ["30"]);
    const file = await pidFile(`${sleeper.pid} ${sleeper.startTime + 1}\n`);
    expect(await stopRecordedProcess(file, "SIGTERM", { graceMs: 100 })).toBe("not-ours");
    const json = await pidFile(
      JSON.stringify({ pid: sleeper.pid, startTime: sleeper.startTime - 1, port: 1 }),
    );
    expect(await stopRecordedProcess(json, "SIGTERM", { graceMs: 100, group: true })).toBe("not-ours");
    await sleep(200);
    expect(await isRunning(sleeper.pid, sleeper.startTime)).toBe(true);
  });

  it("does not signal a bare pid it cannot verify", async () => {
    const sleeper = await spawned("sleep", ["30"]);
    const file = await pidFile(`${sleeper.pid}\n`);
    expect(await stopRecordedProcess(file, "SIGTERM", { graceMs: 100 })).toBe("not-ours");
    expect(await stopRecordedProcess(file, "SIGTERM", { graceMs: 100, verify: async () => false })).toBe(
      "not-ours",
    );
    await sleep(200);
    expect(await isRunning(sleeper.pid, sleeper.startTime)).toBe(true);
  });

  it("stops the recorded process, with SIGKILL once the grace is over", async () => {
    const stubborn = await spawned("sh", ["-c", 'trap "" TERM; echo ready; while :; do sleep 0.05; done']);
    const file = await pidFile(`${stubborn.pid} ${stubborn.startTime}\n`);
    const started = Date.now();
    expect(await stopRecordedProcess(file, "SIGTERM", { graceMs: 300 })).toBe("stopped");
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(await isRunning(stubborn.pid)).toBe(false);
    expect(await stopRecordedProcess(file, "SIGTERM")).toBe("not-running");
  });

  it("ends the wait after SIGKILL at its deadline with a clear error", async () => {
    const target = await spawned("sleep", ["30"]);
    const neverGone = async () => true;
    const started = Date.now();
    const error = (await stopProcess(target, "SIGTERM", {
      graceMs: 100,
      killWaitMs: 300,
      isRunning: neverGone,
    }).catch((e: unknown) => e)) as ScriptsError;
    expect(error.code).toBe("NBF_PROCESS_STOP_TIMEOUT");
    expect(error.message).toContain(`process ${target.pid} was still running 300 ms after SIGKILL`);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("stopSandboxGuest trusts a bare launcher pid only while it runs the launcher script", async () => {
    const dir = makeDataDir("nbf-guest-", 0o700);
    const launcher = path.join(dir, "run-agent.sh");
    await writeFile(launcher, "while :; do sleep 0.05; done\n");
    const other = await spawned("sleep", ["30"]);
    const layout = { pidFile: path.join(dir, "agent.pid"), launcher };
    await writeFile(layout.pidFile, `${other.pid}\n`);
    await stopSandboxGuest(layout, path.join(dir, "none.json"), { graceMs: 200 });
    expect(await isRunning(other.pid, other.startTime)).toBe(true);

    const real = await spawned("sh", [launcher]);
    await writeFile(layout.pidFile, `${real.pid}\n`);
    await stopSandboxGuest(layout, path.join(dir, "none.json"), { graceMs: 200 });
    expect(await isRunning(real.pid)).toBe(false);
  });
});
