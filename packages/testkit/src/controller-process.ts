/**
 * Runs the real `nbfleet server` as a separate process (so a test can SIGKILL it and start it
 * again on the same data dir) and talks to it over HTTP like any outside client. It starts from
 * the run's bundle of the checkout's CLI (cli-bundle.ts).
 */
import type { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { captureOutput, spawnCli, stopChild } from "./processes.js";

export interface ControllerProcess {
  process: ChildProcess;
  url: string;
  dataDir: string;
  token: string;
  output: () => string;
}

/** `nbfleet server` on a fixed port and data dir, with a known admin token; resolves once /healthz answers. */
export async function startControllerProcess(
  dataDir: string,
  port: number,
  token: string,
  env: NodeJS.ProcessEnv = {},
  nodeFlags: string[] = [],
): Promise<ControllerProcess> {
  const child = spawnCli(["server", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {
    nodeFlags,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NBFLEET_ADMIN_TOKEN: token, NBFLEET_LOG_LEVEL: "warn", ...env },
  });
  const output = captureOutput(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nbfleet server exited (${child.exitCode}): ${output()}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { process: child, url, dataDir, token, output };
    if (Date.now() > deadline) throw new Error(`nbfleet server did not answer /healthz: ${output()}`);
    await sleep(200);
  }
}

export function stopControllerProcess(
  controller: ControllerProcess,
  signal: NodeJS.Signals = "SIGTERM",
): Promise<void> {
  return stopChild(controller.process, signal);
}

/** A small JSON client for the API. */
export function api(controller: Pick<ControllerProcess, "url" | "token">, token = controller.token) {
  return async <T = unknown>(
    method: string,
    route: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${controller.url}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  };
}
