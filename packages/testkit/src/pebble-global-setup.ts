/**
 * Vitest global setup: a place for the run's one pebble (ACME server). Nothing is started here —
 * the first test that asks for it starts it (shared-pebble.ts), so runs without ACME tests pay
 * nothing; teardown stops it (pebble-server-process.ts removes pebble, its DNS and its files).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { TestProject } from "vitest/node";

let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-shared-pebble-"));
  project.provide("pebbleDir", dir);
  project.provide("pebbleOwner", process.pid);
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
    pebbleDir: string;
    pebbleOwner: number;
  }
}
