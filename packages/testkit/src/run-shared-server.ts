/**
 * One server for a whole test run (Chromium, pebble), in three parts that meet in a directory:
 * - `runServerSetup`: the vitest global setup makes the directory and, at the end of the run,
 *   stops whatever process was started there (its pid file);
 * - `runServerEndpoint`: the first test that needs the server starts its process (a lock
 *   directory makes sure only one test does), and every caller waits for the endpoint file;
 * - `publishEndpoint` / `serveUntilOwnerGone`: the server process writes that file atomically and
 *   ends when asked (SIGTERM, SIGINT) or when the run that started it is gone.
 * Runs without such tests start nothing.
 */
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ProvidedContext } from "vitest";
import type { TestProject } from "vitest/node";
import { pidAlive as alive, spawnTs } from "./processes.js";

type ProvidedKey = keyof ProvidedContext;

export function runServerSetup(keys: { prefix: string; dir: ProvidedKey; owner: ProvidedKey }): {
  setup(project: TestProject): Promise<void>;
  teardown(): Promise<void>;
} {
  let dir: string | undefined;
  return {
    async setup(project) {
      dir = await mkdtemp(path.join(tmpdir(), keys.prefix));
      project.provide(keys.dir, dir as never);
      project.provide(keys.owner, process.pid as never);
    },
    async teardown() {
      if (!dir) return;
      const pid = Number.parseInt(await readFile(path.join(dir, "pid"), "utf8").catch(() => ""), 10);
      if (Number.isInteger(pid) && alive(pid)) {
        process.kill(pid, "SIGTERM");
        for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
        if (alive(pid)) process.kill(pid, "SIGKILL");
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface EndpointRequest {
  /** The run's directory (injected from the global setup). */
  dir: string;
  /** The test run's pid (injected), handed to the server process as `--owner`. */
  owner: number;
  /** The server process's script (run with tsx as `--dir <dir> --owner <pid>`). */
  script: string;
  /** The file in `dir` the server writes when it is ready. */
  endpointFile: string;
  /** For the error message: what did not start. */
  what: string;
  timeoutMs: number;
}

/** The endpoint file's text, starting the server process first if no test has yet. */
export async function runServerEndpoint(request: EndpointRequest): Promise<string> {
  const file = path.join(request.dir, request.endpointFile);
  const existing = await readFile(file, "utf8").catch(() => null);
  if (existing) return existing;
  const won = await mkdir(path.join(request.dir, "lock")).then(
    () => true,
    () => false,
  );
  const log = path.join(request.dir, "server.log");
  if (won) {
    // Its output goes to a file: the pipes of a test worker would close with the worker.
    const out = openSync(log, "a");
    const child = spawnTs(request.script, ["--dir", request.dir, "--owner", String(request.owner)], {
      detached: true,
      stdio: ["ignore", out, out],
    });
    closeSync(out);
    await writeFile(path.join(request.dir, "pid"), String(child.pid));
    child.unref();
  }
  const deadline = Date.now() + request.timeoutMs;
  for (;;) {
    const text = await readFile(file, "utf8").catch(() => null);
    if (text) return text;
    if (Date.now() > deadline)
      throw new Error(
        `${request.what} did not start within ${request.timeoutMs} ms: ${await readFile(log, "utf8").catch(() => "")}`,
      );
    await sleep(100);
  }
}

/** Writes the endpoint file at once (readers never see half of it). */
export async function publishEndpoint(dir: string, endpointFile: string, text: string): Promise<void> {
  const tmp = path.join(dir, `${endpointFile}.${process.pid}`);
  await writeFile(tmp, text);
  await rename(tmp, path.join(dir, endpointFile));
}

/** Runs `stop` and exits on SIGTERM/SIGINT or once the run `owner` (a pid) is gone. */
export function serveUntilOwnerGone(owner: number, stop: () => Promise<void>): void {
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await stop().catch(() => undefined);
    process.exit(0);
  };
  process.on("SIGTERM", close);
  process.on("SIGINT", close);
  setInterval(() => {
    if (!alive(owner)) void close();
  }, 2_000);
}
