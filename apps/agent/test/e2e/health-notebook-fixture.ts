/**
 * A real Jupyter notebook 6 server for the health e2e tests: temp dir, self-signed P-256
 * certificate, free loopback port, agent token on the command line. Test-only: the agent
 * itself starts the server from a config file.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import type { CheckTarget } from "../../src/health/index.js";
import { probeApi } from "../../src/health/index.js";

export interface NotebookFixture {
  dir: string;
  target: CheckTarget;
  /** The key file the server was started with (beside `target.certFile`). */
  keyFile: string;
  child: ChildProcess;
  exited: Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

/** `token: ""` starts a server with neither token nor password: no authentication at all. */
export async function startNotebook(token: string): Promise<NotebookFixture> {
  const dir = makeDataDir("nbfleet-health-");
  const notebookDir = path.join(dir, "notebooks");
  await Promise.all(
    ["config", "runtime", "data", "ipython", "notebooks"].map((d) => mkdir(path.join(dir, d))),
  );
  const { cert: certFile, key: keyFile } = await selfSignedPair(dir, "cert", 365);
  const port = await freePort();

  const args = [
    "notebook",
    "--no-browser",
    "--allow-root",
    `--port=${port}`,
    // notebook 6.4.12 has no --port_retries alias; only the full trait name works.
    "--NotebookApp.port_retries=0",
    "--ip=127.0.0.1",
    `--certfile=${certFile}`,
    `--keyfile=${keyFile}`,
    `--NotebookApp.token=${token}`,
    `--notebook-dir=${notebookDir}`,
  ];
  if (token === "") args.push("--NotebookApp.password=");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    JUPYTER_CONFIG_DIR: path.join(dir, "config"),
    JUPYTER_RUNTIME_DIR: path.join(dir, "runtime"),
    JUPYTER_DATA_DIR: path.join(dir, "data"),
    IPYTHONDIR: path.join(dir, "ipython"),
  };
  env.MPLBACKEND = undefined;
  // Own process group, so stop() also reaches the kernels the server started.
  const child = spawn("/usr/bin/jupyter", args, { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const target: CheckTarget = {
    host: "127.0.0.1",
    port,
    baseUrl: "/",
    token,
    pid: child.pid ?? null,
    certFile,
    diskPath: notebookDir,
  };

  const stop = async () => {
    const pid = child.pid;
    if (pid === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-pid, "SIGTERM");
      const timer = setTimeout(() => killGroup(pid), 5000);
      await exited;
      clearTimeout(timer);
    }
    // Kernels of a server that was killed outright are still in its process group.
    killGroup(pid);
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`jupyter notebook exited before it was ready:\n${output}`);
    }
    const probe = await probeApi(target, 2000);
    if (probe.ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`jupyter notebook not ready within 60 s (${probe.error}):\n${output}`);
    }
    await sleep(200);
  }
  return { dir, target, keyFile, child, exited, output: () => output, stop };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // ESRCH: the group is already gone.
  }
}
