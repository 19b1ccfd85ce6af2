/**
 * Runs the real `nbfleet server` as a separate process (so a test can SIGKILL it and start it
 * again on the same data dir) and talks to it over HTTP like any outside client.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdtemp } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { controllerMain as cliMain, repoRoot, tsxLoader } from "./repo.js";

export interface ControllerProcess {
  process: ChildProcess;
  url: string;
  dataDir: string;
  token: string;
  output: () => string;
}

export async function makeControllerDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "nbf-ctl-"));
  await chmod(dir, 0o755);
  return dir;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** `nbfleet server` on a fixed port and data dir, with a known admin token; resolves once /healthz answers. */
export async function startControllerProcess(
  dataDir: string,
  port: number,
  token: string,
  env: NodeJS.ProcessEnv = {},
  nodeFlags: string[] = [],
): Promise<ControllerProcess> {
  const child = spawn(
    process.execPath,
    [
      ...nodeFlags,
      "--import",
      tsxLoader,
      cliMain,
      "server",
      "--listen",
      `127.0.0.1:${port}`,
      "--data-dir",
      dataDir,
    ],
    {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NBFLEET_ADMIN_TOKEN: token, NBFLEET_LOG_LEVEL: "warn", ...env },
    },
  );
  let output = "";
  child.stdout!.on("data", (c: Buffer) => {
    output += c.toString();
  });
  child.stderr!.on("data", (c: Buffer) => {
    output += c.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nbfleet server exited (${child.exitCode}): ${output}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { process: child, url, dataDir, token, output: () => output };
    if (Date.now() > deadline) throw new Error(`nbfleet server did not answer /healthz: ${output}`);
    await sleep(200);
  }
}

export async function stopControllerProcess(
  controller: ControllerProcess,
  signal: NodeJS.Signals = "SIGTERM",
) {
  const child = controller.process;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  await exited;
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
