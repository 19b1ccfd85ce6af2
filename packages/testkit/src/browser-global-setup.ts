/**
 * Vitest global setup: a place for the run's one Chromium. Nothing is launched here — the first
 * test that asks for a browser starts it (browser.ts), so runs without browser tests pay
 * nothing; teardown stops it.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { TestProject } from "vitest/node";

let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-chromium-"));
  project.provide("browserDir", dir);
  project.provide("browserOwner", process.pid);
}

export async function teardown(): Promise<void> {
  if (!dir) return;
  const pid = Number.parseInt(await readFile(path.join(dir, "pid"), "utf8").catch(() => ""), 10);
  if (Number.isInteger(pid) && alive(pid)) {
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }
  await rm(dir, { recursive: true, force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    browserDir: string;
    browserOwner: number;
  }
}
