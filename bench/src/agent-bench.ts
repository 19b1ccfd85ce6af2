/**
 * Issue 2's figures:
 * - the agent's idle footprint with a running notebook over a window: RSS and CPU;
 * - restart latency: an agent restart of the notebook until healthy again, as a ratio to a bare
 *   `jupyter notebook` start until `/api` answers, both measured here in the same run.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { dataPaths, fetchState, probeApi, profileEnv, resolveRunAs, sendCommand } from "@nbfleet/agent";
import { AGENT_BUNDLE_FILE, AGENT_NODE_FLAGS, buildAgentArtifact } from "@nbfleet/scripts";
import { freePort, makeDataDir, startAgent, stopAgent } from "@nbfleet/testkit/agent-process";
import { median } from "./machine.js";
import { cpuSeconds, rssBytes } from "./proc-usage.js";

export interface AgentBenchResult {
  idleWindowSec: number;
  agentRssMB: number;
  agentCpuPercent: number;
  bareStartMs: number[];
  agentRestartMs: number[];
  restartRatio: number;
  runtime: string;
}

export async function runAgentBench(options: {
  idleWindowSec: number;
  rounds: number;
}): Promise<AgentBenchResult> {
  const dataDir = await makeDataDir("nbf-bench-agent-");
  const port = await freePort();
  // The runtime a guest gets: the bundle from the artifact, under the bootstrap's node flags.
  const launcher = [process.execPath, ...AGENT_NODE_FLAGS, await unpackedArtifact()];
  const agent = await startAgent(dataDir, port, { password: "bench-password", launcher });
  const paths = dataPaths(dataDir);
  try {
    await waitHealthy(paths.controlSocket);
    const agentPid = agent.process.pid!;

    const cpuBefore = await cpuSeconds(agentPid);
    const rssSamples: number[] = [];
    const started = Date.now();
    while (Date.now() - started < options.idleWindowSec * 1000) {
      rssSamples.push(await rssBytes(agentPid));
      await sleep(1000);
    }
    const cpuUsed = (await cpuSeconds(agentPid)) - cpuBefore;
    const elapsed = (Date.now() - started) / 1000;

    const agentRestartMs: number[] = [];
    const bareStartMs: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const t0 = performance.now();
      const outcome = await sendCommand(paths.controlSocket, "notebook.restart", {});
      if (!outcome.ok) throw new Error(`restart failed: ${outcome.error.message}`);
      agentRestartMs.push(performance.now() - t0);

      await sendCommand(paths.controlSocket, "notebook.stop", {});
      bareStartMs.push(await bareStart(paths, port));
      await sendCommand(paths.controlSocket, "notebook.start", {});
    }
    return {
      idleWindowSec: Math.round(elapsed),
      agentRssMB: Math.max(...rssSamples) / 2 ** 20,
      agentCpuPercent: (cpuUsed / elapsed) * 100,
      bareStartMs,
      agentRestartMs,
      restartRatio: median(agentRestartMs) / median(bareStartMs),
      runtime: `bundled agent artifact, node ${AGENT_NODE_FLAGS.join(" ")}`,
    };
  } finally {
    await stopAgent(agent, "SIGINT");
  }
}

/** `jupyter notebook` with the same profile, as the same user, until GET /api answers over TLS. */
async function bareStart(paths: ReturnType<typeof dataPaths>, port: number): Promise<number> {
  const install = JSON.parse(await readFile(paths.installRecord, "utf8")) as { launch: string[] };
  const owner = await resolveRunAs({ isRoot: process.getuid?.() === 0, runAs: "nbfleet", allowRoot: false });
  const t0 = performance.now();
  const child = spawn(install.launch[0]!, install.launch.slice(1), {
    cwd: path.join(paths.dataDir, "notebooks"),
    env: { PATH: process.env.PATH, HOME: owner?.home ?? process.env.HOME, ...profileEnv(paths) },
    stdio: "ignore",
    detached: true,
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
  });
  try {
    for (;;) {
      const endpoint = { host: "127.0.0.1", port, baseUrl: "/", certFile: paths.certFile };
      if ((await probeApi(endpoint, 2000)).ok) return performance.now() - t0;
      await sleep(25);
    }
  } finally {
    process.kill(-child.pid!, "SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

async function unpackedArtifact(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "nbf-bench-artifact-"));
  const artifact = await buildAgentArtifact({ outDir: path.join(dir, "out") });
  await promisify(execFile)("tar", ["-xzf", artifact.file, "-C", dir]);
  return path.join(dir, AGENT_BUNDLE_FILE);
}

async function waitHealthy(socket: string): Promise<void> {
  for (;;) {
    const state = await fetchState(socket);
    if (state.notebook.state === "running" && state.health.checks.every((c) => c.status !== "fail")) return;
    await sleep(200);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
