/**
 * The run's one Chromium, shared by every browser test: the first caller starts it as a process
 * of its own (browser-server-process.ts; a lock directory makes sure only one does), later
 * callers — in this file or the next — connect to the same server. Each test uses a fresh
 * context of its own. The global setup (browser-global-setup.ts) stops it at the end of the run.
 */
import { type Browser, type BrowserContext, chromium } from "playwright-core";
import { inject } from "vitest";
import { runServerEndpoint } from "./run-shared-server.js";

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
  return runServerEndpoint({
    dir,
    owner: inject("browserOwner"),
    script: SERVER_SCRIPT,
    endpointFile: "endpoint",
    what: "chromium",
    timeoutMs: START_TIMEOUT_MS,
  });
}

declare module "vitest" {
  export interface ProvidedContext {
    browserDir: string;
    browserOwner: number;
  }
}
