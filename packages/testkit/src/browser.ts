/**
 * The run's one Chromium, shared by every browser test: the first caller starts it as a process
 * of its own (browser-server-process.ts; a lock directory makes sure only one does), later
 * callers — in this file or the next — connect to the same server. Each test uses a fresh
 * context of its own. The global setup (browser-global-setup.ts) stops it at the end of the run.
 */
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Browser, type BrowserContext, chromium } from "playwright-core";
import { inject } from "vitest";
import { spawnTs } from "./processes.js";

const SERVER_SCRIPT = new URL("./browser-server-process.ts", import.meta.url).pathname;
const START_TIMEOUT_MS = 90_000;

let connected: Promise<Browser> | undefined;

/** This worker's connection to the run's Chromium (started on first use). */
export function sharedBrowser(): Promise<Browser> {
  connected ??= connect().catch((error: Error) => {
    connected = undefined;
    throw error;
  });
  return connected;
}

/** A fresh context (no cookies, no storage) on the shared browser; close it when done. */
export async function newBrowserContext(
  options: Parameters<Browser["newContext"]>[0] = {},
): Promise<BrowserContext> {
  return (await sharedBrowser()).newContext(options);
}

async function connect(): Promise<Browser> {
  return chromium.connect(await endpoint(), { timeout: START_TIMEOUT_MS });
}

async function endpoint(): Promise<string> {
  const dir = inject("browserDir");
  if (!dir)
    throw new Error("no browserDir: list packages/testkit/src/browser-global-setup.ts in globalSetup");
  const file = path.join(dir, "endpoint");
  const existing = await readFile(file, "utf8").catch(() => null);
  if (existing) return existing;
  const won = await mkdir(path.join(dir, "lock")).then(
    () => true,
    () => false,
  );
  const log = path.join(dir, "server.log");
  if (won) {
    // Its output goes to a file: the pipes of a test worker would close with the worker.
    const out = openSync(log, "a");
    const child = spawnTs(SERVER_SCRIPT, ["--dir", dir, "--owner", String(inject("browserOwner"))], {
      detached: true,
      stdio: ["ignore", out, out],
    });
    closeSync(out);
    await writeFile(path.join(dir, "pid"), String(child.pid));
    child.unref();
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const text = await readFile(file, "utf8").catch(() => null);
    if (text) return text;
    if (Date.now() > deadline)
      throw new Error(
        `chromium did not start within ${START_TIMEOUT_MS} ms: ${await readFile(log, "utf8").catch(() => "")}`,
      );
    await sleep(100);
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    browserDir: string;
    browserOwner: number;
  }
}
